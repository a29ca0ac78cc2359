"""Train / validation / test splits that keep every group (patient, or an image and its copies) together.

The paper split 70/15/15. Splitting by *slice* puts neighbouring slices of one patient, or augmented
copies of one image, on both sides of the split, and the test score then measures memory, not
generalisation. ``make_split`` therefore splits by group, stratified by class; a slice-level random split
exists only to demonstrate that leakage.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from liverlib.data import data_key
from liverlib.errors import LiverlibError

SPLITS = ("train", "val", "test")


def make_split(manifest: pd.DataFrame, fractions=(0.7, 0.15, 0.15), seed: int = 42,
               strategy: str = "grouped") -> pd.Series:
    """A split label ('train', 'val', 'test') per manifest row.

    ``grouped``: whole groups go to one split, stratified by class (each class's groups are dealt to the
    split furthest below its target share of that class's images). ``random``: slice-level, stratified
    by class, ignoring groups: leaky, for demonstration only.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise LiverlibError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    if strategy not in ("grouped", "random"):
        raise LiverlibError(f"split strategy must be 'grouped' or 'random', got {strategy!r}")
    rng = np.random.default_rng(seed)
    split = pd.Series("", index=manifest.index, dtype=object)
    for cls in sorted(manifest["class"].unique()):
        rows = manifest[manifest["class"] == cls]
        if strategy == "random":
            order = rng.permutation(rows.index.to_numpy())
            cuts = np.round(np.cumsum(fractions)[:2] * len(order)).astype(int)
            for name, part in zip(SPLITS, np.split(order, cuts)):
                split[part] = name
            continue
        sizes = rows.groupby("group").size()
        groups = sizes.index.to_numpy()[rng.permutation(len(sizes))]
        # deal large groups first so the shares come out close to the targets
        groups = sorted(groups, key=lambda g: -sizes[g])
        target = fractions * len(rows)
        filled = np.zeros(3)
        for g in groups:
            deficit = (target - filled) / np.maximum(target, 1e-9)
            deficit[target == 0] = -np.inf
            k = int(np.argmax(deficit))
            filled[k] += sizes[g]
            split[rows.index[rows["group"] == g]] = SPLITS[k]
    if strategy == "grouped":
        assert_groups_disjoint(manifest.assign(split=split))
    return split


def assert_groups_disjoint(manifest: pd.DataFrame) -> None:
    """Raise if any group appears in more than one split (the leakage a grouped split must prevent)."""
    per_group = manifest.groupby("group")["split"].nunique()
    crossing = per_group[per_group > 1]
    if len(crossing):
        raise LiverlibError(f"{len(crossing)} group(s) appear in more than one split, e.g. "
                            f"{', '.join(map(str, crossing.index[:3]))}")


def split_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per class and split, with the split's share of each class."""
    table = manifest.pivot_table(index="class", columns="split", values="file", aggfunc="count", fill_value=0)
    table = table.reindex(columns=[s for s in SPLITS if s in table.columns])
    table.loc["total"] = table.sum()
    return table


def save_split(manifest: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write the split as CSV (file, class, group, split); return its SHA-256 for model cards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = manifest[["file", "class", "group", "split"]].to_csv(index=False).encode()
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # another process never reads half a file
    partial.write_bytes(data)
    os.replace(partial, path)
    return hashlib.sha256(data).hexdigest()


def _relative_to_common_root(files) -> list[str]:
    files = [str(f) for f in files]
    root = os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0])
    return [os.path.relpath(f, root) for f in files]


def load_split(manifest: pd.DataFrame, path: str | os.PathLike) -> pd.Series:
    """Attach a saved split to a manifest; every file must be in it.

    Files are matched by path, or, where the dataset folder has moved since the split was saved (same
    images, another location), by their path inside the dataset folder.
    """
    saved = pd.read_csv(path, dtype=str)
    split = manifest["file"].map(dict(zip(saved["file"], saved["split"])))
    if split.isna().any() and len(saved) and len(manifest):
        moved = dict(zip(_relative_to_common_root(saved["file"]), saved["split"]))
        split = pd.Series(_relative_to_common_root(manifest["file"]), index=manifest.index).map(moved)
    if split.isna().any():
        raise LiverlibError(f"{int(split.isna().sum())} image(s) are not in the saved split {path}; the data changed "
                            "since it was made: delete it to make a new one")
    return split


def split_for(dataset, config, strategy: str = "grouped") -> pd.DataFrame:
    """The manifest with its split: a pre-split layout keeps its own, otherwise the saved one or a new one.

    New splits are saved under ``<artifacts>/splits/`` keyed by the data, so every notebook and the CLI
    use the same split.
    """
    manifest = dataset.manifest.copy()
    if (manifest["split"] != "").all() and strategy == "grouped":
        return manifest
    key = data_key(manifest)[:16]
    path = Path(config.artifacts_dir) / "splits" / f"{strategy}-seed{config.seed}-{key}.csv"
    if path.is_file():
        manifest["split"] = load_split(manifest, path)
    else:
        manifest["split"] = make_split(manifest, config.split_fractions, config.seed, strategy)
        save_split(manifest, path)
    return manifest
