"""Whole synthetic studies: a series from above the liver dome to below its tip, written as DICOM series and
NIfTI volumes that liverlib.imaging.studies reads back to the same arrays, with label volumes and a manifest."""

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from liverlib.cli import main
from liverlib.errors import LiverlibError
from liverlib.phantom.studies import (MIN_LIVER_AREA_MM2, STUDY_MANIFEST_COLUMNS, liver_profile, make_study,
                                      plan_study, read_study_manifest, write_phantom_studies)
from liverlib.phantom.tissues import LESION_LABEL_MIN
from liverlib.imaging.studies import read_study


@pytest.fixture(scope="module")
def study():
    return make_study("malignant", seed=(3, 1), size=96)


def test_a_study_runs_from_above_the_dome_to_below_the_tip(study):
    n = len(study.z_mm)
    assert 30 <= n <= 65 and study.hu.shape == (n, 96, 96) and study.labels.shape == (n, 96, 96)
    assert np.allclose(np.diff(study.z_mm), study.slice_spacing_mm) and study.slice_spacing_mm in (4.0, 5.0)
    assert study.z_mm[0] < study.liver_dome_mm < study.liver_tip_mm < study.z_mm[-1]
    liver = study.liver_slices
    assert liver == list(range(liver[0], liver[-1] + 1))  # one organ: a contiguous run
    assert liver[0] >= 2 and liver[-1] <= n - 3  # slices without liver above and below
    assert all(study.slices[i]["liver_area_mm2"] < MIN_LIVER_AREA_MM2 for i in (0, 1, n - 2, n - 1))
    lesion = study.lesion_slices
    assert lesion and set(lesion) <= set(liver) and len(lesion) < len(liver)  # only the slices that cut them
    assert not (study.labels[[0, n - 1]] >= LESION_LABEL_MIN).any()
    areas = [study.slices[i]["liver_area_mm2"] for i in liver]
    assert max(areas) > 5 * areas[0] and max(areas) > 5 * areas[-1]  # grows below the dome, narrows to the tip


def test_profile_dome_and_tip_and_a_study_without_liver():
    plan = plan_study("normal", seed=4, n_slices=12)
    assert len(plan.z_mm) == 12
    assert liver_profile(plan, plan.liver_dome_mm - 1) == 0 and liver_profile(plan, plan.liver_tip_mm + 1) == 0
    assert liver_profile(plan, (plan.liver_dome_mm + plan.liver_tip_mm) / 2) > 0.5
    empty = make_study("benign", seed=4, size=64, n_slices=12, liver=False)
    assert empty.liver_slices == [] and empty.lesion_slices == [] and empty.liver_dome_mm is None
    same = make_study("benign", seed=4, size=64, n_slices=12)
    assert np.array_equal(same.hu, make_study("benign", seed=4, size=64, n_slices=12).hu)  # seeded
    assert same.liver_slices
    with pytest.raises(LiverlibError, match="at least 2 slices"):
        plan_study("normal", seed=0, n_slices=1)


def test_dicom_series_and_nifti_read_back_to_the_same_volume(tmp_path):
    manifests = {fmt: write_phantom_studies(tmp_path / fmt, n=2, seed=2, size=64, fmt=fmt, workers=1, progress=False)
                 for fmt in ("dicom-series", "nifti")}
    tables = {fmt: read_study_manifest(path) for fmt, path in manifests.items()}
    series, nifti = tables["dicom-series"], tables["nifti"]
    assert list(series.columns) == list(STUDY_MANIFEST_COLUMNS)
    assert list(series["patient_id"]) == list(nifti["patient_id"])
    uids = set()
    for row, nrow in zip(series.itertuples(), nifti.itertuples()):
        folder = tmp_path / "dicom-series" / row.study
        assert folder.is_dir() and row.study == f"{row._2}/{row.patient_id}"
        assert nrow.study == f"{row._2}/{row.patient_id}.nii.gz"
        (dicom_volume,), (nifti_volume,) = read_study(folder), read_study(tmp_path / "nifti" / nrow.study)
        expected = make_study(row._2, (2, int(row.patient_id[1:]) - 1), 64, row.patient_id).volume()
        for volume in (dicom_volume, nifti_volume):
            assert volume.shape == (row.n_slices, 64, 64) and volume.notes == []
            np.testing.assert_array_equal(volume.hu, expected.hu)
            np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-3)
            assert volume.spacing_mm[0] == pytest.approx(row.slice_spacing_mm)
        headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
        assert len({h.StudyInstanceUID for h in headers}) == 1 and len({h.SeriesInstanceUID for h in headers}) == 1
        uids.add(headers[0].SeriesInstanceUID)
        z = [float(h.ImagePositionPatient[2]) for h in headers]
        np.testing.assert_allclose(np.diff(z), -row.slice_spacing_mm, atol=1e-3)  # head first, evenly spaced
        assert float(headers[0].SliceThickness) == pytest.approx(row.slice_spacing_mm)
        labels = nib.load(tmp_path / "dicom-series" / row.labels)
        assert labels.get_data_dtype() == np.uint8 and labels.shape == (64, 64, row.n_slices)
        assert row.n_liver_slices == len(row.liver_slices) and 0 < row.n_liver_slices < row.n_slices
        assert set(row.lesion_slices) <= set(row.liver_slices)
    assert len(uids) == 2  # one series per patient
    slices = (tmp_path / "nifti" / "slices.csv").read_text().splitlines()
    assert len(slices) == 1 + int(nifti["n_slices"].sum())
    info = json.loads((tmp_path / "nifti" / "dataset.json").read_text())
    assert info["synthetic"] is True and info["n_studies"] == 2


def test_the_label_volume_matches_the_study(tmp_path):
    write_phantom_studies(tmp_path / "s", n=1, seed=5, size=64, fmt="nifti", classes=("benign",), workers=1,
                          progress=False)
    row = read_study_manifest(tmp_path / "s" / "manifest.csv").iloc[0]
    study = make_study("benign", (5, 0), 64, "P00001")
    labels = read_study(tmp_path / "s" / row["labels"])[0].hu  # read as a volume: the same view as the CT
    np.testing.assert_array_equal(labels, study.labels)


def test_cli_writes_studies_and_refuses_slice_options(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["phantom", "--out", str(out), "--format", "nifti", "--n", "1", "--size", "64", "--quiet",
                 "--classes", "normal", "--slice-spacing", "8", "--workers", "1"]) == 0
    assert "1 synthetic studies" in capsys.readouterr().out
    row = read_study_manifest(out / "manifest.csv").iloc[0]
    assert row["slice_spacing_mm"] == 8.0 and (out / row["study"]).is_file()
    assert main(["phantom", "--out", str(tmp_path / "x"), "--format", "dicom-series", "--n", "1",
                 "--augmented-copies", "2"]) == 1
    assert "not to whole studies" in capsys.readouterr().err
    assert main(["phantom", "--out", str(tmp_path / "y"), "--format", "nifti", "--n", "0"]) == 1
    assert "number of patients" in capsys.readouterr().err
