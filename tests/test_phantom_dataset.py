"""Writing the phantom to disk: layout, manifest, determinism, DICOM, augmented copies, bad input."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from liverlib.config import CLASS_NAMES, PAPER_CLASS_SUPPORT
from liverlib.imaging.dicom import read_dicom_hu
from liverlib.errors import LiverlibError
from liverlib.phantom import dataset as phantom_dataset
from liverlib.phantom.dataset import class_counts, plan_patients, read_manifest, write_phantom_dataset
from liverlib.phantom.tissues import LESION_LABEL_MIN
from liverlib.imaging.windowing import window_to_uint8


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph") / "phantom"
    write_phantom_dataset(out, n=40, seed=3, size=128, workers=1, progress=False, slices_per_patient=3)
    return out


def test_layout_is_one_folder_per_class_with_masks_and_manifest(small_set):
    assert {p.name for p in small_set.iterdir()} == {*CLASS_NAMES, "masks", "manifest.csv", "dataset.json",
                                                     "README.txt"}
    assert "SYNTHETIC" in (small_set / "README.txt").read_text()
    info = json.loads((small_set / "dataset.json").read_text())
    assert info["synthetic"] is True and info["n_slices"] == 40
    df = read_manifest(small_set / "manifest.csv")
    assert len(df) == 40
    for row in df.itertuples():
        image = small_set / row.file
        mask = small_set / row.mask_file
        assert image.parent.name == row._2  # the class column names the folder
        assert hashlib.sha256(image.read_bytes()).hexdigest() == row.sha256
        with Image.open(image) as im, Image.open(mask) as mk:
            assert im.mode == "L" and im.size == (128, 128)
            assert mk.size == (128, 128)


def test_manifest_has_per_patient_structure(small_set):
    df = read_manifest(small_set / "manifest.csv")
    for pid, group in df.groupby("patient_id"):
        assert group["class"].nunique() == 1, f"{pid} has slices of two classes"
        assert sorted(group.slice_index) == list(range(len(group)))
        z = group.sort_values("slice_index").z_mm.to_numpy()
        assert np.all(np.diff(z) > 0)
        assert group.pixel_spacing_mm.nunique() == 1
    assert df.patient_id.nunique() < len(df)  # several slices per patient


def test_masks_show_lesions_exactly_for_lesion_classes(small_set):
    df = read_manifest(small_set / "manifest.csv")
    for row in df.itertuples():
        mask = np.asarray(Image.open(small_set / row.mask_file))
        has_lesion = bool((mask >= LESION_LABEL_MIN).any())
        assert has_lesion == (row._2 in ("benign", "malignant")), row.file
        assert (row.n_lesions > 0) == has_lesion
        if has_lesion:
            assert row.lesion_kinds and json.loads(row.lesions)


def test_default_dataset_has_the_papers_class_balance():
    counts = class_counts(4741)
    assert sum(counts.values()) == 4741
    total = sum(PAPER_CLASS_SUPPORT.values())
    for cls, k in counts.items():
        assert k / 4741 == pytest.approx(PAPER_CLASS_SUPPORT[cls] / total, abs=0.001)
    assert counts == {"benign": 2970, "cirrhosis": 200, "malignant": 972, "normal": 599}
    tasks = plan_patients(4741, seed=0)
    assert sum(t.n_slices for t in tasks) == 4741
    assert all(1 <= t.n_slices <= 5 for t in tasks)
    assert len({t.patient_id for t in tasks}) == len(tasks)


def test_small_datasets_keep_every_class():
    assert all(k >= 1 for k in class_counts(4).values())
    assert class_counts(2, ("normal", "cirrhosis")) == {"normal": 1, "cirrhosis": 1}


def test_same_seed_same_bytes_whatever_the_number_of_workers(tmp_path):
    a = write_phantom_dataset(tmp_path / "a", n=48, seed=5, size=96, workers=1, progress=False)
    b = write_phantom_dataset(tmp_path / "b", n=48, seed=5, size=96, workers=2, progress=False)
    c = write_phantom_dataset(tmp_path / "c", n=48, seed=6, size=96, workers=1, progress=False)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    df = read_manifest(a)
    for rel in df.file:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_dicom_round_trip_carries_hu_and_tags(tmp_path):
    import pydicom

    dcm = write_phantom_dataset(tmp_path / "dcm", n=8, seed=2, size=128, fmt="dicom", workers=1, progress=False)
    png = write_phantom_dataset(tmp_path / "png", n=8, seed=2, size=128, fmt="png", workers=1, progress=False)
    ddf, pdf = read_manifest(dcm), read_manifest(png)
    assert all(f.endswith(".dcm") for f in ddf.file)
    for drow, prow in zip(ddf.itertuples(), pdf.itertuples()):
        path = tmp_path / "dcm" / drow.file
        ds = pydicom.dcmread(path)
        assert ds.Modality == "CT" and ds.PatientID == drow.patient_id
        assert float(ds.RescaleIntercept) == -1024.0 and float(ds.RescaleSlope) == 1.0
        assert float(ds.PixelSpacing[0]) == pytest.approx(drow.pixel_spacing_mm)
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
        assert "SYNTHETIC" in ds.ImageComments
        sl = read_dicom_hu(path)
        assert sl.hu.shape == (128, 128) and sl.window == (40.0, 400.0)
        assert -1024 <= sl.hu.min() and sl.hu.max() <= 3071
        # the DICOM's HU, windowed, is the PNG of the same slice (HU rounded to integers on the way)
        png_pixels = np.asarray(Image.open(tmp_path / "png" / prow.file)).astype(int)
        diff = np.abs(window_to_uint8(sl.hu, 40, 400).astype(int) - png_pixels)
        assert diff.max() <= 1


def test_same_seed_gives_identical_dicom_files(tmp_path):
    a = write_phantom_dataset(tmp_path / "a", n=4, seed=1, size=64, fmt="dicom", workers=1, progress=False)
    b = write_phantom_dataset(tmp_path / "b", n=4, seed=1, size=64, fmt="dicom", workers=1, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_augmented_copies_point_to_their_source(tmp_path):
    manifest = write_phantom_dataset(tmp_path / "aug", n=8, seed=4, size=96, augmented_copies=2, workers=1,
                                     progress=False)
    df = read_manifest(manifest)
    assert len(df) == 24
    originals = df[df.augmented_from == ""]
    copies = df[df.augmented_from != ""]
    assert len(originals) == 8 and len(copies) == 16
    by_file = originals.set_index("file")
    for row in copies.itertuples():
        source = by_file.loc[row.augmented_from]
        assert source.patient_id == row.patient_id and source["class"] == row._2
        a = np.asarray(Image.open(tmp_path / "aug" / row.file))
        b = np.asarray(Image.open(tmp_path / "aug" / row.augmented_from))
        assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=-1), "--n must be a positive"),
    (dict(n=0), "--n must be a positive"),
    (dict(classes=("benign", "fatty")), "unknown class 'fatty'"),
    (dict(fmt="jpeg"), "--format must be one of png, dicom"),
    (dict(size=10), "--size must be between 64 and 1024"),
    (dict(augmented_copies=-2), "--augmented-copies must be between 0 and 20"),
    (dict(seed=-5), "--seed must be a non-negative"),
])
def test_bad_arguments_are_clear_errors_and_write_nothing(tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(LiverlibError, match=message):
        write_phantom_dataset(out, **{"n": 4, "size": 64, "workers": 1, "progress": False, **kwargs})
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_overwrite_and_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(LiverlibError, match="exists and is not empty; pass --overwrite"):
        write_phantom_dataset(out, n=4, size=64, workers=1, progress=False)
    assert (out / "precious.txt").read_text() == "keep me"
    write_phantom_dataset(out, n=4, size=64, workers=1, progress=False, overwrite=True)
    assert not (out / "precious.txt").exists() and (out / "manifest.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left


def test_unwritable_destination_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LiverlibError, match="exists and is a file"):
        write_phantom_dataset(blocker, n=4, size=64, workers=1, progress=False)
    with pytest.raises(LiverlibError, match="cannot create the parent folder"):
        write_phantom_dataset(blocker / "sub" / "out", n=4, size=64, workers=1, progress=False)


def test_a_failure_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = phantom_dataset._write_patient

    def failing(task, job):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        return real(task, job)

    monkeypatch.setattr(phantom_dataset, "_write_patient", failing)
    with pytest.raises(KeyboardInterrupt):
        write_phantom_dataset(tmp_path / "out", n=12, size=64, workers=1, progress=False, slices_per_patient=1)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_dataset_and_reports_bad_input(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "liverlib.cli", "phantom", "--out", str(tmp_path / "p"), "--n", "6",
                         "--size", "64", "--seed", "1", "--format", "dicom", "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert len(read_manifest(tmp_path / "p" / "manifest.csv")) == 6
    again = subprocess.run([sys.executable, "-m", "liverlib.cli", "phantom", "--out", str(tmp_path / "p"), "--n", "6",
                            "--quiet"], capture_output=True, text=True)
    assert again.returncode == 1 and "pass --overwrite" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([sys.executable, "-m", "liverlib.cli", "phantom", "--out", str(tmp_path / "q"),
                          "--classes", "benign,steatosis"], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown class 'steatosis'" in bad.stderr
