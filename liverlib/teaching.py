"""Helpers for the teaching layer: exercise solutions and what a rendered page may show.

* :func:`quick_config`: the configuration every exercise solution runs under. Solutions are executed like
  every other cell (by the book build and by the notebook tests), so each one pins the ``quick`` profile in
  its first line, whatever ``LIVERLIB_PROFILE`` the chapter itself runs under: a solution costs seconds,
  never a laptop-profile training run. Data and artifacts still follow ``LIVERLIB_DATA_DIR`` and
  ``LIVERLIB_ARTIFACTS_DIR``.
* :func:`shown_path`: a path as a page should print it, relative to the artifacts folder (``artifacts/runs/x``),
  so a rendered book never shows the build machine's absolute paths.

A light module: it imports no TensorFlow (only :mod:`liverlib.config`). The pattern for exercises and
solutions is in the book's contributor notes (``book/contributing.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

from liverlib.config import RunConfig, load_config

SOLUTION_PROFILE = "quick"


def quick_config(**changes) -> RunConfig:
    """The ``quick`` profile's configuration (data and artifacts from the environment as usual), with any
    fields changed by keyword: ``config = quick_config(epochs=1)`` at the top of a solution cell."""
    config = load_config(SOLUTION_PROFILE)
    return config.replace(**changes) if changes else config


def _inside(path: Path, folder: Path) -> Path | None:
    try:
        return path.relative_to(folder)
    except ValueError:
        return None


def shown_path(path: str | os.PathLike, config: RunConfig | None = None) -> str:
    """``path`` for printing in a page: under the artifacts folder, ``artifacts/<relative path>`` (whatever
    the folder is really called, for example ``_build/test-artifacts`` in CI); under the project folder,
    relative to it; under the home folder, ``~/...``; anywhere else only its last two parts, ``.../a/b``.
    A relative path is taken as it is."""
    path = Path(path).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    paths = {Path(os.path.normpath(path)), path.resolve()}
    artifacts = (config or load_config(SOLUTION_PROFILE)).artifacts_dir.expanduser().absolute()
    for rel in (_inside(p, a) for p in paths for a in {Path(os.path.normpath(artifacts)), artifacts.resolve()}):
        if rel is not None:
            return "artifacts" if rel == Path(".") else f"artifacts/{rel.as_posix()}"
    project = Path(__file__).resolve().parent.parent
    bases = ([(project, "")] if (project / "pyproject.toml").is_file() else []) + [(Path.home(), "~/")]
    for base, prefix in bases:
        for rel in (_inside(p, base) for p in paths):
            if rel is not None and rel != Path("."):
                return f"{prefix}{rel.as_posix()}"
    return ".../" + "/".join(path.parts[-2:])
