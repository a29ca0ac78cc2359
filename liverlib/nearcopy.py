"""Near-copies: a signature of a CT slice that an augmented copy of it shares, and clusters of near-copies.

Near-copies are an image and its rotated, shifted, zoomed or flipped copy, or neighbouring slices of one
patient. Standard perceptual hashes (pHash, dHash) are not invariant to rotation, and on CT, where every
slice shows the same body plan, their distances for augmented copies overlap with those between
different patients (measured on the phantom: median 20 bits for copies against 22 for different
patients, of 64). The signature here is built to be invariant to exactly the ImageDataGenerator
transforms:

1. find the body (pixels brighter than air) and its centroid and radius: undoes shifts and zoom;
2. resample the slice on a polar grid around the centroid, radii scaled by the body radius;
3. keep the magnitudes of the Fourier coefficients along the angle: a rotation is a phase shift, and a
   horizontal flip reverses the angle, so neither changes them;
4. add the grey-level histogram inside the body, and normalise to unit length.

Two images are near-copies when their signatures are closer than a threshold calibrated on the
phantom's known augmented copies (see :func:`liverlib.audit.calibrate`). The loader groups images by
these clusters when no patient ids are given (:mod:`liverlib.data`); the leakage audit
(:mod:`liverlib.audit`) looks for them across a split.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from scipy import ndimage

from liverlib.imaging.decode import decode_file

DEFAULT_THRESHOLD = 0.05
_RADII, _ANGLES, _HARMONICS, _BINS, _SIZE = 24, 64, 8, 32, 128


def signature(grey: np.ndarray) -> np.ndarray:
    """Shift-, zoom-, rotation- and flip-invariant signature of a grey slice (values 0-255)."""
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
    def one(path):
        return signature(decode_file(path).grey)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(one, files))) if files else np.zeros((0, 1), np.float32)


def pairs_within(a: np.ndarray, b: np.ndarray, threshold: float, block: int = 2048):
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

    for i, j, _ in pairs_within(sig, sig, threshold):
        if i < j:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(files))])
    _, ids = np.unique(roots, return_inverse=True)
    return ids
