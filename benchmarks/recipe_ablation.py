"""Which training levers make the laptop ResNet-50 learn? One change at a time, on the same split.

The laptop profile (64 px, 8 epochs, random initialisation) reached a test macro-F1 near chance. This script
ranks the levers on a reduced budget (a quarter of the training patients, every validation and test slice,
fewer epochs), each recipe in its own process, on the default phantom and the book's patient-grouped split:

* ``baseline``: the laptop profile as it was then (whole slice, Adam 1e-4, class weights, Keras' batch-norm
  momentum 0.99);
* ``crop``: the liver-region crop (:mod:`liverlib.crop`); every later recipe keeps it and changes one more
  thing: ``bn-momentum-0.9`` (moving statistics that keep up with the weights in a short run),
  ``warmup-lr`` (a learning-rate range test picks the peak; linear warm-up over the first epoch, then cosine
  decay), ``crop+bn+warmup`` (both). The later recipes change one thing in ``crop+bn+warmup`` (the short runs
  with momentum 0.99 answer "benign" for every slice, which would hide any other lever): ``balanced-sampling``
  (each class drawn equally often instead of class weights), ``label-smoothing`` (0.1), ``size-96`` and
  ``size-128`` (input size with the crop); ``nocrop-128`` is the larger input without the crop.

Every recipe records per-epoch validation macro-F1 and the share of validation slices given to each class
(the "all benign one epoch, all cirrhosis the next" symptom), and the best epoch's (lowest validation loss)
test macro-F1 with its patient-level 95% CI, balanced accuracy, and wall time.

    python -m benchmarks.recipe_ablation [--epochs 6] [--fraction 0.25] [--recipes crop,warmup-lr] [--smoke]

Results: artifacts/ablation/<recipe>.json while it runs (its own artifacts folder), merged into
benchmarks/results/recipe_ablation.json after each recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import RESULTS, machine_info

BASE = {"crop": "none", "image_size": 64, "bn_momentum": 0.99, "schedule": "constant", "sampling": "class-weights",
        "label_smoothing": 0.0, "weights": None}
CROP = {**BASE, "crop": "liver"}
STACK = {**CROP, "bn_momentum": 0.9, "schedule": "warmup-cosine"}
RECIPES: dict[str, dict] = {
    "baseline": BASE,
    "crop": CROP,
    "bn-momentum-0.9": {**CROP, "bn_momentum": 0.9},
    "warmup-lr": {**CROP, "schedule": "warmup-cosine"},
    "crop+bn+warmup": STACK,
    # from here on, each recipe changes one thing in crop+bn+warmup: with Keras' momentum 0.99 every short
    # run answers "benign" for every validation slice, which hides whatever the other lever does
    "balanced-sampling": {**STACK, "sampling": "balanced"},
    "label-smoothing": {**STACK, "label_smoothing": 0.1},
    "size-96": {**STACK, "image_size": 96},
    "size-128": {**STACK, "image_size": 128},
    "nocrop-128": {**STACK, "crop": "none", "image_size": 128},
}
PEAK_FROM_RANGE_TEST = "warmup-lr"
"""The recipe whose learning-rate range test sets the warm-up peak of every later recipe (run once: 60 batches
cost more than two epochs of the reduced budget)."""


def ablation_dir() -> Path:
    return Path(os.environ.get("LIVERLIB_ARTIFACTS_DIR", "artifacts")) / "ablation"


def lr_range_test(model, dataset, steps: int = 60, low: float = 1e-6, high: float = 1.0) -> dict:
    """Train ``steps`` batches with the learning rate growing exponentially from ``low`` to ``high``; the
    suggested rate is a tenth of the one with the lowest smoothed loss (Smith 2017; fastai's heuristic)."""
    import keras

    rates = np.geomspace(low, high, steps)
    losses, smooth = [], None
    batches = iter(dataset.repeat())
    for rate in rates:
        model.optimizer.learning_rate.assign(float(rate))
        x, y, *rest = next(batches)
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        smooth = loss if smooth is None else 0.8 * smooth + 0.2 * loss
        losses.append(smooth)
        if not np.isfinite(loss) or (len(losses) > 5 and smooth > 4 * min(losses)):
            break
    best = int(np.argmin(losses))
    keras.backend.clear_session()
    return {"rates": [float(r) for r in rates[:len(losses)]], "smoothed_loss": losses,
            "min_loss_rate": float(rates[best]), "suggested": float(np.clip(rates[best] / 10, 1e-4, 3e-3))}


def run_recipe(name: str, epochs: int, fraction: float, smoke: bool = False) -> dict:
    """Train and evaluate one recipe; returns its record (also written to the ablation folder)."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from liverlib.config import CLASS_NAMES, load_config
    from liverlib.data import load_dataset
    from liverlib.evaluate import bootstrap_ci
    from liverlib.model import build_modified_resnet50
    from liverlib.preprocess import make_pipeline
    from liverlib.splits import split_for
    from liverlib.train import balanced_class_weights, balanced_rows, make_deterministic
    from liverlib.tuning import search_subset

    recipe = RECIPES[name]
    config = load_config("quick" if smoke else "laptop").replace(image_size=recipe["image_size"], epochs=epochs)
    manifest = search_subset(split_for(load_dataset(config=config), config), fraction, config.seed)
    rows = {part: manifest[manifest["split"] == part] for part in ("train", "val", "test")}
    train = rows["train"]
    if recipe["sampling"] == "balanced":  # the same number of slices, each class drawn equally often
        train = balanced_rows(train, config.seed)  # the laptop profile's own resampling
    window = (config.window_level, config.window_width)
    make_deterministic(config.seed)
    size, batch, k = config.image_size, config.batch_size, len(CLASS_NAMES)

    def pipeline(part_rows, training):
        ds = make_pipeline(part_rows["file"], part_rows["label"], size, batch, training,
                           config.augmentation if training else None, window, seed=config.seed, crop=recipe["crop"])
        if recipe["label_smoothing"]:
            ds = ds.map(lambda x, y: (x, tf.one_hot(y, k)))
        return ds

    start = time.perf_counter()
    train_ds, val_ds, test_ds = pipeline(train, True), pipeline(rows["val"], False), pipeline(rows["test"], False)

    def build(learning_rate):
        model = build_modified_resnet50(k, size, config.dense_units, config.dropout, recipe["weights"],
                                        blocks=config.backbone_blocks)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = recipe["bn_momentum"]
        loss = (keras.losses.CategoricalCrossentropy(label_smoothing=recipe["label_smoothing"])
                if recipe["label_smoothing"] else keras.losses.SparseCategoricalCrossentropy())
        model.compile(keras.optimizers.Adam(learning_rate, beta_1=config.beta_1, beta_2=config.beta_2), loss=loss)
        return model

    record = {"recipe": name, "settings": recipe, "epochs": epochs, "train_fraction": fraction,
              "train_images": int(len(train)), "val_images": int(len(rows["val"])), "test_images": int(len(rows["test"]))}
    steps = int(np.ceil(len(train) / batch))
    learning_rate = config.learning_rate
    if recipe["schedule"] == "warmup-cosine":
        earlier = finished_recipes(smoke).get(PEAK_FROM_RANGE_TEST)
        if name != PEAK_FROM_RANGE_TEST and earlier is not None:
            peak = earlier["peak_learning_rate"]
            record["peak_from"] = PEAK_FROM_RANGE_TEST
        else:
            record["lr_range_test"] = lr_range_test(build(1e-6), train_ds, steps=20 if smoke else 60)
            peak = record["lr_range_test"]["suggested"]
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(steps * (epochs - 1), 1), warmup_target=peak, warmup_steps=steps)
        record["peak_learning_rate"] = peak
        make_deterministic(config.seed)
    model = build(learning_rate)
    class_weight = balanced_class_weights(train["label"].to_numpy()) if recipe["sampling"] == "class-weights" else None
    y_val = rows["val"]["label"].to_numpy()
    epochs_log, best = [], {"val_loss": np.inf}

    class Watch(keras.callbacks.Callback):
        """Validation once per epoch, by prediction: the plain cross-entropy (the same criterion for every
        recipe, smoothing or not) picks the best epoch, and the predictions give macro-F1 and class shares."""

        def on_epoch_end(self, epoch, logs=None):
            probs = self.model.predict(val_ds, verbose=0)
            pred = probs.argmax(1)
            logs = {**(logs or {}), "val_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y_val)), y_val],
                                                                             1e-7, 1))))}
            epochs_log.append({"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]),
                               "val_macro_f1": float(f1_score(y_val, pred, average="macro", labels=range(k),
                                                              zero_division=0)),
                               "val_predicted_share": {c: float((pred == i).mean()) for i, c in enumerate(CLASS_NAMES)}})
            print(name, json.dumps(epochs_log[-1]), flush=True)
            if logs["val_loss"] < best["val_loss"]:
                best.update(val_loss=float(logs["val_loss"]), epoch=epoch + 1, weights=self.model.get_weights())

    model.fit(train_ds, epochs=epochs, class_weight=class_weight, callbacks=[Watch()], shuffle=False,
              verbose=0)
    model.set_weights(best.pop("weights"))
    y_test = rows["test"]["label"].to_numpy()
    probs = model.predict(test_ds, verbose=0)
    pred = probs.argmax(1)
    ci = bootstrap_ci(y_test, probs, CLASS_NAMES, groups=rows["test"]["group"].to_numpy(), n_boot=500)
    record.update({
        "history": epochs_log, "best_epoch": best.get("epoch"),
        "test_macro_f1": float(f1_score(y_test, pred, average="macro", labels=range(k), zero_division=0)),
        "test_macro_f1_ci95": ci.get("macro_f1"),
        "test_balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
        "test_f1_per_class": dict(zip(CLASS_NAMES, map(float, f1_score(y_test, pred, average=None, labels=range(k),
                                                                      zero_division=0)))),
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine_info(),  # recipes are run on different days, on machines of different speed
    })
    return record


def result_path(smoke: bool = False) -> Path:
    return RESULTS / ("recipe_ablation_smoke.json" if smoke else "recipe_ablation.json")


def finished_recipes(smoke: bool = False) -> dict[str, dict]:
    """Every finished recipe's record, in the order of RECIPES.

    The records come from the ablation folder and, for full runs, from the result file already written: the
    artifacts folder is not kept with the checkout, so a recipe rerun in a fresh clone joins the recorded ones
    instead of replacing the whole file, and reads the warm-up peak its predecessors used. A record in the folder
    replaces the recorded one of the same recipe; smoke runs read their folder only."""
    path = result_path(smoke)
    recorded = {} if smoke or not path.is_file() else json.loads(path.read_text()).get("recipes", {})
    finished = {}
    for name in RECIPES:
        run = ablation_dir() / f"{name}.json"
        if run.is_file():
            finished[name] = json.loads(run.read_text())
        elif name in recorded:
            finished[name] = recorded[name]
    return finished


def merge(smoke: bool = False) -> Path:
    """Every finished recipe (:func:`finished_recipes`) into one result file."""
    result = {"recipes": finished_recipes(smoke), "machine": machine_info(),
              "note": "reduced budget: a share of the training patients, every validation and test slice; "
                      "ranks the levers, not the final figure"}
    RESULTS.mkdir(exist_ok=True)
    path = result_path(smoke)
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of the training patients")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, from: " + ", ".join(RECIPES))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run a single recipe in this process
    parser.add_argument("--redo", action="store_true", help="rerun recipes that already have a result")
    parser.add_argument("--smoke", action="store_true", help="quick profile, 1 epoch, the crop recipe")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.fraction = 1, 1.0
    folder = ablation_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if args.one:
        record = run_recipe(args.one, args.epochs, args.fraction, args.smoke)
        (folder / f"{args.one}.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
        return
    names = ["crop"] if args.smoke else list(dict.fromkeys(n.strip() for n in args.recipes.split(",") if n.strip()))
    unknown = set(names) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(sorted(unknown))}; choose from {', '.join(RECIPES)}")
    finished = finished_recipes(args.smoke)  # read once: a recipe's record changes only when it runs here
    for name in names:
        if name in finished and not args.redo:
            print(f"{name}: done already (recorded in {result_path(args.smoke)} or {folder})")
            continue
        cmd = [sys.executable, "-m", "benchmarks.recipe_ablation", "--one", name, "--epochs", str(args.epochs),
               "--fraction", str(args.fraction)] + (["--smoke"] if args.smoke else [])
        code = subprocess.call(cmd)
        print(f"{name}: exit {code}", flush=True)
        merge(args.smoke)


if __name__ == "__main__":
    main()
