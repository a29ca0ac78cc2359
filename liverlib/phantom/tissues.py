"""Tissue labels of the synthetic phantom and the Hounsfield-unit (HU) values it uses.

Each tissue has a label (the value in the phantom's label maps) and the HU range the phantom draws its
mean from, in the portal-venous phase (about 70 s after contrast). The ranges follow the usual textbook
and review values; ``literature`` says where each comes from, so the book can print the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tissue:
    name: str
    label: int
    hu_range: tuple[float, float]  # range the per-patient mean is drawn from (portal-venous phase)
    literature: str  # the range reported in the literature and its source
    lesion: bool = False


TISSUES: tuple[Tissue, ...] = (
    Tissue("air", 0, (-1000, -1000), "-1000 HU by definition of the HU scale"),
    Tissue("fat", 1, (-115, -85), "-120 to -80 HU (subcutaneous and visceral fat; Kalra et al., Radiology 2003)"),
    Tissue("muscle", 2, (40, 60), "35 to 60 HU (skeletal muscle; Goodpaster et al., J Appl Physiol 2000)"),
    Tissue("cortical bone", 3, (700, 1000), "700 to >1000 HU (cortical bone)"),
    Tissue("trabecular bone", 4, (150, 280), "100 to 300 HU (vertebral trabecular bone in adults)"),
    Tissue("spinal canal", 5, (5, 20), "0 to 20 HU (CSF and thecal sac)"),
    Tissue("aorta", 6, (150, 200), "150 to 200 HU (aorta, portal-venous phase)"),
    Tissue("inferior vena cava", 7, (120, 160), "110 to 160 HU (IVC, portal-venous phase)"),
    Tissue("kidney cortex", 8, (160, 200), "150 to 200 HU (renal cortex, portal-venous/nephrographic)"),
    Tissue("kidney medulla", 9, (120, 155), "110 to 160 HU (renal medulla, portal-venous phase)"),
    Tissue("spleen", 10, (110, 130), "100 to 130 HU (spleen, portal-venous phase)"),
    Tissue("bowel wall", 11, (60, 90), "60 to 100 HU (enhancing gastric and bowel wall)"),
    Tissue("luminal fluid", 12, (0, 20), "0 to 20 HU (water-density content of stomach and bowel)"),
    Tissue("gas", 13, (-1000, -950), "about -1000 HU (bowel gas)"),
    Tissue("ascites", 14, (0, 15), "0 to 20 HU (simple ascites)"),
    Tissue("liver", 15, (100, 120), "100 to 130 HU (liver parenchyma, portal-venous phase; unenhanced 55-65)"),
    Tissue("hepatic vessel", 16, (150, 190), "150 to 200 HU (portal and hepatic veins, portal-venous phase)"),
    Tissue("fibrosis", 17, (70, 100), "hypoattenuating fibrotic septa relative to liver in the portal-venous phase"),
    Tissue("cyst", 20, (0, 20), "0 to 20 HU, sharp margin, no enhancement (simple hepatic cyst)", True),
    Tissue("haemangioma", 21, (40, 70), "hypodense centre while filling in (haemangioma, portal-venous)", True),
    Tissue("haemangioma nodule", 22, (150, 190), "peripheral nodular enhancement isodense to blood pool", True),
    Tissue("focal nodular hyperplasia", 23, (105, 130), "near-isodense to liver in portal-venous phase (FNH)", True),
    Tissue("central scar", 24, (40, 70), "hypodense central scar of FNH in portal-venous phase", True),
    Tissue("hepatocellular carcinoma", 25, (65, 95), "washout: hypodense to liver in portal-venous phase (HCC)", True),
    Tissue("tumour capsule", 26, (125, 150), "enhancing capsule of HCC, hyperdense rim in portal-venous phase", True),
    Tissue("necrosis", 27, (15, 35), "non-enhancing necrotic core, 10 to 40 HU", True),
    Tissue("metastasis", 28, (40, 75), "hypodense metastasis, 40 to 80 HU (e.g. colorectal)", True),
    Tissue("metastasis rim", 29, (90, 130), "rim enhancement of metastasis", True),
)

BY_NAME: dict[str, Tissue] = {t.name: t for t in TISSUES}
BY_LABEL: dict[int, Tissue] = {t.label: t for t in TISSUES}
LESION_LABEL_MIN = 20
"""Every label at or above this value is part of a focal liver lesion."""

HU_MIN, HU_MAX = -1024.0, 3071.0
"""The scanner range: a 12-bit CT image stored with RescaleIntercept -1024."""


def label(name: str) -> int:
    """The label-map value of a tissue, by name."""
    return BY_NAME[name].label
