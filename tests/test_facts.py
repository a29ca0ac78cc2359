"""liverlib.facts reads measured numbers by key; liverlib.teaching pins solutions to quick and hides paths."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from liverlib import facts, teaching
from liverlib.config import load_config
from liverlib.errors import LiverlibError


@pytest.fixture
def results(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps({
        "rate": 2.1732, "count": 4741, "ratio": 0.26, "big": 1234.5, "name": "x",
        "rows": [{"size": 64, "loop": "ours", "v": 17.03}, {"size": 224, "loop": "ours", "v": 2.17},
                 {"size": 224, "loop": "paper", "v": 2.27}],
        "nested": {"1000": {"seconds": 125.0}}}))
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "metrics.json").write_text(json.dumps({"macro_f1": 0.4567}))
    return tmp_path


def test_keys_walk_objects_lists_and_sub_folders(results):
    assert facts.value("speed.rate", root=results) == 2.1732
    assert facts.value("speed.rows[1].v", root=results) == 2.17
    assert facts.value("speed.rows[size=224,loop=paper].v", root=results) == 2.27
    assert facts.value("speed.nested.1000.seconds", root=results) == 125.0
    assert facts.value("evaluation/metrics.macro_f1", root=results) == 0.4567
    assert facts.has("speed.rate", root=results) and not facts.has("speed.nope", root=results)


@pytest.mark.parametrize("key,fmt,scale,text", [
    ("speed.rate", None, 1, "2.2"), ("speed.count", None, 1, "4,741"), ("speed.ratio", None, 1, "0.26"),
    ("speed.big", None, 1, "1,234"), ("speed.rate", ".2f", 1, "2.17"), ("speed.ratio", ".0%", 1, "26%"),
    ("speed.nested.1000.seconds", ".1f", 1 / 60, "2.1"), ("speed.name", None, 1, "x"),
])
def test_fact_formats_for_prose(results, key, fmt, scale, text):
    shown = facts.fact(key, fmt, scale=scale, root=results)
    assert shown == text and shown.key == key
    # myst-nb's {glue:text} shows literal_eval(repr(value)): the text itself, never a tuple for "4,741"
    assert ast.literal_eval(repr(shown)) == text


@pytest.mark.parametrize("key,message", [
    ("nofile.x", "no nofile.json"), ("speed.nope", "has no 'nope'"), ("speed.rows[size=224].v", "matches 2"),
    ("speed.rows[size=99].v", "matches no element"), ("speed.rows[7]", "has 3 elements"),
    ("speed.rate[0]", "not a list"), ("", "key is"),
])
def test_a_bad_key_says_what_is_there(results, key, message):
    with pytest.raises(LiverlibError, match=message.replace("[", r"\[")):
        facts.value(key, root=results)


def test_scaling_a_non_number_is_an_error(results):
    with pytest.raises(LiverlibError, match="not a number"):
        facts.fact("speed.name", scale=2, root=results)


def test_committed_training_speeds_are_read_from_the_benchmark_file():
    speeds = facts.training_speeds()
    measured = facts.value("training_speed.throughput[size=224,batch=46,loop=ours].images_per_s_median")
    assert speeds[(224, 46)] == measured
    assert all(rate > 0 for rate in speeds.values())


def test_training_speeds_are_empty_without_results(monkeypatch, tmp_path):
    monkeypatch.setenv(facts.RESULTS_ENV, str(tmp_path / "missing"))
    assert facts.results_dir() is None and facts.training_speeds() == {}
    with pytest.raises(LiverlibError, match="make bench"):
        facts.value("summary.make_book_minutes")


def test_light_imports():
    code = ("import sys, liverlib.facts, liverlib.teaching; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_quick_config_ignores_the_chapter_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("LIVERLIB_PROFILE", "paper")
    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(tmp_path))
    config = teaching.quick_config(epochs=1)
    assert config.profile == "quick" and config.epochs == 1 and config.artifacts_dir == tmp_path
    assert config.image_size == load_config("quick").image_size


def test_shown_path_hides_the_build_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("LIVERLIB_ARTIFACTS_DIR", str(tmp_path / "build" / "test-artifacts"))
    arts = load_config().artifacts_dir
    assert teaching.shown_path(arts / "runs" / "quick-1") == "artifacts/runs/quick-1"
    assert teaching.shown_path(arts) == "artifacts"
    assert teaching.shown_path(str(arts / "data" / "phantom")) == "artifacts/data/phantom"
    repo = Path(teaching.__file__).resolve().parent.parent
    assert teaching.shown_path(repo / "data" / "phantom") == "data/phantom"
    assert teaching.shown_path(Path.home() / "scans" / "a.dcm") == "~/scans/a.dcm"
    assert teaching.shown_path("/mnt/hospital/share/case7/slice.dcm") == ".../case7/slice.dcm"
    assert teaching.shown_path("runs/x") == "runs/x"
    custom = load_config().replace(artifacts_dir=tmp_path / "elsewhere")
    assert teaching.shown_path(tmp_path / "elsewhere" / "runs", custom) == "artifacts/runs"


def _printed_paths(source: str) -> list[str]:
    """Names ending in _dir or _path printed by ``print`` in ``source``, not through shown_path."""
    import ast

    found = []

    def visit(node, shown=False):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "shown_path":
            shown = True
        if isinstance(node, ast.IfExp):  # the condition is not printed
            visit(node.body, shown), visit(node.orelse, shown)
            return
        if isinstance(node, ast.Attribute) and node.attr in ("name", "stem", "suffix"):
            return  # a file name, not a path
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name and name.endswith(("_dir", "_path")) and not shown:
            found.append(ast.unparse(node))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, shown)

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            for arg in node.args:
                visit(arg)
    return found


def test_printed_paths_check_itself():
    assert _printed_paths("print(run.run_dir)\nprint(f'model: {run_dir}')") == ["run.run_dir", "run_dir"]
    assert _printed_paths("print(shown_path(run.run_dir), path.name)\n"
                          "print(shown_path(c.data_dir) if c.data_dir else shown_path(c.phantom_dir))") == []


def test_notebooks_print_paths_relative_to_the_artifacts_folder():
    import nbformat

    root = Path(__file__).resolve().parent.parent
    problems = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                problems += [f"{path.name} cell {cell.get('id')}: print({p})" for p in _printed_paths(cell.source)]
    assert not problems, "print these with liverlib.teaching.shown_path:\n  " + "\n  ".join(problems)
