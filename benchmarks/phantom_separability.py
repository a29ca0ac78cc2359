"""Does the phantom carry its class in morphology and texture, not in global brightness?

Trains two classifiers (both with balanced class weights) on the same patient-grouped split of a phantom dataset and reports test accuracy
and macro-F1 for both:

* a logistic regression on each slice's 64-bin intensity histogram (global grey-level content only);
* a small CNN on the slices, resized to --size pixels (sees shape and texture).

If the histogram model came close to the CNN, the classes would differ in overall brightness and the
phantom would teach the wrong lesson. Writes benchmarks/results/phantom_separability.json.

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
from liverlib.config import CLASS_NAMES
from liverlib.phantom_dataset import read_manifest, write_phantom_dataset


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


def histogram_baseline(images, labels, train, test, balanced: bool = True) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    hist = np.stack([np.histogram(im, bins=64, range=(0, 256))[0] for im in images]).astype(float)
    hist /= hist.sum(axis=1, keepdims=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0,
                                                               class_weight="balanced" if balanced else None))
    model.fit(hist[train], labels[train])
    pred = model.predict(hist[test])
    return {"accuracy": accuracy_score(labels[test], pred), "macro_f1": f1_score(labels[test], pred, average="macro")}


def small_cnn(images, labels, train, test, epochs: int, seed: int = 0, balanced: bool = True) -> dict:
    import keras
    from sklearn.metrics import accuracy_score, f1_score

    keras.utils.set_random_seed(seed)
    x = images[..., None].astype("float32") / 255.0
    inputs = keras.Input(shape=x.shape[1:])
    h = inputs
    for filters in (32, 64, 128, 128):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.3)(h)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    counts = np.bincount(labels[train], minlength=len(CLASS_NAMES))
    class_weight = ({k: len(train) / (len(CLASS_NAMES) * max(c, 1)) for k, c in enumerate(counts)}  # "balanced"
                    if balanced else None)
    start = time.perf_counter()
    model.fit(x[train], labels[train], epochs=epochs, batch_size=32, verbose=0, class_weight=class_weight)
    seconds = time.perf_counter() - start
    pred = model.predict(x[test], verbose=0).argmax(axis=1)
    return {"accuracy": accuracy_score(labels[test], pred), "macro_f1": f1_score(labels[test], pred, average="macro"),
            "epochs": epochs, "train_seconds": round(seconds, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing phantom folder (default: generate)")
    parser.add_argument("--n", type=int, default=4741)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--no-class-weights", action="store_true", help="train both models without class weights")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.epochs = 60, 1
    balanced = not args.no_class_weights
    data = args.data
    if data is None:
        data = Path(os.environ.get("LIVERLIB_ARTIFACTS_DIR", "artifacts")) / "data" / f"phantom-n{args.n}-s512-seed0"
        if not (data / "manifest.csv").exists():
            write_phantom_dataset(data, n=args.n, seed=0, size=512, overwrite=True)
    images, labels, groups = load_images(data, args.size)
    train, test = grouped_split(labels, groups)
    result = {
        "dataset": str(data), "n_images": int(len(labels)), "n_test": int(len(test)), "image_size": args.size,
        "split": "patient-grouped, stratified (StratifiedGroupKFold, 1 of 7 folds as test)",
        "class_weights": "balanced" if balanced else "none",
        "histogram_logistic_regression": histogram_baseline(images, labels, train, test, balanced),
        "small_cnn": small_cnn(images, labels, train, test, args.epochs, balanced=balanced),
        "chance_majority_class": float(np.bincount(labels[test]).max() / len(test)),
        "machine": machine_info(),
    }
    write_result("phantom_separability_smoke" if args.smoke else f"phantom_separability_{args.size}px", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
