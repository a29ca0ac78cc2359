"""pytest's configuration for the chapters, read when nbval runs them (``make test``); not part of the book.

With ``--nbval-cache DIR`` (scripts/run-tests.sh passes the quick book's jupyter-cache folder), every notebook
whose cells all passed is stored, with the outputs nbval received, in the cache that Jupyter Book reads
(``execute_notebooks: cache`` in _config.yml). The book build that follows renders those outputs instead of
running every chapter a second time. A notebook with a failed, skipped or unrun cell is not stored, and any
entry an earlier run left for its code is removed: the book build runs it itself. Without the option nothing
is written.

The cache keys a notebook by its code cells and kernel (jupyter-cache's hash), so an edited chapter never
matches an old entry. What nbval does not record: widget state (the quick book shows widget outputs as their
text form) and ``clear_output`` (a cell's outputs are all kept).
"""

from __future__ import annotations

from collections import defaultdict

import pytest

_CELLS: dict[str, dict[int, tuple[bool, list, float]]] = defaultdict(dict)  # notebook -> cell -> result
_NOTEBOOKS: dict = {}  # notebook path -> the notebook as nbval read it (the code that ran)


def pytest_addoption(parser):
    parser.addoption("--nbval-cache", default=None, metavar="DIR",
                     help="store each fully passed notebook, with its outputs, in this jupyter-cache folder "
                          "(the book build's) so that the build does not execute it again")


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if hasattr(item, "cell_num") and getattr(item.parent, "nb", None) is not None:
            _NOTEBOOKS[str(item.fspath)] = item.parent.nb


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and hasattr(item, "cell_num") and hasattr(item, "test_outputs"):
        _CELLS[str(item.fspath)][item.cell_num] = (report.passed, list(item.test_outputs or []), report.duration)


def executed_notebook(nb, cells: dict[int, tuple[bool, list, float]]):
    """A copy of the notebook ``nb`` with each code cell's outputs from nbval and consecutive execution counts,
    and its run time in seconds; None unless every code cell ran and passed."""
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if sorted(cells) != list(range(len(code))) or not all(passed for passed, _, _ in cells.values()):
        return None
    for number, cell in enumerate(code):
        cell.outputs = [nbformat.from_dict(dict(out)) for out in cells[number][1]]
        cell.execution_count = number + 1
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = number + 1
    return nb, sum(seconds for _, _, seconds in cells.values())


def update_cache(folder, notebooks: dict, cells: dict) -> list[str]:
    """Store each notebook of ``notebooks`` (path -> notebook) whose ``cells`` all passed in the jupyter-cache at
    ``folder``, and remove any entry for the code of the others; the paths stored."""
    from jupyter_cache import get_cache
    from jupyter_cache.cache.main import CacheBundleIn

    cache = get_cache(folder)
    stored = []
    for path, nb in sorted(notebooks.items()):
        found = executed_notebook(nb, cells.get(path, {}))
        if found is not None:
            cache.cache_notebook_bundle(CacheBundleIn(found[0], path, data={"execution_seconds": found[1]}),
                                        check_validity=True, overwrite=True)
            stored.append(path)
        else:  # never leave an earlier run's outputs of this code for the book build
            try:
                cache.remove_cache(cache.match_cache_notebook(nb).pk)
            except KeyError:
                pass
    return stored


def pytest_sessionfinish(session):
    folder = session.config.getoption("--nbval-cache", default=None)
    if folder:
        stored = update_cache(folder, _NOTEBOOKS, _CELLS)
        print(f"\nnbval cache: {len(stored)} of {len(_NOTEBOOKS)} notebooks stored in {folder} for the book build")
