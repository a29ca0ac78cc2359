"""Leakage audit: find test images that have a near-copy in the training set.

Near-copies (an image and its rotated, shifted, zoomed or flipped copy, or neighbouring slices of one
patient) on both sides of a split inflate test accuracy. :mod:`liverlib.nearcopy` gives each image a
signature that such copies share; this module looks for close signatures across a split, and calibrates
the distance threshold on the phantom's known augmented copies (:func:`calibrate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liverlib.data import scan_dataset
from liverlib.errors import LiverlibError
from liverlib.nearcopy import DEFAULT_THRESHOLD, pairs_within, signatures
from liverlib.splits import make_split


@dataclass
class AuditResult:
    images: int
    pairs: pd.DataFrame  # test_file, train_file, distance
    threshold: float
    split_strategy: str

    @property
    def near_duplicate_pairs_across_splits(self) -> int:
        return len(self.pairs)

    @property
    def flagged_test_images(self) -> int:
        return int(self.pairs["test_file"].nunique()) if len(self.pairs) else 0

    def as_json(self) -> dict:
        return {"images": self.images, "split": self.split_strategy, "threshold": self.threshold,
                "near_duplicate_pairs_across_splits": self.near_duplicate_pairs_across_splits,
                "flagged_test_images": self.flagged_test_images,
                "pairs": [{"test": t, "train": r, "distance": round(float(d), 4)}
                          for t, r, d in self.pairs[["test_file", "train_file", "distance"]].itertuples(index=False)]}


def audit_split(manifest: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, split_strategy: str = "") -> AuditResult:
    """Every (test image, training image) pair that are near-copies of each other."""
    if "split" not in manifest or not {"train", "test"} <= set(manifest["split"]):
        raise LiverlibError("the manifest needs a split with 'train' and 'test' images to audit")
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    sig_test, sig_train = signatures(test["file"].tolist()), signatures(train["file"].tolist())
    rows = [(test.at[i, "file"], train.at[j, "file"], d) for i, j, d in pairs_within(sig_test, sig_train, threshold)]
    pairs = pd.DataFrame(rows, columns=["test_file", "train_file", "distance"]).sort_values("distance")
    return AuditResult(images=len(manifest), pairs=pairs.reset_index(drop=True), threshold=threshold,
                       split_strategy=split_strategy)


def calibrate(manifest: pd.DataFrame, thresholds=None, negatives: int = 20000, seed: int = 0) -> pd.DataFrame:
    """Precision and recall of the near-copy test at several thresholds, on known copies.

    Positives are (augmented copy, its source) pairs (column ``augmented_from`` of a phantom manifest);
    negatives are random pairs of images from different groups (patients). Precision is estimated as if
    positives and negatives occurred in the proportions of all pairs of the dataset.
    """
    if "augmented_from" not in manifest or not (manifest["augmented_from"] != "").any():
        raise LiverlibError("calibration needs a phantom written with --augmented-copies (known copies)")
    thresholds = np.asarray(thresholds if thresholds is not None else np.arange(0.02, 0.16, 0.01))
    index = {rel: i for i, rel in enumerate(manifest["rel"])}
    sig = signatures(manifest["file"].tolist())
    copies = manifest[manifest["augmented_from"] != ""]
    pos = np.array([np.linalg.norm(sig[i] - sig[index[src]]) for i, src in zip(copies.index, copies["augmented_from"])])
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(manifest), (2, negatives))
    groups = manifest["group"].to_numpy()
    keep = groups[a] != groups[b]
    neg = np.linalg.norm(sig[a[keep]] - sig[b[keep]], axis=1)
    n = len(manifest)
    total_neg_pairs = n * (n - 1) / 2 - len(pos)
    rows = []
    for t in thresholds:
        tp = (pos < t).mean() * len(pos)
        fp = (neg < t).mean() * total_neg_pairs
        rows.append({"threshold": round(float(t), 3), "recall": float((pos < t).mean()),
                     "false_positive_rate": float((neg < t).mean()),
                     "precision": float(tp / (tp + fp)) if tp + fp else 1.0})
    return pd.DataFrame(rows)


def audit_folder(data_dir: str | os.PathLike, split_strategy: str = "grouped", seed: int = 42,
                 fractions=(0.7, 0.15, 0.15), threshold: float = DEFAULT_THRESHOLD) -> AuditResult:
    """Load a folder, split it (grouped or slice-level random; a pre-split layout keeps its own) and audit it."""
    dataset = scan_dataset(data_dir)
    manifest = dataset.manifest
    if not (manifest["split"] != "").all():
        manifest = manifest.assign(split=make_split(manifest, fractions, seed, split_strategy))
    else:
        split_strategy = "as given by the folders"
    return audit_split(manifest, threshold, split_strategy)
