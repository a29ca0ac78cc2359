"""How far can the phantom's slices be classified at all? The ceiling the laptop ResNet-50 is judged against.

The laptop profile trains a ResNet-50 from random weights for a few epochs. When it falls short of a target,
two causes are possible: the data (at this input size and crop the classes are not separable much better)
or the budget (more epochs, or a network that learns faster from little data, would do better). This
script trains the small CNN of :mod:`liverlib.baselines` *to convergence* (up to ``--epochs`` epochs, early
stopping on the validation macro-F1 with ``--patience``, the best epoch's weights kept) on the same inputs as
the laptop run: the default phantom, the book's patient-grouped 70/15/15 split, the liver-region crop, at
each input size asked for. Test macro-F1 comes with its patient-level 95% bootstrap interval, per-class F1
and the macro-F1 on the training slices (how well the network fits what it saw).

Each input is trained with several seeds (initial weights and batch order): one seed's ceiling moves with the
order of its batches, as much as some of the levers it is compared with.

    python -m benchmarks.phantom_ceiling [--sizes 64,128] [--crops liver,none] [--seeds 0,1,2] [--epochs 60]
                                         [--patience 8]

Writes benchmarks/results/phantom_ceiling.json: one run per input and seed (``liver-64px-seed0``, ...), merged
with the runs already measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import RESULTS, machine_info, write_result


def measure(size: int, crop: str, epochs: int, patience: int, seeds: list[int], smoke: bool = False):
    """Yield one record per seed for the small CNN trained to convergence on one input (size and crop)."""
    from sklearn.metrics import f1_score

    from benchmarks.liver_crop import load_cropped
    from liverlib.baselines import small_cnn_converged
    from liverlib.classes import class_names_of
    from liverlib.config import load_config
    from liverlib.data import load_dataset
    from liverlib.evaluate import bootstrap_ci
    from liverlib.splits import split_for

    config = load_config("quick" if smoke else "laptop")
    dataset = load_dataset(config=config)
    manifest = split_for(dataset, config).reset_index(drop=True)
    class_names = class_names_of(manifest)
    labels = manifest["label"].to_numpy()
    part = {name: np.flatnonzero(manifest["split"].to_numpy() == name) for name in ("train", "val", "test")}
    start = time.perf_counter()
    images, _, fallbacks = load_cropped(Path("/"), manifest["file"], size, crop)  # the manifest's paths are absolute
    load_s = time.perf_counter() - start
    k = len(class_names)
    fit_on = np.concatenate([part["train"], part["test"]])  # predictions for the training slices and the test
    y_test = labels[part["test"]]
    for seed in seeds:
        start = time.perf_counter()
        probs, best_epoch = small_cnn_converged(images, labels, part["train"], fit_on, part["val"], patience,
                                                seed=seed, epochs=epochs)
        train_probs, test_probs = probs[:len(part["train"])], probs[len(part["train"]):]
        per_class = f1_score(y_test, test_probs.argmax(1), average=None, labels=range(k), zero_division=0)
        ci = bootstrap_ci(y_test, test_probs, class_names, groups=manifest["group"].to_numpy()[part["test"]],
                          n_boot=1000)
        yield {
            "stopping": "validation macro-F1", "profile": config.profile, "input_size": size, "crop": crop,
            "seed": seed, "crop_fallbacks": fallbacks,
            "test_macro_f1": float(per_class.mean()), "test_macro_f1_ci95": ci.get("macro_f1"),
            "test_f1_per_class": dict(zip(class_names, map(float, per_class))),
            "train_macro_f1": float(f1_score(labels[part["train"]], train_probs.argmax(1), average="macro",
                                             labels=range(k), zero_division=0)),
            "best_epoch": best_epoch, "max_epochs": epochs, "patience": patience,
            "images": {name: int(len(idx)) for name, idx in part.items()},
            "load_seconds": round(load_s, 1), "train_seconds": round(time.perf_counter() - start, 1),
        }


def run_name(record: dict) -> str:
    """``liver-64px-seed0``: a run's key in the result file (a record without a seed is the small CNN's default,
    0)."""
    return f"{record['crop']}-{record['input_size']}px-seed{record.get('seed', 0)}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--crops", default="liver", help="comma-separated: liver, body, none")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated integers")
    parser.add_argument("--smoke", action="store_true", help="quick profile, 2 epochs, 32 px: checks it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.crops, args.epochs, args.patience, args.seeds = "32", "liver", 2, 1, "0"
    seeds = [int(s) for s in args.seeds.split(",")]
    name = "phantom_ceiling_smoke" if args.smoke else "phantom_ceiling"
    path = RESULTS / f"{name}.json"
    result = json.loads(path.read_text()) if path.is_file() and not args.smoke else {}
    runs = {run_name(record): record for record in result.get("runs", {}).values()}
    for size in (int(s) for s in args.sizes.split(",")):
        for crop in (c.strip() for c in args.crops.split(",")):
            for record in measure(size, crop, args.epochs, args.patience, seeds, args.smoke):
                runs[run_name(record)] = record
                print(json.dumps(record), flush=True)
                result = {"model": "small CNN (liverlib.baselines.small_cnn), trained to convergence",
                          "dataset": "synthetic phantom (default), the book's patient-grouped 70/15/15 split",
                          "runs": dict(sorted(runs.items())), "machine": machine_info()}
                write_result(name, result)  # after every run: a long measurement keeps what it finished
    return result


if __name__ == "__main__":
    main()
