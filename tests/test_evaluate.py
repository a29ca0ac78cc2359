"""Evaluation: the bootstrap on known cases, temperature scaling, Table 2, the report a run gets (liverlib.evaluate)."""

import json

import numpy as np
import pandas as pd
import pytest

from liverlib.evaluate import (apply_temperature, bootstrap_ci, bootstrap_weights, fit_temperature, recompute_accuracy,
                               table2)
from liverlib.metrics import expected_calibration_error, scores

NAMES = ["benign", "cirrhosis", "malignant", "normal"]

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


def test_table2_layout_and_the_papers_own_accuracy(known_predictions):
    m = scores(known_predictions.y_true, known_predictions.probs, NAMES)
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
