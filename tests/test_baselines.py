"""Baselines return proper probabilities and learn an easy task; the leakage experiment shows leakage."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from liverlib.baselines import BASELINES, leakage_experiment, run_baselines, texture_features


def _toy(n_per_class=12, size=32, seed=0):
    """Four classes that differ in brightness and texture: any of the baselines should separate them."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(4):
        for _ in range(n_per_class):
            base = 60 + 40 * k + rng.normal(0, 4, (size, size))
            if k % 2:
                base[::2] += 30  # stripes: a texture cue
            images.append(np.clip(base, 0, 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "small CNN"])
def test_baseline_probabilities_and_an_easy_task(name):
    images, labels = _toy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    train, test = order[:32], order[32:]
    probs = BASELINES[name](images, labels, train, test)
    assert probs.shape == (len(test), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (probs.argmax(axis=1) == labels[test]).mean() >= 0.9


def test_small_cnn_runs_and_the_table_has_intervals():
    images, labels = _toy(n_per_class=8)
    train, test = np.arange(0, 32, 1)[::2], np.arange(0, 32, 1)[1::2]
    table, probs = run_baselines(images, labels, train, test, n_boot=50, only=["small CNN"], epochs=1)
    assert list(table.index) == ["small CNN"] and "macro_f1 95% CI" in table
    assert probs["small CNN"].shape == (16, 4)


def test_the_converged_small_cnn_stops_on_validation_macro_f1_and_says_which_epoch_it_kept():
    from liverlib.baselines import small_cnn_converged

    images, labels = _toy(n_per_class=10)
    order = np.random.default_rng(1).permutation(len(labels))
    train, val, test = order[:24], order[24:32], order[32:]
    probs, kept = small_cnn_converged(images, labels, train, test, val, patience=2, epochs=6)
    assert probs.shape == (len(test), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert 1 <= kept <= 6


def test_texture_features_are_finite_and_differ_between_textures():
    images, labels = _toy(n_per_class=2)
    feats = texture_features(images)
    assert np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[2])


def test_leakage_experiment_inflates_the_random_split():
    """Patients with near-identical copies: a memorising model (1-nearest-neighbour) looks perfect on the
    slice-level split and falls to chance on the grouped one."""
    rng = np.random.default_rng(0)
    n_patients, copies, size = 60, 4, 16
    rows, images = [], []
    for p in range(n_patients):
        label = p % 4
        pattern = rng.integers(0, 255, (size, size))  # each patient looks unique, the class leaves no trace
        for c in range(copies):
            images.append(np.clip(pattern + rng.normal(0, 3, pattern.shape), 0, 255).astype(np.uint8))
            rows.append({"class": f"c{label}", "label": label, "group": f"P{p}"})
    manifest, images = pd.DataFrame(rows), np.stack(images)

    table = leakage_experiment(manifest, images)  # the default model: 1-nearest-neighbour
    leaky = table.loc[("nearest neighbour", "slice-level random (leaky)")]
    grouped = table.loc[("nearest neighbour", "patient-grouped")]
    assert leaky["test accuracy"] >= 0.9
    assert grouped["test accuracy"] < 0.5 < leaky["test accuracy"] - 0.4
    assert grouped["test images with their patient in training"].startswith("0 of")


SMALL_CNN_UNDER_DETERMINISM = """
import subprocess
import sys

import numpy as np
import liverlib  # noqa: F401  (TensorFlow's CPU settings first, as every entry point)
import tensorflow as tf
tf.config.experimental.enable_op_determinism()  # what a training run in the same process leaves behind
from liverlib.baselines import small_cnn
rng = np.random.default_rng(0)
images, labels = rng.integers(0, 255, (48, 32, 32)).astype("uint8"), np.arange(48) % 4
for _ in range(2):  # the same seed twice in one process: the same probabilities
    print(np.round(small_cnn(images, labels, np.arange(36), np.arange(36, 48), epochs=2), 6).tolist())
"""


def test_small_cnn_after_a_training_run_logs_no_tensorflow_error_and_repeats_itself(tmp_path):
    """Chapters train the small CNN in the kernel that trained the ResNet, where op determinism is on: Keras'
    array adapter then made tf.data log "NodeDef mentions attribute use_unbounded_threadpool ..." (issue: a
    clean training log). Seeded tf.data batches avoid it, and the same seed gives the same probabilities."""
    run = subprocess.run([sys.executable, "-c", SMALL_CNN_UNDER_DETERMINISM], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "use_unbounded_threadpool" not in run.stderr
    assert "shuffle=True" not in run.stderr  # Keras' warning for a dataset that shuffles itself (a page shows it)
    first, second = run.stdout.splitlines()
    assert first == second and first.startswith("[[")
