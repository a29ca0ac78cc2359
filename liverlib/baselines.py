"""Baselines on the same split as the ResNet-50, and the leakage experiment.

Each baseline takes grey images (N x S x S, uint8), labels and train/test indices and returns class
probabilities for the test images, so every model goes through the same metrics and intervals
(:mod:`liverlib.metrics`, :mod:`liverlib.evaluate`):

* :func:`histogram_logistic_regression`: a 64-bin intensity histogram per slice (global grey levels
  only: what a classifier can do without looking at shape or texture);
* :func:`texture_svm`: an SVM on hand-crafted texture features, grey-level co-occurrence (GLCM)
  statistics and local binary pattern (LBP) histograms from scikit-image, as in the older literature
  of the paper's Table 3;
* :func:`small_cnn`: four convolution blocks, about 0.3 M parameters, trained from scratch.

All use balanced class weights. :func:`leakage_experiment` trains one model (by default
:func:`nearest_neighbour`, a pure memoriser; the small CNN is the other choice) on a slice-level random
split and on the patient-grouped split of the same data and reports both.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from liverlib.classes import class_names_of
from liverlib.config import CLASS_NAMES
from liverlib.evaluate import bootstrap_ci
from liverlib.metrics import scores
from liverlib.nearcopy import signature
from liverlib.splits import make_split

N_CLASSES = 4  # the paper's; a dataset's own count is one past its largest label (n_classes)


def n_classes(labels) -> int:
    """Classes of a labelled dataset (labels are positions in its sorted class list): one past the largest."""
    return max(int(np.max(labels)) + 1, 2) if len(labels) else N_CLASSES


def histogram_features(images: np.ndarray, bins: int = 64) -> np.ndarray:
    hist = np.stack([np.histogram(im, bins=bins, range=(0, 256))[0] for im in images]).astype(float)
    return hist / hist.sum(axis=1, keepdims=True)


def texture_features(images: np.ndarray) -> np.ndarray:
    """GLCM contrast, homogeneity, energy, correlation, dissimilarity and ASM (4 directions, distances 1
    and 3, averaged over direction) and a uniform LBP histogram (P=8, R=1), computed on the body only."""
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

    props = ("contrast", "homogeneity", "energy", "correlation", "dissimilarity", "ASM")
    rows = []
    for im in images:
        q = (im // 8).astype(np.uint8)  # 32 grey levels
        glcm = graycomatrix(q, distances=[1, 3], angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=32,
                            symmetric=True, normed=True)
        glcm_feats = np.concatenate([graycoprops(glcm, p).mean(axis=1) for p in props])
        lbp = local_binary_pattern(im, P=8, R=1, method="uniform")
        body = im > 20
        lbp_hist = np.bincount(lbp[body].astype(int), minlength=10)[:10].astype(float)
        lbp_hist /= max(lbp_hist.sum(), 1.0)
        rows.append(np.concatenate([glcm_feats, lbp_hist, [im[body].mean() / 255 if body.any() else 0.0]]))
    return np.stack(rows)


def _fit_predict(model, features, labels, train, test) -> np.ndarray:
    model.fit(features[train], labels[train])
    probs = np.zeros((len(test), n_classes(labels)))
    probs[:, model.classes_] = model.predict_proba(features[test])
    return probs


def histogram_logistic_regression(images, labels, train, test, seed: int = 0) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced",
                                                               random_state=seed))
    return _fit_predict(model, histogram_features(images), labels, train, test)


def texture_svm(images, labels, train, test, seed: int = 0) -> np.ndarray:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    svm = SVC(C=3.0, kernel="rbf", class_weight="balanced", random_state=seed)
    smallest = int(np.bincount(labels[train]).astype(float)[np.bincount(labels[train]) > 0].min())
    model = make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, ensemble=False, cv=max(2, min(3, smallest))))
    return _fit_predict(model, texture_features(images), labels, train, test)


def _batches(x, y=None, batch_size: int = 32, shuffle_seed: int | None = None):
    """A tf.data pipeline over arrays, reshuffled every epoch with a seed when ``shuffle_seed`` is given. Keras'
    own array adapter shuffles with a stateful op, which under op determinism (enabled by a training run in
    the same process) makes tf.data rewrite the pipeline and log "NodeDef mentions attribute
    use_unbounded_threadpool ..."; a seeded shuffle is deterministic as it is."""
    import tensorflow as tf  # local: heavy dependency

    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _fit_small_cnn(images, labels, train, seed: int, epochs: int, batch_size: int, val=None, patience=None):
    """The small CNN trained on ``images[train]``; with ``val`` and ``patience``, stopped on the validation
    macro-F1 with the best epoch's weights restored. Returns the model, its inputs and the kept epoch (from 1)."""
    import keras

    from liverlib.runs import macro_f1_metric  # the compiled macro-F1 that training uses

    keras.utils.set_random_seed(seed)
    x = images[..., None].astype("float32") / 255.0
    inputs = keras.Input(shape=x.shape[1:])
    h = inputs
    for filters in (32, 64, 128, 128):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)  # small data: moving statistics must settle fast
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.3)(h)
    k = n_classes(labels)
    outputs = keras.layers.Dense(k, activation="softmax")(h)
    model = keras.Model(inputs, outputs, name="small_cnn")
    stopping = val is not None and patience
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=[macro_f1_metric()(k)] if stopping else None)
    counts = np.bincount(labels[train], minlength=k)
    weights = {j: len(train) / (k * c) for j, c in enumerate(counts) if c > 0}
    extra = {}
    if stopping:
        stop = keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=patience,
                                             restore_best_weights=True)
        extra = {"callbacks": [stop], "validation_data": _batches(x[val], labels[val], batch_size)}
    history = model.fit(_batches(x[train], labels[train], batch_size, seed), epochs=epochs, verbose=0,
                        class_weight=weights, shuffle=False, **extra)  # the batches reshuffle themselves
    kept = int(np.argmax(history.history["val_macro_f1"])) + 1 if stopping else len(history.history["loss"])
    return model, x, kept


def small_cnn(images, labels, train, test, seed: int = 0, epochs: int = 15, batch_size: int = 32) -> np.ndarray:
    """Four conv blocks (32-64-128-128 filters), global pooling, dropout, softmax; Adam 1e-3, class weights;
    ``epochs`` epochs on ``images[train]``. Returns the probabilities for ``images[test]``."""
    model, x, _ = _fit_small_cnn(images, labels, train, seed, epochs, batch_size)
    return model.predict(_batches(x[test], batch_size=batch_size), verbose=0)


def small_cnn_converged(images, labels, train, test, val, patience: int, seed: int = 0, epochs: int = 60,
                        batch_size: int = 32) -> tuple[np.ndarray, int]:
    """The small CNN trained to convergence: stopped when the validation macro-F1 (``images[val]``) has not
    improved for ``patience`` epochs, with the best epoch's weights kept (how :mod:`benchmarks.phantom_ceiling`
    measures what the inputs allow). Macro-F1, not the loss: with class weights the plain validation loss is
    lowest within a few epochs, while the minority classes are still being learned. Returns the probabilities
    for ``images[test]`` and the epoch kept (from 1)."""
    model, x, kept = _fit_small_cnn(images, labels, train, seed, epochs, batch_size, val=val, patience=patience)
    return model.predict(_batches(x[test], batch_size=batch_size), verbose=0), kept


def nearest_neighbour(images, labels, train, test, seed: int = 0) -> np.ndarray:
    """1-nearest-neighbour on the leakage audit's invariant signature (:func:`liverlib.nearcopy.signature`,
    unchanged by flips, rotations, shifts and zoom): a pure memoriser that finds augmented copies and
    neighbouring slices, the clearest probe of whether test images have near-copies in training."""
    from sklearn.neighbors import KNeighborsClassifier  # local: heavy dependency

    features = np.stack([signature(im) for im in images])
    return _fit_predict(KNeighborsClassifier(n_neighbors=1), features, labels, train, test)


BASELINES = {
    "histogram + logistic regression": histogram_logistic_regression,
    "GLCM/LBP texture + SVM": texture_svm,
    "small CNN": small_cnn,
}


def run_baselines(images, labels, train, test, groups=None, class_names=None, n_boot: int = 1000,
                  seed: int = 0, only=None, **cnn_kwargs) -> tuple[pd.DataFrame, dict]:
    """Every baseline on one split: a table of headline figures with 95% intervals, and the probabilities."""
    class_names = list(class_names or CLASS_NAMES)
    rows, probs_by_model = [], {}
    for name, fit in BASELINES.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        kwargs = cnn_kwargs if fit is small_cnn else {}
        probs = fit(images, labels, train, test, seed=seed, **kwargs)
        seconds = time.perf_counter() - start
        probs_by_model[name] = probs
        rows.append(summary_row(name, labels[test], probs, class_names,
                                None if groups is None else groups[test], n_boot, seed, seconds))
    return pd.DataFrame(rows).set_index("model"), probs_by_model


def summary_row(name, y_true, probs, class_names, groups=None, n_boot=1000, seed=0, seconds=None) -> dict:
    """One model's headline figures with their 95% bootstrap intervals, as a table row."""
    m = scores(y_true, probs, class_names)
    ci = bootstrap_ci(y_true, probs, class_names, groups, n_boot=n_boot, seed=seed)
    row = {"model": name}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc_ovr"):
        row[key] = round(m[key], 3)
        low, high = ci[key]
        row[f"{key} 95% CI"] = "n/a" if low is None else f"{low:.3f}-{high:.3f}"
    if seconds is not None:
        row["seconds"] = round(seconds, 1)
    return row


def leakage_experiment(manifest: pd.DataFrame, images: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0,
                       model=nearest_neighbour, **kwargs) -> pd.DataFrame:
    """Train the same model on a slice-level random split and on the patient-grouped split of the same data.

    ``manifest`` needs ``label`` and ``group`` (augmented copies share their source's group); ``images``
    are its rows' pixels. Returns validation and test accuracy and macro-F1 for both splits, and how many
    test images have their own patient (or copy) in training.
    """
    labels = manifest["label"].to_numpy()
    rows = []
    for strategy in ("random", "grouped"):
        split = make_split(manifest, fractions, seed=seed, strategy=strategy)
        index = {name: np.flatnonzero(split.to_numpy() == name) for name in ("train", "val", "test")}
        train_groups = set(manifest["group"].to_numpy()[index["train"]])
        leaked = int(sum(g in train_groups for g in manifest["group"].to_numpy()[index["test"]]))
        evaluation = np.concatenate([index["val"], index["test"]])
        probs = model(images, labels, index["train"], evaluation, seed=seed, **kwargs)
        n_val = len(index["val"])
        row = {"model": getattr(model, "__name__", str(model)).replace("_", " "),
               "split": "slice-level random (leaky)" if strategy == "random" else "patient-grouped",
               "test images with their patient in training": f"{leaked} of {len(index['test'])}"}
        for part, sel in (("val", slice(0, n_val)), ("test", slice(n_val, None))):
            found = scores(labels[index[part]], probs[sel], class_names_of(manifest))
            row[f"{part} accuracy"] = round(found["accuracy"], 3)
            row[f"{part} macro-F1"] = round(found["macro_f1"], 3)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "split"])
