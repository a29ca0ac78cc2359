"""The scores (liverlib.metrics) against scikit-learn, specificity by hand, batched scores, ECE on known cases."""

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support,
                             roc_auc_score)

from liverlib.metrics import batched_scores, confusion, expected_calibration_error, scores

NAMES = ["benign", "cirrhosis", "malignant", "normal"]


def test_metrics_match_scikit_learn_and_specificity_by_hand(known_predictions):
    y_true, y_pred, probs = known_predictions.y_true, known_predictions.y_pred, known_predictions.probs
    CM = known_predictions.cm
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
