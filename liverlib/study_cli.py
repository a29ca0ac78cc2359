"""The command line's whole-study parts: which inputs are studies, how a study's answer is printed, the
phantom's study formats, and the patient-level lines of ``liverlib evaluate``.

``liverlib classify`` takes studies beside single slices: a .nii/.nii.gz volume and a .zip are studies; a
folder is a study when its DICOM files form a series (:func:`forms_series`: at least two images of one axial
CT series of one patient), else its subfolders are looked at in turn and its image files are slices.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from liverlib.errors import LiverlibError
from liverlib.imaging.decode import IMAGE_SUFFIXES, RASTER_SUFFIXES

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".zip")
MIN_SERIES_IMAGES = 2  # one DICOM file in a folder is a slice, not a study


def is_volume_file(path: Path) -> bool:
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def forms_series(folder: Path) -> bool:
    """True when the files under ``folder`` (non-image files aside) are one study of axial CT series."""
    from liverlib.imaging.dicom_series import find_series  # local: pydicom

    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    candidates = [p for p in files if p.suffix.lower() not in RASTER_SUFFIXES and not is_volume_file(p)]
    if len(candidates) < MIN_SERIES_IMAGES:
        return False
    try:
        series = find_series(folder)
    except LiverlibError:  # two patients, no DICOM, no axial CT: not one study
        return False
    return any(info.count >= MIN_SERIES_IMAGES for info in series)


def _walk(folder: Path) -> list[tuple[str, Path]]:
    if forms_series(folder):
        return [("study", folder)]
    found: list[tuple[str, Path]] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found.extend(_walk(child))
        elif is_volume_file(child):
            found.append(("study", child))
        elif child.suffix.lower() in IMAGE_SUFFIXES:
            found.append(("slice", child))
    return found


def iter_study_inputs(paths) -> list[tuple[str, Path]]:
    """Command-line paths as ("study" | "slice", path): see the module doc. A folder with nothing to classify
    comes back as a slice, so the caller reports it."""
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_walk(path) or [("slice", path)])
        elif path.is_file() and is_volume_file(path):
            found.append(("study", path))
        else:
            found.append(("slice", path))
    return found


def report_study(path: Path, args) -> int:
    """Classify one study and print it (JSON lines with ``--json``); return the number of failures (0 or 1)."""
    from liverlib.study_classify import classify_study

    try:
        results = classify_study(path, args.model, rule=args.rule)
    except LiverlibError as exc:
        message = " ".join(str(exc).split())
        if args.json:
            print(json.dumps({"file": str(path), "error": message}), flush=True)
        else:
            print(f"{path.name}: error: {message}", file=sys.stderr, flush=True)
        return 1
    for result in results:
        if args.json:
            print(json.dumps(result.as_json()), flush=True)
            for row in result.slice_rows() if args.per_slice else ():
                print(json.dumps(row), flush=True)
            continue
        series = f" (series {result.series})" if result.series else ""
        probs = " ".join(f"{c} {p:.3f}" for c, p in result.probabilities.items())
        print(f"{path}{series}: {result.predicted_class} ({result.rule} of {len(result.liver_slices)} liver slices "
              f"of {result.n_slices}): {probs}" + (f"  {'; '.join(result.warnings)}" if result.warnings else ""))
        print("  top slices: " + ", ".join(f"#{t['index']} at z {t['z_mm']:g} mm" for t in result.top_slices))
        for row in result.slice_rows() if args.per_slice else ():
            p = row.get("probabilities")
            print(f"  slice {row['index']:>3} z {row['z_mm']:>8g} mm: "
                  + (" ".join(f"{c} {v:.3f}" for c, v in p.items()) if p else "no liver"))
    return 0


def phantom_studies(args) -> int:
    """``liverlib phantom --format dicom-series|nifti``: ``--n`` patients, one study each."""
    from liverlib.phantom.studies import write_phantom_studies
    from liverlib.imaging.windowing import parse_window

    classes = tuple(c.strip().lower() for c in args.classes.split(",") if c.strip()) if args.classes else None
    if args.augmented_copies or args.slices_per_patient:
        raise LiverlibError("--augmented-copies and --slices-per-patient apply to slice datasets (png, dicom), "
                            "not to whole studies")
    start = time.perf_counter()
    manifest = write_phantom_studies(args.out, n=args.n, seed=args.seed, size=args.size, fmt=args.format,
                                     classes=classes, window=parse_window(args.window), overwrite=args.overwrite,
                                     workers=args.workers, slice_spacing_mm=args.slice_spacing,
                                     progress=not args.quiet)
    print(f"wrote {args.n} synthetic studies ({args.format}) to {Path(args.out)} in "
          f"{time.perf_counter() - start:.1f} s; manifest: {manifest}")
    return 0


def patient_summary(metrics: dict) -> str:
    """The patient-level lines ``liverlib evaluate`` prints under the slice-level tables."""
    level = metrics.get("patient_level")
    if not level:
        return "patient level: not available (the images have no patient groups)"
    from liverlib.evaluate import headline_table  # local: evaluate imports TensorFlow's pipeline

    return (f"patient level: {level['n_patients']} patients, slices combined with the {level['rule']} rule; 95% "
            f"intervals: bootstrap over patients\n" + headline_table(level, level["ci95"]).round(3).to_string())
