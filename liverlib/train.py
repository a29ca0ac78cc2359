"""Training with the paper's recipe, interrupt-safe and reproducible, into one run folder.

The recipe: sparse categorical cross-entropy; Adam (lr 1e-4, beta1 0.9, beta2 0.999); a piecewise constant
schedule that multiplies the learning rate by 0.1 every 20 epochs; batch 46; early stopping with
patience 10; the best model (lowest validation loss) checkpointed and kept. Class weights for the
imbalanced classes are an option (the paper's own future work), off by default. The laptop and quick profiles
keep the epoch with the highest validation macro-F1 instead (``RunConfig.checkpoint_metric``).

The run folder it writes (model, model card, history, split, backups) is described, written and read by
:mod:`liverlib.runs`.

A run killed at any moment (Ctrl-C, SIGTERM, power loss) continues from its last completed epoch with
``liverlib train ... --resume`` (or ``train(..., resume=True)``), losing at most the epoch in progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from liverlib.classes import class_names_of, normal_class
from liverlib.backbone import backbone_name
from liverlib.config import CHECKPOINT_METRICS, RunConfig, estimate_training_seconds, format_duration, training_settings_key
from liverlib.data import data_key, load_dataset
from liverlib.environment import versions
from liverlib.errors import LiverlibError
from liverlib.metrics import scores
from liverlib.preprocess import make_pipeline
from liverlib.runs import (BACKUP_DIR, CARD_FILE, CURVES_FILE, HISTORY_FILE, MODEL_FILE, SPLIT_FILE, STARTED_FILE,
                           RunResult, backup_file, best_epoch, check_resume, latest_backup, latest_run, load_model,
                           load_run, macro_f1_metric, read_history, save_model_atomically, started_record, write_card)
from liverlib.plots import plot_curves
from liverlib.schedule import keras_learning_rate, piecewise_lr
from liverlib.splits import save_split, split_for
from liverlib.weights import normalisation_for


def balanced_class_weights(labels: np.ndarray, num_classes: int | None = None) -> dict[int, float]:
    """n_samples / (n_classes * count): rare classes weigh more (scikit-learn's 'balanced'). ``num_classes``:
    the model's outputs (default: one past the largest label); a class without examples weighs 0."""
    labels = np.asarray(labels, dtype=int)
    num_classes = num_classes if num_classes is not None else int(labels.max()) + 1 if len(labels) else 0
    counts = np.bincount(labels, minlength=num_classes)
    return {k: float(len(labels) / (num_classes * c)) if c else 0.0 for k, c in enumerate(counts)}


def class_weights_for(config: RunConfig, labels: np.ndarray, num_classes: int | None = None) -> dict[int, float] | None:
    """The loss weights a run under ``config`` uses for these training labels: balanced when the profile's
    ``class_weighting`` is on, else None (every class weighs 1, as in the paper)."""
    return balanced_class_weights(np.asarray(labels), num_classes) if config.class_weighting else None


def balanced_rows(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The training rows resampled so that each class present is drawn equally often: ``len(rows) // k`` rows
    per class, with replacement (a rare class repeats, the common one is subsampled), the same for a seed."""
    labels = rows["label"].to_numpy()
    present = np.unique(labels)
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == k), len(rows) // len(present), replace=True) for k in present]
    return rows.iloc[rng.permutation(np.concatenate(picks))]


def default_run_dir(config: RunConfig, manifest: pd.DataFrame) -> Path:
    """``runs/<profile>-<data key>-<settings key>-seed<seed>``: other data, other settings or another class set,
    another folder."""
    key = training_settings_key(config, class_names=class_names_of(manifest))
    return Path(config.artifacts_dir) / "runs" / f"{config.profile}-{data_key(manifest)[:10]}-{key[:8]}-seed{config.seed}"


def labelled(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest with each row's ``label`` its class's position among the manifest's classes (sorted: the
    model's output order, :mod:`liverlib.classes`); at least two classes are needed to train."""
    names = class_names_of(manifest)
    if len(names) < 2:
        raise LiverlibError(f"training needs images of at least two classes; the data has only "
                            f"{', '.join(names) or 'none'} (one folder per class)")
    return manifest.assign(label=manifest["class"].map({c: i for i, c in enumerate(names)}).astype(int))


def training_data(config: RunConfig, manifest: pd.DataFrame, normalisation: str = "unit"):
    """The training and validation rows of a split and their pipelines (augmented, shuffled training
    batches, each class drawn equally often with ``balanced_sampling``; plain validation batches), after
    seeding everything for a reproducible run. Images are cropped as ``config.crop`` says and normalised as the
    weights expect (``normalisation``); with label smoothing the labels are one-hot (one column per class of
    the manifest), as the smoothed loss needs."""
    num_classes = len(class_names_of(manifest))
    train_rows = manifest[manifest["split"] == "train"]
    if config.balanced_sampling:
        train_rows = balanced_rows(train_rows, config.seed)
    val_rows = manifest[manifest["split"] == "val"]
    window = (config.window_level, config.window_width)
    make_deterministic(config.seed)
    pipelines = [make_pipeline(rows["file"], rows["label"], config.image_size, config.batch_size, training,
                               config.augmentation if training else None, window, seed=config.seed, crop=config.crop,
                               normalisation=normalisation)
                 for rows, training in ((train_rows, True), (val_rows, False))]
    if config.label_smoothing:
        import tensorflow as tf  # local: heavy dependency

        pipelines = [ds.map(lambda x, y: (x, tf.one_hot(y, num_classes))) for ds in pipelines]
    return train_rows, val_rows, pipelines[0], pipelines[1]


def resolve_weights(config: RunConfig, weights: str | None = None) -> RunConfig:
    """The configuration with the weights it will really start from: ``weights`` (a CLI override) or the
    profile's; ImageNet weights are fetched now (:mod:`liverlib.weights`) and become None (random
    initialisation) when they cannot be had, so a random-init run and an ImageNet run never share a run
    folder (the weights are part of the settings key)."""
    request = weights if weights is not None else config.weights
    if request is not None:  # the config refuses weights its backbone cannot take: here, before any download
        config.replace(weights=str(request))
    if request == "imagenet":
        from liverlib.weights import fetch_imagenet_weights  # local: only when ImageNet weights are asked for

        request = "imagenet" if fetch_imagenet_weights() is not None else None
    return config.replace(weights=str(request) if request is not None else None)


def compile_for_training(model, config: RunConfig, steps_per_epoch: int = 1, macro_f1: bool = False) -> None:
    """The paper's recipe: Adam (lr, beta_1, beta_2 from the config), sparse categorical cross-entropy,
    accuracy; XLA only if ``config.xla`` (a GPU option, off by default); optimiser variables created
    eagerly. A model built under mixed precision (:func:`precision_policy`) gets Keras' loss scaling.
    The config's ``lr_schedule`` (:mod:`liverlib.schedule`) and ``label_smoothing`` (cross-entropy against
    one-hot labels mixed with the uniform distribution) apply. Macro-F1 is a compiled metric (logged as
    ``macro_f1`` and ``val_macro_f1``) when the config keeps the epoch by it, or with ``macro_f1``."""
    import keras  # local: heavy dependency

    optimizer = keras.optimizers.Adam(keras_learning_rate(config, steps_per_epoch), beta_1=config.beta_1,
                                      beta_2=config.beta_2)
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing) if config.label_smoothing
            else "sparse_categorical_crossentropy")
    metrics = ["accuracy"]
    if macro_f1 or config.checkpoint_metric == "val_macro_f1":
        metrics.append(macro_f1_metric()(int(model.output_shape[-1])))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=bool(config.xla))
    build_optimizer(model)
    build_compiled_metrics(model)


@contextlib.contextmanager
def precision_policy(config: RunConfig):
    """Keras' mixed_float16 policy while a model is built, if the config asks for mixed precision (GPU)."""
    import keras  # local: heavy dependency

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
    classes = int(model.output_shape[-1])
    sparse = isinstance(model.loss, str)  # else label smoothing's CategoricalCrossentropy: one-hot labels
    y_true = np.zeros((1,), "int32") if sparse else np.eye(classes, dtype="float32")[:1]
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
    import tensorflow as tf  # local: heavy dependency

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def make_deterministic(seed: int) -> None:
    """Same seed, same run: seeds Python, NumPy and TensorFlow, and asks TensorFlow for deterministic ops."""
    import keras  # local: heavy dependency
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _callbacks(config: RunConfig, run_dir: Path, history: pd.DataFrame):
    import keras  # local: heavy dependency

    monitor, mode = config.checkpoint_metric, CHECKPOINT_METRICS[config.checkpoint_metric]
    kept = best_epoch(history, monitor)
    best = float(history[monitor].iloc[kept]) if kept is not None else None

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """Early stopping that, after a resume, remembers the best epoch so far and how long ago it was."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:  # patience counts from the first epoch that reached the best value, as in
                self.best = best      # an uninterrupted run (Keras resets it only on a strict improvement)
                first = history[monitor].idxmin() if mode == "min" else history[monitor].idxmax()
                self.wait = int(len(history) - 1 - first)

    class Checkpoints(keras.callbacks.Callback):
        """At the end of every epoch: the model to model.keras if this epoch is the run's best so far (the
        history's, by :func:`liverlib.runs.best_epoch`: the same rule as the model card), then a backup of the
        model with its optimiser state, both written atomically."""

        def on_epoch_end(self, epoch, logs=None):
            so_far = read_history(run_dir)  # CSVLogger, before this callback, has written this epoch's row
            if len(so_far) and best_epoch(so_far, monitor) == len(so_far) - 1:
                save_model_atomically(self.model, run_dir / MODEL_FILE)
            current = backup_file(run_dir, epoch)
            current.parent.mkdir(exist_ok=True)
            save_model_atomically(self.model, current)
            for old in current.parent.glob("epoch-*.keras"):
                if old.name != current.name:
                    old.unlink(missing_ok=True)

    per_epoch_rate = [keras.callbacks.LearningRateScheduler(piecewise_lr(config))] if config.lr_schedule == "piecewise" else []
    return per_epoch_rate + [
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
        ResumableEarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping_patience,
                               restore_best_weights=False),
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
    from liverlib.model import build_modified_resnet50, set_trainable_stages  # local: heavy dependency (Keras)

    config = resolve_weights(config, weights)
    if manifest is None:
        dataset = load_dataset(config=config)
        manifest = split_for(dataset, config)
    if not {"train", "val"} <= set(manifest["split"]):
        raise LiverlibError("training needs images in both the 'train' and the 'val' split; the dataset is too "
                            "small to split (add images or use a larger phantom)")
    manifest = labelled(manifest)
    class_names = class_names_of(manifest)
    run_dir = Path(run_dir) if run_dir else default_run_dir(config, manifest)
    if run_dir.exists() and any(run_dir.iterdir()):
        if overwrite:
            shutil.rmtree(run_dir)
        elif not resume:
            raise LiverlibError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to "
                                "start again")
        elif (run_dir / CARD_FILE).is_file() and not (run_dir / BACKUP_DIR).exists():
            print(f"found a finished run in {run_dir.name}; loading it (delete the folder, or pass overwrite, to "
                  "retrain)")
            return load_run(run_dir, with_history=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    split_sha = save_split(manifest, run_dir / SPLIT_FILE)

    backup = latest_backup(run_dir)
    started_file = run_dir / STARTED_FILE
    if backup is not None:  # an interrupted run resumes under its own settings only: checked before anything
        started = json.loads(started_file.read_text()) if started_file.is_file() else {}  # is seeded or loaded
        check_resume(run_dir, started, config, class_names)
    strategy = strategy or default_strategy()
    make_deterministic(config.seed)  # the initial weights too
    with strategy.scope():  # model and optimiser variables live on the strategy's devices
        if backup is not None:  # its model and optimiser state after the last full epoch
            model = load_model(backup[0])
            model.weights_source = started.get("weights", "unknown")
            done = backup[1] + 1
            print(f"resuming {run_dir.name}: {done} of {config.epochs} epochs done")
        else:
            with precision_policy(config):
                model = build_modified_resnet50(len(class_names), config.image_size, config.dense_units,
                                                config.dropout, config.weights, config.bn_momentum,
                                                config.backbone_blocks)
            done = 0
            started_file.write_text(json.dumps(started_record(config, class_names, model.weights_source)) + "\n")
        normalisation = normalisation_for(model.weights_source)
        train_rows, val_rows, train_ds, val_ds = training_data(config, manifest, normalisation)
        steps_per_epoch = -(-len(train_rows) // config.batch_size)
        # the history keeps exactly the epochs the model has seen: a row of an epoch cut short goes
        history = read_history(run_dir)
        if done == 0:
            (run_dir / HISTORY_FILE).unlink(missing_ok=True)
        elif len(history) and (history["epoch"] >= done).any():
            history[history["epoch"] < done].to_csv(run_dir / HISTORY_FILE, index=False)
        cw = class_weights_for(config, train_rows["label"].to_numpy(), len(class_names))
        seconds = estimate_training_seconds(config.replace(epochs=max(config.epochs - done, 0)), len(train_rows))
        print(f"training on {len(train_rows)} images, validating on {len(val_rows)}, {config.epochs} epochs at "
              f"{config.image_size} px ({backbone_name(config.backbone_blocks)}); estimated time on a 2-core CPU: "
              f"{format_duration(seconds)} (plus about a minute to build the graph); weights: {model.weights_source}; "
              f"{len(class_names)} classes: {', '.join(class_names)}")
        if cw:
            print("class weights: " + ", ".join(f"{class_names[k]} {w:.2f}" for k, w in cw.items()))
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
                compile_for_training(model, config, steps_per_epoch)
            if len(phases) > 1:
                print(f"epochs {done + 1}-{end}: training {', '.join(stages)}")
            model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=done, class_weight=cw, shuffle=False,
                      callbacks=_callbacks(config, run_dir, read_history(run_dir)), verbose=verbose)
            done = len(read_history(run_dir))  # fewer than `end` when early stopping ended the phase
        elapsed = time.perf_counter() - start

    history = read_history(run_dir)
    # the kept model: the one in memory when the history's last epoch is the kept one (the model in memory is
    # always at the last epoch of the history, resumed or not, and model.keras holds the same weights); else
    # model.keras
    last_kept = len(history) > 0 and best_epoch(history, config.checkpoint_metric) == len(history) - 1
    best = model if last_kept else load_model(run_dir / MODEL_FILE)
    metrics = validation_metrics(best, val_ds, val_rows["label"].to_numpy(), class_names)
    card = model_card(config, manifest, history, metrics, model.weights_source, cw, split_sha,
                      train_seconds=round(elapsed, 1), input_normalisation=normalisation)
    write_card(run_dir, card)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)  # after the card: a run stopped before it resumes
    plot_curves(history, config, run_dir / CURVES_FILE)
    return RunResult(run_dir=run_dir, history=history, card=card, model=best)


def model_card(config: RunConfig, manifest: pd.DataFrame, history: pd.DataFrame, metrics: dict, weights: str,
               class_weights: dict | None, split_sha: str, **extra) -> dict:
    """The model card of a run: everything needed to apply the model correctly and to trace where it came from."""
    synthetic = bool(manifest["synthetic"].all()) if "synthetic" in manifest else config.data_dir is None
    normalisation = extra.pop("input_normalisation", "unit")
    class_names = class_names_of(manifest)
    return {
        # the classes in output order, and the one that means 'no disease' (None if the data has none)
        "class_names": class_names, "normal_class": normal_class(class_names), "input_size": config.image_size,
        "window": {"level": config.window_level, "width": config.window_width},
        "crop": config.crop, "input_normalisation": normalisation,
        "preprocessing": (f"decode (DICOM: HU, then window) -> grey -> crop ({config.crop}) -> resize (bilinear) -> "
                          f"3 channels -> normalise ({normalisation})"),
        "profile": config.profile, "seed": config.seed,
        "backbone": backbone_name(config.backbone_blocks),  # ResNet-50 except the quick profile's test model
        "settings_sha256": training_settings_key(config, class_names=class_names),
        "epochs_run": int(len(history)),
        "best_epoch": best_epoch(history, config.checkpoint_metric),
        "data_manifest_sha256": data_key(manifest), "split_sha256": split_sha,
        "data": str(config.data_dir or config.phantom_dir), "synthetic_data": synthetic,
        "weights": weights, "class_weights": class_weights,
        "train_images": int((manifest["split"] == "train").sum()), "val_images": int((manifest["split"] == "val").sum()),
        "train_seconds_this_session": extra.pop("train_seconds", None), "versions": versions(),
        "config": {k: v for k, v in config.__dict__.items() if k not in ("data_dir", "artifacts_dir", "augmentation")},
        "augmentation": config.augmentation.__dict__, "metrics": metrics,
        "intended_use": "teaching; not a medical device, not for diagnosis", **extra,
    }


def validation_metrics(model, val_ds, labels: np.ndarray, class_names=None) -> dict:
    """The model card's validation figures: accuracy, balanced accuracy and macro-F1 (see :func:`scores`),
    over the run's classes (default: one per model output)."""
    probs = model.predict(val_ds, verbose=0)
    found = scores(labels, probs, list(class_names) if class_names else [str(k) for k in range(probs.shape[-1])])
    return {f"val_{key}": found[key] for key in ("accuracy", "balanced_accuracy", "macro_f1")}


def trained_run(config: RunConfig) -> Path:
    """A finished run for the profile: the newest one there is, or a new one trained with its defaults."""
    return latest_run(config) or train(config).run_dir
