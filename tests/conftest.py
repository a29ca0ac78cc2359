import os
import shutil

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: needs headless Chromium and a built book or app")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "benchmark: runs a benchmark in smoke mode (CI runs them after the book)")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests never read the developer's own LIVERLIB_* settings, and write artifacts under tmp_path."""
    for name in ("LIVERLIB_PROFILE", "LIVERLIB_DATA_DIR", "LIVERLIB_WEIGHTS_URL", "LIVERLIB_WEIGHTS_HASH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(tmp_path / "artifacts"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder with an untrained modified ResNet-14 (64 px; the quick profile's backbone: ResNet-50's stem,
    stages, layer names and output shape with one block per stage) and a model card, as training writes them.

    Untrained weights are enough to test everything that reads a run (decoding, preprocessing, class order,
    Grad-CAM, the CLI, the widget, the LiteRT conversion) without spending a minute on training; the small
    backbone makes each model load, graph trace and conversion a fraction of ResNet-50's.
    """
    import json

    import keras

    from liverlib.config import CLASS_NAMES
    from liverlib.model import build_modified_resnet50
    from liverlib.runs import CARD_FILE, MODEL_FILE

    keras.utils.set_random_seed(0)
    run_dir = tmp_path_factory.mktemp("tiny_run")
    model = build_modified_resnet50(len(CLASS_NAMES), 64, blocks=(1, 1, 1, 1))
    model.save(run_dir / MODEL_FILE)
    card = {"class_names": list(CLASS_NAMES), "input_size": 64, "window": {"level": 40.0, "width": 400.0},
            "profile": "test", "seed": 0, "synthetic_data": True, "metrics": {}, "backbone": "ResNet-14"}
    (run_dir / CARD_FILE).write_text(json.dumps(card))
    return run_dir


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (installed by `make test`)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is not installed; `make test` installs it (scripts/install-chromium.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def phantom_with_copies(tmp_path_factory):
    """A 60-patient phantom at 128 px with two augmented copies of some slices (for groups and the audit)."""
    from liverlib.phantom import write_phantom_dataset

    root = tmp_path_factory.mktemp("pc") / "phantom"
    write_phantom_dataset(root, n=60, seed=8, size=128, augmented_copies=2, workers=1, progress=False)
    return root


@pytest.fixture
def known_predictions():
    """120 slices from a fixed 4-class confusion matrix (rows true, columns predicted), with probabilities whose
    arg-max is the prediction: accuracy 95/120, every other figure computable by hand."""
    from types import SimpleNamespace

    import numpy as np

    cm = np.array([[50, 2, 6, 2],
                   [1, 8, 0, 1],
                   [7, 0, 20, 3],
                   [2, 1, 0, 17]])
    y_true = np.repeat(np.repeat(np.arange(4), 4), cm.ravel())
    y_pred = np.repeat(np.tile(np.arange(4), 4), cm.ravel())
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=len(y_pred)) * 0.5
    probs[np.arange(len(y_pred)), y_pred] += 0.5 + 1e-3
    return SimpleNamespace(cm=cm, y_true=y_true, y_pred=y_pred, probs=probs / probs.sum(axis=1, keepdims=True))
