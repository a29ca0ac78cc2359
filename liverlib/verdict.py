"""Did a run learn? Its test figures next to baselines on the same inputs, in words the numbers choose.

A macro-F1 means little alone: 0.3 is good for a four-class problem if answering the majority class scores
0.19, and poor if a small CNN reaches 0.6 on the same slices. :func:`run_folder_baselines` trains the
baselines of :mod:`liverlib.baselines` (and :func:`majority_class`, which always answers the most frequent
training class) on a run's own patient-grouped split and keeps their rows in the run folder
(``evaluation/baselines.json``), so the training chapter and the evaluation chapter share one computation.
:func:`relation` turns a comparison into words for the prose: "above" when a reference lies below the
figure's 95% interval, "below" when it lies above it, and "not distinguishable from" when it lies inside.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

MAJORITY = "majority class"
CACHE_FILE = Path("evaluation") / "baselines.json"
BASELINES_VERSION = 2  # 2: the small CNN trains on seeded tf.data batches; rows cached by an earlier version are redone


def majority_class(images, labels, train, test, seed: int = 0) -> np.ndarray:
    """The chance-level baseline: probability 1 for the most frequent class of the training labels, for every
    test image (the same signature as the baselines of :mod:`liverlib.baselines`; images are not looked at)."""
    labels = np.asarray(labels)
    k = max(int(labels.max()) + 1, 4) if len(labels) else 4
    winner = int(np.bincount(labels[np.asarray(train)], minlength=k).argmax())
    probs = np.zeros((len(test), k))
    probs[:, winner] = 1.0
    return probs


def relation(interval, reference: float) -> str:
    """How a figure with a 95% ``interval`` (low, high) stands against a ``reference`` value: ``"above"``
    (the reference is below the interval), ``"below"`` (above it) or ``"not distinguishable from"`` (inside)."""
    low, high = (float(v) for v in interval)
    if reference < low:
        return "above"
    if reference > high:
        return "below"
    return "not distinguishable from"


def run_folder_baselines(run_dir: str | os.PathLike, window: tuple[float, float], size: int | None = None,
                         epochs: int = 8, only=None, n_boot: int = 1000, seed: int = 0, crop: str | None = None):
    """Baselines trained on the run's training images and scored on its test images, with the same patient
    bootstrap intervals as the run (:func:`liverlib.baselines.summary_row`): one row per model, the
    majority class first. ``only`` picks models by name (:data:`MAJORITY` and the names in
    :data:`liverlib.baselines.BASELINES`; default all). The inputs are the run's own: its model card's input
    size and crop unless ``size`` or ``crop`` say otherwise (64 px, whole slice for a folder without a card).
    Rows already computed with the same size, crop, epochs, resamples and seed are read from
    ``<run_dir>/evaluation/baselines.json``, new ones added to it."""
    import pandas as pd  # local: heavy dependency

    from liverlib.baselines import BASELINES, summary_row
    from liverlib.config import CLASS_NAMES
    from liverlib.preprocess import load_images
    from liverlib.runs import CARD_FILE, SPLIT_FILE, read_card

    run_dir = Path(run_dir)
    card = read_card(run_dir) if (run_dir / CARD_FILE).is_file() else {}
    size = int(size if size is not None else card.get("input_size", 64))
    crop = crop if crop is not None else card.get("crop", "none")
    models = {MAJORITY: majority_class, **BASELINES}
    wanted = [name for name in models if only is None or name in only]
    cache_path = run_dir / CACHE_FILE
    key = {"size": size, "crop": crop, "epochs": int(epochs), "n_boot": int(n_boot), "seed": int(seed),
           "baselines_version": BASELINES_VERSION,
           "split_sha256": hashlib.sha256((run_dir / SPLIT_FILE).read_bytes()).hexdigest()}
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    rows = cache.get("rows", {}) if cache.get("key") == key else {}
    missing = [name for name in wanted if name not in rows]
    if missing:
        split = pd.read_csv(run_dir / SPLIT_FILE)
        split = split[split["split"].isin(["train", "test"])].reset_index(drop=True)
        labels = split["class"].map(list(CLASS_NAMES).index).to_numpy()
        train = np.flatnonzero(split["split"] == "train")
        test = np.flatnonzero(split["split"] == "test")
        groups = split["group"].astype(str).to_numpy()
        images = load_images(split["file"], size, window, crop=crop)
        for name in missing:
            start = time.perf_counter()
            kwargs = {"epochs": epochs} if name == "small CNN" else {}
            probs = models[name](images, labels, train, test, seed=seed, **kwargs)
            rows[name] = summary_row(name, labels[test], probs, CLASS_NAMES, groups[test], n_boot, seed,
                                     time.perf_counter() - start)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
    return pd.DataFrame([rows[name] for name in wanted]).set_index("model")


def interval_of(row, metric: str = "macro_f1") -> tuple[float, float]:
    """(low, high) of a baseline row's ``'<metric> 95% CI'`` text (``'0.176-0.205'``)."""
    text = str(row[f"{metric} 95% CI"])
    if "-" not in text:  # 'n/a': no interval
        return float("nan"), float("nan")
    low, high = text.split("-")
    return float(low), float(high)
