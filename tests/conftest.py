import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: needs headless Chromium and a built book or app")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests never read the developer's own LIVERLIB_* settings, and write artifacts under tmp_path."""
    for name in ("LIVERLIB_PROFILE", "LIVERLIB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
