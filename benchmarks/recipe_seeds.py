"""The best recipes of the ablation at the laptop profile's full budget, three seeds each.

``recipe_ablation`` ranks the training levers on a reduced budget with one seed, which cannot tell a lever from
the luck of one initialisation. This script trains the leading recipes as the package trains the laptop
profile (every training patient, 8 epochs, the kept epoch by validation macro-F1), each with three seeds, and
evaluates each run on the test split as chapter 07 does (:func:`liverlib.evaluate.evaluate_run`):

* ``balanced-sampling``: the laptop profile as it is (liver crop, 64 px, batch-norm momentum 0.9, warm-up and
  cosine decay, each class drawn equally often), random initialisation (what the profile gets offline);
* ``class-weights``: the same with class weights instead of balanced sampling: the laptop profile until
  balanced sampling scored above it on every seed here. Balanced sampling was tried because the reduced-budget
  ablation, with its own resampling at the time, ranked it the best 64 px lever; rerun with the profile's
  resampling (:func:`liverlib.train.balanced_rows`, another draw of the same rows) it no longer was, and chapter
  05 sets that one-seed difference beside these seeds';
* ``nocrop-64``: the laptop profile as it is (64 px, balanced sampling) on the whole slice instead of the liver
  crop: at the same cost per image, whether the crop helps this network at the profile's budget (on the
  reduced budget the crop left the test macro-F1 unchanged at 64 px, and the whole slice beat it at 128 px);
* ``nocrop-128``: the whole slice at 128 px, with class weights (the best recipe of the reduced-budget
  ablation, on the profile of that time; about three times the compute per image, so it runs last);
* ``nocrop-128-balanced``: the same with balanced sampling instead of class weights (the class-weighted
  recipes scattered from seed to seed, the balanced one hardly): detail against budget, with the profile's
  steadier correction for class imbalance.

Every recipe names both corrections for class imbalance, so that a later change of the profile does not change
what a recipe's finished seeds measured.

The split is the book's (the profile's split seed) for every run; the seed changes the initial weights, the
augmentation and the order of the batches. Each run is a run folder of its own under
``artifacts/recipe-seeds/`` (never ``artifacts/runs``): an interrupted run resumes where it stopped, a finished
one is not retrained. Results: one JSON per run beside its folder, merged with the mean and spread per recipe
into ``benchmarks/results/recipe_seeds.json`` after each run.

    python -m benchmarks.recipe_seeds [--recipes balanced-sampling,class-weights] [--seeds 42,43,44] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import RESULTS, machine_info

RECIPES: dict[str, dict] = {
    "balanced-sampling": {"balanced_sampling": True, "class_weighting": False},
    "class-weights": {"balanced_sampling": False, "class_weighting": True},
    "nocrop-64": {"crop": "none", "balanced_sampling": True, "class_weighting": False},
    "nocrop-128": {"crop": "none", "image_size": 128, "balanced_sampling": False, "class_weighting": True},
    "nocrop-128-balanced": {"crop": "none", "image_size": 128, "balanced_sampling": True, "class_weighting": False},
}
SEEDS = (42, 43, 44)
"""42 is the profile's own seed: that run is the one ``make book`` trains (offline, random initialisation)."""


def seeds_dir(smoke: bool = False) -> Path:
    """The runs' folder in the artifacts folder (``LIVERLIB_ARTIFACTS_DIR``, else the checkout's); smoke runs
    in one of their own, so that a full run never takes a smoke run for its own."""
    from liverlib.config import load_config

    return load_config("quick").artifacts_dir / ("recipe-seeds-smoke" if smoke else "recipe-seeds")


def run_name(recipe: str, seed: int) -> str:
    return f"{recipe}-seed{seed}"


def run_one(recipe: str, seed: int, smoke: bool = False) -> dict:
    """Train (or resume) one recipe with one seed on the profile's split and evaluate it on the test split."""
    from liverlib.config import load_config
    from liverlib.data import load_dataset
    from liverlib.evaluate import evaluate_run
    from liverlib.runs import best_epoch, read_history
    from liverlib.splits import split_for
    from liverlib.train import train

    base = load_config("quick" if smoke else "laptop").replace(weights=None)
    if smoke:
        base = base.replace(epochs=1)
    manifest = split_for(load_dataset(config=base), base)  # the profile's split, whatever the training seed
    config = base.replace(seed=seed, **RECIPES[recipe])
    run_dir = seeds_dir(smoke) / run_name(recipe, seed)
    start = time.perf_counter()
    result = train(config, manifest, run_dir, verbose=2)
    history = read_history(run_dir)
    metrics = evaluate_run(run_dir, n_boot=1000, figures=False).metrics
    kept = best_epoch(history, config.checkpoint_metric)
    return {
        "recipe": recipe, "seed": seed, "settings": RECIPES[recipe], "profile": base.profile,
        "epochs_run": int(len(history)), "kept_epoch": None if kept is None else kept + 1,
        "kept_by": config.checkpoint_metric,
        "val_macro_f1_kept": float(history["val_macro_f1"].iloc[kept]) if kept is not None else None,
        "train_images": result.card.get("train_images"),
        "test_macro_f1": float(metrics["macro_f1"]), "test_macro_f1_ci95": metrics["ci95"]["macro_f1"],
        "test_balanced_accuracy": float(metrics["balanced_accuracy"]),
        "test_f1_per_class": {c: float(v["f1"]) for c, v in metrics["per_class"].items()},
        "train_seconds": result.card.get("train_seconds_this_session"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def summarise(records: list[dict]) -> dict:
    """Mean, sample standard deviation and range of the test macro-F1 over a recipe's finished seeds."""
    f1 = np.array([r["test_macro_f1"] for r in records])
    bal = np.array([r["test_balanced_accuracy"] for r in records])
    return {"seeds": [r["seed"] for r in records], "n": int(len(f1)),
            "test_macro_f1_mean": float(f1.mean()), "test_macro_f1_sd": float(f1.std(ddof=1)) if len(f1) > 1 else None,
            "test_macro_f1_min": float(f1.min()), "test_macro_f1_max": float(f1.max()),
            "test_balanced_accuracy_mean": float(bal.mean())}


def result_path(smoke: bool = False) -> Path:
    return RESULTS / ("recipe_seeds_smoke.json" if smoke else "recipe_seeds.json")


def recorded_runs(smoke: bool = False) -> dict[str, list[dict]]:
    """The runs that the committed result file holds, by recipe (none for smoke runs, whose folder is all)."""
    path = result_path(smoke)
    return {} if smoke or not path.is_file() else json.loads(path.read_text()).get("runs", {})


def finished_runs(smoke: bool = False) -> dict[str, dict[int, dict]]:
    """Every finished run, by recipe in the order of RECIPES, then by seed.

    The runs come from the folder and, for full runs, from the result file already written: the artifacts
    folder is not kept with the checkout, so a queue restarted in a fresh clone (where only the committed result
    file holds the earlier runs) adds its runs to them instead of dropping them, and does not train them again.
    A run in the folder replaces the recorded run of the same recipe and seed."""
    recorded = recorded_runs(smoke)
    finished = {}
    for recipe in RECIPES:
        by_seed = {r["seed"]: r for r in recorded.get(recipe, [])}
        by_seed.update((r["seed"], r) for r in (json.loads(p.read_text())
                                                for p in seeds_dir(smoke).glob(f"{recipe}-seed*.json")))
        if by_seed:
            finished[recipe] = by_seed
    return finished


def merge(smoke: bool = False) -> Path:
    """Every finished run (:func:`finished_runs`), by recipe and seed, with each recipe's summary."""
    RESULTS.mkdir(exist_ok=True)
    path = result_path(smoke)
    runs, summary = {}, {}
    for recipe, by_seed in finished_runs(smoke).items():
        runs[recipe] = [by_seed[s] for s in sorted(by_seed)]
        summary[recipe] = summarise(runs[recipe])
    result = {"summary": summary, "runs": runs, "machine": machine_info(),
              "note": "laptop profile's full budget (every training patient, 8 epochs, kept epoch by validation "
                      "macro-F1), random initialisation, the book's split; seeds change initial weights, "
                      "augmentation and batch order. train_seconds and seconds are the wall time of the run's "
                      "last process: a run resumed from its backup counts only that process, and one paused "
                      "(SIGSTOP) while make book or make test was timed counts the pause, so they are not "
                      "compute times"}
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, from: " + ", ".join(RECIPES))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated integers")
    parser.add_argument("--one", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)  # one run, this process
    parser.add_argument("--smoke", action="store_true", help="quick profile, 1 epoch, one recipe, one seed")
    args = parser.parse_args(argv)
    folder = seeds_dir(args.smoke)
    folder.mkdir(parents=True, exist_ok=True)
    if args.one:
        recipe, seed = args.one[0], int(args.one[1])
        record = run_one(recipe, seed, args.smoke)
        (folder / f"{run_name(recipe, seed)}.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
        return
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = set(names) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(sorted(unknown))}; choose from {', '.join(RECIPES)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if args.smoke:
        names, seeds = names[:1], seeds[:1]
    # seed-major: after any number of finished runs, the recipes have about as many seeds each
    from liverlib.config import load_config

    size = load_config("laptop").image_size  # a recipe with larger inputs costs more per image: it runs last
    costly = {n for n in names if RECIPES[n].get("image_size", size) > size}
    order = [(n, s) for s in seeds for n in names if n not in costly] + [(n, s) for s in seeds for n in names
                                                                         if n in costly]
    finished = finished_runs(args.smoke)
    for name, seed in order:
        if seed in finished.get(name, {}):
            print(f"{run_name(name, seed)}: done already", flush=True)
            continue
        cmd = [sys.executable, "-m", "benchmarks.recipe_seeds", "--one", name, str(seed)] + ["--smoke"] * args.smoke
        code = subprocess.call(cmd)
        print(f"{run_name(name, seed)}: exit {code}", flush=True)
        merge(args.smoke)
    merge(args.smoke)  # also when every run was done already (a run finished by an earlier, stopped queue)


if __name__ == "__main__":
    main()
