"""Painting the organs of one slice onto the canvas, structure by structure, in the order that overlaps need.

The trunk (body wall, spine, great vessels) is the same on every slice of a patient and is painted once;
kidneys, spleen, stomach and bowel, then the liver (its shape, surrounding ascites, parenchyma and
vessels) follow on each slice. A :class:`Scene` carries what the steps share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from liverlib.phantom.acquisition import artefacts
from liverlib.phantom.anatomy import LEVEL_SPAN_MM, Patient, liver_lobes
from liverlib.phantom.canvas import Canvas, grow
from liverlib.phantom.textures import PatientFields, mix
from liverlib.phantom.tissues import BY_NAME


@dataclass
class Scene:
    """One slice being painted: its canvas, patient, level, the patient's shared fields and the trunk."""

    cv: Canvas
    patient: Patient
    fields: PatientFields
    t: float  # normalised slice level
    phase: float  # how far the slice's textures have turned from the first to the second field of each pair
    trunk: dict  # see paint_trunk
    occupied: np.ndarray  # organs the liver must keep clear of

    @property
    def anatomy(self) -> dict:
        return self.patient.anatomy

    @property
    def hu(self) -> dict[str, float]:
        return self.patient.hu

    def organ(self, mask: np.ndarray | None) -> None:
        """Mark an organ's pixels as occupied."""
        if mask is not None:
            np.logical_or(self.occupied, mask, out=self.occupied)

    def mixed(self, pair: tuple[np.ndarray, np.ndarray], box: tuple[slice, slice]) -> np.ndarray:
        """The slice's blend of a texture pair, on ``box``."""
        return mix(pair[0][box], pair[1][box], self.phase)


def start_scene(cv: Canvas, patient: Patient, fields: PatientFields, t: float) -> Scene:
    """A scene at level ``t`` whose canvas already holds the trunk (painted on the patient's first slice)."""
    if fields.trunk is None:
        fields.trunk = paint_trunk(cv, patient.anatomy, patient.hu, (fields.streak_angles, fields.streak_hu))
    trunk = fields.trunk
    cv.hu[:] = trunk["hu"]
    cv.labels[:] = trunk["labels"]
    phase = (t * LEVEL_SPAN_MM / 40.0) % (math.pi / 2)  # texture drifts slowly from slice to slice
    return Scene(cv=cv, patient=patient, fields=fields, t=t, phase=phase, trunk=trunk,
                 occupied=trunk["occupied"].copy())


def paint_trunk(cv: Canvas, a: dict, hu: dict, fields_streaks) -> dict:
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

    return {"artefacts": artefacts(cv, a, fields_streaks, body, vy), "hu": cv.hu.copy(), "labels": cv.labels.copy(),
            "body": body, "cavity": cavity, "vy": vy, "vr": vr,
            "a_cav": a_cav, "b_cav": b_cav, "occupied": occupied}


def paint_kidneys(scene: Scene) -> None:
    """Both kidneys, cortex and medulla; they appear below their upper poles."""
    cv, a, hu, vy, vr = scene.cv, scene.anatomy, scene.hu, scene.trunk["vy"], scene.trunk["vr"]
    ks = a["kidney_scale"] * float(np.clip((scene.t - 0.3) / 0.35, 0.0, 1.0))
    if ks > 0.08:
        for side in (-1, 1):
            kx, ky = side * (2.6 * vr + 14), vy + 0.1 * vr
            scene.organ(cv.paint_ellipse(kx, ky, 26 * ks, 34 * ks, hu["kidney cortex"], BY_NAME["kidney cortex"].label,
                                         angle=side * 0.45))
            cv.paint_ellipse(kx + side * 3, ky, 15 * ks, 22 * ks, hu["kidney medulla"], BY_NAME["kidney medulla"].label,
                             angle=side * 0.45)


def paint_spleen(scene: Scene) -> np.ndarray | None:
    """The spleen, posterolateral on the image right, larger in portal hypertension; returns its mask."""
    cv, a, trunk = scene.cv, scene.anatomy, scene.trunk
    a_cav, b_cav = trunk["a_cav"], trunk["b_cav"]
    ss = a["spleen_scale"] * (1.05 - 0.45 * scene.t)
    spleen = cv.paint_ellipse(0.72 * a_cav, a["body_cy"] + 0.35 * b_cav, 0.22 * a_cav * ss, 0.42 * b_cav * ss,
                              scene.hu["spleen"], BY_NAME["spleen"].label, angle=-0.5, where=trunk["cavity"])
    scene.organ(spleen)
    return spleen


def paint_gut(scene: Scene) -> None:
    """The stomach (gas anteriorly, fluid dependent) and bowel loops, on the image right and front."""
    cv, a, hu, trunk = scene.cv, scene.anatomy, scene.hu, scene.trunk
    cavity, a_cav, b_cav = trunk["cavity"], trunk["a_cav"], trunk["b_cav"]
    st = a["stomach_scale"] * (1.2 - 0.8 * scene.t)
    if st > 0.15:
        sx, sy, srx, sry = 0.35 * a_cav, a["body_cy"] - 0.25 * b_cav, 0.2 * a_cav * st, 0.3 * b_cav * st
        scene.organ(cv.paint_ellipse(sx, sy, srx, sry, hu["bowel wall"], BY_NAME["bowel wall"].label, angle=0.4,
                                     where=cavity))
        lumen = cv.paint_ellipse(sx, sy, srx - 4, sry - 4, hu["luminal fluid"], BY_NAME["luminal fluid"].label,
                                 angle=0.4, where=cavity)
        if lumen is not None:
            gas_line = sy - sry + 2 * sry * a["stomach_gas"]
            gas = lumen & (cv.ys[:, None] < gas_line)
            cv.hu[gas] = hu["gas"]
            cv.labels[gas] = BY_NAME["gas"].label
    for bx, by, br, has_gas in scene.fields.bowel:
        cx, cy = bx * a_cav, a["body_cy"] + by * b_cav
        loop = cv.paint_ellipse(cx, cy, br, br * 0.85, hu["bowel wall"], BY_NAME["bowel wall"].label,
                                where=cavity & ~scene.occupied)
        if loop is not None:
            scene.organ(loop)
            name = "gas" if has_gas else "luminal fluid"
            cv.paint_ellipse(cx, cy, br - 2.5, br * 0.85 - 2.5, hu[name], BY_NAME[name].label, where=loop)


@dataclass
class LiverShape:
    """Where the liver is on the slice: on its bounding ``box``, and on the whole image."""

    box: tuple[slice, slice]
    in_box: np.ndarray  # bool, on box
    mask: np.ndarray  # bool, full size


def liver_shape(scene: Scene) -> LiverShape:
    """The liver: a smooth union of lobes, perturbed for shape variety and, in cirrhosis, nodularity.

    All liver work happens inside the lobes' bounding box (padded for the perturbations). The liver keeps
    clear of the organs painted before it and stays inside the abdominal cavity.
    """
    cv, a = scene.cv, scene.anatomy
    lobes = [lobe for lobe in liver_lobes(a, scene.t).values() if lobe[2] >= 1 and lobe[3] >= 1]
    pad = 12.0
    x0 = min(cx - max(rx, ry) for cx, cy, rx, ry, _ in lobes) - pad
    x1 = max(cx + max(rx, ry) for cx, cy, rx, ry, _ in lobes) + pad
    y0 = min(cy - max(rx, ry) for cx, cy, rx, ry, _ in lobes) - pad
    y1 = max(cy + max(rx, ry) for cx, cy, rx, ry, _ in lobes) + pad
    lbox = cv.bbox((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2)

    liver_f = np.full(cv.hu[lbox].shape, -1.0, dtype=np.float32)
    for cx, cy, rx, ry, ang in lobes:
        f, _ = cv.ellipse_field(cx, cy, rx, ry, ang, box=lbox)
        np.maximum(liver_f, f, out=liver_f)
    liver_f += 0.06 * scene.mixed(scene.fields.shape, lbox)
    if a["nodularity"] > 0:
        liver_f += a["nodularity"] * scene.mixed(scene.fields.nodular, lbox)
    keep_out = grow(scene.occupied[lbox], 2.0 / cv.spacing)
    liver_box = (liver_f > 0) & scene.trunk["cavity"][lbox] & ~keep_out
    if a["nodularity"] > 0:  # remove specks that the nodular surface may cut off
        liver_box = ndimage.binary_opening(liver_box, iterations=1)
    liver = np.zeros((cv.n, cv.n), dtype=bool)
    liver[lbox] = liver_box
    return LiverShape(box=lbox, in_box=liver_box, mask=liver)


def paint_ascites(scene: Scene, liver: LiverShape, spleen: np.ndarray | None) -> None:
    """A rim of fluid around liver and spleen, inside the cavity, where the patient has ascites."""
    cv, a, hu = scene.cv, scene.anatomy, scene.hu
    if a["ascites"] > 0:
        around = liver.mask | (spleen if spleen is not None else False)
        grown = grow(around, a["ascites"] / cv.spacing)
        fluid = grown & scene.trunk["cavity"] & ~around & ~scene.occupied & (cv.labels == BY_NAME["fat"].label)
        cv.hu[fluid] = hu["ascites"]
        cv.labels[fluid] = BY_NAME["ascites"].label


def paint_parenchyma(scene: Scene, liver: LiverShape) -> None:
    """Liver parenchyma: homogeneous when normal; regenerative nodules and fibrotic septa in cirrhosis."""
    cv, hu, fields, lbox = scene.cv, scene.hu, scene.fields, liver.box
    sev = scene.patient.cirrhosis_severity
    fine = scene.mixed(fields.fine, lbox)
    parenchyma = hu["liver"] + (1.5 + 8.0 * sev) * scene.mixed(fields.hetero, lbox) + 1.5 * fine
    if sev > 0:
        parenchyma += 5.0 * sev * np.abs(fine)
    cv.paint(liver.in_box, lbox, parenchyma, BY_NAME["liver"].label)
    if sev > 0:
        septa = liver.in_box & (np.abs(scene.mixed(fields.septa, lbox)) < 0.12 + 0.18 * sev)
        fib_hu = float(np.clip(hu["liver"] - 12.0 - 18.0 * sev, *BY_NAME["fibrosis"].hu_range))
        cv.paint(septa, lbox, fib_hu, BY_NAME["fibrosis"].label)


def paint_hepatic_vessels(scene: Scene, liver: LiverShape) -> None:
    """Portal and hepatic veins: branches from the hilum, and vessels cut across seen as round dots."""
    cv, t, hu, tree = scene.cv, scene.t, scene.hu, scene.fields.vessels
    label = BY_NAME["hepatic vessel"].label
    named = liver_lobes(scene.anatomy, t)
    hilum = (named["caudate"][0] + 5.0, named["caudate"][1] - 12.0)
    reach = named["right"][2] * 1.6
    for ang, start, length, radius, drift in tree["branches"]:
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
        cv.paint((dist < taper) & liver.mask[box], box, hu["hepatic vessel"], label)
    rcx, rcy, rrx, rry, rang = named["right"]
    for u, v, radius, drift in tree["sections"]:
        uu, vv = u + drift * (t - 0.45), v - drift * (t - 0.45)
        x = rcx + uu * rrx * math.cos(rang) - vv * rry * math.sin(rang)
        y = rcy + uu * rrx * math.sin(rang) + vv * rry * math.cos(rang)
        cv.paint_ellipse(x, y, radius, radius * 0.9, hu["hepatic vessel"], label, where=liver.mask)
