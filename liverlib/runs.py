"""The run folder: the one place that knows its file names and how each file is written and read.

A training run (:mod:`liverlib.train`) or a finished search (:mod:`liverlib.tuning`) leaves a folder::

    model.keras          the best model (read it with load_run: Keras safe mode)
    model_card.json      class names in output order (and which one is normal), input size, window, profile,
                         seed, data and split hashes, versions, validation metrics: everything classify needs
    history.csv          one row per epoch
    curves.png           loss, accuracy and learning rate per epoch
    split.csv            the split this run used
    backup/              while training: the model and optimiser after the last completed epoch; removed at the end

Everything that reads a run (classify, evaluation, LiteRT, the widget) reads it through this module, so
none of them needs the training code.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import pandas as pd

from liverlib.classes import normal_class
from liverlib.config import CHECKPOINT_METRICS, RunConfig, training_settings, training_settings_key
from liverlib.errors import LiverlibError

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
HISTORY_FILE = "history.csv"
SPLIT_FILE = "split.csv"
CURVES_FILE = "curves.png"
BACKUP_DIR = "backup"
CARD_SCHEMA_VERSION = 3  # 1: before schema_version existed; 2: added it; 3: added crop and input_normalisation
# what a card of an older version means for the keys added since (read_card fills them in)
# the whole slice, /255: the paper's input; and ResNet-50, the backbone of every run before the card named it
CARD_DEFAULTS = {"crop": "none", "input_normalisation": "unit", "backbone": "ResNet-50"}
CARD_REQUIRED = ("class_names", "input_size", "window")  # what classify needs to apply the model

T = TypeVar("T")


@dataclass
class RunResult:
    run_dir: Path
    history: pd.DataFrame
    card: dict
    model: object  # keras.Model


# ------------------------------------------------------------------------------------------------ the card

def write_card(run_dir: str | os.PathLike, card: dict) -> Path:
    """Write ``model_card.json`` atomically, stamped with the current ``schema_version``."""
    path = Path(run_dir) / CARD_FILE
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"schema_version": CARD_SCHEMA_VERSION, **card}, indent=2, default=str) + "\n")
    os.replace(partial, path)
    return path


def read_card(run_dir: str | os.PathLike) -> dict:
    """A run's model card, checked for what is needed to apply the model.

    A card without ``schema_version`` was written before it existed and is read as version 1; keys added
    since (:data:`CARD_DEFAULTS`) get the values that older runs were trained with. A card without
    ``normal_class`` (written before datasets could have other classes than the paper's four) gets the class
    named ``normal``, if it has one.
    """
    path = Path(run_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except ValueError as exc:
        raise LiverlibError(f"{path} is not valid JSON ({exc}); retrain the run or restore the file") from None
    if not isinstance(card, dict):
        raise LiverlibError(f"{path} holds a {type(card).__name__}, not a model card; retrain the run")
    version = card.get("schema_version", 1)
    if not isinstance(version, int) or version > CARD_SCHEMA_VERSION:
        raise LiverlibError(f"{path} has schema_version {version!r}, newer than this liverlib reads "
                            f"({CARD_SCHEMA_VERSION}); update liverlib to use this run")
    missing = set(CARD_REQUIRED) - set(card)
    if missing:
        raise LiverlibError(f"{path} lacks {', '.join(sorted(missing))}; the model cannot be applied safely")
    card = {**CARD_DEFAULTS, **card}
    if "normal_class" not in card:
        card["normal_class"] = normal_class(card["class_names"])
    return card


STARTED_FILE = "run_started.json"


def started_record(config: RunConfig, class_names, weights_source: str) -> dict:
    """What a run folder records when its training starts (``run_started.json``): the weights it started from,
    the kept-epoch rule and the training settings with their key, which an interrupted run must resume under."""
    return {"weights": weights_source, "checkpoint_metric": config.checkpoint_metric,
            "settings_sha256": training_settings_key(config, class_names=class_names),
            "settings": training_settings(config, class_names=class_names, every=True)}


def check_resume(run_dir: Path, started: dict, config: RunConfig, class_names) -> None:
    """Refuse to continue an interrupted run under other settings than it started with (``started``: its
    ``run_started.json``; a folder from before the settings were recorded is not checked), naming each
    setting that differs and what to do."""
    kept_by = started.get("checkpoint_metric", "val_loss")
    if kept_by != config.checkpoint_metric:  # the resumed model is compiled with the first run's metrics
        raise LiverlibError(f"{run_dir.name} was started keeping the epoch by {kept_by}, not "
                            f"{config.checkpoint_metric}; resume it with --keep-epoch-by {kept_by}, or pass "
                            "--overwrite to start again")
    key = training_settings_key(config, class_names=class_names)
    if started.get("settings_sha256") not in (None, key):
        now, then = training_settings(config, class_names=class_names, every=True), started.get("settings") or {}
        differ = [f"{k} {then.get(k)!r} (now {now.get(k)!r})" for k in sorted(set(now) | set(then))
                  if now.get(k) != then.get(k)]
        raise LiverlibError(f"{run_dir.name} was started under other training settings: "
                            f"{'; '.join(differ) or 'see its run_started.json'}. Resume it with the options it "
                            "was started with, or pass --overwrite to start again")


def card_settings_key(run_dir: Path) -> str | None:
    """The training settings key recorded in a run's card (None if the card is unreadable)."""
    try:
        return json.loads((Path(run_dir) / CARD_FILE).read_text()).get("settings_sha256")
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------- history, backups, models

def best_epoch(history: pd.DataFrame, metric: str = "val_loss") -> int | None:
    """The row (0-based epoch) of the history whose ``metric`` is best: the lowest loss, or the highest macro-F1
    with ties (a short run often scores the same macro-F1 for several epochs) going to the lower validation
    loss; the first of any remaining ties. None when the history is empty or lacks the column."""
    if not len(history) or metric not in history or history[metric].isna().all():
        return None
    if CHECKPOINT_METRICS[metric] == "min":
        return int(history[metric].idxmin())
    tied = history[history[metric] == history[metric].max()]
    return int(tied["val_loss"].idxmin()) if "val_loss" in tied and tied["val_loss"].notna().any() else int(tied.index[0])


def read_history(run_dir: str | os.PathLike) -> pd.DataFrame:
    """history.csv with one row per epoch (a re-run epoch after a resume keeps its last row)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    history = pd.read_csv(path)
    return history.drop_duplicates("epoch", keep="last").reset_index(drop=True)


def backup_file(run_dir: str | os.PathLike, epoch: int) -> Path:
    """Where the end-of-epoch backup of ``epoch`` (from 0) goes."""
    return Path(run_dir) / BACKUP_DIR / f"epoch-{epoch:04d}.keras"


def latest_backup(run_dir: str | os.PathLike) -> tuple[Path, int] | None:
    """The newest complete end-of-epoch backup of an interrupted run, and its epoch (from 0)."""
    files = sorted((Path(run_dir) / BACKUP_DIR).glob("epoch-*.keras"))
    if not files:
        return None
    return files[-1], int(files[-1].stem.split("-")[1])


def save_model_atomically(model, path: str | os.PathLike) -> None:
    """Write the model to a temporary file and rename it into place: a kill at any moment leaves either the
    old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


@functools.cache
def macro_f1_metric():
    """Keras' macro-averaged F1 of arg-max predictions, for integer labels or one-hot (label smoothing) ones, as
    training compiles it when a run keeps the epoch with the highest validation macro-F1. Defined here and
    registered with Keras because a model file saved during training names it: every reader of model files
    must know it."""
    import keras  # local: heavy dependency

    @keras.saving.register_keras_serializable(package="liverlib", name="SparseMacroF1")
    class SparseMacroF1(keras.metrics.F1Score):
        """F1Score(average="macro") over one-hot labels and one-hot arg-max predictions (one class per slice,
        as :func:`liverlib.metrics.scores` counts it, even when probabilities tie)."""

        def __init__(self, num_classes: int, name: str = "macro_f1", dtype=None):
            super().__init__(average="macro", threshold=None, name=name, dtype=dtype)
            self.num_classes = int(num_classes)

        def update_state(self, y_true, y_pred, sample_weight=None):
            ops, k = keras.ops, self.num_classes
            if len(y_true.shape) < 2 or y_true.shape[-1] != k:  # integer labels
                y_true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), k)
            y_pred = ops.one_hot(ops.argmax(y_pred, axis=-1), k)
            super().update_state(y_true, y_pred, sample_weight)

        def get_config(self):
            return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}

    return SparseMacroF1


def load_model(path: str | os.PathLike):
    """A Keras model file, in safe mode: a model that needs arbitrary code (a Lambda layer) is refused."""
    import keras  # local: heavy dependency (TensorFlow), not needed to read cards and histories

    macro_f1_metric()  # registered before a file that names it is read
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise LiverlibError(f"{path} needs unsafe deserialisation (it contains arbitrary code, such as a "
                                "Lambda layer); refusing to load it") from None
        raise LiverlibError(f"{path} could not be loaded: {exc}") from None


def load_run(run_dir: str | os.PathLike, with_history: bool = False) -> RunResult:
    """A finished run: its model (loaded in Keras safe mode) and model card."""
    run_dir = Path(run_dir)
    if not (run_dir / CARD_FILE).is_file() or not (run_dir / MODEL_FILE).is_file():
        raise LiverlibError(f"{run_dir} is not a finished training run (no {CARD_FILE} or {MODEL_FILE}); "
                            "train one with `liverlib train`")
    card = read_card(run_dir)
    model = load_model(run_dir / MODEL_FILE)
    return RunResult(run_dir=run_dir, history=read_history(run_dir) if with_history else pd.DataFrame(),
                     card=card, model=model)


# ------------------------------------------------------------------------------------------- finding runs

def latest_run(config: RunConfig, same_settings: bool = True, class_names=None) -> Path | None:
    """The newest finished run of the configuration's profile under its artifacts folder, if there is one.

    With ``same_settings`` (the default), only a run trained under this configuration's training settings
    counts (see :func:`liverlib.config.training_settings_key`): after a profile changes, its old runs are not
    taken for new ones. ``class_names``: the classes of a dataset other than the paper's four.
    """
    runs = [p for p in (config.artifacts_dir / "runs").glob(f"{config.profile}-*") if (p / CARD_FILE).is_file()]
    if same_settings:
        key = training_settings_key(config, class_names=class_names)
        runs = [p for p in runs if card_settings_key(p) == key]
    return max(runs, key=lambda p: (p / CARD_FILE).stat().st_mtime) if runs else None


# ----------------------------------------------------------------------------------- loaded once, kept

_cache: dict[tuple[str, Callable], tuple[tuple[int, int], object]] = {}
CACHE_PER_BUILD = 4  # run folders kept per kind of object: a ResNet-50 holds about 100 MB


def cached(run_dir: str | os.PathLike, build: Callable[[Path], T]) -> T:
    """``build(run_dir)`` made once per run folder and kept while the folder's model file is unchanged.

    ``cached(run, load_run)`` is the loaded run that evaluation and classify share;
    ``cached(run, Classifier)`` is classify's ready classifier. A retrained model (another modification
    time or size of ``model.keras``) is built again; a failed build is not kept; beyond
    :data:`CACHE_PER_BUILD` folders, the least recently built one is let go.
    """
    path = Path(run_dir).expanduser().resolve()
    try:
        stat = (path / MODEL_FILE).stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (-1, -1)  # build (load_run) gives the clear error
    key = (str(path), build)
    hit = _cache.get(key)
    if hit is None or hit[0] != stamp:
        _cache.pop(key, None)
        _cache[key] = (stamp, build(path))
        same_build = [k for k in _cache if k[1] is build]
        for old in same_build[:-CACHE_PER_BUILD]:
            del _cache[old]
    return _cache[key][1]
