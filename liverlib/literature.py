"""The paper's own numbers as data: its Table 2, its Table 3 (the literature it compares with), and the
CLAIM checklist items that apply to a study like it.

Table 3 mixes figures that measure different things (classification accuracy, segmentation Dice) on
different tasks and data; ``measures`` and ``comparable`` say which numbers can stand next to a
four-class slice-classification accuracy and why.
"""

from __future__ import annotations

import pandas as pd

from liverlib.config import PAPER_CLASS_SUPPORT

PAPER_REPORTED = {"train_accuracy": 0.991, "val_accuracy": 0.964, "test_accuracy": 0.993}

PAPER_TABLE2 = [  # class, precision, recall, f1-score, support (as printed)
    ("cirrhosis", 1.00, 1.00, 1.00, 30),
    ("benign", 0.96, 0.99, 0.97, 446),
    ("malignant", 0.98, 0.87, 0.92, 146),
    ("normal", 0.98, 0.99, 0.98, 90),
]

_NOT_COMPARABLE_SEG = "segmentation overlap (Dice) of liver or tumour masks, not a classification of slices"
PAPER_TABLE3 = [
    dict(study="Alahmer et al. (2016)", method="SVM + feature extraction", metric="accuracy", value=0.98,
         modality="CT", task="liver tumour classification (hand-crafted features)",
         measures="classification accuracy on the authors' own data and classes", comparable="partly"),
    dict(study="Christ et al. (2017)", method="cascaded FCN + 3D CRF", metric="Dice", value=0.94,
         modality="CT / MRI", task="liver segmentation", measures=_NOT_COMPARABLE_SEG, comparable="no"),
    dict(study="Wang et al. (2018)", method="modified ResNet + transfer learning", metric="accuracy", value=0.912,
         modality="CT", task="focal liver lesion classification (lesion patches)",
         measures="classification accuracy, different classes and data", comparable="partly"),
    dict(study="Shukla et al. (2022)", method="cascaded FCN + shape modelling", metric="accuracy", value=0.9421,
         modality="MRI", task="liver / lesion segmentation", measures="pixel accuracy of a segmentation, another "
         "modality", comparable="no"),
    dict(study="Stephe et al. (2024)", method="TAGN; ViT-GRU", metric="accuracy", value=0.9757, modality="CT",
         task="liver tumour classification", measures="classification accuracy (84.65% TAGN, 97.57% ViT-GRU), "
         "different data", comparable="partly"),
    dict(study="Appati et al. (2024)", method="multi-attention ResUNet + U-Net", metric="Dice", value=0.92,
         modality="CT", task="liver (0.92) and tumour (0.83) segmentation", measures=_NOT_COMPARABLE_SEG,
         comparable="no"),
    dict(study="Proposed ResNet-50 (the paper)", method="modified ResNet-50", metric="accuracy", value=0.993,
         modality="CT", task="4-class slice classification (benign, malignant, cirrhosis, normal)",
         measures="test accuracy as reported; Table 2 implies 96.6% (see the recomputation)", comparable="yes"),
]

# CLAIM (Mongan et al., 2020; numbered as in its 42-item list) items that apply to a retrospective image-classification study like this
# one, grouped as the checklist does; "paper" and "course" say whether each reports or does it.
CLAIM_ITEMS = [
    ("Data", "7", "Data sources", "partly: a Kaggle set, no acquisition details",
     "yes: synthetic phantom generator, documented; real-data layout"),
    ("Data", "9", "Data pre-processing steps", "partly: resize, /255; no CT window stated",
     "yes: HU, window, resize recorded in every model card"),
    ("Data", "13", "How missing data were handled", "no", "yes: unreadable files listed and skipped"),
    ("Ground truth", "14", "Definition of ground truth reference standard", "no",
     "yes: the phantom's generator labels (synthetic; no reader)"),
    ("Data partitions", "20", "How data were assigned to partitions; proportions", "partly: 70/15/15, random",
     "yes: patient-grouped, stratified, saved split file with its hash"),
    ("Data partitions", "21", "Level at which partitions are disjoint (patient, series, image)", "no",
     "yes: patient level, checked by assert_groups_disjoint and a near-duplicate audit"),
    ("Model", "22", "Detailed description of the model", "yes: Table 1 (with a 3-unit output for 4 classes)",
     "yes: built from the equations, Table 1 reproduced from the real model"),
    ("Model", "24", "Initialisation of model parameters (e.g. transfer learning)", "partly: ImageNet mentioned",
     "yes: the weights source is in the model card"),
    ("Model", "23", "Software libraries, frameworks and packages", "partly: TensorFlow/Keras, no versions",
     "yes: every version in the model card; code, tests and notebooks open"),
    ("Training", "25", "Training details, including augmentation and hyperparameters", "yes",
     "yes: profiles and the full config in the model card"),
    ("Training", "26", "Method of selecting the final model", "partly: Hyperband, best checkpoint",
     "yes: lowest validation loss (paper profile) or highest validation macro-F1 (laptop), best epoch recorded"),
    ("Evaluation", "28", "Metrics of model performance", "partly: accuracy, precision, recall, F1",
     "yes: plus specificity, balanced accuracy, ROC-AUC, calibration"),
    ("Evaluation", "29", "Statistical measures of significance and uncertainty (e.g. confidence intervals)", "no",
     "yes: 95% patient-level bootstrap intervals"),
    ("Evaluation", "30", "Robustness or sensitivity analysis", "no", "partly: the leakage experiment, seeds"),
    ("Evaluation", "31", "Methods for explainability or interpretability (e.g. saliency maps)", "no",
     "yes: Grad-CAM, with a pointing-game score on phantom lesions"),
    ("Evaluation", "32", "Validation or testing on external data", "no",
     "possible: `liverlib evaluate --data EXTERNAL`; not done (no real data here)"),
    ("Results", "34", "Demographic and clinical characteristics of cases in each partition", "no",
     "n/a: synthetic phantom (per-patient phantom parameters are in the manifest)"),
    ("Results", "35", "Performance metrics for optimal model(s) on all data partitions", "partly: accuracies",
     "yes: metrics per split, test with intervals"),
    ("Results", "36", "Estimates of diagnostic performance and their precision (such as 95% CI)", "no",
     "yes: every table carries its interval"),
    ("Results", "37", "Failure analysis of incorrectly classified cases", "no",
     "yes: most confident mistakes with their Grad-CAM"),
    ("Discussion", "38", "Study limitations, including potential bias and generalisability", "partly",
     "yes: synthetic data stated wherever results appear"),
    ("Other", "41", "Where the full study protocol can be accessed", "no", "yes: this book"),
    ("Other", "42", "Sources of funding and role of funders", "not stated", "n/a"),
]


def table2() -> pd.DataFrame:
    table = pd.DataFrame(PAPER_TABLE2, columns=["class", "precision", "recall", "f1", "support"]).set_index("class")
    assert dict(table["support"]) == PAPER_CLASS_SUPPORT
    return table


def table3() -> pd.DataFrame:
    return pd.DataFrame(PAPER_TABLE3)


def claim_checklist() -> pd.DataFrame:
    return pd.DataFrame(CLAIM_ITEMS, columns=["section", "CLAIM item", "requirement", "the paper", "this course"])
