"""Which classes a dataset has: its class folders, mapped to the paper's four where they are synonyms.

The rules, applied to every class folder's name (case, spaces, hyphens and underscores do not matter)::

    a synonym of one of the paper's four classes   ->  that class      'HCC', 'Malignant_Tumor' -> malignant
                                                                       'Normal liver', 'healthy' -> normal
    any other name                                 ->  a class of its own, named by the folder in lower case
                                                       with underscores: 'Fatty Liver' -> fatty_liver (new)

A dataset's classes are the classes its images were found in, sorted (as Keras' directory loaders sort
folder names): the four-class phantom gives ``benign, cirrhosis, malignant, normal`` exactly as before, a
folder with ``tumour/`` and ``normal/`` gives the two classes ``normal, tumour``. A class's label is its
position in that list, the model has one output per class, and the run's model card records the list
(``class_names``) and which of them is the normal class (``normal_class``, None when there is none), so
everything that applies the model (evaluate, classify, the widget, whole studies) follows the card.

Light: imports only :mod:`liverlib.config`.
"""

from __future__ import annotations

import re

from liverlib.config import CLASS_NAMES

PAPER_CLASSES: tuple[str, ...] = CLASS_NAMES
NORMAL_CLASS = "normal"

# folder name (as folder_key writes it) -> one of the paper's four classes
CLASS_SYNONYMS: dict[str, str] = {
    "benign": "benign", "benign_tumor": "benign", "benign_tumour": "benign", "benign_lesion": "benign",
    "non_malignant": "benign", "nonmalignant": "benign",
    "malignant": "malignant", "malignant_tumor": "malignant", "malignant_tumour": "malignant", "cancer": "malignant",
    "liver_cancer": "malignant", "hcc": "malignant", "hepatocellular_carcinoma": "malignant",
    "cirrhosis": "cirrhosis", "cirrhotic": "cirrhosis", "liver_cirrhosis": "cirrhosis",
    "normal": "normal", "healthy": "normal", "normal_liver": "normal", "healthy_liver": "normal",
    "no_tumor": "normal", "no_tumour": "normal", "notumor": "normal", "notumour": "normal",
}


def folder_key(folder_name: str) -> str:
    """A folder name as the class rules read it: lower case, runs of spaces, hyphens and underscores as one
    underscore, none at either end (``' Normal  liver-'`` -> ``normal_liver``)."""
    key = re.sub(r"[\s_\-]+", "_", str(folder_name).strip().lower()).strip("_")
    return key or str(folder_name).strip().lower()


def class_of(folder_name: str) -> str | None:
    """The paper's class a folder name is a synonym of, or None."""
    return CLASS_SYNONYMS.get(folder_key(folder_name))


def class_for_folder(folder_name: str) -> tuple[str, bool]:
    """(class, new): the paper's class for a synonym (new False), else the folder's own class (new True)."""
    paper = class_of(folder_name)
    return (paper, False) if paper else (folder_key(folder_name), True)


def sorted_classes(classes) -> list[str]:
    """The distinct class names, sorted: the model's output order."""
    return sorted({str(c) for c in classes})


def class_names_of(manifest) -> list[str]:
    """The classes of a manifest (its ``class`` column), in output order."""
    return sorted_classes(manifest["class"])


def normal_class(class_names) -> str | None:
    """The class that means 'no disease' (every synonym of normal maps to it), or None when there is none."""
    return NORMAL_CLASS if NORMAL_CLASS in [str(c) for c in class_names] else None


def is_paper_set(class_names) -> bool:
    """True for exactly the paper's four classes."""
    return tuple(class_names) == PAPER_CLASSES
