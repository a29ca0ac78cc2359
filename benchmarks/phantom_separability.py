"""Does the phantom carry its class in morphology and texture, not in global brightness?

Trains two classifiers from liverlib.baselines (both with balanced class weights) on the same patient-grouped split of a phantom dataset and reports test accuracy
and macro-F1 for both:

* a logistic regression on each slice's 64-bin intensity histogram (global grey-level content only);
* a small CNN on the slices, resized to --size pixels (sees shape and texture).

If the histogram model came close to the CNN, the classes would differ in overall brightness and the
phantom would teach the wrong lesson. Writes benchmarks/results/phantom_separability_<size>px.json.

    python -m benchmarks.phantom_separability [--data DIR] [--n 4741] [--size 128] [--epochs 12]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (sets TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import machine_info, write_result
from liverlib.baselines import histogram_logistic_regression, small_cnn
from liverlib.config import CLASS_NAMES
from liverlib.metrics import scores
from liverlib.phantom import read_manifest, write_phantom_dataset


def load_images(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    df = read_manifest(root / "manifest.csv")
    df = df[df.augmented_from == ""]
    images = np.stack([np.asarray(Image.open(root / f).convert("L").resize((size, size), Image.BILINEAR))
                       for f in df.file])
    labels = np.array([CLASS_NAMES.index(c) for c in df["class"]])
    return images, labels, df.patient_id.to_numpy()


def grouped_split(labels, groups, seed=0):
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=7, shuffle=True, random_state=seed)
    train, test = next(folds.split(np.zeros(len(labels)), labels, groups))
    assert not set(groups[train]) & set(groups[test])
    return train, test


def _scores(labels, probs, seconds=None, **extra) -> dict:
    """Test accuracy and macro-F1 (liverlib.metrics.scores, as everywhere else), the training time, and extras."""
    found = scores(labels, probs, CLASS_NAMES)
    out = {"accuracy": found["accuracy"], "macro_f1": found["macro_f1"]}
    if seconds is not None:
        out["train_seconds"] = round(seconds, 1)
    return {**out, **extra}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing phantom folder (default: generate)")
    parser.add_argument("--n", type=int, default=4741)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.epochs = 60, 1
    data = args.data
    if data is None:
        data = Path(os.environ.get("LIVERLIB_ARTIFACTS_DIR", "artifacts")) / "data" / f"phantom-n{args.n}-s512-seed0"
        if not (data / "manifest.csv").exists():
            write_phantom_dataset(data, n=args.n, seed=0, size=512, overwrite=True)
    images, labels, groups = load_images(data, args.size)
    train, test = grouped_split(labels, groups)
    start = time.perf_counter()
    cnn_probs = small_cnn(images, labels, train, test, epochs=args.epochs)
    cnn_seconds = time.perf_counter() - start
    result = {
        "dataset": str(data), "n_images": int(len(labels)), "n_test": int(len(test)), "image_size": args.size,
        "split": "patient-grouped, stratified (StratifiedGroupKFold, 1 of 7 folds as test)",
        "class_weights": "balanced",
        "histogram_logistic_regression": _scores(labels[test], histogram_logistic_regression(images, labels, train, test)),
        "small_cnn": _scores(labels[test], cnn_probs, cnn_seconds, epochs=args.epochs),
        "chance_majority_class": float(np.bincount(labels[test]).max() / len(test)),
        "machine": machine_info(),
    }
    write_result("phantom_separability_smoke" if args.smoke else f"phantom_separability_{args.size}px", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
