"""Whole studies in, one answer out: the aggregation rules by hand, the liver-slice picking on phantom studies
with known empty slices, preprocessing by the model card, the CLI on series folders, NIfTI and zips, bad
studies among good ones, a volume without liver, and patient-level evaluation."""

import json
import shutil
import zipfile

import numpy as np
import pytest

from liverlib.aggregate import aggregate, by_group, normal_class_index
from liverlib.cli import main
from liverlib.errors import LiverlibError
from liverlib.phantom.studies import make_study, write_study_dicom, write_study_nifti
from liverlib.study_classify import (NoLiverError, classify_study, classify_volume, get_study_classifier,
                                     longest_run, pick_liver_slices)

NAMES = ["benign", "cirrhosis", "malignant", "normal"]
P = np.array([[0.10, 0.10, 0.10, 0.70],
              [0.20, 0.10, 0.10, 0.60],
              [0.05, 0.05, 0.60, 0.30],
              [0.10, 0.70, 0.10, 0.10]])


# ------------------------------------------------------------------------------------------ the rules by hand

def test_mean_rule():
    study, rule = aggregate(P, "mean", normal=3)
    np.testing.assert_allclose(study, [0.1125, 0.2375, 0.225, 0.425])
    assert rule == "mean"


def test_top_k_rule_takes_the_most_abnormal_slices():
    # abnormality 1 - p(normal): 0.3, 0.4, 0.7, 0.9 -> the top two are slices 3 and 2
    study, rule = aggregate(P, "top-k", normal=3, k=2)
    np.testing.assert_allclose(study, [0.075, 0.375, 0.35, 0.2])
    assert rule == "top-k"
    np.testing.assert_allclose(aggregate(P, "top-k", normal=3, k=10)[0], aggregate(P, "mean", normal=3)[0])


def test_noisy_or_rule():
    study, _ = aggregate(P, "noisy-or", normal=3)
    p_normal = 0.7 * 0.6 * 0.3 * 0.1  # normal only if every slice is
    share = 1 - np.prod(1 - P[:, :3], axis=0)  # noisy-OR of each abnormal class
    expected = np.r_[(1 - p_normal) * share / share.sum(), p_normal]
    np.testing.assert_allclose(study, expected)
    np.testing.assert_allclose(study[3], 0.0126)
    np.testing.assert_allclose(share, [1 - 0.9 * 0.8 * 0.95 * 0.9, 1 - 0.9 * 0.9 * 0.95 * 0.3,
                                       1 - 0.9 * 0.9 * 0.4 * 0.9])
    # thousands of slices: no underflow, still a distribution
    many, _ = aggregate(np.tile(P, (500, 1)), "noisy-or", normal=3)
    assert np.isfinite(many).all() and many.sum() == pytest.approx(1.0) and many[3] == 0.0


def test_no_normal_class_falls_back_to_the_mean_and_the_card_can_name_it():
    three = P[:, :3] / P[:, :3].sum(axis=1, keepdims=True)
    for rule in ("top-k", "noisy-or"):
        study, used = aggregate(three, rule, normal=None)
        assert used == "mean"
        np.testing.assert_allclose(study, three.mean(axis=0))
    assert normal_class_index(NAMES) == 3
    assert normal_class_index(["a", "b"]) is None
    assert normal_class_index(["healthy", "tumour"], {"normal_class": "healthy"}) == 0
    with pytest.raises(LiverlibError, match="unknown aggregation rule"):
        aggregate(P, "max", normal=3)


def test_by_group_keeps_patients_together():
    groups = ["p1", "p1", "p2", "p2"]
    ids, y, probs, rule = by_group(P, groups, [3, 3, 2, 2], "mean", normal=3)
    assert ids == ["p1", "p2"] and y.tolist() == [3, 2] and rule == "mean"
    np.testing.assert_allclose(probs, [[0.15, 0.1, 0.1, 0.65], [0.075, 0.375, 0.35, 0.2]])


def test_patient_level_scores_with_intervals():
    from liverlib.evaluate import patient_level

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 6)  # 8 patients of 3 slices
    probs = np.full((24, 4), 0.1)
    probs[np.arange(24), y] = 0.7
    probs[rng.choice(24, 4, replace=False)] = [0.7, 0.1, 0.1, 0.1]
    groups = np.repeat([f"p{i}" for i in range(8)], 3)
    metrics, table = patient_level(y, probs, groups, NAMES, "mean", 3, n_boot=50)
    assert metrics["n_patients"] == 8 and len(table) == 8 and metrics["rule"] == "mean"
    assert metrics["accuracy"] == pytest.approx((table["class"] == table["predicted"]).mean())
    assert set(metrics["ci95"]) >= {"accuracy", "macro_f1"} and sum(map(sum, metrics["confusion_matrix"])) == 8


# ------------------------------------------------------------------------------------- picking liver slices

def test_longest_run_fills_one_slice_gaps():
    flags = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1], bool)
    assert longest_run(flags, 1).astype(int).tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert longest_run(flags, 0).astype(int).tolist() == [0] * 8 + [1] * 4
    assert not longest_run(np.zeros(5, bool)).any()


@pytest.fixture(scope="module")
def phantom_study():
    return make_study("malignant", seed=(9, 2), size=256)


def test_liver_slices_are_picked_and_the_empty_ends_left_out(phantom_study):
    truth = set(phantom_study.liver_slices)
    n = len(phantom_study.z_mm)
    pick = pick_liver_slices(phantom_study.volume().hu)
    chosen = set(pick.indices)
    assert pick.indices == list(range(pick.indices[0], pick.indices[-1] + 1))
    assert {0, 1, n - 2, n - 1}.isdisjoint(chosen)  # above the dome, below the tip
    assert len(chosen & truth) >= 0.75 * len(truth)  # sensitivity
    assert len(chosen - truth) <= 0.1 * len(chosen)  # precision
    assert set(phantom_study.lesion_slices) <= chosen  # every slice that cuts the lesions is classified
    assert pick.extent > 0.42


def test_a_volume_without_liver_is_a_clear_error(tiny_run):
    empty = make_study("normal", seed=(9, 3), size=128, n_slices=16, liver=False)
    pick = pick_liver_slices(empty.volume().hu)
    assert pick.indices == [] and pick.note
    with pytest.raises(NoLiverError, match="none of its 16 slices shows the liver"):
        classify_volume(empty.volume(), tiny_run, "empty-study")


# -------------------------------------------------------------------------------------- the model, the card

def test_preprocessing_and_probabilities_follow_the_card(tiny_run, tmp_path, monkeypatch):
    from liverlib.preprocess import normalise, prepare_grey
    from liverlib.imaging.windowing import window_to_uint8

    monkeypatch.setenv("LIVERLIB_FAST_FORWARD", "0")  # the batched TensorFlow path (the CLI tests take LiteRT)

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    card = json.loads((run / "model_card.json").read_text())
    card.update(crop="liver", input_normalisation="imagenet-caffe", window={"level": 30.0, "width": 150.0})
    (run / "model_card.json").write_text(json.dumps(card))
    study = make_study("benign", seed=(9, 4), size=128, n_slices=14)
    result = classify_volume(study.volume(), run, "s", rule="mean", gradcam=True)
    clf = get_study_classifier(run)
    assert clf.slices.fast.backend.startswith("TensorFlow")
    greys = [prepare_grey(window_to_uint8(study.volume().hu[i], 30, 150), 64, "liver", (30.0, 150.0))[0]
             for i in result.liver_slices]
    x = normalise(np.repeat(np.stack(greys)[..., None], 3, axis=-1), "imagenet-caffe")
    expected = clf.slices.model.predict(x, verbose=0)
    np.testing.assert_allclose(result.slice_probabilities, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(list(result.probabilities.values()), result.slice_probabilities.mean(axis=0), atol=1e-9)
    assert list(result.probabilities) == NAMES and result.rule == "mean"
    assert any("own window" in w for w in result.warnings)
    top = result.top_slices
    assert len(top) == 3 and set(result.heatmaps) == {t["index"] for t in top} == set(result.model_inputs)
    abnormal = [1 - t["probabilities"]["normal"] for t in top]
    assert abnormal == sorted(abnormal, reverse=True)
    for t in top:
        assert result.heatmaps[t["index"]].shape == (64, 64) and result.model_inputs[t["index"]].shape == (64, 64)
        assert t["z_mm"] == pytest.approx(-study.z_mm[t["index"]], abs=0.01)  # scanner height: head is up


def test_strip_figure_draws_given_numbers():
    import matplotlib.pyplot as plt

    from liverlib.plots import study_strip_figure

    fig = study_strip_figure([-10.0, -15.0, -20.0], np.full((3, 4), 0.25), NAMES, all_z_mm=[0, -5, -10, -15, -20, -25],
                             top_z_mm=[-15.0], title="study")
    assert len(fig.axes[0].lines) >= 5
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    """One phantom study as a DICOM series folder, a NIfTI volume and a zip of the series; a bad NIfTI and a
    volume without liver."""
    root = tmp_path_factory.mktemp("studies")
    study = make_study("malignant", seed=(9, 5), size=128, n_slices=14)
    write_study_dicom(study, root / "series-A", "test/series-A")
    write_study_nifti(study, root / "volume-B.nii.gz")
    with zipfile.ZipFile(root / "zipped-C.zip", "w") as zf:
        for path in sorted((root / "series-A").iterdir()):
            zf.write(path, f"export/{path.name}")
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    write_study_nifti(make_study("normal", seed=(9, 6), size=128, n_slices=12, liver=False), root / "no-liver.nii")
    return root


def test_cli_json_for_a_series_a_nifti_and_a_zip(tiny_run, study_files, capsys):
    paths = [study_files / "series-A", study_files / "volume-B.nii.gz", study_files / "zipped-C.zip"]
    assert main(["classify", *map(str, paths), "--model", str(tiny_run), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["study"] for r in rows] == ["series-A", "volume-B.nii.gz", "zipped-C.zip"]
    assert [r["file"] for r in rows] == list(map(str, paths))
    for row in rows:
        assert {"file", "study", "n_slices", "liver_slices", "probabilities", "predicted_class",
                "top_slices"} <= set(row)
        assert row["n_slices"] == 14 and 0 < row["liver_slices"] < 14
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted_class"] == max(row["probabilities"], key=row["probabilities"].get)
        assert all(set(t) == {"index", "z_mm", "probabilities"} for t in row["top_slices"])
    # the same volume, however it was stored: the same answer
    assert rows[0]["probabilities"] == rows[1]["probabilities"] == rows[2]["probabilities"]
    assert rows[0]["liver_slice_indices"] == rows[1]["liver_slice_indices"]
    # the batched forward pass (LiteRT in batches where classify uses LiteRT) gives the Keras model's numbers
    clf = get_study_classifier(tiny_run)
    if clf.slices.fast.backend.startswith("LiteRT"):
        assert clf.litert_batches() is not None
    x = np.random.default_rng(0).uniform(0, 1, (19, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(clf.predict(x), clf.slices.model.predict(x, verbose=0), atol=1e-5)


def test_cli_bad_studies_among_good_ones_and_per_slice_lines(tiny_run, study_files, tmp_path, capsys):
    from PIL import Image

    from liverlib.imaging.windowing import window_to_uint8

    png = tmp_path / "slice.png"
    Image.fromarray(window_to_uint8(make_study("normal", seed=(9, 7), size=64, n_slices=10).hu[4], 40, 400)).save(png)
    paths = [study_files / "broken.nii.gz", study_files / "series-A", study_files / "no-liver.nii", png]
    status = main(["classify", *map(str, paths), "--model", str(tiny_run), "--json", "--per-slice"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert set(rows[0]) == {"file", "error"} and "not a readable NIfTI" in rows[0]["error"]
    assert rows[1]["study"] == "series-A"
    per_slice = rows[2:16]
    assert [r["index"] for r in per_slice] == list(range(14))
    assert sum(r["liver"] for r in per_slice) == rows[1]["liver_slices"]
    assert all(("probabilities" in r) == r["liver"] for r in per_slice)
    assert set(rows[16]) == {"file", "error"} and "shows the liver" in rows[16]["error"]
    assert rows[17]["file"] == str(png) and "predicted_class" in rows[17]  # a slice, beside the studies
    assert "Traceback" not in capsys.readouterr().err


def test_cli_text_output_and_a_folder_of_study_folders(tiny_run, study_files, tmp_path, capsys):
    parent = tmp_path / "two"
    shutil.copytree(study_files / "series-A", parent / "one")
    study = make_study("normal", seed=(9, 8), size=128, n_slices=10)
    study.patient_id = "P00002"  # another patient: the parent folder is no series, its subfolders are
    write_study_dicom(study, parent / "two", "test/two")
    assert main(["classify", str(parent), "--model", str(tiny_run), "--rule", "noisy-or"]) == 0
    out = capsys.readouterr().out
    assert "one: " in out and "two: " in out and "noisy-or" in out and "top slices: #" in out


def test_classify_study_reads_every_form(tiny_run, study_files):
    (result,) = classify_study(study_files / "zipped-C.zip", tiny_run)
    assert result.study == "zipped-C.zip" and result.series is None and result.n_slices == 14
    assert "P0000" not in json.dumps(result.as_json())  # the header's patient ID never appears
