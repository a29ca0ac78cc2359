"""Training with the paper's recipe, interrupt-safe and reproducible, into one run folder.

The recipe: sparse categorical cross-entropy; Adam (lr 1e-4, beta1 0.9, beta2 0.999); a piecewise constant
schedule that multiplies the learning rate by 0.1 every 20 epochs; batch 46; early stopping with
patience 10; the best model (lowest validation loss) checkpointed and kept. Class weights for the
imbalanced classes are an option (the paper's own future work), off by default.

A run folder holds::

    model.keras          the best model (load it with load_run: Keras safe mode)
    model_card.json      class names in output order, input size, window, profile, seed, data and split
                         hashes, versions, validation metrics: everything classify needs
    history.csv          one row per epoch
    curves.png           loss, accuracy and learning rate per epoch
    split.csv            the split this run used
    backup/              while training: the model and optimiser after the last completed epoch; removed at the end

A run killed at any moment (Ctrl-C, SIGTERM, power loss) continues from its last completed epoch with
``liverlib train ... --resume`` (or ``train(..., resume=True)``), losing at most the epoch in progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liverlib.config import CLASS_NAMES, RunConfig, estimate_training_seconds, format_duration, training_settings_key
from liverlib.data import data_key
from liverlib.environment import versions
from liverlib.errors import LiverlibError

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
HISTORY_FILE = "history.csv"
MONITOR = "val_loss"


@dataclass
class RunResult:
    run_dir: Path
    history: pd.DataFrame
    card: dict
    model: object  # keras.Model


def piecewise_lr(config: RunConfig):
    """epoch (from 0) -> learning rate: lr0 * factor ** (epoch // every)."""
    def schedule(epoch: int, lr: float | None = None) -> float:
        return float(config.learning_rate * config.lr_drop_factor ** (epoch // config.lr_drop_every))
    return schedule


def balanced_class_weights(labels: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> dict[int, float]:
    """n_samples / (n_classes * count): rare classes weigh more (scikit-learn's 'balanced')."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    return {k: float(len(labels) / (num_classes * c)) if c else 0.0 for k, c in enumerate(counts)}


def class_weights_for(config: RunConfig, labels: np.ndarray) -> dict[int, float] | None:
    """The loss weights a run under ``config`` uses for these training labels: balanced when the profile's
    ``class_weighting`` is on, else None (every class weighs 1, as in the paper)."""
    return balanced_class_weights(np.asarray(labels)) if config.class_weighting else None


def default_run_dir(config: RunConfig, manifest: pd.DataFrame) -> Path:
    """``runs/<profile>-<data key>-<settings key>-seed<seed>``: other data or other settings, another folder."""
    return (Path(config.artifacts_dir) / "runs" /
            f"{config.profile}-{data_key(manifest)[:10]}-{training_settings_key(config)[:8]}-seed{config.seed}")


def training_data(config: RunConfig, manifest: pd.DataFrame):
    """The training and validation rows of a split and their pipelines (augmented, shuffled training
    batches; plain validation batches), after seeding everything for a reproducible run."""
    from liverlib.preprocess import make_pipeline

    train_rows = manifest[manifest["split"] == "train"]
    val_rows = manifest[manifest["split"] == "val"]
    window = (config.window_level, config.window_width)
    make_deterministic(config.seed)
    train_ds = make_pipeline(train_rows["file"], train_rows["label"], config.image_size, config.batch_size, True,
                             config.augmentation, window, seed=config.seed)
    val_ds = make_pipeline(val_rows["file"], val_rows["label"], config.image_size, config.batch_size, False,
                           None, window, seed=config.seed)
    return train_rows, val_rows, train_ds, val_ds


def compile_for_training(model, config: RunConfig) -> None:
    """The paper's recipe: Adam (lr, beta_1, beta_2 from the config), sparse categorical cross-entropy,
    accuracy; XLA only if ``config.xla`` (slower on CPU, shared/FINDINGS.md); optimiser variables created
    eagerly. A model built under mixed precision (:func:`precision_policy`) gets Keras' loss scaling."""
    import keras

    optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=bool(config.xla))
    build_optimizer(model)
    build_compiled_metrics(model)


@contextlib.contextmanager
def precision_policy(config: RunConfig):
    """Keras' mixed_float16 policy while a model is built, if the config asks for mixed precision (GPU)."""
    import keras

    previous = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_compiled_metrics(model) -> None:
    """Create the compiled loss's and metrics' variables now, eagerly, on a dummy prediction.

    Keras creates them inside the first training step, and a ``tf.function`` that creates variables is
    traced twice. For ResNet-50 the second trace costs 15-20 s on this CPU, in every training process and
    every Hyperband trial. No forward pass is run; the metrics are reset afterwards.
    """
    import numpy as np

    classes = int(model.output_shape[-1])
    y_true = np.zeros((1,), "int32")
    y_pred = np.full((1, classes), 1.0 / classes, "float32")
    model.compute_loss(y=y_true, y_pred=y_pred)
    model.compute_metrics(None, y_true, y_pred, sample_weight=None)
    model.reset_metrics()


def build_optimizer(model) -> None:
    """Create the optimiser's slot variables now, eagerly: created inside the first traced training step they
    cost about 10 s of graph building for ResNet-50 on this CPU, eagerly about 1 s."""
    model.optimizer.build(model.trainable_variables)


def default_strategy():
    """MirroredStrategy over all GPUs when more than one is visible, else TensorFlow's default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def make_deterministic(seed: int) -> None:
    """Same seed, same run: seeds Python, NumPy and TensorFlow, and asks TensorFlow for deterministic ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def read_history(run_dir: Path) -> pd.DataFrame:
    """history.csv with one row per epoch (a re-run epoch after a resume keeps its last row)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    history = pd.read_csv(path)
    return history.drop_duplicates("epoch", keep="last").reset_index(drop=True)


def _save_atomically(model, path: Path) -> None:
    """Write the model to a temporary file and rename it into place: a kill at any moment leaves either the
    old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def latest_backup(run_dir: Path) -> tuple[Path, int] | None:
    """The newest complete end-of-epoch backup of an interrupted run, and its epoch (from 0)."""
    files = sorted((Path(run_dir) / "backup").glob("epoch-*.keras"))
    if not files:
        return None
    return files[-1], int(files[-1].stem.split("-")[1])


def _callbacks(config: RunConfig, run_dir: Path, history: pd.DataFrame):
    import keras

    best = float(history[MONITOR].min()) if len(history) and MONITOR in history else None

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """Early stopping that, after a resume, remembers the best epoch so far and how long ago it was."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:
                self.best = best
                self.wait = int(len(history) - 1 - history[MONITOR].idxmin())

    class Checkpoints(keras.callbacks.Callback):
        """At the end of every epoch: the best model so far (lowest validation loss) to model.keras, then a
        backup of the model with its optimiser state, both written atomically."""

        def __init__(self):
            super().__init__()
            self.best = np.inf if best is None else best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(MONITOR)
            if value is not None and value < self.best:
                self.best = value
                _save_atomically(self.model, run_dir / MODEL_FILE)
            backup = run_dir / "backup"
            backup.mkdir(exist_ok=True)
            _save_atomically(self.model, backup / f"epoch-{epoch:04d}.keras")
            for old in backup.glob("epoch-*.keras"):
                if old.name != f"epoch-{epoch:04d}.keras":
                    old.unlink(missing_ok=True)

    return [
        keras.callbacks.LearningRateScheduler(piecewise_lr(config)),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
        ResumableEarlyStopping(monitor=MONITOR, patience=config.early_stopping_patience, restore_best_weights=False),
        Checkpoints(),  # last: when it has saved epoch k, the history has epoch k too
    ]


def train(config: RunConfig, manifest: pd.DataFrame | None = None, run_dir: str | os.PathLike | None = None,
          *, resume: bool = True, overwrite: bool = False, weights: str | None = None, verbose: int | str = "auto",
          strategy=None) -> RunResult:
    """Train the modified ResNet-50 on the configuration's data and split; return the finished run.

    With ``resume`` (the default), a finished run in ``run_dir`` is loaded instead of retrained, and an
    interrupted one continues from its last completed epoch. Class weights follow ``config.class_weighting``.
    ``strategy``: a ``tf.distribute`` strategy
    (default: :func:`default_strategy`, MirroredStrategy when more than one GPU is visible).
    """
    import keras

    from liverlib.data import load_dataset
    from liverlib.model import build_modified_resnet50, set_trainable_stages
    from liverlib.splits import save_split, split_for

    if manifest is None:
        dataset = load_dataset(config=config)
        manifest = split_for(dataset, config)
    if not {"train", "val"} <= set(manifest["split"]):
        raise LiverlibError("training needs images in both the 'train' and the 'val' split; the dataset is too "
                            "small to split (add images or use a larger phantom)")
    run_dir = Path(run_dir) if run_dir else default_run_dir(config, manifest)
    if run_dir.exists() and any(run_dir.iterdir()):
        if overwrite:
            shutil.rmtree(run_dir)
        elif not resume:
            raise LiverlibError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to "
                                "start again")
        elif (run_dir / CARD_FILE).is_file() and not (run_dir / "backup").exists():
            print(f"found a finished run in {run_dir}; loading it (delete the folder, or pass overwrite, to retrain)")
            return load_run(run_dir, with_history=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    split_sha = save_split(manifest, run_dir / "split.csv")

    train_rows, val_rows, train_ds, val_ds = training_data(config, manifest)
    strategy = strategy or default_strategy()
    with strategy.scope():  # model and optimiser variables live on the strategy's devices
        backup = latest_backup(run_dir)
        started_file = run_dir / "run_started.json"
        if backup is not None:  # an interrupted run: its model and optimiser state after the last full epoch
            model = keras.saving.load_model(backup[0], safe_mode=True)
            started = json.loads(started_file.read_text()) if started_file.is_file() else {}
            model.weights_source = started.get("weights", "unknown")
            done = backup[1] + 1
            print(f"resuming {run_dir.name}: {done} of {config.epochs} epochs done")
        else:
            with precision_policy(config):
                model = build_modified_resnet50(len(CLASS_NAMES), config.image_size, config.dense_units,
                                                config.dropout, weights)
            done = 0
            started_file.write_text(json.dumps({"weights": model.weights_source}) + "\n")
        # the history keeps exactly the epochs the model has seen: a row of an epoch cut short goes
        history = read_history(run_dir)
        if done == 0:
            (run_dir / HISTORY_FILE).unlink(missing_ok=True)
        elif len(history) and (history["epoch"] >= done).any():
            history[history["epoch"] < done].to_csv(run_dir / HISTORY_FILE, index=False)
        cw = class_weights_for(config, train_rows["label"].to_numpy())
        seconds = estimate_training_seconds(config.replace(epochs=max(config.epochs - done, 0)), len(train_rows))
        print(f"training on {len(train_rows)} images, validating on {len(val_rows)}, {config.epochs} epochs at "
              f"{config.image_size} px; estimated time on a 2-core CPU: {format_duration(seconds)} "
              f"(plus about a minute to build the graph); weights: {model.weights_source}")
        if cw:
            print("class weights: " + ", ".join(f"{CLASS_NAMES[k]} {w:.2f}" for k, w in cw.items()))
        start = time.perf_counter()
        # phases: (first epoch, last epoch, trainable stages); head-only first when fine-tuning is configured
        warm = min(config.head_only_epochs, config.epochs)
        phases = ([(0, warm, ("head",))] if warm > 0 else []) + [(warm, config.epochs, config.fine_tune_stages)]
        for first, end, stages in phases:
            if done >= end:
                continue
            # a model resumed in the middle of this phase keeps its trainable flags and optimiser state
            if not (backup is not None and done > first):
                set_trainable_stages(model, stages)
                compile_for_training(model, config)
            if len(phases) > 1:
                print(f"epochs {done + 1}-{end}: training {', '.join(stages)}")
            model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=done, class_weight=cw, shuffle=False,
                      callbacks=_callbacks(config, run_dir, read_history(run_dir)), verbose=verbose)
            done = len(read_history(run_dir))  # fewer than `end` when early stopping ended the phase
        elapsed = time.perf_counter() - start
    shutil.rmtree(run_dir / "backup", ignore_errors=True)

    best = keras.saving.load_model(run_dir / MODEL_FILE, safe_mode=True)
    history = read_history(run_dir)
    metrics = validation_metrics(best, val_ds, val_rows["label"].to_numpy())
    card = model_card(config, manifest, history, metrics, model.weights_source, cw, split_sha,
                      train_seconds=round(elapsed, 1))
    (run_dir / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
    plot_curves(history, config, run_dir / "curves.png")
    return RunResult(run_dir=run_dir, history=history, card=card, model=best)


def model_card(config: RunConfig, manifest: pd.DataFrame, history: pd.DataFrame, metrics: dict, weights: str,
               class_weights: dict | None, split_sha: str, **extra) -> dict:
    """The model card of a run: everything needed to apply the model correctly and to trace where it came from."""
    synthetic = bool(manifest["synthetic"].all()) if "synthetic" in manifest else config.data_dir is None
    return {
        "class_names": list(CLASS_NAMES), "input_size": config.image_size,
        "window": {"level": config.window_level, "width": config.window_width},
        "preprocessing": "decode (DICOM: HU, then window) -> grey -> resize (bilinear) -> 3 channels -> /255",
        "profile": config.profile, "seed": config.seed, "settings_sha256": training_settings_key(config),
        "epochs_run": int(len(history)),
        "best_epoch": int(history[MONITOR].idxmin()) if len(history) and MONITOR in history else None,
        "data_manifest_sha256": data_key(manifest), "split_sha256": split_sha,
        "data": str(config.data_dir or config.phantom_dir), "synthetic_data": synthetic,
        "weights": weights, "class_weights": class_weights,
        "train_images": int((manifest["split"] == "train").sum()), "val_images": int((manifest["split"] == "val").sum()),
        "train_seconds_this_session": extra.pop("train_seconds", None), "versions": versions(),
        "config": {k: v for k, v in config.__dict__.items() if k not in ("data_dir", "artifacts_dir", "augmentation")},
        "augmentation": config.augmentation.__dict__, "metrics": metrics,
        "intended_use": "teaching; not a medical device, not for diagnosis", **extra,
    }


def validation_metrics(model, val_ds, labels: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    probs = model.predict(val_ds, verbose=0)
    pred = probs.argmax(axis=1)
    return {"val_accuracy": float(accuracy_score(labels, pred)),
            "val_balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
            "val_macro_f1": float(f1_score(labels, pred, average="macro", labels=range(len(CLASS_NAMES)),
                                           zero_division=0))}


def plot_curves(history: pd.DataFrame, config: RunConfig, path: Path | None = None):
    """Loss, accuracy and learning rate per epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    epochs = history["epoch"] + 1 if len(history) else []
    for ax, key, title in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        if len(history):
            ax.plot(epochs, history[key], "o-", label="training")
            ax.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    schedule = piecewise_lr(config)
    all_epochs = np.arange(config.epochs)
    axes[2].step(all_epochs + 1, [schedule(e) for e in all_epochs], where="post")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].set_title(f"schedule: x{config.lr_drop_factor:g} every {config.lr_drop_every} epochs")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


def latest_run(config: RunConfig, same_settings: bool = True) -> Path | None:
    """The newest finished run of the configuration's profile under its artifacts folder, if there is one.

    With ``same_settings`` (the default), only a run trained under this configuration's training settings
    counts (see :func:`liverlib.config.training_settings_key`): after a profile changes, its old runs are not
    taken for new ones.
    """
    runs = [p for p in (config.artifacts_dir / "runs").glob(f"{config.profile}-*") if (p / CARD_FILE).is_file()]
    if same_settings:
        key = training_settings_key(config)
        runs = [p for p in runs if _card_settings_key(p) == key]
    return max(runs, key=lambda p: (p / CARD_FILE).stat().st_mtime) if runs else None


def _card_settings_key(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / CARD_FILE).read_text()).get("settings_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def trained_run(config: RunConfig) -> Path:
    """A finished run for the profile: the newest one there is, or a new one trained with its defaults."""
    return latest_run(config) or train(config).run_dir


def load_run(run_dir: str | os.PathLike, with_history: bool = False) -> RunResult:
    """A finished run: its model (loaded in Keras safe mode) and model card."""
    import keras

    run_dir = Path(run_dir)
    card_path, model_path = run_dir / CARD_FILE, run_dir / MODEL_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise LiverlibError(f"{run_dir} is not a finished training run (no {CARD_FILE} or {MODEL_FILE}); "
                            "train one with `liverlib train`")
    card = json.loads(card_path.read_text())
    missing = {"class_names", "input_size", "window"} - set(card)
    if missing:
        raise LiverlibError(f"{card_path} lacks {', '.join(sorted(missing))}; the model cannot be applied safely")
    try:
        model = keras.saving.load_model(model_path, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise LiverlibError(f"{model_path} needs unsafe deserialisation (it contains arbitrary code, such as a "
                                "Lambda layer); refusing to load it") from None
        raise LiverlibError(f"{model_path} could not be loaded: {exc}") from None
    return RunResult(run_dir=run_dir, history=read_history(run_dir) if with_history else pd.DataFrame(),
                     card=card, model=model)
