"""How good is the liver-region crop, and what does it buy? (issue: a ResNet-50 that learns where the reader runs it)

Measured on the default phantom (4,741 slices, 512 px), whose label maps say where the liver really is:

* **Crop quality**, on a sample of slices per class, each also left-right flipped and rotated by 180 degrees
  (a prone scan): which method found the box (liver region, body-relative fallback, whole slice), the share
  of the liver's pixels inside the crop, the crop's side as a share of the slice, how often the orientation
  was read right, and the time per slice.
* **Detail gained**: the largest lesion's diameter in network pixels at the profile's input size, with and
  without the crop.
* **What each extent keeps of the class signal**: the small CNN of :mod:`liverlib.baselines` trained on the
  same patient-grouped split with the whole slice, the body outline and the liver region as input; per-class
  F1 tells whether cirrhosis, whose signs also lie outside the liver (spleen size, ascites), loses by the crop.

    python -m benchmarks.liver_crop [--size 64] [--epochs 15] [--sample 60] [--smoke]

Writes benchmarks/results/liver_crop_<size>px.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (sets TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import machine_info, write_result
from benchmarks.phantom_separability import grouped_split
from liverlib.config import CLASS_NAMES
from liverlib.crop import CROP_MODES, find_crop
from liverlib.imaging.decode import decode_file
from liverlib.preprocess import prepare_grey

LIVER_LABELS = (15, 16, 17, *range(20, 30))  # parenchyma, vessels, fibrosis and every lesion label


def _read_grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def crop_quality(root: Path, manifest, sample: int, seed: int = 0) -> dict:
    """Crop boxes against the label maps, per class, for the slice as stored, flipped and rotated by 180."""
    import pandas as pd

    rows, seconds = [], 0.0
    picked = manifest.groupby("class").sample(min(sample, int(manifest["class"].value_counts().min())),
                                              random_state=seed)
    views = {"as stored": (lambda a: a, False, False), "left-right flipped": (lambda a: a[:, ::-1], True, False),
             "rotated 180 (prone)": (lambda a: a[::-1, ::-1], True, True)}
    for _, row in picked.iterrows():
        grey, liver = _read_grey(root / row["file"]), np.isin(_read_grey(root / row["mask_file"]), LIVER_LABELS)
        for view, (turn, flipped, prone) in views.items():
            g, m = turn(grey), turn(liver)
            start = time.perf_counter()
            crop = find_crop(g, "liver")
            seconds += time.perf_counter() - start
            rows.append({"class": row["class"], "view": view, "method": crop.method,
                         "liver_inside": float(crop.apply(m).sum() / max(m.sum(), 1)),
                         "side_share": crop.side / max(g.shape), "liver_share_of_crop": float(crop.apply(m).mean()),
                         "flip_read_right": crop.flipped == flipped, "prone_read_right": crop.prone == prone})
    table = pd.DataFrame(rows)
    per_class = {cls: {"liver_inside_median": float(t.liver_inside.median()),
                       "liver_inside_p05": float(t.liver_inside.quantile(0.05)),
                       "side_share_median": float(t.side_share.median()),
                       "detail_gain_median": float((1 / t.side_share).median())}
                 for cls, t in table.groupby("class")}
    return {"slices": int(len(picked)), "views": list(views), "per_class": per_class,
            "methods": {f"{view}: {method}": int(n) for (view, method), n in table.groupby(["view", "method"]).size().items()},
            "orientation_read_right": {view: {"left_right": float(t.flip_read_right.mean()),
                                              "prone": float(t.prone_read_right.mean())}
                                       for view, t in table.groupby("view")},
            "ms_per_slice": 1000 * seconds / len(table)}


def load_cropped(root: Path, files, size: int, mode: str) -> tuple[np.ndarray, list[float], int]:
    """Every file prepared as training prepares it (decode, crop with ``mode``, resize: ``prepare_grey``); the
    crop's side in pixels and the number of slices where the crop fell back to the whole slice."""

    def one(rel):
        image, crop = prepare_grey(decode_file(root / rel).grey8, size, mode)
        return image, crop.side, crop.fell_back

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        out = list(pool.map(one, files))
    fallbacks = 0 if mode == "none" else int(sum(o[2] for o in out))  # "none" asks for the whole slice
    return np.stack([o[0] for o in out]), [o[1] for o in out], fallbacks


def main(argv=None) -> dict:
    from sklearn.metrics import f1_score

    from liverlib.baselines import small_cnn
    from liverlib.data import ensure_phantom
    from liverlib.config import load_config
    from liverlib.phantom import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sample", type=int, default=60, help="slices per class for the crop-quality check")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    config = load_config("quick" if args.smoke else "laptop")
    if args.smoke:
        args.epochs, args.sample = 1, 3
    root = ensure_phantom(config)
    manifest = read_manifest(root / "manifest.csv")
    manifest = manifest[manifest.augmented_from == ""].reset_index(drop=True)
    result = {"dataset": f"synthetic phantom, {len(manifest)} slices", "image_size": args.size,
              "crop_quality": crop_quality(root, manifest, args.sample)}

    labels = np.array([CLASS_NAMES.index(c) for c in manifest["class"]])
    train, test = grouped_split(labels, manifest.patient_id.to_numpy())
    diameter_mm = manifest.max_lesion_diameter_mm.to_numpy(float)
    fov_px = manifest["size"].to_numpy(float)
    spacing = manifest.pixel_spacing_mm.to_numpy(float) * 512 / fov_px  # mm per stored pixel
    lesion = diameter_mm > 0
    result["small_cnn"] = {}
    for mode in CROP_MODES:
        start = time.perf_counter()
        images, sides, fallbacks = load_cropped(root, manifest.file, args.size, mode)
        load_s = time.perf_counter() - start
        lesion_px = diameter_mm / spacing * args.size / np.asarray(sides, float)
        start = time.perf_counter()
        probs = small_cnn(images, labels, train, test, epochs=args.epochs)
        pred = probs.argmax(1)
        per_class = f1_score(labels[test], pred, average=None, labels=range(len(CLASS_NAMES)), zero_division=0)
        result["small_cnn"][mode] = {
            "macro_f1": float(per_class.mean()), "f1_per_class": dict(zip(CLASS_NAMES, map(float, per_class))),
            "fallbacks": fallbacks, "load_seconds": round(load_s, 1),
            "train_seconds": round(time.perf_counter() - start, 1),
            "lesion_diameter_px_median": float(np.median(lesion_px[lesion])) if lesion.any() else None}
        print(mode, json.dumps(result["small_cnn"][mode]), flush=True)
    result.update({"n_test": int(len(test)), "epochs": args.epochs,
                   "split": "patient-grouped, stratified (StratifiedGroupKFold, 1 of 7 folds as test)",
                   "machine": machine_info()})
    write_result("liver_crop_smoke" if args.smoke else f"liver_crop_{args.size}px", result)
    print(json.dumps(result["crop_quality"], indent=1))
    return result


if __name__ == "__main__":
    main()
