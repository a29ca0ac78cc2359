"""Sensitivity by lesion size: does the model find small lesions, or only large ones?

A reader misses small lesions first; a classifier of whole slices may too. On the phantom the manifest
knows the largest lesion's diameter in every slice (``max_lesion_diameter_mm``: the diameter of its
cross-section in that slice), so the lesion slices of the benign and malignant test patients can be binned
by it. Per bin, :func:`sensitivity_by_lesion_size` reports the share predicted as the true class (the
class's sensitivity, restricted to that size) and the share predicted abnormal (any class but normal: the
lesion, or at least something, was seen). Slices of those patients that miss every lesion are left out.

Light: pandas and NumPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_EDGES_MM = (0.0, 10.0, 20.0, 30.0, 45.0, 60.0, np.inf)
LESION_CLASSES = ("benign", "malignant")


def bin_labels(edges) -> list[str]:
    """``['<10 mm', '10-20 mm', ..., '60+ mm']`` for edges ``(0, 10, 20, ..., inf)``."""
    labels = []
    for low, high in zip(edges[:-1], edges[1:]):
        if low <= 0:
            labels.append(f"<{high:g} mm")
        elif not np.isfinite(high):
            labels.append(f"{low:g}+ mm")
        else:
            labels.append(f"{low:g}-{high:g} mm")
    return labels


def _key(path) -> str:
    """``class/name.png``: the last two parts of a path, which a run's split (absolute paths) and the phantom
    manifest (paths relative to the phantom folder) share."""
    return "/".join(Path(str(path)).parts[-2:])


def lesion_slices(predictions, manifest, classes=LESION_CLASSES):
    """The predictions (``file``, ``class``, ``predicted``, ...) of the lesion slices of ``classes``, with the
    manifest's ``max_lesion_diameter_mm`` and ``patient_id`` joined on the file."""
    columns = ["max_lesion_diameter_mm"] + [c for c in ("patient_id", "n_lesions") if c in manifest]
    sizes = manifest.assign(_key=manifest["file"].map(_key)).drop_duplicates("_key").set_index("_key")[columns]
    rows = predictions[predictions["class"].isin(classes)].assign(_key=lambda d: d["file"].map(_key))
    rows = rows.join(sizes, on="_key", how="inner").drop(columns="_key")
    return rows[rows["max_lesion_diameter_mm"] > 0].reset_index(drop=True)


def sensitivity_by_lesion_size(predictions, manifest, edges=DEFAULT_EDGES_MM, classes=LESION_CLASSES,
                               normal: str = "normal"):
    """Per class (``classes``, then ``all`` of them) and lesion-diameter bin: ``slices``, ``patients``, the
    share ``predicted true class`` and the share ``predicted abnormal`` (anything but ``normal``); NaN shares
    in empty bins. ``predictions`` is an evaluation's (:func:`liverlib.evaluate.evaluate_run`), ``manifest``
    the phantom's (:func:`liverlib.phantom.read_manifest`)."""
    import pandas as pd  # local: heavy dependency

    rows = lesion_slices(predictions, manifest, classes)
    labels = bin_labels(edges)
    rows["diameter"] = pd.cut(rows["max_lesion_diameter_mm"], list(edges), labels=labels, right=False)
    rows["correct"] = rows["predicted"] == rows["class"]
    rows["abnormal"] = rows["predicted"] != normal
    patient = "patient_id" if "patient_id" in rows else "group" if "group" in rows else None
    out = []
    for name in (*classes, "all"):
        part = rows if name == "all" else rows[rows["class"] == name]
        for label in labels:
            inside = part[part["diameter"] == label]
            out.append({"class": name, "diameter": label, "slices": int(len(inside)),
                        "patients": int(inside[patient].nunique()) if patient else None,
                        "predicted true class": float(inside["correct"].mean()) if len(inside) else np.nan,
                        "predicted abnormal": float(inside["abnormal"].mean()) if len(inside) else np.nan})
    return pd.DataFrame(out).set_index(["class", "diameter"])
