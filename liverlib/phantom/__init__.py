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

Modules: :mod:`~liverlib.phantom.tissues` (labels and HU of every tissue), :mod:`~liverlib.phantom.anatomy`
(patients and their lesions), :mod:`~liverlib.phantom.render` (slices; painted with
:mod:`~liverlib.phantom.canvas`, :mod:`~liverlib.phantom.textures`, :mod:`~liverlib.phantom.organs` and
:mod:`~liverlib.phantom.lesions`), :mod:`~liverlib.phantom.acquisition` (the scanner) and
:mod:`~liverlib.phantom.dataset` (folders of slices with a manifest) and :mod:`~liverlib.phantom.studies` (whole
series from above the liver dome to below its tip, as DICOM series or NIfTI volumes).

The names below are loaded on first use, so importing one light module (``liverlib.phantom.tissues``)
does not import the renderer's dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "anatomy": ("LEVEL_SPAN_MM", "LIVER_CLASSES", "Lesion", "Patient", "make_patient"),
    "dataset": ("FORMATS", "MANIFEST_COLUMNS", "MANIFEST_NAME", "PatientTask", "class_counts",
                "default_slices_per_patient", "plan_patients", "random_affine", "read_manifest",
                "write_phantom_dataset"),
    "render": ("PhantomSlice", "iter_patient_slices", "make_slice", "render_slice"),
    "studies": ("PhantomStudy", "STUDY_FORMATS", "make_study", "plan_study", "read_study_manifest",
                "write_phantom_studies"),
    "textures": ("smooth_noise",),
    "tissues": ("BY_LABEL", "BY_NAME", "HU_MAX", "HU_MIN", "LESION_LABEL_MIN", "TISSUES", "Tissue", "label"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from liverlib.phantom.anatomy import LEVEL_SPAN_MM, LIVER_CLASSES, Lesion, Patient, make_patient
    from liverlib.phantom.dataset import (
        FORMATS,
        MANIFEST_COLUMNS,
        MANIFEST_NAME,
        PatientTask,
        class_counts,
        default_slices_per_patient,
        plan_patients,
        random_affine,
        read_manifest,
        write_phantom_dataset,
    )
    from liverlib.phantom.render import PhantomSlice, iter_patient_slices, make_slice, render_slice
    from liverlib.phantom.studies import (
        STUDY_FORMATS,
        PhantomStudy,
        make_study,
        plan_study,
        read_study_manifest,
        write_phantom_studies,
    )
    from liverlib.phantom.textures import smooth_noise
    from liverlib.phantom.tissues import BY_LABEL, BY_NAME, HU_MAX, HU_MIN, LESION_LABEL_MIN, TISSUES, Tissue, label
