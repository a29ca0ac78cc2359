"""Load an image dataset the way real ones arrive, into one manifest.

Two layouts are read::

    DIR/benign/ DIR/cirrhosis/ DIR/malignant/ DIR/normal/         one folder per class
    DIR/train/<class>/ DIR/valid/<class>/ DIR/test/<class>/       already split (val/ and validation/ too)

Class folders are mapped by :mod:`liverlib.classes`: a synonym of one of the paper's four classes (any
case; ``HCC``, ``Normal liver``...) becomes that class, any other folder with images a class of its own
(``Fatty Liver`` -> ``fatty_liver``); the report says which folder became which class and which are new.
The dataset's classes are those found, sorted; a label is a class's position among them.

Several folders (the paper merged a tumour set and a cirrhosis set) load as one dataset with the
source of each image recorded. A ``groups.csv`` in a dataset folder (columns ``file``, the path inside the
folder, and ``group``, such as a patient id) says which images a split must keep together. Every file is decoded once; corrupt, empty, unreadable or too-large
files are skipped and listed in the report, never silently dropped and never fatal to the whole load.

The manifest has one row per image: ``file`` (absolute path), ``rel`` (relative to its source folder),
``class``, ``label``, ``group`` (what splits must keep together), ``group_from``, ``source``, ``split``
(for pre-split layouts), ``format``, ``mode``, ``width``, ``height``, ``bytes``, ``sha256``, ``synthetic``
(the folder was written by liverlib's phantom).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from liverlib.classes import PAPER_CLASSES, class_for_folder, class_names_of
from liverlib.config import CLASS_NAMES
from liverlib.errors import LiverlibError
from liverlib.imaging.decode import IMAGE_SUFFIXES, decode_image, read_file
from liverlib.nearcopy import near_duplicate_groups

SPLIT_SYNONYMS: dict[str, str] = {"train": "train", "training": "train", "val": "val", "valid": "val",
                                  "validation": "val", "test": "test", "testing": "test"}
IGNORED_DIRS = {"masks", "mask", "labels", "__macosx", ".ipynb_checkpoints"}
MANIFEST_FILE = "manifest.csv"  # a phantom manifest (or any CSV with file and patient_id columns)
GROUPS_FILE = "groups.csv"  # a user CSV with columns file, group


@dataclass
class LoadReport:
    """What the loader found, mapped, ignored and skipped: shown to the user after every load."""

    sources: list[str]
    layout: str  # "class folders" or "pre-split"
    counts: dict[str, int]
    synonyms: dict[str, str] = field(default_factory=dict)  # folder name -> paper's class, where not identical
    folders: dict[str, str] = field(default_factory=dict)  # every class folder's name -> its class
    class_names: list[str] = field(default_factory=list)  # the classes found, sorted: the model's output order
    new_classes: list[str] = field(default_factory=list)  # classes that are not among the paper's four
    ignored: list[str] = field(default_factory=list)  # folders and files that are not images of a class
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    group_from: str = ""

    def summary(self) -> str:
        lines = [f"{sum(self.counts.values())} images in {len(self.counts)} classes from "
                 f"{', '.join(self.sources)} ({self.layout})",
                 "  " + ", ".join(f"{c}: {n}" for c, n in self.counts.items())]
        if self.synonyms:
            lines.append("  folder names mapped: " + ", ".join(f"{k!r} -> {v}" for k, v in self.synonyms.items()))
        if self.new_classes:
            origin = {c: [f for f, k in self.folders.items() if k == c] for c in self.new_classes}
            lines.append("  new classes (not among the paper's four): " + ", ".join(
                f"{c} (folder {', '.join(map(repr, origin[c]))})" for c in self.new_classes))
        absent = [c for c in PAPER_CLASSES if c not in self.counts]
        if absent and self.counts:
            lines.append(f"  of the paper's four classes, not in this dataset: {', '.join(absent)}")
        if self.group_from:
            lines.append(f"  groups for splitting: {self.group_from}")
        if self.ignored:
            lines.append(f"  ignored {len(self.ignored)}: " + ", ".join(self.ignored[:5])
                         + (" ..." if len(self.ignored) > 5 else ""))
        if self.skipped:
            lines.append(f"  SKIPPED {len(self.skipped)} unreadable file(s):")
            lines += [f"    {f}: {why}" for f, why in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more (see report.skipped)")
        return "\n".join(lines)


@dataclass
class Dataset:
    manifest: pd.DataFrame
    report: LoadReport


def _candidate_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
    return files


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.rglob("*"))


def _find_class_folders(root: Path, report: LoadReport, split: str = "") -> list[tuple[Path, str, str]]:
    """The class folders under root: synonyms of the paper's classes, and every other folder that holds images
    (a class of its own); folders of neither kind are listed as ignored."""
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if child.name.lower() in IGNORED_DIRS:
            continue
        cls, new = class_for_folder(child.name)
        if new and not _has_images(child):
            report.ignored.append(str(child.relative_to(root.parent if split else root)) + "/")
            continue
        if child.name != cls and not new:
            report.synonyms[child.name] = cls
        report.folders[child.name] = cls
        found.append((child, cls, split))
    return found


def _layout(root: Path, report: LoadReport) -> list[tuple[Path, str, str]]:
    if not root.exists():
        raise LiverlibError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise LiverlibError(f"{root} is a file; give the folder that holds the class folders")
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    splits = {SPLIT_SYNONYMS[k]: p for k, p in subdirs.items() if k in SPLIT_SYNONYMS}
    if splits:
        report.layout = "pre-split"
        folders = []
        for split, path in sorted(splits.items()):
            folders += _find_class_folders(path, report, split)
        return folders
    report.layout = "class folders"
    folders = _find_class_folders(root, report)
    if not folders:
        names = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "no sub-folders at all"
        raise LiverlibError(f"{root} has no class folders with images (found: {names}); expected one folder per "
                            f"class, such as {', '.join(CLASS_NAMES)} (or train/valid/test folders that hold them)")
    return folders


def _inspect(path: Path) -> dict:
    data = read_file(path)  # read once: decoded and hashed from the same bytes
    decoded = decode_image(data, str(path))
    return {"format": decoded.format, "mode": decoded.mode, "width": decoded.width, "height": decoded.height,
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def scan_dataset(roots: str | os.PathLike | list, *, groups_csv: str | os.PathLike | None = None,
                 workers: int = 4) -> Dataset:
    """Find, decode and describe every image under one or more dataset folders."""
    roots = [Path(r).expanduser() for r in (roots if isinstance(roots, list | tuple) else [roots])]
    report = LoadReport(sources=[r.name for r in roots], layout="", counts={})
    entries = []
    for root in roots:
        for folder, cls, split in _layout(root, report):
            files = _candidate_files(folder)
            if not files:
                report.ignored.append(f"{folder.relative_to(root)}/ (empty class folder)")
            entries += [(root, f, cls, split) for f in files]
    if not entries:
        raise LiverlibError(f"no image files (PNG, JPEG, BMP, TIFF, DICOM) in the class folders of "
                            f"{', '.join(map(str, roots))}")

    def inspect(entry):
        root, path, cls, split = entry
        try:
            return entry, _inspect(path), None
        except LiverlibError as exc:
            return entry, None, str(exc).replace(str(path), path.name)
        except OSError as exc:
            return entry, None, f"cannot be read: {exc.strerror}"

    rows = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (root, path, cls, split), info, error in pool.map(inspect, entries):
            if error:
                report.skipped.append((str(path.relative_to(root.parent)), error))
                continue
            rows.append({"file": str(path.resolve()), "rel": path.relative_to(root).as_posix(), "class": cls,
                         "source": root.name, "split": split, **info})
    if not rows:
        raise LiverlibError(f"none of the {len(entries)} files could be read; see the report:\n"
                            + "\n".join(f"  {f}: {why}" for f, why in report.skipped[:10]))
    manifest = pd.DataFrame(rows)
    report.class_names = class_names_of(manifest)  # sorted, as Keras' directory loaders sort class folders
    report.new_classes = [c for c in report.class_names if c not in PAPER_CLASSES]
    manifest.insert(3, "label", manifest["class"].map({c: i for i, c in enumerate(report.class_names)}))
    manifest["synthetic"] = manifest["source"].map({r.name: _is_synthetic(r) for r in roots})
    manifest["group"], report.group_from = _groups(manifest, roots, groups_csv)
    manifest["group_from"] = report.group_from
    report.counts = {c: int(n) for c, n in sorted(Counter(manifest["class"]).items())}
    return Dataset(manifest=manifest.reset_index(drop=True), report=report)


def _is_synthetic(root: Path) -> bool:
    """True for a folder written by liverlib's phantom (its dataset.json says so)."""
    import json

    try:
        return bool(json.loads((root / "dataset.json").read_text()).get("synthetic", False))
    except (OSError, ValueError):
        return False


def _user_groups(rel: pd.Series, path: Path) -> pd.Series:
    """The group of each file (``rel``: paths inside its dataset folder) from a CSV with columns file, group."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"file", "group"} <= set(table.columns):
        raise LiverlibError(f"{path} needs the columns 'file' and 'group' (found {', '.join(table.columns)})")
    groups = rel.map(dict(zip(table["file"].str.strip(), table["group"])))
    if groups.isna().any():
        missing = rel[groups.isna()].head(3).tolist()
        raise LiverlibError(f"{path} has no group for {int(groups.isna().sum())} file(s), e.g. {missing}")
    return groups


def _groups(manifest: pd.DataFrame, roots: list[Path], groups_csv) -> tuple[pd.Series, str]:
    """Group ids, per dataset folder: ``groups_csv`` if given, else the folder's own groups.csv (file, group),
    else the patient ids of a phantom's manifest.csv, else near-duplicate clusters."""
    mapped = pd.Series(index=manifest.index, dtype=object)
    found = []
    for root in roots:
        sel = manifest["source"] == root.name
        user = Path(groups_csv) if groups_csv is not None else root / GROUPS_FILE
        if groups_csv is not None or user.is_file():
            mapped[sel] = root.name + ":" + _user_groups(manifest.loc[sel, "rel"], user)
            found.append(f"user CSV {user.name}")
            continue
        path = root / MANIFEST_FILE
        if path.is_file():
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if {"file", "patient_id"} <= set(table.columns):
                patients = dict(zip(table["file"], table["patient_id"]))
                mapped[sel] = root.name + ":" + manifest.loc[sel, "rel"].map(patients)
                found.append("patient ids from the dataset's manifest.csv")
    if mapped.isna().any():
        clusters = near_duplicate_groups(manifest.loc[mapped.isna(), "file"].tolist())
        mapped[mapped.isna()] = ["dup:" + str(c) for c in clusters]
        found.append(f"near-duplicate clusters (no patient ids given; add {GROUPS_FILE} to use your own)")
    return mapped, "; ".join(dict.fromkeys(found))


def load_dataset(data_dir: str | os.PathLike | None = None, config=None) -> Dataset:
    """The dataset of a run: ``data_dir`` (or the config's), else the profile's synthetic phantom.

    The phantom is generated on first use and cached under the artifacts folder.
    """
    from liverlib.config import load_config

    config = config or load_config()
    data_dir = data_dir or config.data_dir
    if data_dir is None:
        data_dir = ensure_phantom(config)
    return scan_dataset(data_dir)


def ensure_phantom(config) -> Path:
    """The profile's synthetic phantom dataset, generated once and then reused."""
    from liverlib.phantom import write_phantom_dataset

    path = config.phantom_dir
    if not (path / MANIFEST_FILE).is_file():
        print(f"generating the synthetic phantom ({config.phantom_n} slices) into {path.name} ...")
        write_phantom_dataset(path, n=config.phantom_n, seed=config.phantom_seed, size=config.phantom_size,
                              window=(config.window_level, config.window_width), overwrite=True)
    return path


def data_key(manifest: pd.DataFrame) -> str:
    """SHA-256 over the images' own hashes, in sorted order: which data a split or a run saw."""
    return hashlib.sha256("\n".join(sorted(manifest["sha256"])).encode()).hexdigest()


def class_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per class (and per split, if any) with percentages."""
    classes = class_names_of(manifest)
    counts = manifest.groupby("class").size().reindex(classes, fill_value=0)
    table = pd.DataFrame({"images": counts, "share": (counts / counts.sum()).round(3)})
    table["groups"] = manifest.groupby("class")["group"].nunique().reindex(classes, fill_value=0)
    return table
