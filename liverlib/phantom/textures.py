"""Random texture fields: smooth correlated noise, and the fields every slice of one patient shares."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from liverlib.phantom.anatomy import Patient


@functools.lru_cache(maxsize=32)
def _upsample_matrix(n_out: int, n_in: int, factor: int) -> np.ndarray:
    """Linear-interpolation weights taking ``n_in`` coarse samples to ``n_out`` fine ones (one axis)."""
    pos = (np.arange(n_out) + 0.5) / factor + 1.5  # coarse grid has a margin of 2 samples
    i0 = np.floor(pos).astype(int)
    w = (pos - i0).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - w
    m[np.arange(n_out), i0 + 1] = w
    return m


def smooth_noise(rng: np.random.Generator, size: int, sigma_px: float) -> np.ndarray:
    """Gaussian-correlated noise field of unit standard deviation and correlation length ``sigma_px``.

    The field is filtered on a grid coarse enough that the filter stays short, then interpolated to
    full size with two small matrix products: a smooth field loses nothing, and this is much cheaper.
    """
    factor = max(1, int(sigma_px / 1.5))
    coarse = size // factor + 5
    field_ = ndimage.gaussian_filter(rng.standard_normal((coarse, coarse)).astype(np.float32),
                                     sigma_px / factor, mode="wrap", truncate=3.0)
    if factor > 1:
        m = _upsample_matrix(size, coarse, factor)
        field_ = m @ field_ @ m.T
    else:
        field_ = field_[2:size + 2, 2:size + 2]
    return (field_ - field_.mean()) / (field_.std() + 1e-6)


def mix(a: np.ndarray, b: np.ndarray, phase: float) -> np.ndarray:
    """A unit-variance field that turns smoothly from ``a`` into ``b`` as ``phase`` goes from 0 to pi/2."""
    return np.float32(math.cos(phase)) * a + np.float32(math.sin(phase)) * b


class PatientFields:
    """Random texture fields shared by all slices of a patient (so neighbouring slices look alike).

    Each texture is a pair of fields that slices blend by level (see ``mix``); the cirrhosis textures are
    drawn only for livers that need them.
    """

    def __init__(self, patient: Patient, size: int):
        rng = np.random.default_rng(list(patient.seed_entropy) + [1])
        spacing = patient.spacing_mm * 512 / size

        def pair(mm: float) -> tuple[np.ndarray, np.ndarray]:
            sigma = max(mm / spacing, 0.6)
            return smooth_noise(rng, size, sigma), smooth_noise(rng, size, sigma)

        self.shape = pair(25.0)
        self.hetero = pair(12.0)
        self.fine = pair(1.5)
        diseased = patient.cirrhosis_severity > 0
        self.nodular = pair(3.0) if diseased else None
        self.septa = pair(2.2) if diseased else None
        self.vessels = _vessel_tree(rng)
        self.bowel = [(rng.uniform(-0.5, 0.6), rng.uniform(-0.9, -0.3), rng.uniform(7, 16), rng.random() < 0.5)
                      for _ in range(patient.anatomy["n_bowel"])]
        self.streak_angles = rng.uniform(0, math.pi, 4)
        self.streak_hu = rng.uniform(-35, 35, 4)
        self.trunk: dict | None = None  # painted by the first slice rendered


def _vessel_tree(rng) -> dict[str, list[tuple[float, ...]]]:
    """Portal and hepatic vein branches, in normalised liver units, drawn once per patient.

    ``branches``: in-plane segments from the hilum (angle, start, length, radius mm, angular drift with z);
    ``sections``: vessels cut across, seen as round dots (u, v in the right lobe's unit disc, radius mm,
    drift with z).
    """
    branches = [(rng.uniform(0.7 * math.pi, 1.4 * math.pi), rng.uniform(0.0, 0.1), rng.uniform(0.12, 0.4),
                 rng.uniform(2.5, 5.5), rng.uniform(-1.5, 1.5)) for _ in range(int(rng.integers(2, 5)))]
    sections = []
    for _ in range(int(rng.integers(6, 15))):
        r, th = math.sqrt(rng.random()) * 0.85, rng.uniform(0, 2 * math.pi)
        sections.append((r * math.cos(th), r * math.sin(th), rng.uniform(1.2, 4.0), rng.uniform(-0.6, 0.6)))
    return {"branches": branches, "sections": sections}

