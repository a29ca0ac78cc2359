"""Loading datasets as they arrive (liverlib.data): layouts, class folders, bad files, groups."""

import pandas as pd
import pytest
from PIL import Image

from liverlib.config import CLASS_NAMES
from liverlib.data import class_table, scan_dataset
from liverlib.errors import LiverlibError
from liverlib.imaging.windowing import window_to_uint8
from liverlib.phantom import make_slice


def _ct(seed=0, cls="normal", size=128):
    return make_slice(cls, seed=seed, size=size)


def _write_class_folders(root, names=("benign", "malignant", "cirrhosis", "normal"), per_class=3, seed=0):
    for c, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            grey = window_to_uint8(_ct(seed * 100 + c * 10 + k).hu, 40, 400)
            Image.fromarray(grey).save(folder / f"img{k}.png")
    return root


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


def test_class_table(phantom_with_copies):
    table = class_table(scan_dataset(phantom_with_copies).manifest)
    assert table["images"].sum() == 180 and table["share"].sum() == pytest.approx(1.0, abs=0.01)
