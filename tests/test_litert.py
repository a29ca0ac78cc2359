"""The LiteRT fast path: same probabilities as Keras (1e-5), converted once, redone when stale, never fatal."""

import json
import shutil

import tempfile

import numpy as np
import pytest

from liverlib import litert
from liverlib.classify import Classifier
from liverlib.litert import LITERT_FILE, LITERT_INFO, TOLERANCE
from liverlib.phantom import make_slice
from liverlib.preprocess import resize_grey, to_model_input
from liverlib.runs import MODEL_FILE
from liverlib.imaging.windowing import window_to_uint8

pytestmark = pytest.mark.skipif(litert.runtime_available() is not None, reason="ai-edge-litert not installed")


def _slice_input(kind: str, seed: int, size: int = 64) -> np.ndarray:
    grey = window_to_uint8(make_slice(kind, seed=seed, size=128).hu, 40, 400).astype(np.float32)
    return to_model_input(resize_grey(grey, size))[None]


def _reweigh_head(run_dir, seed: int) -> None:
    """Give the untrained model's output layer large random weights, so its probabilities vary with the input
    (an untrained head gives nearly 1/4 everywhere, which any conversion would match)."""
    import keras

    model = keras.saving.load_model(run_dir / MODEL_FILE)
    head = model.layers[-1]
    kernel, bias = head.get_weights()
    head.set_weights([np.random.default_rng(seed).normal(0, 0.5, kernel.shape).astype(np.float32), bias])
    model.save(run_dir / MODEL_FILE)


@pytest.fixture(scope="module")
def template(tiny_run, tmp_path_factory):
    """A run whose outputs vary with the input, converted for real once (a conversion takes 10-20 s)."""
    folder = tmp_path_factory.mktemp("litert") / "run"
    shutil.copytree(tiny_run, folder, ignore=shutil.ignore_patterns(LITERT_FILE, LITERT_INFO))
    _reweigh_head(folder, seed=1)
    litert.export_litert(folder)
    return folder


@pytest.fixture
def run(template, tmp_path, monkeypatch):
    """A copy of the template run without its conversion; converting it copies the template's real one."""
    folder = tmp_path / "run"
    shutil.copytree(template, folder, ignore=shutil.ignore_patterns(LITERT_FILE, LITERT_INFO))
    monkeypatch.setattr(litert, "_convert", lambda model, path: shutil.copy(template / LITERT_FILE, path))
    return folder


def test_the_real_conversion_equals_keras_within_tolerance(template):
    import keras

    info = json.loads((template / LITERT_INFO).read_text())
    assert info["max_abs_difference_vs_keras"] <= TOLERANCE
    _check_equal_to_keras(litert.LiteRTForward(template / LITERT_FILE), keras.saving.load_model(template / MODEL_FILE))


def _check_equal_to_keras(forward, model):
    inputs = [_slice_input("malignant", 3), _slice_input("cirrhosis", 8), _slice_input("normal", 5)]
    fast = [forward(x) for x in inputs]
    reference = [model.predict(x, verbose=0) for x in inputs]
    assert max(np.abs(f - r).max() for f, r in zip(fast, reference)) <= TOLERANCE
    assert np.abs(reference[0] - reference[1]).max() > 1e-3, "the check needs outputs that vary with the input"


def test_converted_once_equal_to_keras_and_used_by_classify(run, monkeypatch):
    clf = Classifier(run)
    assert clf.fast.backend.startswith("LiteRT"), clf.fast.backend
    info = json.loads((run / LITERT_INFO).read_text())
    assert info["max_abs_difference_vs_keras"] <= TOLERANCE and info["model_sha256"] == litert.file_sha256(
        run / MODEL_FILE)
    _check_equal_to_keras(clf.forward, clf.model)
    grey = window_to_uint8(make_slice("benign", seed=2, size=128).hu, 40, 400)
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    fast = clf(buf.getvalue(), "a.png", gradcam=False).probabilities
    slow = clf(buf.getvalue(), "a.png", gradcam=True).probabilities
    assert max(abs(fast[c] - slow[c]) for c in fast) <= TOLERANCE
    # a second classifier on the same, unchanged model reuses the file: no conversion
    monkeypatch.setattr(litert, "export_litert", lambda *a, **k: pytest.fail("converted again"))
    assert Classifier(run).fast.backend.startswith("LiteRT")


def test_a_corrupted_conversion_is_redone(run):
    assert Classifier(run).fast.backend.startswith("LiteRT")
    (run / LITERT_FILE).write_bytes(b"\x00not a flatbuffer" * 10)  # a damaged file with a valid record
    again = Classifier(run)
    assert again.fast.backend.startswith("LiteRT")
    _check_equal_to_keras(again.forward, again.model)


def test_a_retrained_model_is_converted_again(template, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(template, folder)  # with the template's conversion, which is current
    first = Classifier(folder)
    assert first.fast.backend.startswith("LiteRT")
    _reweigh_head(folder, seed=2)  # retrained: model.keras changes, model.tflite is now stale
    second = Classifier(folder)  # converts for real
    assert second.fast.backend.startswith("LiteRT")
    _check_equal_to_keras(second.forward, second.model)
    x = _slice_input("malignant", 3)
    assert not np.allclose(first.forward(x), second.forward(x))


def test_without_the_runtime_classify_falls_back_to_tensorflow_and_says_why(run, monkeypatch):
    monkeypatch.setattr(litert, "runtime_available", lambda: "the LiteRT runtime is not available: test")
    clf = Classifier(run)
    assert clf.fast.backend.startswith("TensorFlow") and "not available: test" in clf.fast.backend
    _check_equal_to_keras(clf.forward, clf.model)
    assert not (run / LITERT_FILE).exists()
    monkeypatch.setenv("LIVERLIB_FAST_FORWARD", "0")
    assert "LIVERLIB_FAST_FORWARD is off" in Classifier(run).fast.backend


def test_a_read_only_run_folder_converts_elsewhere(run, monkeypatch):
    real = litert.export_litert

    def read_only(run_dir, model=None, out_dir=None, **kwargs):
        if out_dir is None:
            raise PermissionError(13, "Permission denied", str(run_dir))
        return real(run_dir, model, out_dir, **kwargs)

    monkeypatch.setattr(litert, "export_litert", read_only)
    tmp = run.parent / "tmp"  # the temporary folders of this test
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    clf = Classifier(run)
    assert "read-only" in clf.fast.backend and clf.fast.backend.startswith("LiteRT")
    assert not (run / LITERT_FILE).exists()
    assert list(tmp.iterdir()) == []  # every classify process used to leave a converted model (34 MB) behind
    _check_equal_to_keras(clf.forward, clf.model)  # the interpreter still has the model


def test_a_conversion_outside_tolerance_is_refused(run, monkeypatch):
    monkeypatch.setattr(litert, "max_difference", lambda *a: 0.01)
    clf = Classifier(run)
    assert clf.fast.backend.startswith("TensorFlow") and "differs from the Keras model" in clf.fast.backend
    assert not (run / LITERT_FILE).exists() and not (run / LITERT_INFO).exists()
