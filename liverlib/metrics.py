"""Scores of a classifier from two arrays, the true labels and the predicted probabilities: the one place
they are computed, for training, tuning, evaluation, the baselines and the benchmarks.

:func:`scores` gives the paper's figures with scikit-learn's metrics; the only hand-written figure is
specificity, TN / (TN + FP) per class, which scikit-learn does not report. :func:`batched_scores` gives
the same figures for many weightings of the same predictions at once (the bootstrap's resamples) as
matrix products; the tests check one against the other. Macro averages run over the classes present in
the labels, as scikit-learn's balanced accuracy does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc_ovr", "ece")
PER_CLASS = ("precision", "recall", "specificity", "f1")
ECE_BINS = 10


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Confusion matrix (rows: true class, columns: predicted), optionally with sample weights."""
    index = np.asarray(y_true) * n_classes + np.asarray(y_pred)
    return np.bincount(index, weights=weights, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(a, b):
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, 0.0), where=b > 0)


def per_class_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall (sensitivity), specificity, F1 and support per class from a confusion matrix
    (k x k, or B x k x k for many at once: every result then has the leading axis B).

    A ratio with a zero denominator is 0, as scikit-learn's ``zero_division=0``.
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    tn = cm.sum(axis=(-2, -1))[..., None] - support - predicted + tp
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    return {"precision": precision, "recall": recall, "specificity": _ratio(tn, tn + predicted - tp),
            "f1": _ratio(2 * precision * recall, precision + recall), "support": support}


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS,
                               weights: np.ndarray | None = None) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy, over equal-width confidence bins."""
    probs = np.asarray(probs, dtype=float)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(float)
    w = np.ones(len(correct)) if weights is None else np.asarray(weights, dtype=float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = w.sum()
    if total == 0:
        return 0.0
    conf_sum = np.bincount(bins, weights=w * confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=w * correct, minlength=n_bins)
    return float(np.abs(conf_sum - acc_sum).sum() / total)


def reliability_table(y_true: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Per confidence bin: images, mean confidence, accuracy (the data of a reliability diagram)."""
    probs = np.asarray(probs, dtype=float)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = bins == b
        rows.append({"bin": f"{b / n_bins:.1f}-{(b + 1) / n_bins:.1f}", "images": int(inside.sum()),
                     "confidence": float(confidence[inside].mean()) if inside.any() else np.nan,
                     "accuracy": float(correct[inside].mean()) if inside.any() else np.nan})
    return pd.DataFrame(rows)


def roc_auc_ovr(y_true: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present in y_true (NaN when fewer than two are)."""
    from sklearn.metrics import roc_auc_score  # local: heavy dependency

    y_true = np.asarray(y_true)
    aucs = []
    for k in range(probs.shape[1]):
        positive = y_true == k
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, probs[:, k], sample_weight=weights))
    return float(np.mean(aucs)) if len(aucs) >= 2 else float("nan")


def roc_curves(y_true: np.ndarray, probs: np.ndarray, class_names) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC curve per class present (and absent from no sample): name -> (FPR, TPR, AUC)."""
    from sklearn.metrics import roc_auc_score, roc_curve  # local: heavy dependency

    y_true = np.asarray(y_true)
    curves = {}
    for k, name in enumerate(class_names):
        positive = y_true == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        curves[name] = (fpr, tpr, float(roc_auc_score(positive, probs[:, k])))
    return curves


def scores(y_true: np.ndarray, probs: np.ndarray, class_names, weights: np.ndarray | None = None) -> dict:
    """All headline figures (:data:`HEADLINE`) and the per-class table (precision, recall, specificity, F1,
    support per class name) for labels and probabilities, optionally with sample weights."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score  # local: heavy dependency

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=float)
    y_pred = probs.argmax(axis=1)
    present = np.unique(y_true)
    per = per_class_from_confusion(confusion(y_true, y_pred, len(class_names), weights))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=weights)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred, sample_weight=weights)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", sample_weight=weights,
                                   zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", sample_weight=weights,
                                      zero_division=0)),
        "roc_auc_ovr": roc_auc_ovr(y_true, probs, weights),
        "ece": expected_calibration_error(y_true, probs, weights=weights),
        "per_class": {name: {m: float(per[m][i]) for m in (*PER_CLASS, "support")} for i, name in enumerate(class_names)},
    }


def _onehot(index: np.ndarray, n: int):
    from scipy import sparse  # local: heavy dependency

    return sparse.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)), shape=(len(index), n))


def batched_scores(y_true: np.ndarray, probs: np.ndarray, k: int, weights: np.ndarray) -> dict:
    """The figures of :func:`scores` for many weightings of the same predictions at once.

    ``weights`` is B x n (one row per bootstrap resample); every result has a leading axis of length B, and
    ``per_class`` holds B x k arrays. Confusion matrices, calibration bins and ROC-AUC (the Mann-Whitney
    statistic with tied scores counted half) are matrix products, so 1,000 resamples cost milliseconds.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=float)
    W = np.atleast_2d(np.asarray(weights, dtype=float))
    y_pred = probs.argmax(axis=1)
    cm = (_onehot(y_true * k + y_pred, k * k).T @ W.T).T.reshape(-1, k, k)
    per = per_class_from_confusion(cm)
    recall, f1, support = per["recall"], per["f1"], per["support"]
    total = cm.sum(axis=(1, 2))
    present = support > 0
    n_present = present.sum(axis=1)
    out = {
        "accuracy": _ratio(np.diagonal(cm, axis1=1, axis2=2).sum(axis=1), total),
        "balanced_accuracy": _ratio((recall * present).sum(axis=1), n_present),
        "macro_f1": _ratio((f1 * present).sum(axis=1), n_present),
        "weighted_f1": _ratio((f1 * support).sum(axis=1), total),
        "per_class": per,
    }
    # expected calibration error over equal-width confidence bins
    confidence = probs.max(axis=1)
    correct = (y_pred == y_true).astype(float)
    bins = _onehot(np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1), ECE_BINS)
    gap = (bins.T @ (W * confidence).T).T - (bins.T @ (W * correct).T).T
    out["ece"] = _ratio(np.abs(gap).sum(axis=1), total)
    # one-vs-rest ROC-AUC per class (NaN where a resample lacks positives or negatives), then the macro mean
    aucs = np.full((len(W), k), np.nan)
    for c in range(k):
        positive = y_true == c
        if positive.all() or not positive.any():
            continue
        uniq, inverse = np.unique(probs[:, c], return_inverse=True)
        U = _onehot(inverse, len(uniq))
        w_pos = (U.T @ (W * positive).T).T
        w_neg = (U.T @ (W * ~positive).T).T
        below = np.cumsum(w_neg, axis=1) - w_neg
        pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        wins = (w_pos * (below + 0.5 * w_neg)).sum(axis=1)
        aucs[:, c] = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)
    valid = np.isfinite(aucs).sum(axis=1)  # the mean over the classes with an AUC, where at least two have one
    summed = np.where(np.isfinite(aucs), aucs, 0.0).sum(axis=1)
    out["roc_auc_ovr"] = np.where(valid >= 2, summed / np.maximum(valid, 1), np.nan)
    return out
