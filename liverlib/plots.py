"""Figures the notebooks share: CT slices in a window, label maps, montages, evaluation figures. Every figure
has titles and units. Figures draw numbers they are given; the numbers come from :mod:`liverlib.metrics`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from liverlib.phantom.tissues import BY_LABEL, TISSUES
from liverlib.imaging.windowing import window_hu
from liverlib.runs import best_epoch
from liverlib.schedule import learning_rate_at

if TYPE_CHECKING:  # annotations only
    import pandas as pd

    from liverlib.config import RunConfig


def label_colormap():
    """A categorical colour map for phantom label maps (0 = air is black), and its normalisation."""
    import matplotlib.colors as mcolors  # local: heavy dependency
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors + colormaps["tab20b"].colors
    colours = [(0, 0, 0)] + [palette[i % len(palette)] for i in range(1, 256)]
    return mcolors.ListedColormap(colours), mcolors.BoundaryNorm(np.arange(-0.5, 256.5), 256)


def show_ct(ax, hu: np.ndarray, window: tuple[float, float] = (40, 400), title: str | None = None) -> None:
    """A slice in HU, shown under a window (level, width), without axes."""
    ax.imshow(window_hu(hu, *window), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_hu_map(fig, ax, hu: np.ndarray, title: str, vmin: float = -200, vmax: float = 300) -> None:
    """A slice in HU with a colour bar in HU."""
    image = ax.imshow(hu, cmap="gray", vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="HU")


def show_labels(ax, labels: np.ndarray, title: str = "label map", legend: bool = True) -> None:
    """A phantom label map in categorical colours, with a legend of the tissues present."""
    import matplotlib.patches as mpatches  # local: heavy dependency

    cmap, norm = label_colormap()
    ax.imshow(labels, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    if legend:
        present = [int(v) for v in np.unique(labels) if int(v) in BY_LABEL]
        handles = [mpatches.Patch(color=cmap(norm(v)), label=BY_LABEL[v].name) for v in present]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)


def montage(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 4, window=(40, 400),
            size: float = 2.6, suptitle: str | None = None, hu: bool = True):
    """A grid of slices; ``hu=False`` for images already in grey levels (0-255)."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, title in zip(axes.flat, images, titles):
        if hu:
            show_ct(ax, image, window, title)
        else:
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def tissue_table():
    """The phantom's HU values per tissue with the literature ranges they come from, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([{"tissue": t.name, "label": t.label, "phantom HU (portal-venous)":
                          f"{t.hu_range[0]:g} to {t.hu_range[1]:g}", "literature": t.literature,
                          "lesion": "yes" if t.lesion else ""} for t in TISSUES]).set_index("tissue")


def classification_figure(result, title: str | None = None):
    """One classified slice: the model's input, its Grad-CAM overlay and the class probabilities."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    from liverlib.explain import overlay  # local: explain imports Keras

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].imshow(result.model_input, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title(f"{result.file}\nas the model sees it ({result.model_input.shape[0]} px)", fontsize=9)
    if result.heatmap is not None:
        axes[1].imshow(overlay(result.model_input, result.heatmap))
        empty = float(result.heatmap.max()) == 0.0
        axes[1].set_title(f"Grad-CAM: {result.predicted_class}"
                          + ("\n(no positive evidence anywhere: map is zero)" if empty else ""), fontsize=9)
    for ax in axes[:2]:
        ax.set_axis_off()
    names = list(result.probabilities)
    probs = [result.probabilities[n] for n in names]
    colours = ["#c44e52" if n == result.predicted_class else "#4c72b0" for n in names]
    axes[2].barh(names[::-1], probs[::-1], color=colours[::-1])
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("probability")
    axes[2].set_title(title or f"predicted: {result.predicted_class} ({result.confidence:.2f})", fontsize=9)
    fig.tight_layout()
    return fig


def confusion_figure(cm, class_names: Sequence[str]):
    """The confusion matrix as two seaborn heatmaps: counts, and rows normalised to recall."""
    import matplotlib.pyplot as plt  # local: heavy dependency
    import seaborn as sns

    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    sns.heatmap(cm, annot=True, fmt=".0f", cmap="Blues", cbar=False, ax=axes[0],
                xticklabels=class_names, yticklabels=class_names)
    sns.heatmap(normalised, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=axes[1],
                xticklabels=class_names, yticklabels=class_names)
    for ax, title in zip(axes, ("counts", "row-normalised (diagonal = recall)")):
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_figure(curves: dict):
    """One-vs-rest ROC curve per class, with its AUC: ``curves`` is :func:`liverlib.metrics.roc_curves`'s
    class name -> (false-positive rates, true-positive rates, AUC)."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_title("one-vs-rest ROC")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reliability_figure(table, ece: float, label: str = "model", ax=None):
    """Reliability diagram: accuracy against confidence per bin; the diagonal is perfect calibration.

    ``table`` is :func:`liverlib.metrics.reliability_table`'s, ``ece`` the expected calibration error over
    the same bins (:func:`liverlib.metrics.expected_calibration_error`), shown in the legend.
    """
    import matplotlib.pyplot as plt  # local: heavy dependency

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    used = table[table["images"] > 0]
    ax.plot(used["confidence"], used["accuracy"], "o-", label=f"{label} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend(fontsize=8)
    return fig if fig is not None else ax.figure


def study_strip_figure(z_mm: Sequence[float], probs: np.ndarray, class_names: Sequence[str],
                       all_z_mm: Sequence[float] | None = None, top_z_mm: Sequence[float] = (), title: str = ""):
    """A study's per-slice class probabilities along z: one line per class over the classified (liver) slices
    at heights ``z_mm`` (mm, head on the left), ticks for every slice of the series (``all_z_mm``; slices
    without a probability show no liver) and dashed lines at the top slices (``top_z_mm``)."""
    import matplotlib.pyplot as plt  # local: heavy dependency
    from matplotlib.ticker import FuncFormatter

    probs = np.asarray(probs, dtype=float).reshape(len(z_mm), len(class_names))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = -np.asarray(z_mm, dtype=float)  # head (highest z) on the left
    for i, name in enumerate(class_names):
        ax.plot(x, probs[:, i], "o-", ms=3, lw=1.2, label=str(name))
    if all_z_mm is not None:
        ax.plot(-np.asarray(all_z_mm, dtype=float), np.full(len(all_z_mm), -0.04), "|", color="0.5", ms=6,
                label="slices (no marker above: no liver)")
    for z in top_z_mm:
        ax.axvline(-float(z), color="k", ls="--", lw=0.8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{-v:g}"))
    ax.set_ylim(-0.08, 1.02)
    ax.set_xlabel("slice height z (mm, head on the left)")
    ax.set_ylabel("probability")
    ax.set_title(title or "per-slice probabilities along the study", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def predicted_share_figure(shares: dict, title: str = "share of validation slices given to each class"):
    """Per recipe (one panel each), the share of validation slices predicted as each class after every epoch,
    as stacked bars: ``shares`` maps a recipe's name to a table with epochs as index and classes as columns
    (:func:`liverlib.ablation.predicted_shares`). A bar of one colour is a model that answers one class."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    fig, axes = plt.subplots(1, len(shares), figsize=(4.2 * len(shares), 3.4), sharey=True, squeeze=False)
    colours = dict(zip(sorted({c for t in shares.values() for c in t.columns}), plt.get_cmap("tab10").colors))
    for ax, (name, table) in zip(axes[0], shares.items()):
        bottom = np.zeros(len(table))
        for cls in table.columns:
            ax.bar(table.index, table[cls], bottom=bottom, color=colours[cls], label=str(cls), width=0.8)
            bottom += table[cls].to_numpy(dtype=float)
        ax.set_xticks(list(table.index))
        ax.set_xlabel("epoch")
        ax.set_title(str(name), fontsize=10)
    axes[0][0].set_ylabel("share of validation slices")
    axes[0][0].set_ylim(0, 1)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def lesion_size_figure(table):
    """Sensitivity by lesion size: per class (one line each), the share of lesion slices predicted as the true
    class (left) and as abnormal (right) per diameter bin, the last line (``all``) with each point's number of
    slices. ``table`` is :func:`liverlib.lesion_size.sensitivity_by_lesion_size`'s."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    classes = list(dict.fromkeys(table.index.get_level_values(0)))
    for ax, column in zip(axes, ("predicted true class", "predicted abnormal")):
        for cls in classes:
            part = table.loc[cls]
            x = np.arange(len(part))
            style = dict(color="k", ls="--") if cls == "all" else dict(ls="-")
            ax.plot(x, part[column], marker="o", label=str(cls), **style)
            for xi, share, n in zip(x, part[column], part["slices"]):
                if n and np.isfinite(share) and cls == classes[-1]:  # the last line (all) only: no overlaps
                    ax.annotate(str(int(n)), (xi, share), textcoords="offset points", xytext=(0, 5), fontsize=7,
                                ha="center")
            ax.set_xticks(x, [str(v) for v in part.index], rotation=30)
        ax.set_ylim(-0.03, 1.1)
        ax.set_xlabel("largest lesion's diameter in the slice")
        ax.set_title(f"share {column}", fontsize=10)
    axes[0].set_ylabel("share of lesion slices (labels: slices)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def seed_runs_figure(runs: pd.DataFrame, reference: str | None = None):
    """Each recipe's seeds side by side (a table of :func:`liverlib.ablation.seed_runs`): one point per run at its
    test macro-F1, with the patient-level 95% interval as a bar, recipes one above the other. ``reference``
    names a recipe whose seeds' mean is drawn as a dotted line across the plot."""
    import matplotlib.pyplot as plt  # local: heavy dependency
    from pandas import isna as pd_isna

    recipes = list(dict.fromkeys(runs["recipe"]))
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.55 * len(recipes)))
    for row, recipe in enumerate(recipes):
        mine = runs[runs["recipe"] == recipe].reset_index(drop=True)
        offsets = np.linspace(-0.2, 0.2, len(mine)) if len(mine) > 1 else [0.0]
        for offset, (_, run) in zip(offsets, mine.iterrows()):
            f1, low, high = run["test macro-F1"], run["CI low"], run["CI high"]
            bar = None if pd_isna(low) or pd_isna(high) else [[f1 - low], [high - f1]]
            ax.errorbar(f1, row + offset, xerr=bar, fmt="o", color=f"C{row}", capsize=2, ms=5)
            ax.annotate(str(run["seed"]), (f1, row + offset), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if reference is not None and reference in recipes:
        ax.axvline(runs.loc[runs["recipe"] == reference, "test macro-F1"].mean(), color="grey", ls=":",
                   label=f"mean of {reference!r}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(recipes)), recipes)
    ax.invert_yaxis()
    ax.set_xlabel("test macro-F1 (bar: patient-level 95% interval; label: seed)")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    return fig


def plot_curves(history: pd.DataFrame, config: RunConfig, path: Path | None = None):
    """Loss, accuracy (and validation macro-F1 when the run logged it) and learning rate per epoch; a dotted
    line marks the epoch the run kept (``config.checkpoint_metric``)."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    epochs = history["epoch"] + 1 if len(history) else []
    for ax, key, title in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        if len(history):
            ax.plot(epochs, history[key], "o-", label="training")
            ax.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        if key == "accuracy" and "val_macro_f1" in history:
            ax.plot(epochs, history["val_macro_f1"], "s--", label="validation macro-F1")
        kept = best_epoch(history, config.checkpoint_metric)
        if kept is not None:
            ax.axvline(kept + 1, color="grey", ls=":", label=f"kept epoch ({config.checkpoint_metric})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    if config.lr_schedule == "piecewise":
        all_epochs = np.arange(config.epochs)
        axes[2].step(all_epochs + 1, [learning_rate_at(config, e) for e in all_epochs], where="post")
        axes[2].set_yscale("log")
        axes[2].set_title(f"schedule: x{config.lr_drop_factor:g} every {config.lr_drop_every} epochs")
    else:
        fine = np.linspace(0, config.epochs, 200)
        axes[2].plot(fine + 1, [learning_rate_at(config, e) for e in fine])
        axes[2].set_title("schedule: warm-up over epoch 1, then cosine decay")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
