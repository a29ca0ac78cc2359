"""Evaluation figures against scikit-learn, specificity by hand, the bootstrap on known cases, the report."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support,
                             roc_auc_score)

from liverlib.evaluate import (apply_temperature, bootstrap_ci, bootstrap_weights, fit_temperature, recompute_accuracy,
                               table2)
from liverlib.metrics import batched_scores, confusion, expected_calibration_error, scores

NAMES = ["benign", "cirrhosis", "malignant", "normal"]
# a fixed confusion matrix (rows true, columns predicted)
CM = np.array([[50, 2, 6, 2],
               [1, 8, 0, 1],
               [7, 0, 20, 3],
               [2, 1, 0, 17]])


def _labels_from(cm):
    y_true, y_pred = [], []
    for i in range(len(cm)):
        for j in range(len(cm)):
            y_true += [i] * cm[i, j]
            y_pred += [j] * cm[i, j]
    return np.array(y_true), np.array(y_pred)


def _probs_for(y_pred, k=4, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=len(y_pred)) * 0.5
    p[np.arange(len(y_pred)), y_pred] += 0.5 + 1e-3  # argmax is y_pred
    return p / p.sum(axis=1, keepdims=True)


def test_metrics_match_scikit_learn_and_specificity_by_hand():
    y_true, y_pred = _labels_from(CM)
    probs = _probs_for(y_pred)
    m = scores(y_true, probs, NAMES)
    assert np.array_equal(confusion(y_true, y_pred, 4), CM)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["accuracy"] == pytest.approx(95 / 120)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["roc_auc_ovr"] == pytest.approx(roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred)
    for i, name in enumerate(NAMES):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]
    # specificity of "malignant" by hand: TN = all - row - column + diagonal = 120 - 30 - 26 + 20 = 84, FP = 6
    assert m["per_class"]["malignant"]["specificity"] == pytest.approx(84 / 90)
    assert m["per_class"]["cirrhosis"]["specificity"] == pytest.approx((120 - 10 - 11 + 8) / (120 - 10))
    batched = batched_scores(y_true, probs, 4, np.ones((3, len(y_true))))
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc_ovr", "ece"):
        np.testing.assert_allclose(batched[key], m[key], err_msg=key)
    for key in ("precision", "recall", "specificity", "f1"):
        np.testing.assert_allclose(batched["per_class"][key][0], [m["per_class"][c][key] for c in NAMES])


def test_batched_metrics_match_scikit_learn_with_weights_and_ties():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 4, n)
    probs = rng.dirichlet(np.ones(4), n).round(2)  # rounding makes tied scores
    probs /= probs.sum(axis=1, keepdims=True)
    w = rng.integers(0, 3, (5, n)).astype(float)
    batched = batched_scores(y, probs, 4, w)
    for b in range(5):
        ref = scores(y, probs, NAMES, weights=w[b])
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc_ovr", "ece"):
            assert batched[key][b] == pytest.approx(ref[key]), key


def test_ece_on_known_cases():
    y = np.array([0, 0, 0, 0])
    perfect = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(y, perfect) == pytest.approx(0.0)
    # always 0.9 confident, right half the time: gap 0.4
    half = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    assert expected_calibration_error(y, half) == pytest.approx(0.4)


def test_bootstrap_of_a_constant_is_a_point_and_of_a_coin_is_centred():
    y = np.zeros(50, int)
    probs = np.tile([0.9, 0.05, 0.03, 0.02], (50, 1))
    ci = bootstrap_ci(y, probs, NAMES, n_boot=200)
    assert ci["accuracy"] == [1.0, 1.0]
    # 500 independent predictions, right with probability 0.5: interval around 0.5 of width about 2 x 1.96 x 0.022
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.5, y, 1 - y)
    probs = np.zeros((500, 4))
    probs[np.arange(500), pred] = 1.0
    low, high = bootstrap_ci(y, probs, NAMES, n_boot=1000)["accuracy"]
    acc = (pred == y).mean()
    assert low < acc < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(acc * (1 - acc) / 500), rel=0.15)


def test_grouped_bootstrap_resamples_whole_patients_and_is_wider():
    weights = bootstrap_weights(6, np.array(["a", "a", "b", "b", "c", "c"]), 50, seed=0)
    assert np.array_equal(weights[:, 0], weights[:, 1]) and np.array_equal(weights[:, 4], weights[:, 5])
    assert np.all(weights.sum(axis=1) == 6)
    # 40 patients x 10 identical slices: each patient all right or all wrong
    rng = np.random.default_rng(0)
    right = np.repeat(rng.random(40) < 0.7, 10)
    y = np.zeros(400, int)
    probs = np.zeros((400, 4))
    probs[np.arange(400), np.where(right, 0, 1)] = 1.0
    groups = np.repeat(np.arange(40), 10)
    slices = bootstrap_ci(y, probs, NAMES, n_boot=500)["accuracy"]
    patients = bootstrap_ci(y, probs, NAMES, groups=groups, n_boot=500)["accuracy"]
    assert (patients[1] - patients[0]) > 2.5 * (slices[1] - slices[0])


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.0  # honest logits
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    overconfident = apply_temperature(honest, 0.3)
    t = fit_temperature(y, overconfident)
    assert t == pytest.approx(1 / 0.3, rel=0.15)
    assert expected_calibration_error(y, apply_temperature(overconfident, t)) < expected_calibration_error(y, overconfident)


def test_table2_layout_and_the_papers_own_accuracy():
    y_true, y_pred = _labels_from(CM)
    m = scores(y_true, _probs_for(y_pred), NAMES)
    table = table2(m)
    assert list(table.index) == NAMES + ["macro avg", "weighted avg"]
    assert table.loc["weighted avg", "support"] == 120
    assert recompute_accuracy(table.loc[NAMES]) == pytest.approx(95 / 120)
    paper = pd.DataFrame({"recall": [1.00, 0.99, 0.87, 0.99], "support": [30, 446, 146, 90]})
    assert recompute_accuracy(paper) == pytest.approx(0.9658, abs=1e-4)  # not the 99.3% the paper reports


def test_evaluate_run_writes_the_report(tiny_run, tmp_path):
    """A tiny run, its split pointing at phantom files the test writes."""
    import shutil

    from liverlib.evaluate import evaluate_run
    from liverlib.phantom import write_phantom_dataset

    data = tmp_path / "phantom"
    write_phantom_dataset(data, n=24, seed=0, size=96, progress=False)
    manifest = pd.read_csv(data / "manifest.csv", keep_default_na=False)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    split = pd.DataFrame({"file": [str(data / f) for f in manifest["file"]], "class": manifest["class"],
                          "group": manifest["patient_id"], "split": "test"})
    split.to_csv(run / "split.csv", index=False)
    evaluation = evaluate_run(run, n_boot=50)
    saved = json.loads((run / "evaluation" / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "per_class", "roc_auc_ovr", "ece", "ci95"):
        assert key in saved
    assert set(saved["per_class"]["benign"]) >= {"precision", "recall", "specificity", "f1", "support"}
    assert set(saved["ci95"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc_ovr", "ece"}
    assert saved["n_images"] == 24 and saved["bootstrap"]["unit"] == "patient"
    assert sum(map(sum, saved["confusion_matrix"])) == 24
    for name in ("per_class.csv", "predictions.csv", "confusion.png", "roc.png", "reliability.png"):
        assert (run / "evaluation" / name).is_file()
    assert len(evaluation.predictions) == 24
    patients = saved["patient_level"]  # slices combined per patient (liverlib.aggregate), scored with intervals
    assert patients["n_patients"] == manifest["patient_id"].nunique() and patients["rule"] == "top-k"
    assert set(patients["ci95"]) >= {"accuracy", "macro_f1"} and (run / "evaluation" / "patients.csv").is_file()


def test_evaluate_cli_on_a_missing_run_is_one_line(tmp_path, capsys):
    from liverlib.cli import main

    assert main(["evaluate", "--model", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "not a finished training run" in err and "Traceback" not in err


def test_gradcam_shape_range_and_the_pointing_game():
    import keras

    from liverlib.explain import grad_cam, overlay, pointing_game, upsample
    from liverlib.model import build_modified_resnet50

    keras.utils.set_random_seed(0)
    model = build_modified_resnet50(4, 64)
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    probs, heat = grad_cam(model, x)
    assert probs.shape == (2, 4) and heat.shape == (2, 2, 2)  # conv5 is 1/32 of the input
    assert heat.min() >= 0 and heat.max() <= 1
    _, chosen = grad_cam(model, x, class_index=2)
    assert chosen.shape == heat.shape
    big = upsample(heat[0], 64)
    assert big.shape == (64, 64) and 0 <= big.min() and big.max() <= 1
    assert overlay(np.zeros((64, 64)), heat[0]).shape == (64, 64, 3)
    # the pointing game on a known heatmap: all mass in the top-left quarter
    h = np.zeros((8, 8))
    h[:4, :4] = 1.0
    mask = np.zeros((8, 8), bool)
    mask[:4, :] = True
    score = pointing_game(h, mask)
    assert score["mass_inside"] == pytest.approx(1.0) and score["hit"] and score["area"] == pytest.approx(0.5)
    assert pointing_game(h, ~mask)["mass_inside"] == pytest.approx(0.0)
