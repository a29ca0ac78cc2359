"""Synthetic patients: anatomy, per-tissue HU, liver condition, focal lesions and slice levels.

Everything here is drawn once per patient from one seeded stream, so a patient is fully set by its
seed; :mod:`liverlib.phantom.render` then paints any of its slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from liverlib.config import CLASS_NAMES
from liverlib.phantom.tissues import BY_NAME

LIVER_CLASSES = CLASS_NAMES
LEVEL_SPAN_MM = 150.0  # cranio-caudal extent that the normalised slice level t in [0, 1] maps to


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
    hu = _draw_hu(rng)
    anatomy = _draw_anatomy(rng, fov=512 * spacing)
    severity = _draw_liver_disease(rng, liver_class, anatomy)
    noise_sd = float(rng.uniform(8.0, 25.0))
    t0 = rng.uniform(0.28, 0.6)

    lesions: list[Lesion] = []
    if liver_class == "benign":
        lesions = _benign_lesions(rng, hu, anatomy)
    elif liver_class == "malignant":
        lesions = _malignant_lesions(rng, hu, anatomy)
    slice_spacing, levels = _slice_levels(rng, lesions, n_slices, t0)
    return Patient(patient_id=patient_id, liver_class=liver_class, spacing_mm=spacing, slice_spacing_mm=slice_spacing,
                   levels=levels, anatomy=anatomy, hu=hu, lesions=lesions, cirrhosis_severity=severity,
                   noise_sd=noise_sd, seed_entropy=entropy)


def _draw_anatomy(rng: np.random.Generator, fov: float) -> dict:
    """Body habitus, organ sizes and positions, and scanner settings of a healthy patient (mm, HU)."""
    # the patient fills most of the field of view, as a technologist would set it
    body_rx = fov / 2 * rng.uniform(0.80, 0.93)
    body_ry = body_rx * rng.uniform(0.66, 0.80)
    fat = rng.uniform(8.0, 35.0)
    return {
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


def _draw_liver_disease(rng: np.random.Generator, liver_class: str, anatomy: dict) -> float:
    """Cirrhosis severity (0: none); a diseased liver reshapes ``anatomy`` in place. Returns the severity."""
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
    return severity


def _slice_levels(rng: np.random.Generator, lesions: list[Lesion], n_slices: int,
                  t0: float) -> tuple[float, np.ndarray]:
    """Slice spacing (mm) and the normalised levels of ``n_slices`` contiguous slices, cranial to caudal.

    With lesions, the slices all cut the main lesion (the largest), as a reader would pick them;
    without, they are centred on level ``t0``.
    """
    if lesions:
        main = max(lesions, key=lambda les: les.radius)
        reach = math.sqrt(max(main.rz ** 2 - (0.55 * main.rz) ** 2, 1.0))  # stay where the section is >= 55%
        slice_spacing = float(np.clip(2 * reach / max(n_slices - 1, 1), 0.6, 5.0))
        z_mid = main.z
    else:
        slice_spacing = float(rng.choice([2.5, 3.0, 5.0]))
        z_mid = t0 * LEVEL_SPAN_MM
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2.0) * slice_spacing
    return slice_spacing, (z_mid + offsets) / LEVEL_SPAN_MM


def liver_lobes(anatomy: dict, t: float) -> dict[str, tuple[float, float, float, float, float]]:
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
    cx, cy, rx, ry, ang = liver_lobes(anatomy, z / LEVEL_SPAN_MM)["right"]
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

