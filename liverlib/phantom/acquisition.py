"""The scanner: artefacts, point-spread blur, correlated quantum noise and the scanner's HU range.

The renderer paints an ideal HU map; :func:`acquire` turns it into what a CT scanner would reconstruct.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from liverlib.phantom.tissues import HU_MAX, HU_MIN

if TYPE_CHECKING:
    from liverlib.phantom.anatomy import Patient
    from liverlib.phantom.canvas import Canvas


def artefacts(cv: Canvas, a: dict, streaks: tuple[np.ndarray, np.ndarray], body: np.ndarray, vy: float) -> np.ndarray:
    """HU offsets of beam hardening (the body's centre reads a few HU low) and faint streaks through the spine."""
    r2 = (cv.xs[None, :] / a["body_rx"]) ** 2 + ((cv.ys[:, None] - a["body_cy"]) / a["body_ry"]) ** 2
    offset = -np.float32(a["cupping_hu"]) * np.clip(1.0 - r2, 0.0, 1.0)
    if a["streaks"]:
        for ang, amp in zip(*streaks):
            nx, ny = -math.sin(ang), math.cos(ang)
            d = (cv.xs[None, :] * nx + (cv.ys[:, None] - vy) * ny) / cv.spacing
            offset += np.float32(amp) * np.exp(-0.5 * d * d)
    return (offset * body).astype(np.float32)


def acquire(ideal_hu: np.ndarray, patient: Patient, rng: np.random.Generator, spacing: float,
            offsets: np.ndarray) -> np.ndarray:
    """Point-spread blur with correlated quantum noise, artefact ``offsets`` (HU), scanner-range clipping.

    Noise is added before the blur, so the scanner's point-spread function also sets the noise grain, as
    the reconstruction kernel does in CT. White noise of SD ``k`` blurred by a Gaussian with 1-D weights
    ``w`` has SD ``k * sum(w**2)``, which gives the exact ``k`` for the patient's target noise SD.
    """
    sigma = patient.anatomy["psf_mm"] / spacing
    radius = int(3.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    k = patient.noise_sd / float((w ** 2).sum())
    image = rng.standard_normal(ideal_hu.shape, dtype=np.float32)
    image *= np.float32(k)
    image += ideal_hu
    image = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    image += offsets
    return np.clip(image, HU_MIN, HU_MAX, out=image)

