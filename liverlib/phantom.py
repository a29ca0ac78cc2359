"""A synthetic abdominal CT phantom: axial slices through the upper abdomen in Hounsfield units.

SYNTHETIC DATA. Nothing here comes from a patient. The phantom exists so the course runs without the
paper's Kaggle data; results on it say nothing about clinical performance.

Every synthetic patient has its own anatomy (body size, fat, organ sizes and positions, slice level) and
one of four liver conditions, drawn from what radiologists see in the portal-venous phase:

* ``normal``: homogeneous parenchyma, smooth contour.
* ``cirrhosis``: nodular surface, right-lobe atrophy with caudate hypertrophy, heterogeneous parenchyma
  with regenerative nodules and fibrotic septa, often ascites and splenomegaly.
* ``benign``: simple cysts, haemangiomas (peripheral nodular enhancement), focal nodular hyperplasia
  (near-isodense with a central scar).
* ``malignant``: hepatocellular carcinoma (washout, capsule, irregular margin, necrotic core, often on a
  mildly cirrhotic liver) and metastases (multiple, hypodense, rim enhancement).

A slice is built in three steps: an ideal HU map painted tissue by tissue (with a label map of the same
tissues), the acquisition (point-spread blur, correlated quantum noise, optional streak and
beam-hardening artefacts, clipping to the scanner range), and, when written to PNG, a display window.
Lesions are ellipsoids in 3-D, so neighbouring slices of one patient show the same lesions at different
cross-sections, as real contiguous slices do.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from liverlib.config import CLASS_NAMES
from liverlib.tissues import BY_NAME, HU_MAX, HU_MIN, LESION_LABEL_MIN

LIVER_CLASSES = CLASS_NAMES
LEVEL_SPAN_MM = 150.0
_IN_LIVER = np.zeros(256, dtype=bool)  # labels that are part of the liver: parenchyma, septa, vessels, lesions
_IN_LIVER[[BY_NAME["liver"].label, BY_NAME["fibrosis"].label, BY_NAME["hepatic vessel"].label]] = True
_IN_LIVER[LESION_LABEL_MIN:] = True  # cranio-caudal extent that the normalised slice level t in [0, 1] maps to


@dataclass
class Lesion:
    """One focal lesion: an ellipsoid in patient coordinates (mm), with its kind and appearance."""

    kind: str  # cyst | haemangioma | fnh | hcc | metastasis
    x: float
    y: float
    z: float
    radius: float  # in-plane semi-axis before aspect, mm
    aspect: float  # ry / rx
    rz: float  # cranio-caudal semi-axis, mm
    angle: float  # in-plane rotation, radians
    hu: dict[str, float] = field(default_factory=dict)  # HU of each of its parts
    irregularity: float = 0.0  # margin perturbation, fraction of radius
    necrotic: bool = False
    phase: tuple[float, ...] = ()  # per-lesion random phases for margin and nodules

    def in_plane(self, z: float) -> tuple[float, float] | None:
        """Semi-axes (rx, ry) of the cross-section at level z, or None if the slice misses it."""
        q = 1.0 - ((z - self.z) / self.rz) ** 2
        if q <= 0.0:
            return None
        s = math.sqrt(q)
        return self.radius * s, self.radius * self.aspect * s

    def describe(self) -> dict:
        return {"kind": self.kind, "x_mm": round(self.x, 1), "y_mm": round(self.y, 1), "z_mm": round(self.z, 1),
                "diameter_mm": round(2 * self.radius, 1), "mean_hu": round(self.hu.get("core", 0.0), 1)}


@dataclass
class Patient:
    """Everything drawn once per synthetic patient."""

    patient_id: str
    liver_class: str
    spacing_mm: float  # in-plane pixel spacing at 512x512
    slice_spacing_mm: float
    levels: np.ndarray  # normalised slice levels t of the slices, cranial to caudal
    anatomy: dict
    hu: dict[str, float]  # per-patient mean HU of each tissue
    lesions: list[Lesion]
    cirrhosis_severity: float  # 0: none
    noise_sd: float
    seed_entropy: tuple[int, ...]


@dataclass
class PhantomSlice:
    """One synthetic axial slice: the acquired HU image, its ideal HU map and its label map."""

    hu: np.ndarray  # float32, acquired (blur + noise + artefacts), clipped to the scanner range
    ideal_hu: np.ndarray  # float32, before acquisition
    labels: np.ndarray  # uint8 tissue labels (liverlib.tissues)
    meta: dict


# ----------------------------------------------------------------------------------------------------
# small drawing helpers: everything works on an (N, N) grid of millimetre coordinates


class _Canvas:
    """An ideal HU map and a label map being painted, with mm coordinates of every pixel."""

    def __init__(self, size: int, spacing_mm: float):
        self.n = size
        self.spacing = spacing_mm
        coords = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) * np.float32(spacing_mm)
        self.xs = coords  # image columns, left to right (patient right to left)
        self.ys = coords  # image rows, top to bottom (anterior to posterior)
        self.hu = np.full((size, size), -1000.0, dtype=np.float32)
        self.labels = np.zeros((size, size), dtype=np.uint8)

    def bbox(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice] | None:
        """Row and column slices covering a box of half-sizes (rx, ry) mm around (cx, cy), or None if off-image."""
        half = (self.n - 1) / 2.0
        c0 = max(int(math.floor((cx - rx) / self.spacing + half)) - 1, 0)
        c1 = min(int(math.ceil((cx + rx) / self.spacing + half)) + 2, self.n)
        r0 = max(int(math.floor((cy - ry) / self.spacing + half)) - 1, 0)
        r1 = min(int(math.ceil((cy + ry) / self.spacing + half)) + 2, self.n)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def ellipse_field(self, cx, cy, rx, ry, angle=0.0, box=None) -> tuple[np.ndarray, tuple]:
        """1 - squared normalised radius of an ellipse (positive inside), on the box (default: its bbox)."""
        if box is None:
            r = max(rx, ry)
            box = self.bbox(cx, cy, r, r)
            if box is None:
                return np.zeros((0, 0), np.float32), (slice(0, 0), slice(0, 0))
        dx = self.xs[box[1]][None, :] - np.float32(cx)
        dy = self.ys[box[0]][:, None] - np.float32(cy)
        if angle:
            c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        rho = (dx / np.float32(rx)) ** 2 + (dy / np.float32(ry)) ** 2
        return 1.0 - rho, box

    def paint(self, mask: np.ndarray, box: tuple, hu: float | np.ndarray, label: int) -> None:
        """Set HU and label where ``mask`` is true inside ``box``."""
        if mask.size == 0:
            return
        hu_view, lab_view = self.hu[box], self.labels[box]
        if np.ndim(hu) == 0:
            hu_view[mask] = hu
        else:
            hu_view[mask] = hu[mask]
        lab_view[mask] = label

    def paint_ellipse(self, cx, cy, rx, ry, hu, label, angle=0.0, where=None) -> np.ndarray | None:
        """Paint a filled ellipse; ``where`` (a full-size bool mask) restricts it. Returns the full-size mask."""
        f, box = self.ellipse_field(cx, cy, rx, ry, angle)
        if f.size == 0:
            return None
        mask = f > 0
        if where is not None:
            mask &= where[box]
        self.paint(mask, box, hu, label)
        full = np.zeros((self.n, self.n), dtype=bool)
        full[box] = mask
        return full

    def segment_distance(self, x0, y0, x1, y1, pad) -> tuple[np.ndarray, tuple] | None:
        """Distance (mm) from each pixel of the segment's padded bbox to the segment."""
        box = self.bbox((x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2 + pad, abs(y1 - y0) / 2 + pad)
        if box is None:
            return None
        px = self.xs[box[1]][None, :]
        py = self.ys[box[0]][:, None]
        vx, vy = x1 - x0, y1 - y0
        length2 = vx * vx + vy * vy or 1e-6
        t = np.clip(((px - x0) * vx + (py - y0) * vy) / length2, 0.0, 1.0)
        return np.hypot(px - (x0 + t * vx), py - (y0 + t * vy)), box


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


def _mix(a: np.ndarray, b: np.ndarray, phase: float) -> np.ndarray:
    """A unit-variance field that turns smoothly from ``a`` into ``b`` as ``phase`` goes from 0 to pi/2."""
    return np.float32(math.cos(phase)) * a + np.float32(math.sin(phase)) * b


# ----------------------------------------------------------------------------------------------------
# patients


def _draw_hu(rng: np.random.Generator) -> dict[str, float]:
    return {t.name: float(rng.uniform(*t.hu_range)) for t in BY_NAME.values()}


def _severity(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def make_patient(liver_class: str, n_slices: int, seed: int | tuple[int, ...], patient_id: str = "P00000",
                 spacing_mm: float | None = None) -> Patient:
    """Draw one synthetic patient: anatomy, per-tissue HU, condition, lesions and slice levels."""
    if liver_class not in LIVER_CLASSES:
        raise ValueError(f"unknown liver class {liver_class!r}; expected one of {', '.join(LIVER_CLASSES)}")
    if n_slices < 1:
        raise ValueError(f"a patient needs at least one slice, got {n_slices}")
    entropy = tuple(seed) if isinstance(seed, tuple) else (int(seed),)
    rng = np.random.default_rng(list(entropy))
    spacing = float(spacing_mm if spacing_mm is not None else rng.uniform(0.6, 0.9))
    fov = 512 * spacing
    hu = _draw_hu(rng)

    # body habitus: the patient fills most of the field of view, as a technologist would set it
    body_rx = fov / 2 * rng.uniform(0.80, 0.93)
    body_ry = body_rx * rng.uniform(0.66, 0.80)
    fat = rng.uniform(8.0, 35.0)
    anatomy = {
        "body_rx": body_rx, "body_ry": body_ry, "body_cy": rng.uniform(-8, 12), "back_flat": rng.uniform(0.8, 0.95),
        "fat_mm": fat, "muscle_mm": rng.uniform(7.0, 14.0), "visceral_fat": rng.uniform(0.0, 1.0),
        "liver_scale": rng.uniform(0.9, 1.1), "liver_shift": (rng.uniform(-8, 8), rng.uniform(-8, 8)),
        "right_lobe_scale": 1.0, "caudate_scale": rng.uniform(0.85, 1.15), "left_lobe_scale": rng.uniform(0.7, 1.2),
        "left_lobe_angle": rng.uniform(-0.35, 0.1), "spleen_scale": rng.uniform(0.85, 1.1),
        "kidney_scale": rng.uniform(0.9, 1.1), "stomach_scale": rng.uniform(0.6, 1.2), "stomach_gas": rng.uniform(0.15, 0.6),
        "n_bowel": int(rng.integers(2, 6)), "aorta_r": rng.uniform(9.0, 13.0), "vertebra_r": rng.uniform(16.0, 21.0),
        "streaks": bool(rng.random() < 0.3), "cupping_hu": rng.uniform(0.0, 15.0), "psf_mm": rng.uniform(0.6, 1.0),
        "ascites": 0.0, "nodularity": 0.0,
    }
    severity = 0.0
    if liver_class == "cirrhosis":
        severity = _severity(rng, 0.15, 1.0)  # mild cases are hard, as in practice
    elif liver_class == "malignant" and rng.random() < 0.4:
        severity = _severity(rng, 0.1, 0.4)  # HCC and metastases arise on diseased livers too
    if severity > 0:
        anatomy["right_lobe_scale"] = 1.0 - 0.28 * severity * rng.uniform(0.6, 1.0)
        anatomy["caudate_scale"] *= 1.0 + 0.9 * severity * rng.uniform(0.6, 1.0)
        anatomy["left_lobe_scale"] *= 1.0 + 0.25 * severity
        anatomy["nodularity"] = 0.03 + 0.11 * severity
        anatomy["spleen_scale"] *= 1.0 + 0.55 * severity * rng.uniform(0.5, 1.0)
        if liver_class == "cirrhosis" and rng.random() < 0.25 + 0.55 * severity:
            anatomy["ascites"] = rng.uniform(4.0, 6.0 + 20.0 * severity)  # thickness of the fluid rim, mm

    noise_sd = float(rng.uniform(8.0, 25.0))
    t0 = rng.uniform(0.28, 0.6)

    lesions: list[Lesion] = []
    if liver_class == "benign":
        lesions = _benign_lesions(rng, hu, anatomy)
    elif liver_class == "malignant":
        lesions = _malignant_lesions(rng, hu, anatomy)

    # slice spacing: contiguous slices that all cut the main lesion (the largest), as a reader would pick
    if lesions:
        main = max(lesions, key=lambda les: les.radius)
        reach = math.sqrt(max(main.rz ** 2 - (0.55 * main.rz) ** 2, 1.0))  # stay where the section is >= 55%
        slice_spacing = float(np.clip(2 * reach / max(n_slices - 1, 1), 0.6, 5.0))
        z_mid = main.z
    else:
        slice_spacing = float(rng.choice([2.5, 3.0, 5.0]))
        z_mid = t0 * LEVEL_SPAN_MM
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2.0) * slice_spacing
    levels = (z_mid + offsets) / LEVEL_SPAN_MM
    return Patient(patient_id=patient_id, liver_class=liver_class, spacing_mm=spacing, slice_spacing_mm=slice_spacing,
                   levels=levels, anatomy=anatomy, hu=hu, lesions=lesions, cirrhosis_severity=severity,
                   noise_sd=noise_sd, seed_entropy=entropy)


def _liver_lobes(anatomy: dict, t: float) -> dict[str, tuple[float, float, float, float, float]]:
    """Ellipses (cx, cy, rx, ry, angle) of the right lobe, left lobe and caudate lobe at level t, in mm."""
    a_cav = anatomy["body_rx"] - anatomy["fat_mm"] - anatomy["muscle_mm"]
    b_cav = anatomy["body_ry"] - anatomy["fat_mm"] - anatomy["muscle_mm"]
    cy = anatomy["body_cy"]
    sx, sy = anatomy["liver_shift"]
    s = anatomy["liver_scale"] * (1.12 - 0.45 * t)  # the liver narrows towards its tip
    rl = anatomy["right_lobe_scale"]
    right = (-0.52 * a_cav + sx + 0.5 * (1 - rl) * 0.5 * a_cav, cy + 0.02 * b_cav + sy,
             0.46 * a_cav * s * rl, 0.78 * b_cav * s * rl, 0.12)
    ll = anatomy["left_lobe_scale"] * max(0.0, 1.0 - 1.5 * max(t - 0.35, 0.0))  # left lobe fades caudally
    left = (0.02 * a_cav + sx, cy - 0.42 * b_cav + sy, 0.34 * a_cav * ll * s, 0.24 * b_cav * ll * s,
            anatomy["left_lobe_angle"])
    cs = anatomy["caudate_scale"]
    caudate = (-0.12 * a_cav + sx, cy + 0.12 * b_cav + sy, 0.11 * a_cav * cs, 0.13 * b_cav * cs, 0.3)
    return {"right": right, "left": left, "caudate": caudate}


def _place_in_right_lobe(rng, anatomy: dict, radius: float, z: float) -> tuple[float, float]:
    """A lesion centre well inside the right lobe at level z (so neighbouring slices cut it too)."""
    cx, cy, rx, ry, ang = _liver_lobes(anatomy, z / LEVEL_SPAN_MM)["right"]
    room_x = max(rx - radius * 1.1, 2.0)
    room_y = max(ry - radius * 1.1, 2.0)
    r, theta = math.sqrt(rng.random()) * 0.75, rng.uniform(0, 2 * math.pi)
    dx, dy = r * room_x * math.cos(theta), r * room_y * math.sin(theta)
    c, s = math.cos(ang), math.sin(ang)
    return cx + c * dx - s * dy, cy + s * dx + c * dy


def _lesion_radius(rng, low: float, high: float, small_prob: float = 0.15) -> float:
    """Lesion radius (mm): log-uniform between low and high, with some small hard-to-see lesions."""
    if rng.random() < small_prob:
        return float(rng.uniform(3.5, 6.0))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _new_lesion(rng, kind, anatomy, radius, z, hu, **kw) -> Lesion:
    x, y = _place_in_right_lobe(rng, anatomy, radius, z)
    return Lesion(kind=kind, x=x, y=y, z=z, radius=radius, aspect=float(rng.uniform(0.8, 1.2)),
                  rz=radius * float(rng.uniform(0.85, 1.2)), angle=float(rng.uniform(0, math.pi)), hu=hu,
                  phase=tuple(float(v) for v in rng.uniform(0, 2 * math.pi, 8)), **kw)


def _benign_lesions(rng, hu: dict, anatomy: dict) -> list[Lesion]:
    kind = rng.choice(["cyst", "haemangioma", "fnh"], p=[0.5, 0.3, 0.2])
    z = rng.uniform(0.3, 0.55) * LEVEL_SPAN_MM
    liver = hu["liver"]
    lesions = []
    count = int(rng.integers(1, 4)) if kind == "cyst" else int(rng.integers(1, 3))
    for i in range(count):
        radius = _lesion_radius(rng, 6.0, 30.0 if kind != "cyst" else 35.0)
        zi = z if i == 0 else z + rng.uniform(-radius, radius)
        if kind == "cyst":
            parts = {"core": rng.uniform(*BY_NAME["cyst"].hu_range)}
        elif kind == "haemangioma":
            parts = {"core": rng.uniform(*BY_NAME["haemangioma"].hu_range),
                     "nodule": rng.uniform(*BY_NAME["haemangioma nodule"].hu_range)}
        else:  # FNH: near-isodense; sometimes a few HU above liver, sometimes nearly invisible
            parts = {"core": float(np.clip(liver + rng.uniform(0.0, 14.0), *BY_NAME["focal nodular hyperplasia"].hu_range)),
                     "scar": rng.uniform(*BY_NAME["central scar"].hu_range)}
        lesions.append(_new_lesion(rng, str(kind), anatomy, radius, zi, parts,
                                   irregularity=0.0 if kind == "cyst" else 0.06))
    return lesions


def _malignant_lesions(rng, hu: dict, anatomy: dict) -> list[Lesion]:
    kind = "hcc" if rng.random() < 0.55 else "metastasis"
    z = rng.uniform(0.3, 0.55) * LEVEL_SPAN_MM
    liver = hu["liver"]
    lesions = []
    if kind == "hcc":
        radius = _lesion_radius(rng, 9.0, 45.0, small_prob=0.1)
        washout = rng.uniform(8.0, 40.0)  # small washout: near-isodense, hard
        parts = {"core": float(np.clip(liver - washout, *BY_NAME["hepatocellular carcinoma"].hu_range)),
                 "capsule": rng.uniform(*BY_NAME["tumour capsule"].hu_range),
                 "necrosis": rng.uniform(*BY_NAME["necrosis"].hu_range), "mosaic": rng.uniform(6.0, 18.0)}
        lesions.append(_new_lesion(rng, "hcc", anatomy, radius, z, parts, irregularity=rng.uniform(0.08, 0.2),
                                   necrotic=bool(radius > 18 and rng.random() < 0.7)))
        for _ in range(int(rng.integers(0, 3))):  # satellite nodules
            r = float(rng.uniform(3.5, 8.0))
            lesions.append(_new_lesion(rng, "hcc", anatomy, r, z + rng.uniform(-radius, radius), dict(parts),
                                       irregularity=0.1))
    else:
        count = int(rng.integers(2, 9))
        for i in range(count):
            radius = _lesion_radius(rng, 5.0, 25.0, small_prob=0.25)
            zi = z if i == 0 else z + rng.uniform(-25.0, 25.0)
            parts = {"core": rng.uniform(*BY_NAME["metastasis"].hu_range),
                     "rim": rng.uniform(*BY_NAME["metastasis rim"].hu_range), "rim_mm": rng.uniform(1.5, 4.0)}
            lesions.append(_new_lesion(rng, "metastasis", anatomy, radius, zi, parts, irregularity=0.05))
    return lesions


# ----------------------------------------------------------------------------------------------------
# slices


class _PatientFields:
    """Random texture fields shared by all slices of a patient (so neighbouring slices look alike).

    Each texture is a pair of fields that slices blend by level (see ``_mix``); the cirrhosis textures are
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


def _artefacts(cv: _Canvas, a: dict, streaks: tuple[np.ndarray, np.ndarray], body: np.ndarray, vy: float) -> np.ndarray:
    """HU offsets of beam hardening (the body's centre reads a few HU low) and faint streaks through the spine."""
    r2 = (cv.xs[None, :] / a["body_rx"]) ** 2 + ((cv.ys[:, None] - a["body_cy"]) / a["body_ry"]) ** 2
    offset = -np.float32(a["cupping_hu"]) * np.clip(1.0 - r2, 0.0, 1.0)
    if a["streaks"]:
        for ang, amp in zip(*streaks):
            nx, ny = -math.sin(ang), math.cos(ang)
            d = (cv.xs[None, :] * nx + (cv.ys[:, None] - vy) * ny) / cv.spacing
            offset += np.float32(amp) * np.exp(-0.5 * d * d)
    return (offset * body).astype(np.float32)


def _paint_trunk(cv: _Canvas, a: dict, hu: dict, fields_streaks) -> dict:
    """Paint body wall, spine and great vessels, which stay the same from slice to slice; return them."""
    size = cv.n
    # body: subcutaneous fat, muscle wall, abdominal cavity with visceral fat; the back lies flat on the table
    full = (slice(0, size), slice(0, size))
    back_y = a["body_cy"] + a["back_flat"] * a["body_ry"]
    back = cv.ys[:, None] < back_y
    body_f, _ = cv.ellipse_field(0.0, a["body_cy"], a["body_rx"], a["body_ry"], box=full)
    body = (body_f > 0) & back
    cv.paint(body, full, hu["fat"], BY_NAME["fat"].label)
    inset = a["fat_mm"]
    wall_f, _ = cv.ellipse_field(0.0, a["body_cy"], a["body_rx"] - inset, a["body_ry"] - inset, box=full)
    cv.paint((wall_f > 0) & (cv.ys[:, None] < back_y - 0.6 * a["fat_mm"]), full, hu["muscle"], BY_NAME["muscle"].label)
    inset += a["muscle_mm"]
    a_cav, b_cav = a["body_rx"] - inset, a["body_ry"] - inset
    cav_f, _ = cv.ellipse_field(0.0, a["body_cy"], a_cav, b_cav, box=full)
    cavity = cav_f > 0
    cv.paint(cavity, full, hu["fat"] + 10.0 * a["visceral_fat"], BY_NAME["fat"].label)

    # spine and paraspinal muscles at the back
    vr = a["vertebra_r"]
    vy = min(a["body_cy"] + b_cav - 0.6 * vr, back_y - 0.6 * a["fat_mm"] - 0.9 * vr - 22.0)
    for side in (-1, 1):
        cv.paint_ellipse(side * 1.9 * vr, vy + 1.5 * vr, 1.3 * vr, 1.4 * vr, hu["muscle"], BY_NAME["muscle"].label,
                         angle=side * 0.25, where=body)
    cv.paint_ellipse(0.0, vy, vr, 0.9 * vr, hu["cortical bone"], BY_NAME["cortical bone"].label)
    cv.paint_ellipse(0.0, vy, vr - 2.5, 0.9 * vr - 2.5, hu["trabecular bone"], BY_NAME["trabecular bone"].label)
    cv.paint_ellipse(0.0, vy + 0.9 * vr + 7.0, 9.0, 8.0, hu["cortical bone"], BY_NAME["cortical bone"].label)
    cv.paint_ellipse(0.0, vy + 0.9 * vr + 7.0, 6.5, 5.5, hu["spinal canal"], BY_NAME["spinal canal"].label)

    # great vessels: the organs the liver must keep clear of
    occupied = np.zeros((size, size), dtype=bool)
    ar = a["aorta_r"]
    for mask in (cv.paint_ellipse(0.9 * vr, vy - 0.9 * vr - ar - 2, ar, ar, hu["aorta"], BY_NAME["aorta"].label),
                 cv.paint_ellipse(-1.3 * vr, vy - 0.9 * vr - 12.0, 13.0, 9.0, hu["inferior vena cava"],
                                  BY_NAME["inferior vena cava"].label, angle=0.3)):
        if mask is not None:
            occupied |= mask

    return {"artefacts": _artefacts(cv, a, fields_streaks, body, vy), "hu": cv.hu.copy(), "labels": cv.labels.copy(),
            "body": body, "cavity": cavity, "vy": vy, "vr": vr,
            "a_cav": a_cav, "b_cav": b_cav, "occupied": occupied}


def render_slice(patient: Patient, index: int, size: int = 512, fields: _PatientFields | None = None) -> PhantomSlice:
    """Render slice ``index`` of ``patient`` at ``size`` x ``size`` pixels (the field of view does not change)."""
    if not 0 <= index < len(patient.levels):
        raise IndexError(f"patient {patient.patient_id} has {len(patient.levels)} slices, asked for {index}")
    fields = fields or _PatientFields(patient, size)
    rng = np.random.default_rng(list(patient.seed_entropy) + [2, index])
    t = float(patient.levels[index])
    z = t * LEVEL_SPAN_MM
    a, hu = patient.anatomy, patient.hu
    spacing = patient.spacing_mm * 512 / size
    cv = _Canvas(size, spacing)
    phase = (t * LEVEL_SPAN_MM / 40.0) % (math.pi / 2)  # texture drifts slowly from slice to slice

    # the trunk (body wall, spine, great vessels) does not change between neighbouring slices: paint it once
    if fields.trunk is None:
        fields.trunk = _paint_trunk(cv, a, hu, (fields.streak_angles, fields.streak_hu))
    trunk = fields.trunk
    cv.hu[:] = trunk["hu"]
    cv.labels[:] = trunk["labels"]
    cavity, vy, vr = trunk["cavity"], trunk["vy"], trunk["vr"]
    a_cav, b_cav = trunk["a_cav"], trunk["b_cav"]
    occupied = trunk["occupied"].copy()

    def organ(mask):
        if mask is not None:
            np.logical_or(occupied, mask, out=occupied)

    # kidneys appear below the upper poles; both sides
    ks = a["kidney_scale"] * float(np.clip((t - 0.3) / 0.35, 0.0, 1.0))
    if ks > 0.08:
        for side in (-1, 1):
            kx, ky = side * (2.6 * vr + 14), vy + 0.1 * vr
            organ(cv.paint_ellipse(kx, ky, 26 * ks, 34 * ks, hu["kidney cortex"], BY_NAME["kidney cortex"].label,
                                   angle=side * 0.45))
            cv.paint_ellipse(kx + side * 3, ky, 15 * ks, 22 * ks, hu["kidney medulla"], BY_NAME["kidney medulla"].label,
                             angle=side * 0.45)

    # spleen: posterolateral on the image right, larger in portal hypertension
    ss = a["spleen_scale"] * (1.05 - 0.45 * t)
    spleen = cv.paint_ellipse(0.72 * a_cav, a["body_cy"] + 0.35 * b_cav, 0.22 * a_cav * ss, 0.42 * b_cav * ss,
                              hu["spleen"], BY_NAME["spleen"].label, angle=-0.5, where=cavity)
    organ(spleen)

    # stomach (gas anteriorly, fluid dependent) and bowel loops, on the image right and front
    st = a["stomach_scale"] * (1.2 - 0.8 * t)
    if st > 0.15:
        sx, sy, srx, sry = 0.35 * a_cav, a["body_cy"] - 0.25 * b_cav, 0.2 * a_cav * st, 0.3 * b_cav * st
        organ(cv.paint_ellipse(sx, sy, srx, sry, hu["bowel wall"], BY_NAME["bowel wall"].label, angle=0.4, where=cavity))
        lumen = cv.paint_ellipse(sx, sy, srx - 4, sry - 4, hu["luminal fluid"], BY_NAME["luminal fluid"].label,
                                 angle=0.4, where=cavity)
        if lumen is not None:
            gas_line = sy - sry + 2 * sry * a["stomach_gas"]
            gas = lumen & (cv.ys[:, None] < gas_line)
            cv.hu[gas] = hu["gas"]
            cv.labels[gas] = BY_NAME["gas"].label
    for bx, by, br, has_gas in fields.bowel:
        cx, cy = bx * a_cav, a["body_cy"] + by * b_cav
        loop = cv.paint_ellipse(cx, cy, br, br * 0.85, hu["bowel wall"], BY_NAME["bowel wall"].label,
                                where=cavity & ~occupied)
        if loop is not None:
            organ(loop)
            name = "gas" if has_gas else "luminal fluid"
            cv.paint_ellipse(cx, cy, br - 2.5, br * 0.85 - 2.5, hu[name], BY_NAME[name].label, where=loop)

    # the liver: a smooth union of lobes, perturbed for shape variety and, in cirrhosis, nodularity.
    # All liver work happens inside the lobes' bounding box (padded for the perturbations).
    lobes = [lobe for lobe in _liver_lobes(a, t).values() if lobe[2] >= 1 and lobe[3] >= 1]
    pad = 12.0
    x0 = min(cx - max(rx, ry) for cx, cy, rx, ry, _ in lobes) - pad
    x1 = max(cx + max(rx, ry) for cx, cy, rx, ry, _ in lobes) + pad
    y0 = min(cy - max(rx, ry) for cx, cy, rx, ry, _ in lobes) - pad
    y1 = max(cy + max(rx, ry) for cx, cy, rx, ry, _ in lobes) + pad
    lbox = cv.bbox((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2)

    def mixed(pair):
        return _mix(pair[0][lbox], pair[1][lbox], phase)

    liver_f = np.full(cv.hu[lbox].shape, -1.0, dtype=np.float32)
    for cx, cy, rx, ry, ang in lobes:
        f, _ = cv.ellipse_field(cx, cy, rx, ry, ang, box=lbox)
        np.maximum(liver_f, f, out=liver_f)
    liver_f += 0.06 * mixed(fields.shape)
    if a["nodularity"] > 0:
        liver_f += a["nodularity"] * mixed(fields.nodular)
    keep_out = _grow(occupied[lbox], 2.0 / spacing)
    liver_box = (liver_f > 0) & cavity[lbox] & ~keep_out
    if a["nodularity"] > 0:  # remove specks that the nodular surface may cut off
        liver_box = ndimage.binary_opening(liver_box, iterations=1)
    liver = np.zeros((size, size), dtype=bool)
    liver[lbox] = liver_box

    if a["ascites"] > 0:  # a rim of fluid around liver and spleen, inside the cavity
        around = liver | (spleen if spleen is not None else False)
        grown = _grow(around, a["ascites"] / spacing)
        fluid = grown & cavity & ~around & ~occupied & (cv.labels == BY_NAME["fat"].label)
        cv.hu[fluid] = hu["ascites"]
        cv.labels[fluid] = BY_NAME["ascites"].label

    # parenchyma: homogeneous when normal; regenerative nodules and fibrotic septa in cirrhosis
    sev = patient.cirrhosis_severity
    fine = mixed(fields.fine)
    parenchyma = hu["liver"] + (1.5 + 8.0 * sev) * mixed(fields.hetero) + 1.5 * fine
    if sev > 0:
        parenchyma += 5.0 * sev * np.abs(fine)
    cv.paint(liver_box, lbox, parenchyma, BY_NAME["liver"].label)
    if sev > 0:
        septa = liver_box & (np.abs(mixed(fields.septa)) < 0.12 + 0.18 * sev)
        fib_hu = float(np.clip(hu["liver"] - 12.0 - 18.0 * sev, *BY_NAME["fibrosis"].hu_range))
        cv.paint(septa, lbox, fib_hu, BY_NAME["fibrosis"].label)

    # portal and hepatic veins: branches from the hilum, and vessels cut across seen as round dots
    vessel = BY_NAME["hepatic vessel"]
    named = _liver_lobes(a, t)
    hilum = (named["caudate"][0] + 5.0, named["caudate"][1] - 12.0)
    reach = named["right"][2] * 1.6
    for ang, start, length, radius, drift in fields.vessels["branches"]:
        ang2 = ang + drift * (t - 0.45)
        x0 = hilum[0] + math.cos(ang2) * start * reach
        y0 = hilum[1] + math.sin(ang2) * start * reach
        x1 = hilum[0] + math.cos(ang2) * (start + length) * reach
        y1 = hilum[1] + math.sin(ang2) * (start + length) * reach
        res = cv.segment_distance(x0, y0, x1, y1, radius + 1)
        if res is None:
            continue
        dist, box = res
        taper = radius * (1.0 - 0.5 * np.clip(np.hypot(cv.xs[box[1]][None, :] - x0, cv.ys[box[0]][:, None] - y0)
                                              / (length * reach + 1e-6), 0.0, 1.0))
        cv.paint((dist < taper) & liver[box], box, hu["hepatic vessel"], vessel.label)
    rcx, rcy, rrx, rry, rang = named["right"]
    for u, v, radius, drift in fields.vessels["sections"]:
        uu, vv = u + drift * (t - 0.45), v - drift * (t - 0.45)
        x = rcx + uu * rrx * math.cos(rang) - vv * rry * math.sin(rang)
        y = rcy + uu * rrx * math.sin(rang) + vv * rry * math.cos(rang)
        cv.paint_ellipse(x, y, radius, radius * 0.9, hu["hepatic vessel"], vessel.label, where=liver)

    lesion_info = _paint_lesions(cv, patient, z, liver, fields)

    ideal = cv.hu.copy()
    acquired = _acquire(cv, patient, a, rng, spacing, trunk["artefacts"])
    lesion_px = int(np.count_nonzero(cv.labels >= LESION_LABEL_MIN))
    meta = {
        "patient_id": patient.patient_id, "class": patient.liver_class, "slice_index": index,
        "z_mm": round(z, 2), "pixel_spacing_mm": round(spacing, 4), "slice_spacing_mm": round(patient.slice_spacing_mm, 3),
        "noise_sd_hu": round(patient.noise_sd, 2), "cirrhosis_severity": round(sev, 3),
        "ascites": bool(a["ascites"] > 0 and np.any(cv.labels == BY_NAME["ascites"].label)),
        "n_lesions": len(lesion_info), "lesion_area_mm2": round(lesion_px * spacing * spacing, 1),
        "lesions": lesion_info,
        "liver_area_mm2": round(float(np.count_nonzero(_IN_LIVER[cv.labels])) * spacing * spacing, 1),
    }
    return PhantomSlice(hu=acquired, ideal_hu=ideal, labels=cv.labels, meta=meta)


def _grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Grow a mask by about ``pixels`` in every direction (a square dilation done with a box filter)."""
    width = 2 * max(1, int(round(pixels))) + 1
    return ndimage.uniform_filter(mask.astype(np.float32), width) > 1e-3


def _margin(lesion: Lesion, theta: np.ndarray) -> np.ndarray:
    """Radius multiplier along direction theta: 1 for a smooth margin, lobulated/irregular otherwise."""
    if lesion.irregularity <= 0:
        return np.ones_like(theta)
    p = lesion.phase
    wobble = (0.6 * np.cos(3 * theta + p[0]) + 0.45 * np.cos(5 * theta + p[1]) + 0.35 * np.cos(8 * theta + p[2]))
    return 1.0 + lesion.irregularity * wobble


def _paint_lesions(cv: _Canvas, patient: Patient, z: float, liver: np.ndarray, fields: _PatientFields) -> list[dict]:
    visible = []
    for lesion in patient.lesions:
        axes = lesion.in_plane(z)
        if axes is None:
            continue
        rx, ry = axes
        pad = max(rx, ry) * (1 + lesion.irregularity) + 3
        box = cv.bbox(lesion.x, lesion.y, pad, pad)
        if box is None:
            continue
        dx = cv.xs[box[1]][None, :] - lesion.x
        dy = cv.ys[box[0]][:, None] - lesion.y
        c, s = math.cos(lesion.angle), math.sin(lesion.angle)
        u, v = c * dx + s * dy, -s * dx + c * dy
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)  # 1 on the nominal margin
        theta = np.arctan2(v / ry, u / rx)
        rho = rho / _margin(lesion, theta)
        in_liver = liver[box]
        inside = (rho < 1.0) & in_liver
        if not inside.any():
            continue
        mean_r = math.sqrt(rx * ry)
        hu_core = lesion.hu["core"]
        if lesion.kind == "cyst":
            cv.paint(inside, box, hu_core, BY_NAME["cyst"].label)
        elif lesion.kind == "haemangioma":
            cv.paint(inside, box, hu_core, BY_NAME["haemangioma"].label)
            # discontinuous peripheral nodules along the margin, isodense to the blood pool
            n_nod = 5 + int(lesion.phase[3] % 4)
            for k in range(n_nod):
                ang = lesion.phase[4] + 2 * math.pi * k / n_nod
                nr = max(1.2, 0.22 * mean_r)
                nx = lesion.x + (mean_r - nr) * math.cos(ang)
                ny = lesion.y + (mean_r - nr) * math.sin(ang)
                nod = ((cv.xs[box[1]][None, :] - nx) ** 2 + (cv.ys[box[0]][:, None] - ny) ** 2 < nr * nr) & inside
                cv.paint(nod, box, lesion.hu["nodule"], BY_NAME["haemangioma nodule"].label)
        elif lesion.kind == "fnh":
            cv.paint(inside, box, hu_core, BY_NAME["focal nodular hyperplasia"].label)
            # central stellate scar: a small core with radiating arms
            arms = np.abs(np.cos(3 * theta + lesion.phase[5])) ** 8
            scar = inside & ((rho < 0.18) | ((rho < 0.55) & (arms > 0.7)))
            if mean_r > 6:
                cv.paint(scar, box, lesion.hu["scar"], BY_NAME["central scar"].label)
        elif lesion.kind == "hcc":
            texture = fields.hetero[0][box]
            mosaic = hu_core + lesion.hu["mosaic"] * 0.8 * (texture - texture[inside].mean())  # mean stays hu_core
            cap_width = 1.5 / max(mean_r, 1.0)
            cv.paint(inside, box, mosaic.astype(np.float32), BY_NAME["hepatocellular carcinoma"].label)
            capsule = inside & (rho > 1.0 - cap_width)
            if mean_r > 5:
                cv.paint(capsule, box, lesion.hu["capsule"], BY_NAME["tumour capsule"].label)
            if lesion.necrotic:
                necro = inside & (rho < 0.45 * (1 + 0.2 * np.cos(2 * theta + lesion.phase[6])))
                cv.paint(necro, box, lesion.hu["necrosis"], BY_NAME["necrosis"].label)
        elif lesion.kind == "metastasis":
            rim_width = lesion.hu["rim_mm"] / max(mean_r, 1.0)
            cv.paint(inside, box, lesion.hu["rim"], BY_NAME["metastasis rim"].label)
            cv.paint(inside & (rho < 1.0 - rim_width), box, hu_core, BY_NAME["metastasis"].label)
        info = lesion.describe()
        info["section_diameter_mm"] = round(2 * mean_r, 1)
        visible.append(info)
    return visible


def _acquire(cv: _Canvas, patient: Patient, a: dict, rng, spacing: float, artefacts: np.ndarray) -> np.ndarray:
    """Point-spread blur with correlated quantum noise, artefacts, scanner-range clipping.

    Noise is added before the blur, so the scanner's point-spread function also sets the noise grain, as
    the reconstruction kernel does in CT. White noise of SD ``k`` blurred by a Gaussian with 1-D weights
    ``w`` has SD ``k * sum(w**2)``, which gives the exact ``k`` for the patient's target noise SD.
    """
    sigma = a["psf_mm"] / spacing
    radius = int(3.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    k = patient.noise_sd / float((w ** 2).sum())
    image = rng.standard_normal(cv.hu.shape, dtype=np.float32)
    image *= np.float32(k)
    image += cv.hu
    image = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    image += artefacts
    return np.clip(image, HU_MIN, HU_MAX, out=image)


def iter_patient_slices(patient: Patient, size: int = 512):
    """All slices of a patient, cranial to caudal, sharing the patient's texture fields."""
    fields = _PatientFields(patient, size)
    for i in range(len(patient.levels)):
        yield render_slice(patient, i, size=size, fields=fields)


def make_slice(liver_class: str, seed: int = 0, size: int = 512) -> PhantomSlice:
    """One slice of a fresh synthetic patient: the shortest way to look at the phantom."""
    return render_slice(make_patient(liver_class, 1, seed), 0, size=size)
