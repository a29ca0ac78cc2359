"""The laptop run before and after the recipe changes: test scores, Grad-CAM pointing game, lesion size.

``before`` is the laptop recipe as it was when its model barely learned: the whole slice resized to 64 px,
Keras' batch-norm momentum 0.99, Adam at a constant 1e-4, class weights, the epoch kept by the lowest
validation loss. ``after`` is the laptop profile as it is now (liver crop, momentum 0.9, warm-up and cosine
decay to a peak of 5e-4, each class drawn equally often, the epoch kept by validation macro-F1). Both train on every training
patient of the book's split for the profile's 8 epochs, from random initialisation (what the profile gets
offline), seed 42. Each run is scored as chapter 07 scores the book's run:

* test macro-F1 with its patient-level 95% interval, balanced accuracy (:func:`liverlib.evaluate.evaluate_run`);
* the pointing game on every lesion slice of the test split (:func:`liverlib.pointing.phantom_pointing_game`):
  how often the Grad-CAM peak for the true class falls inside the lesion, against the lesion's share of the
  input as the chance level;
* sensitivity by lesion diameter (:func:`liverlib.lesion_size.sensitivity_by_lesion_size`).

The runs live under ``artifacts/before-after/`` (never ``artifacts/runs``); a finished one is not retrained.
``--after RUN_DIR`` scores an existing run folder of the current recipe instead of training one (the
``balanced-sampling-seed42`` run of ``benchmarks.recipe_seeds`` is that run). Results: ``benchmarks/results/before_after.json``.

    python -m benchmarks.before_after [--after artifacts/recipe-seeds/balanced-sampling-seed42] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import liverlib  # noqa: F401  (TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import machine_info, write_result

BEFORE = {"crop": "none", "bn_momentum": 0.99, "lr_schedule": "piecewise", "learning_rate": 1e-4,
          "checkpoint_metric": "val_loss", "class_weighting": True, "balanced_sampling": False}
"""What ``before`` changes in today's laptop profile: the recipe the laptop profile had before the crop, the
momentum, the schedule, the kept-epoch rule and balanced sampling (its input size and epochs are today's)."""


def runs_dir(smoke: bool = False) -> Path:
    """The runs' folder in the artifacts folder (``LIVERLIB_ARTIFACTS_DIR``, else the checkout's); smoke runs
    in one of their own."""
    from liverlib.config import load_config

    return load_config("quick").artifacts_dir / ("before-after-smoke" if smoke else "before-after")


def score(run_dir: Path, pointing_limit: int | None) -> dict:
    """Chapter 07's figures for one run folder."""
    from liverlib.config import setting_defaults
    from liverlib.evaluate import evaluate_run
    from liverlib.lesion_size import sensitivity_by_lesion_size
    from liverlib.phantom import read_manifest
    from liverlib.pointing import phantom_pointing_game
    from liverlib.runs import read_card

    card = read_card(run_dir)
    defaults = setting_defaults()
    metrics = (evaluation := evaluate_run(run_dir, n_boot=1000, figures=False)).metrics
    by_size = sensitivity_by_lesion_size(evaluation.predictions, read_manifest(Path(card["data"]) / "manifest.csv"))
    pointing = phantom_pointing_game(run_dir, limit=pointing_limit)
    every = by_size.loc["all"]
    return {
        "run": Path(run_dir).name, "settings": {k: card["config"].get(k, defaults.get(k))  # a card from before a
                                  for k in (*BEFORE, "image_size", "epochs", "seed")},      # field: its default
        "weights": card.get("weights"), "epochs_run": card.get("epochs_run"),
        "kept_epoch": None if card.get("best_epoch") is None else card["best_epoch"] + 1,
        "test_macro_f1": float(metrics["macro_f1"]), "test_macro_f1_ci95": metrics["ci95"]["macro_f1"],
        "test_balanced_accuracy": float(metrics["balanced_accuracy"]),
        "test_f1_per_class": {c: float(v["f1"]) for c, v in metrics["per_class"].items()},
        # what the model answers: a model that gives one class to every slice "detects" every lesion of that class
        "test_predicted_share": {str(c): float(v) for c, v in
                                 evaluation.predictions["predicted"].value_counts(normalize=True).items()},
        "pointing_game": {"slices": int(len(pointing)),
                          "hit_rate": float(pointing["hit"].mean()) if len(pointing) else None,
                          "chance": float(pointing["area"].mean()) if len(pointing) else None,
                          "mass_inside": float(pointing["mass_inside"].mean()) if len(pointing) else None},
        "by_lesion_size": [{"diameter": str(label), "slices": int(row["slices"]),
                            "predicted_abnormal": None if row["slices"] == 0 else float(row["predicted abnormal"]),
                            "predicted_true_class": None if row["slices"] == 0 else float(row["predicted true class"])}
                           for label, row in every.iterrows()],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", type=Path, default=None,
                        help="a finished run folder of today's laptop recipe to score instead of training one")
    parser.add_argument("--smoke", action="store_true", help="quick profile, 1 epoch, 10 slices per class for Grad-CAM")
    args = parser.parse_args(argv)
    from liverlib.config import load_config
    from liverlib.data import load_dataset
    from liverlib.errors import LiverlibError
    from liverlib.splits import split_for
    from liverlib.train import train

    base = load_config("quick" if args.smoke else "laptop").replace(weights=None, seed=42)
    if args.smoke:
        base = base.replace(epochs=1)
    manifest = split_for(load_dataset(config=base), base)
    result = {"runs": {}, "machine": machine_info(),
              "note": "seed 42, random initialisation, the book's split, every training patient"}
    for name, changes in (("before", BEFORE), ("after", {})):
        start = time.perf_counter()
        if name == "after" and args.after is not None:
            if not (args.after / "model_card.json").is_file():
                raise LiverlibError(f"--after {args.after}: not a finished run folder (no model_card.json)")
            run_dir = args.after
        else:
            run_dir = train(base.replace(**changes), manifest, runs_dir(args.smoke) / f"{name}-{base.profile}",
                            verbose=2).run_dir
        result["runs"][name] = {**score(run_dir, 10 if args.smoke else None),
                                "seconds": round(time.perf_counter() - start, 1)}
        print(name, json.dumps({k: v for k, v in result["runs"][name].items() if k != "by_lesion_size"}), flush=True)
    print(write_result("before_after_smoke" if args.smoke else "before_after", result))


if __name__ == "__main__":
    main()
