"""The project's own files install everything: both environment files agree, the CLI is wired up."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_environment_yml_and_pyproject_list_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from_pyproject = {_normalise(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        from_pyproject |= {_normalise(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    from_env = {_normalise(r) for r in pip_section if not r.startswith("-e")}
    assert from_env == from_pyproject, (
        f"only in environment.yml: {sorted(from_env - from_pyproject)}; "
        f"only in pyproject.toml: {sorted(from_pyproject - from_env)}")
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]


def test_every_dependency_has_an_upper_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    unbounded = [r for r in requirements if "<" not in r]
    assert not unbounded, f"bound these so a new install gets what was tested: {unbounded}"


def test_cli_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "liverlib.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "phantom" in result.stdout and "config" in result.stdout


def test_cli_error_is_one_sentence_on_stderr(tmp_path):
    result = subprocess.run([sys.executable, "-m", "liverlib.cli", "phantom", "--out", str(tmp_path / "x"),
                             "--n", "-3"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("liverlib phantom: error: --n must be a positive number")


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme


def test_tensorflow_speed_setting_is_applied_on_import():
    code = "import os, liverlib; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "1"


def test_notebooks_are_committed_clean_and_valid():
    """No stored outputs (the book build executes them), and every cell has the id nbformat 4.5 requires."""
    import json

    import nbformat

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "liverlib" / "app.ipynb"]
    assert len(notebooks) >= 10
    for path in notebooks:
        raw = json.loads(path.read_text())  # as committed: nbformat.read would fill in missing ids silently
        assert all("id" in cell for cell in raw["cells"]), f"{path.name}: cells without an id"
        nbformat.validate(nbformat.from_dict(raw))
        stored = [i for i, cell in enumerate(raw["cells"]) if cell["cell_type"] == "code" and cell.get("outputs")]
        assert not stored, f"{path.name}: code cells {stored} carry stored outputs"


def test_setup_installs_compiled_bytecode():
    """make setup compiles the packages' .pyc files (uv --compile-bytecode): where PYTHONDONTWRITEBYTECODE is set,
    an uncompiled environment makes every kernel and test process compile TensorFlow, pandas and scipy again
    (course_cost.json, stack_import_seconds)."""
    import importlib.util

    import keras_tuner
    import myst_nb
    import sphinx
    import tensorflow

    missing = [m.__name__ for m in (keras_tuner, myst_nb, sphinx, tensorflow)
               if not Path(importlib.util.cache_from_source(m.__file__)).is_file()]
    assert not missing, f"no .pyc for {missing}: install with `uv pip install --compile-bytecode` (see the Makefile)"
