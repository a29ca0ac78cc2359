"""The package's shape: no import cycles, applying a model never needs the training code, files stay short.

The import graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
liverlib module, at the top of a file or inside a function, is an edge. ``from liverlib.x import y`` points
at the module ``liverlib.x.y`` when that is a module, else at ``liverlib.x``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "liverlib"
MAX_LINES = 400
# applying a trained model (classify, LiteRT, evaluation, the widget) reads a run folder through
# liverlib.runs; it must not need the training recipe or the search
APPLYING = ("liverlib.classify", "liverlib.litert", "liverlib.evaluate", "liverlib.widget")
TRAINING = ("liverlib.train", "liverlib.tuning")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """liverlib module -> the liverlib modules it imports anywhere in its source."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    package = root.name
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # the package a relative import starts from: the module's own package (a package's __init__ is its own)
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {t for t in targets if t in files and t != name and (t == package or t.startswith(package + "."))}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "liverlib.train" in graph and graph["liverlib.train"], "the graph reader found no imports: it is broken"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "liverlib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from liverlib.b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from liverlib.sub import c\n")  # inside a function counts
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\n")  # relative, to a module
    graph = import_graph(pkg)
    assert graph["liverlib.b"] == {"liverlib.sub.c"} and graph["liverlib.sub.c"] == {"liverlib.a"}
    assert find_cycle(graph) == ["liverlib.a", "liverlib.b", "liverlib.sub.c", "liverlib.a"]


@pytest.mark.parametrize("module", APPLYING)
def test_applying_a_model_does_not_import_the_training_code(module):
    graph = import_graph()
    assert module in graph
    needed = reachable(graph, module) & set(TRAINING)
    assert not needed, f"{module} imports {', '.join(sorted(needed))} (directly or through other modules); " \
                       "read run folders through liverlib.runs instead"


IMAGING = "liverlib.imaging"


def test_reading_pixels_needs_nothing_but_itself_and_the_errors():
    """The imaging sub-package is the first layer (file -> HU -> grey): it imports no model, data, training
    or serving module, so a reader of DICOM or NIfTI never pulls in TensorFlow or the course."""
    graph = import_graph()
    members = {m for m in graph if m == IMAGING or m.startswith(IMAGING + ".")}
    assert {f"{IMAGING}.dicom", f"{IMAGING}.studies", f"{IMAGING}.windowing"} <= members
    outside = {t for m in members for t in graph[m] if t not in members} - {"liverlib.errors"}
    assert not outside, f"liverlib.imaging imports {', '.join(sorted(outside))}; it must stay the bottom layer"


def _line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n")  # as `wc -l` counts


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_400_lines(path):
    lines = _line_count(path)
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it (at most {MAX_LINES})"
