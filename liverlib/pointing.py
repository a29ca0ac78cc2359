"""The pointing game on the phantom: does Grad-CAM point at the lesion a radiologist would look at?

The phantom's generator knows every lesion's mask, so for a run trained on it each lesion slice of the
run's split can be scored: how much of the Grad-CAM heatmap for the true class falls inside the lesion
(:func:`liverlib.explain.pointing_game`), against the lesion's share of the slice as the chance level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from liverlib.classify import get_classifier
from liverlib.errors import LiverlibError
from liverlib.explain import GradCam, pointing_game
from liverlib.imaging.decode import read_file
from liverlib.phantom import LESION_LABEL_MIN, read_manifest
from liverlib.preprocess import normalise
from liverlib.runs import SPLIT_FILE


def phantom_pointing_game(run_dir, split: str = "test", classes=("benign", "malignant"),
                          limit: int | None = None) -> pd.DataFrame:
    """Grad-CAM for the true class of every lesion slice of a run's split, scored against the phantom's
    lesion mask: one row per slice with ``mass_inside``, ``hit`` and the chance level ``area``.

    Only for runs trained on the synthetic phantom (the masks come from its generator).
    """
    classifier = get_classifier(run_dir)
    root = Path(classifier.card.get("data", ""))
    if not (root / "manifest.csv").is_file() or not classifier.card.get("synthetic_data"):
        raise LiverlibError("the pointing game needs lesion masks: it works on runs trained on the synthetic "
                            f"phantom, and {classifier.run_dir} was not (or its phantom folder {root} is gone)")
    manifest = read_manifest(root / "manifest.csv")
    masks = {str(root / f): root / m for f, m in zip(manifest["file"], manifest["mask_file"])}
    saved = pd.read_csv(classifier.run_dir / SPLIT_FILE, dtype=str)
    rows = saved[(saved["split"] == split) & saved["class"].isin(classes)]
    if limit:
        rows = rows.groupby("class").head(limit)
    cam = GradCam(classifier.model)
    out = []
    for row in rows.itertuples(index=False):
        model_input, source, _ = classifier.preprocess(read_file(row.file), Path(row.file).name)
        true_index = classifier.class_names.index(row[1])
        x = normalise(np.repeat(model_input[..., None], 3, axis=-1), classifier.normalisation)
        probs, heat = cam(x, true_index)
        (top, bottom), (left, right) = source["crop"]["rows"], source["crop"]["columns"]
        lesion = (np.asarray(Image.open(masks[row.file])) >= LESION_LABEL_MIN)[top:bottom, left:right]  # as the model saw it
        if not lesion.any():
            continue
        out.append({"file": Path(row.file).name, "class": row[1],
                    "predicted": classifier.class_names[int(probs[0].argmax())],
                    **pointing_game(heat[0], lesion)})
    return pd.DataFrame(out)
