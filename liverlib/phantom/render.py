"""Rendering slices of a synthetic patient: paint the ideal HU and label maps, then acquire them.

:func:`render_slice` runs the steps in order: the trunk and the organs around the liver
(:mod:`liverlib.phantom.organs`), the liver with its vessels, its lesions (:mod:`liverlib.phantom.lesions`),
and the scanner (:mod:`liverlib.phantom.acquisition`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from liverlib.phantom import organs
from liverlib.phantom.acquisition import acquire
from liverlib.phantom.anatomy import LEVEL_SPAN_MM, Patient, make_patient
from liverlib.phantom.canvas import Canvas
from liverlib.phantom.lesions import paint_lesions
from liverlib.phantom.textures import PatientFields
from liverlib.phantom.tissues import BY_NAME, LESION_LABEL_MIN

_IN_LIVER = np.zeros(256, dtype=bool)  # labels that are part of the liver: parenchyma, septa, vessels, lesions
_IN_LIVER[[BY_NAME["liver"].label, BY_NAME["fibrosis"].label, BY_NAME["hepatic vessel"].label]] = True
_IN_LIVER[LESION_LABEL_MIN:] = True


@dataclass
class PhantomSlice:
    """One synthetic axial slice: the acquired HU image, its ideal HU map and its label map."""

    hu: np.ndarray  # float32, acquired (blur + noise + artefacts), clipped to the scanner range
    ideal_hu: np.ndarray  # float32, before acquisition
    labels: np.ndarray  # uint8 tissue labels (liverlib.phantom.tissues)
    meta: dict


def render_slice(patient: Patient, index: int, size: int = 512, fields: PatientFields | None = None) -> PhantomSlice:
    """Render slice ``index`` of ``patient`` at ``size`` x ``size`` pixels (the field of view does not change)."""
    if not 0 <= index < len(patient.levels):
        raise IndexError(f"patient {patient.patient_id} has {len(patient.levels)} slices, asked for {index}")
    fields = fields or PatientFields(patient, size)
    rng = np.random.default_rng(list(patient.seed_entropy) + [2, index])
    t = float(patient.levels[index])
    z = t * LEVEL_SPAN_MM
    spacing = patient.spacing_mm * 512 / size
    cv = Canvas(size, spacing)

    scene = organs.start_scene(cv, patient, fields, t)
    organs.paint_kidneys(scene)
    spleen = organs.paint_spleen(scene)
    organs.paint_gut(scene)
    liver = organs.liver_shape(scene)
    organs.paint_ascites(scene, liver, spleen)
    organs.paint_parenchyma(scene, liver)
    organs.paint_hepatic_vessels(scene, liver)
    lesion_info = paint_lesions(cv, patient, z, liver.mask, fields)

    ideal = cv.hu.copy()
    acquired = acquire(cv.hu, patient, rng, spacing, scene.trunk["artefacts"])
    meta = _slice_meta(patient, index, z, spacing, cv.labels, lesion_info)
    return PhantomSlice(hu=acquired, ideal_hu=ideal, labels=cv.labels, meta=meta)


def _slice_meta(patient: Patient, index: int, z: float, spacing: float, labels: np.ndarray,
                lesion_info: list[dict]) -> dict:
    """What a slice shows, for the manifest: patient, level, acquisition, disease, lesions, liver area."""
    lesion_px = int(np.count_nonzero(labels >= LESION_LABEL_MIN))
    return {
        "patient_id": patient.patient_id, "class": patient.liver_class, "slice_index": index,
        "z_mm": round(z, 2), "pixel_spacing_mm": round(spacing, 4), "slice_spacing_mm": round(patient.slice_spacing_mm, 3),
        "noise_sd_hu": round(patient.noise_sd, 2), "cirrhosis_severity": round(patient.cirrhosis_severity, 3),
        "ascites": bool(patient.anatomy["ascites"] > 0 and np.any(labels == BY_NAME["ascites"].label)),
        "n_lesions": len(lesion_info), "lesion_area_mm2": round(lesion_px * spacing * spacing, 1),
        "lesions": lesion_info,
        "liver_area_mm2": round(float(np.count_nonzero(_IN_LIVER[labels])) * spacing * spacing, 1),
    }


def iter_patient_slices(patient: Patient, size: int = 512) -> Iterator[PhantomSlice]:
    """All slices of a patient, cranial to caudal, sharing the patient's texture fields."""
    fields = PatientFields(patient, size)
    for i in range(len(patient.levels)):
        yield render_slice(patient, i, size=size, fields=fields)


def make_slice(liver_class: str, seed: int = 0, size: int = 512) -> PhantomSlice:
    """One slice of a fresh synthetic patient: the shortest way to look at the phantom."""
    return render_slice(make_patient(liver_class, 1, seed), 0, size=size)
