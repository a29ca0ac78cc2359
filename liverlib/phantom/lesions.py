"""Painting focal liver lesions into a slice: each kind's look in the portal-venous phase.

The lesions themselves (kind, ellipsoid, HU of their parts) are drawn with the patient, in
:mod:`liverlib.phantom.anatomy`; here each one that the slice cuts is painted at its cross-section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from liverlib.phantom.tissues import BY_NAME

if TYPE_CHECKING:
    from liverlib.phantom.anatomy import Lesion, Patient
    from liverlib.phantom.canvas import Canvas
    from liverlib.phantom.textures import PatientFields


@dataclass
class _Section:
    """A lesion's cross-section on the slice, on the pixels of ``box``."""

    box: tuple[slice, slice]
    rho: np.ndarray  # normalised radius, 1 on the (perturbed) margin
    theta: np.ndarray  # direction from the centre, in the lesion's own frame
    inside: np.ndarray  # inside the margin and inside the liver
    mean_r: float  # geometric mean of the section's semi-axes, mm


def paint_lesions(cv: Canvas, patient: Patient, z: float, liver: np.ndarray, fields: PatientFields) -> list[dict]:
    """Paint every lesion that the slice at level ``z`` (mm) cuts inside ``liver``; describe those visible."""
    visible = []
    for lesion in patient.lesions:
        section = _section(cv, lesion, z, liver)
        if section is None:
            continue
        _PAINTERS[lesion.kind](cv, lesion, section, fields)
        info = lesion.describe()
        info["section_diameter_mm"] = round(2 * section.mean_r, 1)
        visible.append(info)
    return visible


def _margin(lesion: Lesion, theta: np.ndarray) -> np.ndarray:
    """Radius multiplier along direction theta: 1 for a smooth margin, lobulated/irregular otherwise."""
    if lesion.irregularity <= 0:
        return np.ones_like(theta)
    p = lesion.phase
    wobble = (0.6 * np.cos(3 * theta + p[0]) + 0.45 * np.cos(5 * theta + p[1]) + 0.35 * np.cos(8 * theta + p[2]))
    return 1.0 + lesion.irregularity * wobble


def _section(cv: Canvas, lesion: Lesion, z: float, liver: np.ndarray) -> _Section | None:
    """The lesion's cross-section at level ``z``, or None if the slice misses it or it lies outside the liver."""
    axes = lesion.in_plane(z)
    if axes is None:
        return None
    rx, ry = axes
    pad = max(rx, ry) * (1 + lesion.irregularity) + 3
    box = cv.bbox(lesion.x, lesion.y, pad, pad)
    if box is None:
        return None
    dx = cv.xs[box[1]][None, :] - lesion.x
    dy = cv.ys[box[0]][:, None] - lesion.y
    c, s = math.cos(lesion.angle), math.sin(lesion.angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)  # 1 on the nominal margin
    theta = np.arctan2(v / ry, u / rx)
    rho = rho / _margin(lesion, theta)
    inside = (rho < 1.0) & liver[box]
    if not inside.any():
        return None
    return _Section(box=box, rho=rho, theta=theta, inside=inside, mean_r=math.sqrt(rx * ry))


def _cyst(cv: Canvas, lesion: Lesion, sec: _Section, fields: PatientFields) -> None:
    cv.paint(sec.inside, sec.box, lesion.hu["core"], BY_NAME["cyst"].label)


def _haemangioma(cv: Canvas, lesion: Lesion, sec: _Section, fields: PatientFields) -> None:
    box, inside, mean_r = sec.box, sec.inside, sec.mean_r
    cv.paint(inside, box, lesion.hu["core"], BY_NAME["haemangioma"].label)
    # discontinuous peripheral nodules along the margin, isodense to the blood pool
    n_nod = 5 + int(lesion.phase[3] % 4)
    for k in range(n_nod):
        ang = lesion.phase[4] + 2 * math.pi * k / n_nod
        nr = max(1.2, 0.22 * mean_r)
        nx = lesion.x + (mean_r - nr) * math.cos(ang)
        ny = lesion.y + (mean_r - nr) * math.sin(ang)
        nod = ((cv.xs[box[1]][None, :] - nx) ** 2 + (cv.ys[box[0]][:, None] - ny) ** 2 < nr * nr) & inside
        cv.paint(nod, box, lesion.hu["nodule"], BY_NAME["haemangioma nodule"].label)


def _fnh(cv: Canvas, lesion: Lesion, sec: _Section, fields: PatientFields) -> None:
    cv.paint(sec.inside, sec.box, lesion.hu["core"], BY_NAME["focal nodular hyperplasia"].label)
    # central stellate scar: a small core with radiating arms
    arms = np.abs(np.cos(3 * sec.theta + lesion.phase[5])) ** 8
    scar = sec.inside & ((sec.rho < 0.18) | ((sec.rho < 0.55) & (arms > 0.7)))
    if sec.mean_r > 6:
        cv.paint(scar, sec.box, lesion.hu["scar"], BY_NAME["central scar"].label)


def _hcc(cv: Canvas, lesion: Lesion, sec: _Section, fields: PatientFields) -> None:
    box, inside, rho = sec.box, sec.inside, sec.rho
    texture = fields.hetero[0][box]
    mosaic = lesion.hu["core"] + lesion.hu["mosaic"] * 0.8 * (texture - texture[inside].mean())  # mean stays core
    cap_width = 1.5 / max(sec.mean_r, 1.0)
    cv.paint(inside, box, mosaic.astype(np.float32), BY_NAME["hepatocellular carcinoma"].label)
    capsule = inside & (rho > 1.0 - cap_width)
    if sec.mean_r > 5:
        cv.paint(capsule, box, lesion.hu["capsule"], BY_NAME["tumour capsule"].label)
    if lesion.necrotic:
        necro = inside & (rho < 0.45 * (1 + 0.2 * np.cos(2 * sec.theta + lesion.phase[6])))
        cv.paint(necro, box, lesion.hu["necrosis"], BY_NAME["necrosis"].label)


def _metastasis(cv: Canvas, lesion: Lesion, sec: _Section, fields: PatientFields) -> None:
    rim_width = lesion.hu["rim_mm"] / max(sec.mean_r, 1.0)
    cv.paint(sec.inside, sec.box, lesion.hu["rim"], BY_NAME["metastasis rim"].label)
    cv.paint(sec.inside & (sec.rho < 1.0 - rim_width), sec.box, lesion.hu["core"], BY_NAME["metastasis"].label)


_PAINTERS = {"cyst": _cyst, "haemangioma": _haemangioma, "fnh": _fnh, "hcc": _hcc, "metastasis": _metastasis}
