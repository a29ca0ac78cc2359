"""Leakage audit: find test images that have a near-copy in the training set.

Near-copies (an image and its rotated, shifted, zoomed or flipped copy, or neighbouring slices of one
patient) on both sides of a split inflate test accuracy. Standard perceptual hashes (pHash, dHash) are
not invariant to rotation, and on CT, where every slice shows the same body plan, their distances for
augmented copies overlap with those between different patients (measured on the phantom: median
20 bits for copies against 22 for different patients, of 64). This module uses a signature built to be
invariant to exactly the ImageDataGenerator transforms:

1. find the body (pixels brighter than air) and its centroid and radius: undoes shifts and zoom;
2. resample the slice on a polar grid around the centroid, radii scaled by the body radius;
3. keep the magnitudes of the Fourier coefficients along the angle: a rotation is a phase shift, and a
   horizontal flip reverses the angle, so neither changes them;
4. add the grey-level histogram inside the body, and normalise to unit length.

Two images are near-copies when their signatures are closer than a threshold calibrated on the
phantom's known augmented copies (see :func:`calibrate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from liverlib.errors import LiverlibError

DEFAULT_THRESHOLD = 0.05
_RADII, _ANGLES, _HARMONICS, _BINS, _SIZE = 24, 64, 8, 32, 128


def signature(grey: np.ndarray) -> np.ndarray:
    """Shift-, zoom-, rotation- and flip-invariant signature of a grey slice (values 0-255)."""
    from PIL import Image

    g = np.asarray(Image.fromarray(np.asarray(grey, dtype=np.float32)).resize((_SIZE, _SIZE), Image.BILINEAR),
                   dtype=np.float32)
    g = ndimage.gaussian_filter(g, 2.0)  # suppress noise, which interpolation in a copy would smooth anyway
    body = ndimage.binary_opening(g > 20, iterations=2)
    if body.sum() < 50:  # nothing but air: fall back to the whole image
        body = np.ones_like(body)
    cy, cx = ndimage.center_of_mass(body)
    radius = np.sqrt(body.sum() / np.pi)
    r = (np.arange(_RADII) + 0.5) / _RADII * 1.15 * radius
    theta = np.arange(_ANGLES) * 2 * np.pi / _ANGLES
    rows = cy + r[:, None] * np.sin(theta)[None, :]
    cols = cx + r[:, None] * np.cos(theta)[None, :]
    polar = ndimage.map_coordinates(g, [rows, cols], order=1, mode="constant")
    harmonics = np.abs(np.fft.rfft(polar, axis=1))[:, :_HARMONICS] / _ANGLES
    hist = np.histogram(g[body], bins=_BINS, range=(0, 256), density=True)[0] * 50.0
    v = np.concatenate([harmonics.ravel(), hist]).astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-9)


def signatures(files: list[str], workers: int = 4) -> np.ndarray:
    """Signatures of many image files (decoded as the loader does), one row each."""
    from concurrent.futures import ThreadPoolExecutor

    from liverlib.imageio import decode_file

    def one(path):
        return signature(decode_file(path).grey)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(one, files))) if files else np.zeros((0, 1), np.float32)


def _pairs_within(a: np.ndarray, b: np.ndarray, threshold: float, block: int = 2048):
    """(i, j, distance) for every row i of a and j of b closer than threshold, computed in blocks."""
    b_sq = (b * b).sum(axis=1)
    for start in range(0, len(a), block):
        chunk = a[start:start + block]
        d2 = (chunk * chunk).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * chunk @ b.T
        dist = np.sqrt(np.maximum(d2, 0.0))
        i, j = np.nonzero(dist < threshold)
        yield from zip(i + start, j, dist[i, j])


def near_duplicate_groups(files: list[str], threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Cluster ids joining every pair of near-copies (union-find over the signature distances)."""
    sig = signatures(files)
    parent = np.arange(len(files))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in _pairs_within(sig, sig, threshold):
        if i < j:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(files))])
    _, ids = np.unique(roots, return_inverse=True)
    return ids


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
    rows = [(test.at[i, "file"], train.at[j, "file"], d) for i, j, d in _pairs_within(sig_test, sig_train, threshold)]
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
    from liverlib.data import scan_dataset
    from liverlib.splits import make_split

    dataset = scan_dataset(data_dir)
    manifest = dataset.manifest
    if not (manifest["split"] != "").all():
        manifest = manifest.assign(split=make_split(manifest, fractions, seed, split_strategy))
    else:
        split_strategy = "as given by the folders"
    return audit_split(manifest, threshold, split_strategy)
