"""Hyperband tuning as the paper did it (keras-tuner), resumable, on one machine or many.

The paper's search space: dense units {128, 256, 512}, dropout 0.3-0.7, learning-rate decay factor
0.1-0.5; Hyperband with factor 3; objective: validation accuracy (macro-F1 as an option); early
stopping inside trials. Its reported best: 256 units, dropout 0.5, decay 0.1.

The decay factor multiplies the learning rate every ``drop_every`` epochs. The paper drops every 20 of
80 epochs; a search with fewer epochs drops at the same fraction of its ``max_epochs`` (a quarter), so
the factor matters in every profile.

Re-running the same search continues it (keras-tuner reloads its project folder); ``overwrite`` starts
anew. keras-tuner's distributed mode works unchanged: set ``KERASTUNER_TUNER_ID`` (``chief`` for the
oracle, ``tuner0``, ``tuner1``, ... for workers), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``
in each process, or use ``liverlib tune --chief`` / ``--worker ID``. After the search, the best trial's
checkpoint becomes a normal run folder (model and model card), so evaluation and the widget use it like
any other model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liverlib.classes import class_names_of
from liverlib.backbone import resnet_depth
from liverlib.config import CLASS_NAMES, RunConfig, training_settings_key
from liverlib.data import data_key, load_dataset
from liverlib.errors import LiverlibError
from liverlib.runs import CARD_FILE, MODEL_FILE, SPLIT_FILE, write_card
from liverlib.schedule import piecewise_lr
from liverlib.splits import save_split, split_for
from liverlib.train import (class_weights_for, compile_for_training, model_card, precision_policy, resolve_weights,
                            training_data, validation_metrics)
from liverlib.weights import normalisation_for

PAPER_BEST = {"dense_units": 256, "dropout": 0.5, "lr_drop_factor": 0.1}
SEARCH_SPACE = {"dense_units": [128, 256, 512], "dropout": (0.3, 0.7, 0.1), "lr_drop_factor": (0.1, 0.5, 0.1)}
OBJECTIVES = ("val_accuracy", "val_macro_f1")
TRIAL_LOG = "trials-by-process.jsonl"
DISTRIBUTED_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def drop_every(config: RunConfig) -> int:
    """Epochs between learning-rate drops during the search: a quarter of max_epochs, as 20 of the paper's 80."""
    return max(1, round(config.tuner_max_epochs / 4))


def _hypermodel_class():
    import keras  # local: heavy dependency
    import keras_tuner

    from liverlib.model import build_modified_resnet50  # local: imports Keras

    class LiverHyperModel(keras_tuner.HyperModel):
        """The modified ResNet-50 with the paper's search space; fit adds the trial's LR schedule."""

        def __init__(self, config: RunConfig, objective: str = "val_accuracy", log=None):
            super().__init__(name=f"modified_resnet{resnet_depth(config.backbone_blocks)}")
            self.config, self.objective, self.log = config, objective, log
            self.steps_per_epoch = 1  # set by tune() from the training subset, for a step-wise schedule
            self.class_names = list(CLASS_NAMES)  # set by tune() from the dataset: one output per class

        def build(self, hp):
            units = hp.Choice("dense_units", SEARCH_SPACE["dense_units"])
            dropout = hp.Float("dropout", *SEARCH_SPACE["dropout"][:2], step=SEARCH_SPACE["dropout"][2])
            hp.Float("lr_drop_factor", *SEARCH_SPACE["lr_drop_factor"][:2], step=SEARCH_SPACE["lr_drop_factor"][2])
            with precision_policy(self.config):
                model = build_modified_resnet50(len(self.class_names), self.config.image_size, units, dropout,
                                                self.config.weights, self.config.bn_momentum,
                                                self.config.backbone_blocks)
            # the macro-F1 objective is a compiled metric: Keras logs it as val_macro_f1 for the tuner
            compile_for_training(model, self.config, self.steps_per_epoch, macro_f1=self.objective == "val_macro_f1")
            return model

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            trial = self.config.replace(lr_drop_factor=hp.get("lr_drop_factor"), lr_drop_every=drop_every(self.config))
            per_epoch_rate = ([keras.callbacks.LearningRateScheduler(piecewise_lr(trial))]
                              if trial.lr_schedule == "piecewise" else [])
            callbacks = list(callbacks or []) + per_epoch_rate + [
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.config.early_stopping_patience),
            ]
            history = model.fit(*args, callbacks=callbacks, **kwargs)
            if self.log is not None:  # which process trained what: shows how trials were shared out
                # written once the trial has trained, so a trial cut short by a kill is not counted; the resumed
                # search trains it again and logs it then
                with open(self.log, "a") as f:
                    f.write(json.dumps({"tuner": os.environ.get("KERASTUNER_TUNER_ID", "single"), "pid": os.getpid(),
                                        "hyperparameters": hp.values}) + "\n")
            return history

    return LiverHyperModel


def make_hypermodel(config: RunConfig, objective: str = "val_accuracy", log=None):
    """The hypermodel (a keras_tuner.HyperModel) for a configuration; ``log``: a file to append each trial to."""
    return _hypermodel_class()(config, objective, log)


def search_subset(manifest: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The split with only ``fraction`` of each class's training groups (patients) kept in 'train'; the others
    are marked 'unused'. Validation and test are untouched."""
    if not 0 < fraction <= 1:
        raise LiverlibError(f"the search's training fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return manifest
    rng = np.random.default_rng(seed)
    train = manifest[manifest["split"] == "train"]
    keep = set()
    for _, rows in train.groupby("class"):
        groups = rows["group"].unique()
        keep.update(rng.choice(groups, size=max(1, round(fraction * len(groups))), replace=False))
    dropped = (manifest["split"] == "train") & ~manifest["group"].isin(keep)
    return manifest.assign(split=manifest["split"].mask(dropped, "unused"))


@dataclass
class TuneResult:
    project_dir: Path
    trials: pd.DataFrame  # one row per trial: its hyperparameters, epochs, score, status
    best: dict  # the best hyperparameters
    run_dir: Path | None  # the best trial as a run folder (None on workers)


def default_project_dir(config: RunConfig, manifest: pd.DataFrame, objective: str) -> Path:
    """``tuning/<profile>-<data key>-<settings key>-seed<seed>-<objective>``: a search under other settings
    (image size, budget, class set...) starts its own project rather than continuing this one."""
    key = training_settings_key(config, tuning=True, class_names=class_names_of(manifest))[:8]
    return config.artifacts_dir / "tuning" / f"{config.profile}-{data_key(manifest)[:10]}-{key}-seed{config.seed}-{objective}"


def tune(config: RunConfig, manifest: pd.DataFrame | None = None, project_dir: str | os.PathLike | None = None, *,
         objective: str = "val_accuracy", overwrite: bool = False, verbose: int = 2) -> TuneResult:
    """Run (or continue) the Hyperband search; on the chief or a single machine, write the best run folder."""
    import keras_tuner  # local: heavy dependency

    if objective not in OBJECTIVES:
        raise LiverlibError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    config = resolve_weights(config)  # every trial starts from the weights the profile can really have
    if manifest is None:
        manifest = split_for(load_dataset(config=config), config)
    project_dir = Path(project_dir) if project_dir else default_project_dir(config, manifest, objective)
    role = os.environ.get("KERASTUNER_TUNER_ID", "")
    if overwrite and role in ("", "chief"):
        shutil.rmtree(project_dir, ignore_errors=True)
    project_dir.mkdir(parents=True, exist_ok=True)
    train_rows, val_rows, train_ds, val_ds = training_data(config, search_subset(manifest, config.tuner_train_fraction,
                                                                                config.seed),
                                                           normalisation_for(config.weights))
    # the profile's class weighting (or, in training_data, its balanced sampling) applies to every trial
    class_names = class_names_of(manifest)
    class_weights = class_weights_for(config, train_rows["label"].to_numpy(), len(class_names))
    hypermodel = make_hypermodel(config, objective, project_dir / TRIAL_LOG)
    hypermodel.class_names = class_names
    hypermodel.steps_per_epoch = -(-len(train_rows) // config.batch_size)
    tuner = keras_tuner.Hyperband(
        hypermodel,
        objective=keras_tuner.Objective(objective, direction="max"), max_epochs=config.tuner_max_epochs,
        factor=config.hyperband_factor, seed=config.seed, directory=str(project_dir.parent),
        project_name=project_dir.name, overwrite=False)
    with warnings.catch_warnings():
        # keras-tuner passes shuffle=True, which a tf.data pipeline (already shuffled) ignores
        warnings.filterwarnings("ignore", message=".*shuffle=True.* was passed")
        tuner.search(train_ds, validation_data=val_ds, class_weight=class_weights, verbose=verbose)
    if role not in ("", "chief"):  # a worker: the chief writes the results
        return TuneResult(project_dir=project_dir, trials=pd.DataFrame(), best={}, run_dir=None)
    trials = trials_table(tuner.oracle)
    best_hp = tuner.get_best_hyperparameters(1)[0].values
    run_dir = _write_best_run(tuner, config, manifest, val_ds, val_rows, project_dir, best_hp, objective, class_weights)
    return TuneResult(project_dir=project_dir, trials=trials, best=dict(best_hp), run_dir=run_dir)


def trials_table(oracle) -> pd.DataFrame:
    """Every trial: its hyperparameters, the epochs it trained, its score and status, best first."""
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append({"trial": trial.trial_id, "dense_units": values.get("dense_units"),
                     "dropout": round(values.get("dropout", np.nan), 2),
                     "lr_drop_factor": round(values.get("lr_drop_factor", np.nan), 2),
                     "epochs": values.get("tuner/epochs"), "from trial": values.get("tuner/trial_id"),
                     "bracket": values.get("tuner/bracket"), "score": trial.score, "status": str(trial.status)})
    table = pd.DataFrame(rows)
    return table.sort_values("score", ascending=False, na_position="last").reset_index(drop=True) if len(table) else table


def _write_best_run(tuner, config, manifest, val_ds, val_rows, project_dir, best_hp, objective,
                    class_weights=None) -> Path:
    """The best trial's checkpoint as a run folder with its model card (written once)."""

    run_dir = project_dir / "best-run"
    if (run_dir / CARD_FILE).is_file():
        return run_dir
    tmp = project_dir / "best-run.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with warnings.catch_warnings():  # the trial checkpoint holds weights only, no optimiser state: expected
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(1)[0]
    model.save(tmp / MODEL_FILE)
    split_sha = save_split(manifest, tmp / SPLIT_FILE)
    best_config = config.replace(dense_units=int(best_hp["dense_units"]), dropout=float(best_hp["dropout"]),
                                 lr_drop_factor=float(best_hp["lr_drop_factor"]))
    metrics = validation_metrics(model, val_ds, val_rows["label"].to_numpy(), class_names_of(manifest))
    source = getattr(model, "weights_source", None) or ("imagenet (keras resnet50 notop)" if config.weights == "imagenet"
                                                         else "random initialisation")
    card = model_card(best_config, manifest, pd.DataFrame(), metrics, source, class_weights, split_sha,
                      input_normalisation=normalisation_for(config.weights),
                      tuning={"objective": objective,
                              "hyperparameters": {k: round(best_hp[k], 4) if isinstance(best_hp[k], float) else best_hp[k]
                                                  for k in PAPER_BEST},
                              "epochs": best_hp.get("tuner/epochs"), "project": str(project_dir)})
    write_card(tmp, card)
    tmp.rename(run_dir)
    return run_dir


def paper_comparison(best: dict) -> pd.DataFrame:
    """The paper's reported best configuration beside ours."""
    return pd.DataFrame({"paper (reported)": PAPER_BEST,
                         "this search": {k: best.get(k) for k in PAPER_BEST}})


HYPERBAND_ROUNDINGS = ("li2018", "keras-tuner")


def hyperband_brackets(max_epochs: int, factor: int = 3, rounding: str = "li2018") -> pd.DataFrame:
    """Hyperband's schedule for a budget of ``max_epochs`` epochs per configuration (R) and a ``factor`` (eta):
    one row per bracket and round of successive halving.

    With ``rounding="li2018"`` (Li et al., 2018, Algorithm 1): s_max = floor(log_eta R), B = (s_max + 1) R;
    bracket s (from s_max down to 0) starts n = ceil(B / R * eta^s / (s + 1)) configurations with
    r = R eta^-s epochs each, and round i keeps n_i = floor(n eta^-i) of them for r_i = r eta^i epochs.
    ``rounding="keras-tuner"`` rounds as keras-tuner's Hyperband oracle does (what ``tune`` runs): as many
    brackets, n_i = ceil(ceil(1 + log_eta R) / (s + 1) * eta^(s - i)) and r_i = ceil(R eta^(i - s)).

    Columns: ``bracket`` (s), ``round`` (i), ``configurations`` (n_i), ``epochs`` (r_i, per configuration),
    ``epochs_total`` (n_i r_i: the round's cost when every configuration trains from scratch, as the paper
    counts it) and ``epochs_new`` (n_i (r_i - r_{i-1}): the cost when survivors continue from their
    checkpoint, as keras-tuner's trials do).
    """
    if rounding not in HYPERBAND_ROUNDINGS:
        raise LiverlibError(f"rounding must be one of {', '.join(HYPERBAND_ROUNDINGS)}, got {rounding!r}")
    if int(max_epochs) != max_epochs or max_epochs < 1:
        raise LiverlibError(f"max_epochs must be a whole number of epochs, at least 1; got {max_epochs!r}")
    if int(factor) != factor or factor < 2:
        raise LiverlibError(f"Hyperband's factor must be a whole number of at least 2, got {factor!r}")
    R, eta = int(max_epochs), int(factor)
    s_max = 0
    while eta ** (s_max + 1) <= R:  # floor(log_eta R), without floating-point error at exact powers
        s_max += 1
    rows = []
    for s in range(s_max, -1, -1):
        if rounding == "li2018":
            n = -(-(s_max + 1) * eta ** s // (s + 1))  # ceil(B / R * eta^s / (s + 1)) with B = (s_max + 1) R
            sizes = [n // eta ** i for i in range(s + 1)]
            epochs = [R * eta ** (i - s) for i in range(s + 1)]
            epochs = [int(r) if float(r).is_integer() else float(r) for r in epochs]
        else:  # keras_tuner.tuners.hyperband.HyperbandOracle._get_size and _get_epochs, term for term
            end_size = math.ceil(1 + math.log(R, eta)) / (s + 1)
            sizes = [math.ceil(end_size * eta ** (s - i)) for i in range(s + 1)]
            epochs = [math.ceil(R / eta ** (s - i)) for i in range(s + 1)]
        previous = 0
        for i, (n_i, r_i) in enumerate(zip(sizes, epochs)):
            rows.append({"bracket": s, "round": i, "configurations": n_i, "epochs": r_i,
                         "epochs_total": n_i * r_i, "epochs_new": n_i * (r_i - previous)})
            previous = r_i
    return pd.DataFrame(rows)


def plot_scores(trials: pd.DataFrame, objective: str = "score"):
    """Score against each hyperparameter, one point per trial (size: epochs trained)."""
    import matplotlib.pyplot as plt  # local: heavy dependency

    done = trials.dropna(subset=["score"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    for ax, key in zip(axes, PAPER_BEST):
        ax.scatter(done[key], done["score"], s=20 + 30 * done["epochs"].fillna(1), alpha=0.7)
        ax.axvline(PAPER_BEST[key], color="k", ls=":", lw=1, label="paper's best")
        ax.set_xlabel(key)
    axes[0].set_ylabel(objective)
    axes[0].legend(fontsize=8)
    fig.suptitle("Hyperband trials (marker size: epochs trained)")
    fig.tight_layout()
    return fig
