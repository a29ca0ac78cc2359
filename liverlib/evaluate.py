"""Evaluation a reviewer would trust: the paper's metrics, with 95% bootstrap intervals and calibration.

Every figure comes from two arrays, the true labels and the predicted probabilities, through
:mod:`liverlib.metrics`. Intervals come from a bootstrap that resamples *patients* (groups) rather than
slices whenever groups are known: slices of one patient are not independent, and resampling them one by
one gives intervals that are too narrow.

:func:`evaluate_run` applies a run folder's model to its test split (or to any dataset folder) and
writes ``metrics.json``, ``per_class.csv``, ``predictions.csv`` and figures; ``liverlib evaluate`` is its
command line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liverlib.aggregate import DEFAULT_RULE, by_group, normal_class_index
from liverlib.data import scan_dataset
from liverlib.errors import LiverlibError
from liverlib.metrics import (HEADLINE, PER_CLASS, batched_scores, confusion, reliability_table, roc_curves,
                              scores)
from liverlib.plots import confusion_figure, reliability_figure, roc_figure
from liverlib.preprocess import make_pipeline
from liverlib.runs import SPLIT_FILE, cached, load_run


# ------------------------------------------------------------------------------------------------ bootstrap

def bootstrap_weights(n: int, groups: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """n_boot x n sample multiplicities: resampling groups (patients) with replacement, or samples if no groups."""
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = rng.integers(0, n, size=(n_boot, n))
        return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(float)
    codes, uniques = pd.factorize(pd.Series(groups).astype(str))
    g = len(uniques)
    draws = rng.integers(0, g, size=(n_boot, g))
    group_counts = np.stack([np.bincount(d, minlength=g) for d in draws]).astype(float)
    return group_counts[:, codes]


def bootstrap_ci(y_true: np.ndarray, probs: np.ndarray, class_names, groups: np.ndarray | None = None,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals for every headline figure and every per-class figure.

    Returns {"accuracy": [low, high], ..., "per_class": {class: {"recall": [low, high], ...}}}. A per-class
    figure whose class is absent from a resample is left out of that resample.
    """
    k = len(class_names)
    weights = bootstrap_weights(len(y_true), groups, n_boot, seed)
    weights = weights[weights.sum(axis=1) > 0]
    m = batched_scores(y_true, probs, k, weights)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def interval(values):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        return [float(np.percentile(values, lo)), float(np.percentile(values, hi))] if len(values) else [None, None]

    ci = {name: interval(m[name]) for name in HEADLINE}
    present = m["per_class"]["support"] > 0
    ci["per_class"] = {c: {name: interval(m["per_class"][name][present[:, i], i]) for name in PER_CLASS}
                       for i, c in enumerate(class_names)}
    return ci


# -------------------------------------------------------------------------------------- temperature scaling

def fit_temperature(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(log p / T) (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar  # local: heavy dependency

    logits = np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, 1.0))
    y_true = np.asarray(y_true)

    def nll(log_t):
        z = logits / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(y_true)), y_true].mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------- tables

def table2(metrics: dict, ci: dict | None = None) -> pd.DataFrame:
    """The paper's Table 2 layout (class, precision, recall, F1, support) plus specificity, the macro and
    weighted averages, and each figure's 95% interval when given."""
    rows = []
    for name, m in metrics["per_class"].items():
        row = {"class": name}
        for key in PER_CLASS:
            row[key] = m[key]
            if ci:
                row[f"{key} 95% CI"] = _fmt_ci(ci["per_class"][name][key])
        row["support"] = int(round(m["support"]))
        rows.append(row)
    classes = pd.DataFrame(rows)
    support = classes["support"].to_numpy(dtype=float)
    averages = []
    for label, w in (("macro avg", np.ones(len(classes))), ("weighted avg", support)):
        avg = {"class": label, "support": int(support.sum())}
        for key in PER_CLASS:
            avg[key] = float(np.average(classes[key], weights=w)) if w.sum() else float("nan")
        averages.append(avg)
    table = pd.concat([classes, pd.DataFrame(averages)], ignore_index=True)
    return table.set_index("class")


def headline_table(metrics: dict, ci: dict | None = None) -> pd.DataFrame:
    rows = [{"metric": m, "value": metrics[m], **({"95% CI": _fmt_ci(ci[m])} if ci else {})} for m in HEADLINE]
    return pd.DataFrame(rows).set_index("metric")


def patient_level(y_true: np.ndarray, probs: np.ndarray, groups, class_names, rule: str = DEFAULT_RULE,
                  normal: int | None = None, n_boot: int = 1000, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Scores per patient: each group's slices combined with ``rule`` (:mod:`liverlib.aggregate`), then the
    same figures and bootstrap intervals as for slices, one patient one sample. Returns (metrics, table)."""
    ids, y, p, used = by_group(probs, groups, y_true, rule, normal)
    metrics = scores(y, p, class_names)
    metrics["ci95"] = bootstrap_ci(y, p, class_names, None, n_boot=n_boot, seed=seed)
    metrics.update({"rule": used, "n_patients": len(ids),
                    "confusion_matrix": confusion(y, p.argmax(axis=1), len(class_names)).astype(int).tolist()})
    table = pd.DataFrame({"group": ids, "class": [class_names[i] for i in y],
                          "predicted": [class_names[i] for i in p.argmax(axis=1)]})
    for i, name in enumerate(class_names):
        table[f"p_{name}"] = p[:, i]
    return metrics, table


def _fmt_ci(bounds) -> str:
    return "n/a" if bounds is None or bounds[0] is None else f"{bounds[0]:.3f}-{bounds[1]:.3f}"


# ---------------------------------------------------------------------------------------------- a run folder

@dataclass
class Evaluation:
    metrics: dict  # what metrics.json holds
    predictions: pd.DataFrame  # file, class, group, label, predicted, p_<class>..., confidence
    class_names: list[str]
    out_dir: Path | None

    def probs(self) -> np.ndarray:
        return self.predictions[[f"p_{c}" for c in self.class_names]].to_numpy()


def predict_files(model, files, input_size: int, window, batch_size: int = 32, crop: str = "none",
                  normalisation: str = "unit") -> np.ndarray:
    """Class probabilities for image files, preprocessed exactly as in training (no augmentation): the model
    card's window, ``crop`` and input ``normalisation``."""
    files = list(files)
    if not files:
        return np.zeros((0, model.outputs[0].shape[-1]), np.float32)
    ds = make_pipeline(files, np.zeros(len(files), int), input_size, batch_size, False, None, window, crop=crop,
                       normalisation=normalisation)
    return model.predict(ds, verbose=0)


def evaluation_rows(run_dir: Path, data_dir: str | os.PathLike | None = None, split: str = "test") -> pd.DataFrame:
    """The images to evaluate: the run's own split (default: its test rows), or every image of another folder."""
    saved = pd.read_csv(run_dir / SPLIT_FILE, dtype=str, keep_default_na=False)
    if data_dir is None:
        rows = saved[saved["split"] == split]
        if rows.empty:
            raise LiverlibError(f"the run's split ({run_dir / SPLIT_FILE}) has no {split!r} images")
        return rows.reset_index(drop=True)
    dataset = scan_dataset(data_dir)
    manifest = dataset.manifest
    known = manifest["file"].isin(set(saved["file"]))
    if known.any():  # the training data again: use the run's split, never its training images
        merged = manifest.merge(saved[["file", "split"]], on="file", how="left", suffixes=("_folder", ""))
        rows = merged[merged["split"] == split]
        if rows.empty:
            raise LiverlibError(f"{data_dir} is the data this run was trained on, and none of its images is in the "
                                f"run's {split!r} split")
    else:  # an external test set: every image
        rows = manifest.assign(split="external")
    return rows[["file", "class", "group", "split"]].reset_index(drop=True)


def evaluate_run(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 out_dir: str | os.PathLike | None = None, *, split: str = "test", n_boot: int = 1000,
                 seed: int = 0, figures: bool = True, rule: str = DEFAULT_RULE) -> Evaluation:
    """Apply a run's model to its test split (or a dataset folder) and write the full report to out_dir.

    With patient groups, ``metrics["patient_level"]`` scores patients, their slices combined with ``rule``.

    ``out_dir`` defaults to ``<run_dir>/evaluation`` (``evaluation-<folder>`` for another dataset).
    """
    run = cached(run_dir, load_run)  # loaded once per run folder and kept (classify shares it)
    run_dir = run.run_dir
    class_names = list(run.card["class_names"])
    rows = evaluation_rows(run_dir, data_dir, split)
    unknown = sorted(set(rows["class"]) - set(class_names))
    if unknown:
        raise LiverlibError(f"the evaluation data has classes the model does not know: {', '.join(unknown)}")
    window = (run.card["window"]["level"], run.card["window"]["width"])
    probs = predict_files(run.model, rows["file"], int(run.card["input_size"]), window,
                          crop=run.card.get("crop", "none"), normalisation=run.card.get("input_normalisation", "unit"))
    y_true = rows["class"].map(class_names.index).to_numpy()
    groups = rows["group"].to_numpy() if "group" in rows and rows["group"].astype(bool).all() else None
    metrics = scores(y_true, probs, class_names)
    metrics["ci95"] = bootstrap_ci(y_true, probs, class_names, groups, n_boot=n_boot, seed=seed)
    metrics.update({
        "n_images": int(len(rows)), "n_groups": int(len(set(groups))) if groups is not None else None,
        "bootstrap": {"resamples": n_boot, "unit": "patient" if groups is not None else "image",
                      "seed": seed},
        "split": str(rows["split"].iloc[0]), "class_names": class_names,
        "confusion_matrix": confusion(y_true, probs.argmax(axis=1), len(class_names)).astype(int).tolist(),
        "run": str(run_dir), "synthetic_data": bool(run.card.get("synthetic_data", True)) if data_dir is None else None,
        "model_card_metrics": run.card.get("metrics", {}),
    })
    patients = None
    if groups is not None:
        metrics["patient_level"], patients = patient_level(y_true, probs, groups, class_names, rule,
                                                           normal_class_index(class_names, run.card), n_boot, seed)
    predictions = rows.assign(label=y_true, predicted=[class_names[i] for i in probs.argmax(axis=1)])
    for i, name in enumerate(class_names):
        predictions[f"p_{name}"] = probs[:, i]
    predictions["confidence"] = probs.max(axis=1)
    if out_dir is None:
        out_dir = run_dir / ("evaluation" if data_dir is None else f"evaluation-{Path(data_dir).name}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    table2(metrics, metrics["ci95"]).to_csv(out_dir / "per_class.csv")
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    if patients is not None:
        patients.to_csv(out_dir / "patients.csv", index=False)
    evaluation = Evaluation(metrics=metrics, predictions=predictions, class_names=class_names, out_dir=out_dir)
    if figures:
        import matplotlib.pyplot as plt  # local: heavy dependency

        for name, fig in (("confusion.png", confusion_figure(metrics["confusion_matrix"], class_names)),
                          ("roc.png", roc_figure(roc_curves(y_true, probs, class_names))),
                          ("reliability.png", reliability_figure(reliability_table(y_true, probs), metrics["ece"]))):
            fig.savefig(out_dir / name, dpi=100, bbox_inches="tight")
            plt.close(fig)
    return evaluation


def confident_mistakes(evaluation: Evaluation, k: int = 4) -> pd.DataFrame:
    """The k wrong predictions the model was most sure of."""
    p = evaluation.predictions
    wrong = p[p["class"] != p["predicted"]]
    return wrong.sort_values("confidence", ascending=False).head(k)


def recompute_accuracy(table: pd.DataFrame) -> float:
    """Overall accuracy implied by a per-class table with recall and support: sum(recall x support) / sum(support)."""
    return float((table["recall"] * table["support"]).sum() / table["support"].sum())
