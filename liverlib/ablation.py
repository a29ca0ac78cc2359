"""The recipe ablation's results as tables: which training lever moved the laptop ResNet-50, and by how much.

``benchmarks/recipe_ablation.py`` trains one recipe at a time on a reduced budget (a share of the training
patients, every validation and test slice, a few epochs) and merges its records into
``benchmarks/results/recipe_ablation.json``::

    {"recipes": {"baseline": {"settings": {"crop": "none", "bn_momentum": 0.99, ...}, "epochs": 6,
                              "best_epoch": 5, "test_macro_f1": ..., "test_macro_f1_ci95": [low, high],
                              "test_balanced_accuracy": ..., "seconds": ...,
                              "history": [{"epoch": 1, "val_predicted_share": {"benign": 1.0, ...}}, ...]},
                 "crop": {...}, ...},
     "note": "reduced budget: ... ranks the levers, not the final figure"}

:func:`ablation_table` gives one row per recipe, with its *lever*: what it changes against the closest
recipe before it (the earlier recipe that differs in the fewest settings, the latest one on a tie), so
``bn-momentum-0.9`` reads "batch-norm momentum 0.99 -> 0.9" against ``crop``. :func:`predicted_shares` gives
the share of validation slices given to each class after every epoch: the "all benign" symptom.
The file may hold only some recipes while the benchmark runs; both functions read what is there.

:func:`ceiling_table` reads ``benchmarks/results/phantom_ceiling.json`` (``benchmarks/phantom_ceiling.py``):
the small CNN trained to convergence on the laptop run's inputs, several seeds each, the phantom's own ceiling
at each input size and crop, so a short run's score can be read as "limited by the data" or "limited by the
budget".

:func:`before_after` reads ``benchmarks/results/before_after.json``: the laptop run before and after the recipe
changes, scored as chapter 07 scores the book's run (test scores, pointing game, sensitivity by lesion size).

:func:`seeds_table` reads ``benchmarks/results/recipe_seeds.json`` (``benchmarks/recipe_seeds.py``): the leading
recipes at the laptop profile's full budget with several seeds, so a lever can be told from the luck of one seed.

Light: no TensorFlow; pandas on use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from liverlib.errors import LiverlibError

SETTING_NAMES = {"crop": "crop", "image_size": "input size", "bn_momentum": "batch-norm momentum",
                 "schedule": "learning-rate schedule", "sampling": "sampling", "label_smoothing": "label smoothing",
                 "weights": "initial weights", "lr_schedule": "learning-rate schedule",
                 "learning_rate": "(peak) learning rate", "checkpoint_metric": "epoch kept by",
                 "class_weighting": "class weights", "balanced_sampling": "balanced sampling"}
COLUMNS = ("compared with", "lever", "test macro-F1", "CI low", "CI high", "balanced accuracy", "best epoch",
           "epochs", "seconds")


def default_path(name: str = "recipe_ablation.json") -> Path | None:
    """The result file ``name`` in the benchmark results (:func:`liverlib.facts.results_dir`), or None."""
    from liverlib.facts import results_dir

    folder = results_dir()
    return folder / name if folder is not None else None


def _interval(record: dict) -> tuple:
    """(low, high) of a record's ``test_macro_f1_ci95``, (None, None) when it has none."""
    return tuple((list(record.get("test_macro_f1_ci95") or []) + [None, None])[:2])


def read_recipes(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The finished recipes of an ablation result file, by name, in the order the benchmark ran them."""
    path = Path(path) if path is not None else default_path()
    if path is None or not path.is_file():
        raise LiverlibError("no recipe ablation results (benchmarks/results/recipe_ablation.json); run "
                            "`python -m benchmarks.recipe_ablation` in a source checkout")
    try:
        found = json.loads(path.read_text())
    except ValueError as exc:
        raise LiverlibError(f"{path.name} is not valid JSON ({exc}); rerun the ablation") from None
    recipes = found.get("recipes") if isinstance(found, dict) else None
    if not isinstance(recipes, dict):
        raise LiverlibError(f"{path.name} has no 'recipes' object")
    return recipes


def _show(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def changes(settings: dict, before: dict) -> list[str]:
    """What ``settings`` changes against ``before``: ``["crop none -> liver", ...]``, in the order of the keys."""
    keys = list(before) + [k for k in settings if k not in before]
    return [f"{SETTING_NAMES.get(k, k)} {_show(before.get(k))} -> {_show(settings.get(k))}"
            for k in keys if settings.get(k) != before.get(k)]


def closest_earlier(names: list[str], recipes: dict[str, dict], index: int) -> str | None:
    """The recipe before ``names[index]`` that differs from it in the fewest settings (the latest on a tie)."""
    here = recipes[names[index]].get("settings", {})
    best, fewest = None, None
    for name in names[:index]:
        n = len(changes(here, recipes[name].get("settings", {})))
        if fewest is None or n <= fewest:
            best, fewest = name, n
    return best


def ablation_table(path: str | os.PathLike | None = None):
    """One row per finished recipe: the recipe it is compared with and its lever (what it changes), the test
    macro-F1 with its patient-level 95% interval (``CI low``, ``CI high``), balanced accuracy, the best epoch
    (lowest validation loss) of the epochs run, and the wall time in seconds."""
    import pandas as pd  # local: heavy dependency

    recipes = read_recipes(path)
    names = list(recipes)
    rows = []
    for i, name in enumerate(names):
        record = recipes[name]
        parent = closest_earlier(names, recipes, i)
        lever = ("the starting point" if parent is None
                 else "; ".join(changes(record.get("settings", {}), recipes[parent].get("settings", {}))) or "nothing")
        if record.get("peak_learning_rate") is not None and "learning-rate schedule" in lever:
            lever += f" (peak rate {record['peak_learning_rate']:.1e} from a range test)"
        low, high = _interval(record)
        rows.append({"recipe": name, "compared with": parent or "", "lever": lever,
                     "test macro-F1": record.get("test_macro_f1"), "CI low": low, "CI high": high,
                     "balanced accuracy": record.get("test_balanced_accuracy"), "best epoch": record.get("best_epoch"),
                     "epochs": record.get("epochs"), "seconds": record.get("seconds")})
    return pd.DataFrame(rows, columns=("recipe", *COLUMNS)).set_index("recipe")


def predicted_shares(recipe: str, path: str | os.PathLike | None = None):
    """Per epoch (index, from 1), the share of validation slices the recipe's model gave to each class
    (columns): a row of 1.0 under one class is a model that answers that class for every slice."""
    import pandas as pd  # local: heavy dependency

    recipes = read_recipes(path)
    if recipe not in recipes:
        raise LiverlibError(f"no recipe {recipe!r} in the ablation results; they hold {', '.join(recipes) or 'none'}")
    history = recipes[recipe].get("history") or []
    table = pd.DataFrame([h.get("val_predicted_share", {}) for h in history],
                         index=pd.Index([h.get("epoch") for h in history], name="epoch"))
    return table.fillna(0.0)


def _benchmark_runs(path, file_name: str, benchmark: str, what: str, kind: str) -> dict:
    """The non-empty ``runs`` of a benchmark's result file (``path``, else ``file_name`` in the results), or a
    clear error: the file missing (``no {what}``), not such a result (``not {kind}``), or without runs."""
    path = Path(path) if path is not None else default_path(file_name)
    rerun = f"`python -m benchmarks.{benchmark}`"
    if path is None or not path.is_file():
        raise LiverlibError(f"no {what} (benchmarks/results/{file_name}); run {rerun} in a source checkout")
    try:
        runs = json.loads(path.read_text()).get("runs")
    except (ValueError, AttributeError) as exc:
        raise LiverlibError(f"{path.name} is not {kind} ({exc}); rerun {rerun}") from None
    if not isinstance(runs, dict) or not runs:
        raise LiverlibError(f"{path.name} holds no runs; rerun {rerun}")
    return runs


CEILING_COLUMNS = ("input", "seed", "profile", "crop", "input size", "test macro-F1", "CI low", "CI high",
                   "train macro-F1", "best epoch", "max epochs", "seconds")


def ceiling_table(path: str | os.PathLike | None = None):
    """One row per run of the ceiling benchmark (``liver-64px-seed0``, ...): its input (``liver-64px``: crop and
    size) and seed, the small CNN's test macro-F1 with its patient-level 95% interval, its macro-F1 on the
    training slices, the epoch kept (highest validation macro-F1) of the most allowed, and the training time in
    seconds. A run recorded without a seed is the small CNN's default seed, 0."""
    import pandas as pd  # local: heavy dependency

    runs = _benchmark_runs(path, "phantom_ceiling.json", "phantom_ceiling", "ceiling results", "a ceiling result")
    rows = []
    for name, run in runs.items():
        low, high = _interval(run)
        rows.append({"run": name, "input": f"{run.get('crop')}-{run.get('input_size')}px", "seed": run.get("seed", 0),
                     "profile": run.get("profile", "laptop"), "crop": run.get("crop"),
                     "input size": run.get("input_size"),
                     "test macro-F1": run.get("test_macro_f1"), "CI low": low, "CI high": high,
                     "train macro-F1": run.get("train_macro_f1"), "best epoch": run.get("best_epoch"),
                     "max epochs": run.get("max_epochs"), "seconds": run.get("train_seconds")})
    return pd.DataFrame(rows, columns=("run", *CEILING_COLUMNS)).set_index("run")


def _seed_runs_by_recipe(path) -> dict:
    """The runs of ``recipe_seeds.json`` by recipe (``benchmarks/recipe_seeds.py``), or a clear error."""
    return _benchmark_runs(path, "recipe_seeds.json", "recipe_seeds", "results of the recipes with several seeds",
                           "a result of benchmarks.recipe_seeds")


SEEDS_COLUMNS = ("seeds", "test macro-F1 mean", "sd", "min", "max", "balanced accuracy mean", "per seed")


def seeds_table(path: str | os.PathLike | None = None):
    """One row per recipe of ``benchmarks/results/recipe_seeds.json`` (``benchmarks/recipe_seeds.py``: the leading
    recipes at the laptop profile's full budget, several seeds each): how many seeds have finished, the mean,
    sample standard deviation, lowest and highest test macro-F1 over them, the mean balanced accuracy, and each
    seed's figure. The file may hold only some runs while the benchmark runs."""
    import pandas as pd  # local: heavy dependency

    runs = _seed_runs_by_recipe(path)
    rows = []
    for recipe, records in runs.items():
        f1 = pd.Series([r.get("test_macro_f1") for r in records], dtype=float)
        balanced = pd.Series([r.get("test_balanced_accuracy") for r in records], dtype=float)
        rows.append({"recipe": recipe, "seeds": len(records), "test macro-F1 mean": f1.mean(),
                     "sd": f1.std(ddof=1) if len(f1) > 1 else None, "min": f1.min(), "max": f1.max(),
                     "balanced accuracy mean": balanced.mean(),
                     "per seed": ", ".join(f"{r.get('seed')}: {r.get('test_macro_f1'):.2f}" for r in records)})
    return pd.DataFrame(rows, columns=("recipe", *SEEDS_COLUMNS)).set_index("recipe")


SEED_RUN_COLUMNS = ("recipe", "seed", "test macro-F1", "CI low", "CI high", "balanced accuracy", "kept epoch")


def seed_runs(path: str | os.PathLike | None = None):
    """Every run of ``benchmarks/results/recipe_seeds.json``, one row each (recipe, seed), with its test macro-F1,
    the patient-level 95% interval around it, its balanced accuracy and the epoch it kept: the long form of
    :func:`seeds_table`, for plotting each seed beside the others."""
    import pandas as pd  # local: heavy dependency

    runs = _seed_runs_by_recipe(path)
    rows = [(recipe, r.get("seed"), r.get("test_macro_f1"), *_interval(r), r.get("test_balanced_accuracy"),
             r.get("kept_epoch")) for recipe, records in runs.items() for r in records]
    return pd.DataFrame(rows, columns=SEED_RUN_COLUMNS)


def paired_seeds(recipe: str, baseline: str, path: str | os.PathLike | None = None):
    """``recipe`` against ``baseline`` seed by seed (``benchmarks/results/recipe_seeds.json``): one row per seed
    that both have finished, with each one's test macro-F1 and the difference (recipe minus baseline). A seed
    fixes the initial weights of both runs, so the pairs compare the two recipes from the same start. An
    unknown recipe is a clear error; no shared seed gives an empty table."""
    import pandas as pd  # local: heavy dependency

    runs = _seed_runs_by_recipe(path)
    for name in (recipe, baseline):
        if name not in runs:
            raise LiverlibError(f"no recipe {name!r} in the seeds results; there are: {', '.join(runs)}")
    scores = {name: {r.get("seed"): r.get("test_macro_f1") for r in runs[name]} for name in (recipe, baseline)}
    shared = [seed for seed in scores[baseline] if seed in scores[recipe]]
    table = pd.DataFrame({baseline: [scores[baseline][s] for s in shared], recipe: [scores[recipe][s] for s in shared]},
                         index=pd.Index(shared, name="seed"), dtype=float)
    table["difference"] = table[recipe] - table[baseline]
    return table


def before_after(path: str | os.PathLike | None = None):
    """``benchmarks/results/before_after.json`` (``benchmarks/before_after.py``) as two tables: per run (``before``,
    ``after``), the test scores, the class it answers most often on the test split with that answer's share, the
    pointing game and what its settings change against the first run's (``changes``); and per run and lesion-diameter bin, the lesion slices and
    the shares predicted abnormal and predicted as their true class (the layout of
    :func:`liverlib.lesion_size.sensitivity_by_lesion_size`, with the run in place of the class)."""
    import pandas as pd  # local: heavy dependency

    runs = _benchmark_runs(path, "before_after.json", "before_after", "before-and-after results",
                           "a result of benchmarks.before_after")
    scores, sizes = [], []
    first = next(iter(runs.values()), {}).get("settings") or {}
    for name, run in runs.items():
        low, high = _interval(run)
        game = run.get("pointing_game") or {}
        shares = run.get("test_predicted_share") or {}
        top = max(shares, key=shares.get) if shares else None
        scores.append({"run": name, "test macro-F1": run.get("test_macro_f1"), "CI low": low, "CI high": high,
                       "balanced accuracy": run.get("test_balanced_accuracy"), "kept epoch": run.get("kept_epoch"),
                       "most frequent answer": top, "its share": shares.get(top),
                       "lesion slices (Grad-CAM)": game.get("slices"), "pointing hit rate": game.get("hit_rate"),
                       "chance": game.get("chance"), "mass inside": game.get("mass_inside"),
                       "changes": "; ".join(changes(run.get("settings") or {}, first))})
        for row in run.get("by_lesion_size") or []:
            sizes.append({"class": name, "diameter": row.get("diameter"), "slices": row.get("slices"),
                          "predicted true class": row.get("predicted_true_class"),
                          "predicted abnormal": row.get("predicted_abnormal")})
    by_size = pd.DataFrame(sizes, columns=("class", "diameter", "slices", "predicted true class", "predicted abnormal"))
    return (pd.DataFrame(scores).set_index("run"),
            by_size.astype({"predicted true class": float, "predicted abnormal": float})
            .set_index(["class", "diameter"]))
