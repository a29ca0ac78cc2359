"""Loading datasets as they arrive: layouts, file types, bad files, groups, splits, windowing, the audit."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liverlib.audit import audit_folder, calibrate
from liverlib.config import CLASS_NAMES
from liverlib.data import class_table, scan_dataset
from liverlib.dicom import write_ct_dicom
from liverlib.errors import LiverlibError
from liverlib.imageio import decode_file, decode_image, quantise8
from liverlib.nearcopy import signature
from liverlib.phantom import make_slice, write_phantom_dataset
from liverlib.splits import assert_groups_disjoint, load_split, make_split, save_split, split_table
from liverlib.windowing import parse_window, window_hu, window_to_uint8


def _ct(seed=0, cls="normal", size=128):
    return make_slice(cls, seed=seed, size=size)


def _png_bytes(array, fmt="PNG", **kw):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)  # uint16 arrays become 16-bit ("I;16") images
    return buf.getvalue()


def _write_class_folders(root, names=("benign", "malignant", "cirrhosis", "normal"), per_class=3, seed=0):
    for c, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            grey = window_to_uint8(_ct(seed * 100 + c * 10 + k).hu, 40, 400)
            Image.fromarray(grey).save(folder / f"img{k}.png")
    return root


# ---------------------------------------------------------------------------------------------- windowing

def test_window_maps_hand_computed_hu_values():
    hu = np.array([-1000, -160, 40, 140, 240, 1000], dtype=np.float32)
    assert window_hu(hu, 40, 400).tolist() == pytest.approx([0, 0, 0.5, 0.75, 1, 1])
    assert window_to_uint8(hu, 40, 400).tolist() == [0, 0, 128, 191, 255, 255]
    # liver window L30/W150: [-45, 105]
    assert window_hu(np.array([-45.0, 30.0, 105.0]), 30, 150).tolist() == pytest.approx([0, 0.5, 1])


@pytest.mark.parametrize("spec,expected", [("abdomen", (40, 400)), ("liver", (30, 150)), ("L40/W400", (40, 400)),
                                           ("l-50/w300", (-50, 300)), ("60,200", (60, 200)), ((10, 80), (10, 80))])
def test_parse_window(spec, expected):
    assert parse_window(spec) == expected


def test_bad_window_is_a_clear_error():
    with pytest.raises(LiverlibError, match="cannot read window"):
        parse_window("soft tissue please")
    with pytest.raises(LiverlibError, match="width must be positive"):
        parse_window("L40/W0")


def test_dicom_is_decoded_through_rescale_and_window(tmp_path):
    hu = np.full((64, 64), 40.0, dtype=np.float32)
    hu[:, :32] = -160.0  # bottom of the abdomen window
    hu[:32, 32:] = 240.0  # top
    path = tmp_path / "slice.dcm"
    write_ct_dicom(path, hu, pixel_spacing_mm=0.7, patient_id="X", slice_index=0, z_mm=0, slice_thickness_mm=5,
                   window=(40, 400), uid_seed="t")
    decoded = decode_file(path)
    assert decoded.format == "DICOM" and decoded.window == (40, 400)
    assert decoded.grey[10, 5] == pytest.approx(0) and decoded.grey[10, 40] == pytest.approx(255)
    assert decoded.grey[50, 40] == pytest.approx(127.5)
    liver = decode_file(path, window=(30, 150))  # [-45, 105]: 40 HU is 85/150 of the way
    assert liver.grey[50, 40] == pytest.approx(255 * 85 / 150, abs=0.01)
    # the same file without an extension is recognised by its DICM header
    bare = tmp_path / "IM0001"
    bare.write_bytes(path.read_bytes())
    assert decode_file(bare).format == "DICOM"


# ---------------------------------------------------------------------------------------------- file types

def test_every_common_file_type_decodes_to_grey(tmp_path):
    grey = window_to_uint8(_ct(3).hu, 40, 400)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    cases = {
        "grey.png": _png_bytes(grey),
        "sixteen.png": _png_bytes(grey.astype(np.uint16) * 257),
        "rgb.png": _png_bytes(rgb),
        "rgba.png": _png_bytes(np.dstack([rgb, np.full_like(grey, 255)])),
        "palette.png": (lambda b: (Image.fromarray(grey).convert("P").save(b, format="PNG"), b.getvalue())[1])(io.BytesIO()),
        "grey.jpg": _png_bytes(grey, fmt="JPEG", quality=95),
        "cmyk.jpg": (lambda b: (Image.fromarray(rgb).convert("CMYK").save(b, format="JPEG", quality=95), b.getvalue())[1])(io.BytesIO()),
        "grey.bmp": _png_bytes(grey, fmt="BMP"),
        "grey.tif": _png_bytes(grey, fmt="TIFF"),
    }
    for name, data in cases.items():
        decoded = decode_image(data, name)
        assert decoded.grey.shape == grey.shape, name
        assert decoded.grey.dtype == np.float32
        err = np.abs(decoded.grey - grey).mean()
        assert err < 3.0, f"{name}: mean error {err:.1f} grey levels"
        assert not decoded.warnings, f"{name}: {decoded.warnings}"
        # the 8-bit form that preprocessing resizes is the float grey levels rounded, whatever the file type
        assert decoded.grey8.dtype == np.uint8 and np.array_equal(decoded.grey8, quantise8(decoded.grey)), name
    assert decode_image(cases["sixteen.png"], "s.png").bits == 16
    assert np.array_equal(decode_image(cases["grey.png"], "g.png").grey8, grey)  # 8-bit PNG: the file's pixels


def test_a_colour_photo_is_flagged():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    decoded = decode_image(_png_bytes(photo), "holiday.png")
    assert any("colour image" in w for w in decoded.warnings)


@pytest.mark.parametrize("data,message", [
    (b"", "is empty"),
    (b"this is text, not an image", "not an image PIL can read"),
    (_png_bytes(np.zeros((4, 4), np.uint8)), "only 4 x 4 pixels"),
])
def test_bad_files_get_a_sentence(data, message):
    with pytest.raises(LiverlibError, match=message):
        decode_image(data, "upload.png")


def test_truncated_png_and_decompression_bomb_are_refused():
    good = _png_bytes(window_to_uint8(_ct(1).hu, 40, 400))
    with pytest.raises(LiverlibError, match="damaged or truncated"):
        decode_image(good[: len(good) // 2], "half.png")
    # a PNG header that declares 30000 x 30000 pixels
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    iend = b"IEND"
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + iend + struct.pack(">I", zlib.crc32(iend)))
    with pytest.raises(LiverlibError, match="30000 x 30000|enormous"):
        decode_image(bomb, "bomb.png")


# ---------------------------------------------------------------------------------------------- layouts

def test_class_folders_with_synonyms_and_case(tmp_path):
    root = _write_class_folders(tmp_path / "data", names=("Benign", "MALIGNANT_TUMOR", "Liver_Cirrhosis", "healthy"))
    (root / "masks").mkdir()
    (root / "notes").mkdir()
    ds = scan_dataset(root)
    assert ds.report.layout == "class folders"
    assert ds.report.counts == {"benign": 3, "cirrhosis": 3, "malignant": 3, "normal": 3}
    assert ds.report.synonyms == {"Benign": "benign", "MALIGNANT_TUMOR": "malignant",
                                  "Liver_Cirrhosis": "cirrhosis", "healthy": "normal"}
    assert "notes/" in ds.report.ignored and "masks/" not in ds.report.ignored
    summary = ds.report.summary()
    assert "12 images in 4 classes" in summary and "'healthy' -> normal" in summary
    assert set(ds.manifest.columns) >= {"file", "class", "label", "group", "source", "sha256", "width", "height"}


def test_pre_split_layout_keeps_its_split(tmp_path):
    root = tmp_path / "kaggle"
    for split in ("train", "valid", "test"):
        _write_class_folders(root / split, per_class=2, seed=hash(split) % 7)
    ds = scan_dataset(root)
    assert ds.report.layout == "pre-split"
    assert sorted(ds.manifest["split"].unique()) == ["test", "train", "val"]
    assert len(ds.manifest) == 24


def test_two_merged_sources_record_their_source(tmp_path):
    tumours = _write_class_folders(tmp_path / "tumours", names=("benign", "malignant", "normal"), per_class=2)
    cirrhosis = _write_class_folders(tmp_path / "cirrhosis_set", names=("cirrhosis", "normal"), per_class=2, seed=5)
    ds = scan_dataset([tumours, cirrhosis])
    assert ds.manifest.groupby("source").size().to_dict() == {"cirrhosis_set": 4, "tumours": 6}
    assert ds.report.counts["normal"] == 4


def test_corrupt_files_are_skipped_and_listed_not_fatal(tmp_path):
    root = _write_class_folders(tmp_path / "d", per_class=2)
    (root / "benign" / "empty.png").write_bytes(b"")
    (root / "benign" / "text.png").write_text("not an image")
    good = (root / "normal" / "img0.png").read_bytes()
    (root / "normal" / "cut.png").write_bytes(good[: len(good) // 3])
    (root / "normal" / "readme.txt").write_text("ignored: not an image suffix")
    ds = scan_dataset(root)
    assert len(ds.manifest) == 8
    skipped = dict(ds.report.skipped)
    assert set(skipped) == {"d/benign/empty.png", "d/benign/text.png", "d/normal/cut.png"}
    assert "empty" in skipped["d/benign/empty.png"] and "truncated" in skipped["d/normal/cut.png"]
    assert "SKIPPED 3" in ds.report.summary()


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "does not exist"),
    (lambda p: (p.mkdir(), (p / "cats").mkdir()), "no class folders"),
    (lambda p: (p.mkdir(), (p / "benign").mkdir()), "no image files"),
    (lambda p: p.write_text("x"), "is a file"),
])
def test_unusable_folders_are_clear_errors(tmp_path, setup, message):
    path = tmp_path / "data"
    setup(path)
    with pytest.raises(LiverlibError, match=message):
        scan_dataset(path)


def test_all_files_unreadable_is_an_error_with_the_reasons(tmp_path):
    (tmp_path / "d" / "benign").mkdir(parents=True)
    (tmp_path / "d" / "benign" / "a.png").write_bytes(b"junk")
    with pytest.raises(LiverlibError, match="none of the 1 files could be read"):
        scan_dataset(tmp_path / "d")


# ---------------------------------------------------------------------------------------------- class sets

def test_any_other_folder_becomes_a_class_of_its_own(tmp_path):
    """Synonyms of the paper's four map to them; every other folder with images is a new class, reported."""
    root = _write_class_folders(tmp_path / "d", names=("Tumour", "Normal liver", "HCC", "Fatty-Liver"), per_class=2)
    (root / "notes").mkdir()  # no images: not a class
    ds = scan_dataset(root)
    report = ds.report
    assert report.class_names == ["fatty_liver", "malignant", "normal", "tumour"]  # sorted: the output order
    assert report.new_classes == ["fatty_liver", "tumour"]
    assert report.folders == {"Fatty-Liver": "fatty_liver", "HCC": "malignant", "Normal liver": "normal",
                              "Tumour": "tumour"}
    assert report.synonyms == {"HCC": "malignant", "Normal liver": "normal"}
    assert "notes/" in report.ignored
    labels = dict(zip(ds.manifest["class"], ds.manifest["label"]))
    assert labels == {"fatty_liver": 0, "malignant": 1, "normal": 2, "tumour": 3}
    summary = report.summary()
    assert "8 images in 4 classes" in summary and "'HCC' -> malignant" in summary
    assert "new classes (not among the paper's four): fatty_liver (folder 'Fatty-Liver'), tumour (folder 'Tumour')" \
        in summary
    assert "not in this dataset: benign, cirrhosis" in summary
    assert list(class_table(ds.manifest).index) == report.class_names


def test_two_folders_make_two_classes_and_the_paper_set_keeps_its_order(tmp_path):
    from liverlib.classes import class_names_of, normal_class

    two = scan_dataset(_write_class_folders(tmp_path / "two", names=("tumour", "normal"), per_class=2))
    assert two.report.class_names == ["normal", "tumour"] and sorted(two.manifest["label"].unique()) == [0, 1]
    assert normal_class(two.report.class_names) == "normal" and normal_class(["tumour", "steatosis"]) is None
    four = scan_dataset(_write_class_folders(tmp_path / "four", names=("Benign", "cirrhosis", "MALIGNANT", "healthy")))
    assert four.report.class_names == class_names_of(four.manifest) == list(CLASS_NAMES) and not four.report.new_classes
    assert (four.manifest["label"] == four.manifest["class"].map(list(CLASS_NAMES).index)).all()


def test_pre_split_folders_share_one_class_set(tmp_path):
    root = tmp_path / "kaggle"
    _write_class_folders(root / "train", names=("Tumour", "Normal"), per_class=2)
    _write_class_folders(root / "test", names=("tumour", "normal", "cyst"), per_class=1)
    ds = scan_dataset(root)
    assert ds.report.class_names == ["cyst", "normal", "tumour"] and ds.report.new_classes == ["cyst", "tumour"]
    assert set(ds.manifest.loc[ds.manifest["split"] == "test", "class"]) == {"cyst", "normal", "tumour"}


def test_the_settings_key_changes_with_the_class_set_only():
    from liverlib.config import load_config, training_settings_key

    config = load_config("quick")
    four = training_settings_key(config)
    assert training_settings_key(config, class_names=CLASS_NAMES) == four  # the paper's four: the key as before
    two = training_settings_key(config, class_names=["normal", "tumour"])
    assert two != four and two != training_settings_key(config, class_names=["normal", "tumour", "cyst"])
    assert training_settings_key(config, tuning=True, class_names=["normal", "tumour"]) != two


# ---------------------------------------------------------------------------------------------- groups

@pytest.fixture(scope="module")
def phantom_with_copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("pc") / "phantom"
    write_phantom_dataset(root, n=60, seed=8, size=128, augmented_copies=2, workers=1, progress=False)
    return root


def test_groups_come_from_the_phantom_manifest(phantom_with_copies):
    ds = scan_dataset(phantom_with_copies)
    assert ds.report.group_from.startswith("patient ids")
    ph = pd.read_csv(phantom_with_copies / "manifest.csv", dtype=str, keep_default_na=False)
    expected = dict(zip(ph.file, ph.patient_id))
    for row in ds.manifest.itertuples():
        assert row.group == f"phantom:{expected[row.rel]}"


def test_groups_from_a_user_csv(tmp_path):
    root = _write_class_folders(tmp_path / "d", per_class=2)
    rows = [(f"{c}/img{k}.png", f"patient{k}") for c in ("benign", "malignant", "cirrhosis", "normal") for k in range(2)]
    pd.DataFrame(rows, columns=["file", "group"]).to_csv(tmp_path / "groups.csv", index=False)
    ds = scan_dataset(root, groups_csv=tmp_path / "groups.csv")
    assert ds.manifest["group"].nunique() == 2
    pd.DataFrame(rows[:3], columns=["file", "group"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(LiverlibError, match="no group for 5 file"):
        scan_dataset(root, groups_csv=tmp_path / "short.csv")


def test_a_groups_csv_inside_the_data_folder_is_used(tmp_path):
    root = _write_class_folders(tmp_path / "d", names=("tumour", "normal"), per_class=3)
    rows = [(f"{c}/img{k}.png", f"p{k}") for c in ("tumour", "normal") for k in range(3)]
    pd.DataFrame(rows, columns=["file", "group"]).to_csv(root / "groups.csv", index=False)
    ds = scan_dataset(root)
    assert ds.report.group_from == "user CSV groups.csv"
    assert dict(zip(ds.manifest["rel"], ds.manifest["group"]))["normal/img2.png"] == "d:p2"


def test_without_ids_near_copies_are_grouped_together(tmp_path, phantom_with_copies):
    root = tmp_path / "copies"
    for cls in ("benign", "normal"):
        (root / cls).mkdir(parents=True)
    ph = pd.read_csv(phantom_with_copies / "manifest.csv", dtype=str, keep_default_na=False)
    chosen = ph[ph["class"].isin(["benign", "normal"])].head(18)
    for rel in chosen.file:
        (root / rel).write_bytes((phantom_with_copies / rel).read_bytes())
    ds = scan_dataset(root)  # no manifest.csv here
    assert ds.report.group_from.startswith("near-duplicate clusters")
    group = dict(zip(ds.manifest["rel"], ds.manifest["group"]))
    copies = [(row.file, row.augmented_from) for row in chosen[chosen.augmented_from != ""].itertuples()
              if row.augmented_from in group]
    together = sum(group[copy] == group[source] for copy, source in copies)
    assert len(copies) >= 8 and together >= 0.8 * len(copies)  # the signature's recall is about 0.95
    assert ds.manifest["group"].nunique() < len(ds.manifest)


# ---------------------------------------------------------------------------------------------- splits

def _toy_manifest(n_groups=60, per_group=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        cls = rng.choice(["benign", "malignant", "cirrhosis", "normal"], p=[0.6, 0.2, 0.08, 0.12])
        for k in range(per_group):
            rows.append({"file": f"/x/g{g}_{k}.png", "class": cls, "group": f"g{g}", "sha256": f"{g}-{k}"})
    return pd.DataFrame(rows)


def test_grouped_split_is_70_15_15_stratified_and_group_disjoint():
    m = _toy_manifest(n_groups=200)
    m["split"] = make_split(m, (0.7, 0.15, 0.15), seed=1)
    assert_groups_disjoint(m)
    shares = m["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["val"] == pytest.approx(0.15, abs=0.03) and shares["test"] == pytest.approx(0.15, abs=0.03)
    for cls, rows in m.groupby("class"):
        assert set(rows["split"]) == {"train", "val", "test"}, cls
    table = split_table(m)
    assert table.loc["total"].sum() == len(m)


def test_the_disjointness_check_fails_when_a_group_crosses():
    m = _toy_manifest()
    m["split"] = make_split(m, seed=0)
    first = m.index[m["group"] == "g0"][0]
    m.loc[first, "split"] = "test" if m.loc[first, "split"] != "test" else "train"
    with pytest.raises(LiverlibError, match="appear in more than one split"):
        assert_groups_disjoint(m)


def test_random_split_crosses_groups_and_splits_are_seeded():
    m = _toy_manifest()
    random_split = m.assign(split=make_split(m, seed=0, strategy="random"))
    with pytest.raises(LiverlibError):
        assert_groups_disjoint(random_split)
    assert make_split(m, seed=3).tolist() == make_split(m, seed=3).tolist()
    assert make_split(m, seed=3).tolist() != make_split(m, seed=4).tolist()


def test_split_is_saved_and_reloaded(tmp_path):
    m = _toy_manifest()
    m["split"] = make_split(m, seed=2)
    sha = save_split(m, tmp_path / "split.csv")
    assert len(sha) == 64
    assert load_split(m.drop(columns="split"), tmp_path / "split.csv").tolist() == m["split"].tolist()
    extra = pd.concat([m, m.head(1).assign(file="/x/new.png")])
    with pytest.raises(LiverlibError, match="not in the saved split"):
        load_split(extra, tmp_path / "split.csv")
    # the same images in a folder that has moved keep their split (matched by their path inside the folder)
    moved = m.drop(columns="split").assign(file=m["file"].str.replace("/x/", "/data/moved/x/", regex=False))
    assert load_split(moved, tmp_path / "split.csv").tolist() == m["split"].tolist()
    renamed = moved.assign(file=moved["file"].str.replace("g1_", "h1_", regex=False))  # not the same files
    with pytest.raises(LiverlibError, match="not in the saved split"):
        load_split(renamed, tmp_path / "split.csv")


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.7, 0.3), (-0.1, 0.6, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(LiverlibError, match="three non-negative numbers summing to 1"):
        make_split(_toy_manifest(), fractions)


def test_class_table(phantom_with_copies):
    table = class_table(scan_dataset(phantom_with_copies).manifest)
    assert table["images"].sum() == 180 and table["share"].sum() == pytest.approx(1.0, abs=0.01)


# ---------------------------------------------------------------------------------------------- audit

def test_signature_is_invariant_to_flip_rotation_shift_and_zoom():
    from liverlib.phantom import random_affine

    sl = _ct(5, "benign", size=256)
    base = signature(window_to_uint8(sl.hu, 40, 400))
    rng = np.random.default_rng(0)
    distances = []
    for _ in range(5):
        hu, _ = random_affine(sl.hu, sl.labels, rng, rotation_deg=12, shift=0.06, zoom=0.08)
        distances.append(np.linalg.norm(signature(window_to_uint8(hu, 40, 400)) - base))
    other = np.linalg.norm(signature(window_to_uint8(_ct(6, "benign", size=256).hu, 40, 400)) - base)
    assert max(distances) < 0.05 < other


def test_audit_flags_the_leaky_split_and_passes_the_grouped_one(phantom_with_copies):
    grouped = audit_folder(phantom_with_copies, "grouped", seed=1)
    leaky = audit_folder(phantom_with_copies, "random", seed=1)
    assert grouped.near_duplicate_pairs_across_splits == 0
    assert leaky.near_duplicate_pairs_across_splits >= 5
    report = leaky.as_json()
    assert report["images"] == 180 and len(report["pairs"]) == report["near_duplicate_pairs_across_splits"]
    assert {"test", "train", "distance"} <= set(report["pairs"][0])


def test_calibration_on_known_copies(phantom_with_copies):
    ds = scan_dataset(phantom_with_copies)
    ph = pd.read_csv(phantom_with_copies / "manifest.csv", dtype=str, keep_default_na=False)
    m = ds.manifest.assign(augmented_from=ds.manifest["rel"].map(dict(zip(ph.file, ph.augmented_from))))
    table = calibrate(m, thresholds=[0.05], negatives=4000).iloc[0]
    assert table.recall >= 0.8 and table.precision >= 0.95


def test_audit_cli_json(phantom_with_copies):
    out = subprocess.run([sys.executable, "-m", "liverlib.cli", "audit", str(phantom_with_copies), "--split",
                          "random", "--seed", "1", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["images"] == 180 and report["near_duplicate_pairs_across_splits"] >= 5
    missing = subprocess.run([sys.executable, "-m", "liverlib.cli", "audit", "/no/such/folder"],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
