"""notebooks/conftest.py: nbval's outputs become the quick book's cached executions (make test runs each chapter once)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"


def _module(name: str, path: Path):
    """A Python file outside the package (a conftest, a script) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plugin():
    return _module("notebooks_conftest", CONFTEST)


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("x + 1")]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    return path


def _outputs():
    return {0: (True, [], 0.5),
            1: (True, [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=7)], 1.5)}


def test_a_fully_passed_notebook_gets_nbvals_outputs_and_is_matched_by_the_book_cache(plugin, notebook, tmp_path):
    from jupyter_cache import get_cache
    from jupyter_cache.cache.main import CacheBundleIn

    nb, seconds = plugin.executed_notebook(nbformat.read(notebook, as_version=4), _outputs())
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2] and seconds == pytest.approx(2.0)
    assert code[0].outputs == [] and code[1].outputs[0]["data"]["text/plain"] == "2"
    assert code[1].outputs[0]["execution_count"] == 2  # renumbered like a fresh run
    cache = get_cache(tmp_path / "cache")
    cache.cache_notebook_bundle(CacheBundleIn(nb, str(notebook), data={"execution_seconds": seconds}))
    # what the book build does (myst-nb): match the notebook as read from disk, then merge the outputs in
    record = cache.match_cache_notebook(nbformat.read(notebook, as_version=4))
    _, merged = cache.merge_match_into_notebook(nbformat.read(notebook, as_version=4))
    assert record.data["execution_seconds"] == pytest.approx(2.0)
    assert [c.outputs for c in merged.cells if c.cell_type == "code"] == [c.outputs for c in code]


def test_a_failed_notebook_is_not_stored_and_its_old_entry_is_removed(plugin, notebook, tmp_path):
    nb = nbformat.read(notebook, as_version=4)
    failed = {**_outputs(), 1: (False, [], 1.0)}
    assert plugin.executed_notebook(nb, failed) is None
    assert plugin.executed_notebook(nb, {0: _outputs()[0]}) is None  # the run stopped early
    path = str(notebook)
    assert plugin.update_cache(tmp_path / "cache", {path: nb}, {path: _outputs()}) == [path]
    from jupyter_cache import get_cache

    assert get_cache(tmp_path / "cache").match_cache_notebook(nb) is not None
    # the same code fails in a later run (a library change broke it): its old outputs must not be rendered
    assert plugin.update_cache(tmp_path / "cache", {path: nb}, {path: failed}) == []
    with pytest.raises(KeyError):
        get_cache(tmp_path / "cache").match_cache_notebook(nb)
    assert plugin.update_cache(tmp_path / "cache", {path: nb}, {}) == []  # never ran: nothing stored


def test_an_edited_chapter_does_not_match_its_old_cached_outputs(plugin, notebook, tmp_path):
    from jupyter_cache import get_cache
    from jupyter_cache.cache.main import CacheBundleIn

    cache = get_cache(tmp_path / "cache")
    nb, _ = plugin.executed_notebook(nbformat.read(notebook, as_version=4), _outputs())
    cache.cache_notebook_bundle(CacheBundleIn(nb, str(notebook)))
    edited = nbformat.read(notebook, as_version=4)
    edited.cells[3].source = "x + 2"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(edited)


# scripts/execute_chapters.py: make book executes the chapters in two streams into the book's jupyter-cache

EXECUTE = Path(__file__).resolve().parents[1] / "scripts" / "execute_chapters.py"


@pytest.fixture(scope="module")
def execute_chapters():
    return _module("execute_chapters", EXECUTE)


def test_every_chapter_is_in_one_stream_and_only_the_run_stream_reads_the_run(execute_chapters):
    run, other = execute_chapters.streams()
    pages = execute_chapters.book_pages()
    assert sorted(run + other) == sorted(pages) and not set(run) & set(other)
    assert run[0] == "05_training"  # the chapter that trains the run comes first in its stream
    # every notebook, and the markdown pages that run code (myst-nb would run those in the build otherwise)
    assert {p.stem for p in CONFTEST.parent.glob("[0-9]*.ipynb")} <= set(pages)
    assert {"reproducing", "scaling_out"} <= set(other) and "contributing" not in pages  # no jupytext header: plain markdown
    for name in other:  # a page that reads (or would train) the profile's run must wait for 05
        source = "\n".join(c.source for c in execute_chapters.read_page(pages[name]).cells if c.cell_type == "code")
        assert source.strip(), name
        assert "trained_run(" not in source and "ll.train(config" not in source, name


def test_a_stream_caches_what_the_book_build_matches_and_stops_at_a_failure(execute_chapters, notebook, tmp_path,
                                                                          capfd):
    from jupyter_cache import get_cache

    from liverlib.kernels import encryption_available

    broken = tmp_path / "broken.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].source = "raise ValueError('a failing chapter')"
    nbformat.write(nb, broken)
    never = tmp_path / "never.ipynb"  # after the failure: not run
    nb.cells[1].source = "y = 3"
    nbformat.write(nb, never)
    cache_dir = tmp_path / "cache"
    failed = execute_chapters.run_stream("test", [str(notebook), str(broken), str(never)], str(cache_dir))
    assert failed == str(broken)
    if encryption_available():  # the kernels (whose stderr is this process's) ran over encrypted sockets
        assert "without encryption" not in capfd.readouterr().err
    cache = get_cache(cache_dir)
    record = cache.match_cache_notebook(nbformat.read(notebook, as_version=4))  # as myst-nb matches it
    assert record.data["execution_seconds"] > 0
    _, merged = cache.merge_match_into_notebook(nbformat.read(notebook, as_version=4))
    assert merged.cells[3].outputs[0]["data"]["text/plain"] == "2"
    for path in (broken, never):
        with pytest.raises(KeyError):
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
    # a second run finds the chapter cached and does not execute it again
    capfd.readouterr()
    assert execute_chapters.run_stream("test", [str(notebook)], str(cache_dir)) is None
    assert "chapter: cached, not run again" in capfd.readouterr().out
    assert len(get_cache(cache_dir).list_cache_records()) == 1


def test_a_markdown_notebook_cached_by_a_stream_is_matched_as_the_book_build_reads_it(execute_chapters, tmp_path):
    """book/reproducing.md and book/scaling_out.md run in the streams too: their cached execution must be the
    one myst-nb looks for when it reads the page, or the build would run them again."""
    from jupyter_cache import get_cache
    from myst_nb.core.config import NbParserConfig
    from myst_nb.core.read import create_nb_reader
    from myst_parser.config.main import MdParserConfig

    page = tmp_path / "page.md"
    page.write_text("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
                    "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
                    "# A page\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\nx = 6 * 7\n```\n\n"
                    "Some prose.\n\n```{code-cell} ipython3\nx\n```\n")
    cache_dir = tmp_path / "cache"
    assert execute_chapters.run_stream("test", [str(page)], str(cache_dir)) is None
    text = page.read_text()
    as_the_build_reads_it = create_nb_reader(str(page), MdParserConfig(), NbParserConfig(), text).read(text)
    _, merged = get_cache(cache_dir).merge_match_into_notebook(as_the_build_reads_it)
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert code[-1].outputs[0]["data"]["text/plain"] == "42"
