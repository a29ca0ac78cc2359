"""From slice probabilities to one answer per study (or patient): three rules, over the model card's classes.

Every rule takes the probabilities of a study's slices (n x k, rows summing to 1, in the card's class order)
and returns k study probabilities summing to 1. Let ``N`` be the normal class and ``a_i = 1 - p_i[N]`` the
probability that slice i is abnormal.

* ``mean``: the mean of the slices' probabilities. Every slice counts the same, so a lesion seen on a few
  slices of a long study is diluted; diffuse disease (cirrhosis) is not.
* ``top-k``: the mean probabilities of the k slices (default :data:`TOP_K`) with the highest ``a_i``: the
  study is judged by its most suspicious slices, as a reader would, whatever its length. With k or fewer
  slices it is the mean.
* ``noisy-or``: the study is normal only if every slice is, independently: ``P(N) = prod_i p_i[N]``; the
  abnormal mass ``1 - P(N)`` is shared among the abnormal classes in proportion to their own noisy-OR,
  ``1 - prod_i (1 - p_i[c])``. Sensitive (one confident slice suffices) and, with many slices that are each a
  little unsure, quick to call a normal study abnormal.

The normal class is the card's ``normal_class`` if given, else the class named ``normal``; a card without one
(datasets with other classes than the paper's four) gets ``mean`` whatever rule was asked, and says so.
"""

from __future__ import annotations

import numpy as np

RULES = ("mean", "top-k", "noisy-or")
DEFAULT_RULE = "top-k"
TOP_K = 5
_TINY = 1e-12


def normal_class_index(class_names, card: dict | None = None) -> int | None:
    """Index of the normal class: the card's ``normal_class`` key, else the class named 'normal', else None."""
    names = [str(c) for c in class_names]
    wanted = (card or {}).get("normal_class") or "normal"
    return names.index(wanted) if wanted in names else None


def check_rule(rule: str) -> str:
    from liverlib.errors import LiverlibError

    if rule not in RULES:
        raise LiverlibError(f"unknown aggregation rule {rule!r}; choose one of {', '.join(RULES)}")
    return rule


def abnormality(probs: np.ndarray, normal: int | None) -> np.ndarray:
    """Per slice: 1 - p(normal), or the largest class probability when there is no normal class."""
    probs = np.asarray(probs, dtype=np.float64)
    return 1.0 - probs[:, normal] if normal is not None else probs.max(axis=1)


def aggregate(probs, rule: str = DEFAULT_RULE, normal: int | None = None, k: int = TOP_K) -> tuple[np.ndarray, str]:
    """Study probabilities (k classes, summing to 1) from slice probabilities (n x k), and the rule applied
    (``mean`` when ``normal`` is None)."""
    check_rule(rule)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"aggregate needs the probabilities of at least one slice (n x classes), got {probs.shape}")
    if normal is None:
        rule = "mean"
    if rule == "mean":
        study = probs.mean(axis=0)
    elif rule == "top-k":
        order = np.argsort(-abnormality(probs, normal), kind="stable")[:max(int(k), 1)]
        study = probs[order].mean(axis=0)
    else:  # noisy-or, in log space: a product of many probabilities underflows
        log_normal = np.log(np.clip(probs[:, normal], _TINY, 1.0)).sum()
        p_normal = float(np.exp(log_normal))
        share = -np.expm1(np.log(np.clip(1.0 - probs, _TINY, 1.0)).sum(axis=0))  # 1 - prod(1 - p_c)
        share[normal] = 0.0
        study = (1.0 - p_normal) * share / share.sum() if share.sum() > 0 else np.zeros(probs.shape[1])
        study[normal] = p_normal
    return study / study.sum(), rule


def by_group(probs, groups, labels, rule: str = DEFAULT_RULE, normal: int | None = None,
             k: int = TOP_K) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """Patient-level predictions: the slices of each group (patient) aggregated with ``rule``.

    Returns (group ids in order of first appearance, true label per group, probabilities per group, rule
    applied). A group's label is its slices' label; a group whose slices disagree takes the most common one.
    """
    import pandas as pd

    probs = np.asarray(probs, dtype=np.float64)
    frame = pd.DataFrame({"group": pd.Series(groups).astype(str).to_numpy(), "label": np.asarray(labels)})
    ids, y_true, out, used = [], [], [], rule
    for group, rows in frame.groupby("group", sort=False):
        study, used = aggregate(probs[rows.index.to_numpy()], rule, normal, k)
        ids.append(str(group))
        y_true.append(int(rows["label"].mode().iloc[0]))
        out.append(study)
    return ids, np.asarray(y_true, dtype=int), np.asarray(out).reshape(len(out), probs.shape[1]), used
