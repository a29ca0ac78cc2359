"""Execute the book's chapters in two streams into its jupyter-cache, before `jupyter-book build` renders them.

`make book` used to let Jupyter Book run the chapters one after another (about an hour on a 2-core laptop). Much
of a chapter's time is single-threaded (importing TensorFlow, building graphs, plotting, writing images), so two
kernels side by side finish sooner, as the two streams of `make test` do. The chapters fall into two groups:

* the run stream: 05 trains the profile's model; 07, 08, 09 and 11 read that run. They run in this order.
* the other stream: every other page that runs code, which neither trains nor reads the profile's run
  (tests/test_notebook_cache.py checks that no page outside the run stream calls ``trained_run``): the other
  notebooks and the book's MyST markdown notebooks (book/reproducing.md, book/scaling_out.md).

Before the streams start, the profile's phantom and the quick profile's (which the exercise solutions of both
streams read) are written once, so two kernels never generate the same dataset. Each executed notebook is stored
as myst-nb stores it (jupyter-cache, keyed by its code), so the build that follows finds every chapter cached and
only renders; a chapter already cached is not run again. A chapter that fails stops its stream, the other stream
finishes, and the script exits with the error: run `make book` again after the fix (finished chapters stay cached).
The kernels run over encrypted sockets where jupyter_client allows it (:mod:`liverlib.kernels`).

    python scripts/execute_chapters.py _build/laptop     # the folder given to jupyter-book's --path-output

`make book-quick` (which `make test` runs after nbval has cached the notebooks it ran) does the same for the
quick profile's book, where only the markdown notebooks are left to run.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# chapters that train (05) or read (the others) the profile's run, in the order the book reads them
RUN_STREAM = ("05_training", "07_evaluation", "08_literature_comparison", "09_classify_a_slice",
              "11_whole_studies")


def book_pages() -> dict[str, Path]:
    """The pages of the book's table of contents that run code, by name (file stem), in reading order: the
    notebooks and the MyST markdown notebooks (a page with a jupytext/kernelspec header, as myst-nb tells them)."""
    import yaml
    from myst_nb.core.read import is_myst_markdown_notebook

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = {}
    for file in (chapter["file"] for part in toc["parts"] for chapter in part["chapters"]):
        notebook, markdown = ROOT / f"{file}.ipynb", ROOT / f"{file}.md"
        if notebook.is_file():
            pages[notebook.stem] = notebook
        elif markdown.is_file() and is_myst_markdown_notebook(markdown.read_text()):
            pages[markdown.stem] = markdown
    return pages


def streams() -> tuple[list[str], list[str]]:
    """(the run stream, the other stream): the book's pages that run code, split as the module docstring says."""
    pages = book_pages()
    missing = [name for name in RUN_STREAM if name not in pages]
    if missing:
        raise SystemExit(f"execute_chapters: {missing} are in RUN_STREAM but not in _toc.yml: update RUN_STREAM")
    return list(RUN_STREAM), [name for name in pages if name not in RUN_STREAM]


def read_page(path: Path):
    """A page as the book build reads it: a notebook, or a MyST markdown notebook parsed by myst-nb (so that
    its cached execution matches the one the build looks for: jupyter-cache keys on the code cells)."""
    import nbformat
    from myst_nb.core.read import read_myst_markdown_notebook

    if path.suffix == ".md":
        return read_myst_markdown_notebook(path.read_text(), add_source_map=True, path=path)
    return nbformat.read(path, as_version=4)


def execution_settings() -> tuple[int, bool]:
    """The timeout per cell and allow_errors from _config.yml, as the book build reads them."""
    import yaml

    execute = yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute", {})
    return int(execute.get("timeout", 30)), bool(execute.get("allow_errors", False))


@contextmanager
def _locked(cache_dir: Path):
    """One writer at a time in the jupyter-cache (its SQLite index and its files)."""
    with open(cache_dir.parent / ".jupyter_cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_stream(name: str, notebooks: list[str], cache_dir: str) -> str | None:
    """Execute the ``notebooks`` (paths of notebooks or MyST markdown notebooks) one after another into the
    jupyter-cache at ``cache_dir``, skipping those already cached; stop at the first failure. Returns the path of
    the notebook that failed, or None."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution
    from traitlets.config import Config

    from liverlib.kernels import kernel_manager_config  # encrypted kernel sockets, where supported

    cache_dir = Path(cache_dir)
    timeout, allow_errors = execution_settings()
    for path in map(Path, notebooks):
        chapter = path.stem
        nb = read_page(path)
        with _locked(cache_dir):
            try:
                get_cache(cache_dir).match_cache_notebook(nb)
                print(f"[{name}] {chapter}: cached, not run again", flush=True)
                continue
            except KeyError:
                pass
        print(f"[{name}] {chapter}: executing", flush=True)
        result = single_nb_execution(nb, cwd=str(path.parent), timeout=timeout, allow_errors=allow_errors,
                                     meta_override=True, config=Config(kernel_manager_config()))
        if result.err is not None:
            print(f"[{name}] {chapter}: FAILED after {result.time:.0f} s\n{result.exc_string}", flush=True)
            return str(path)
        with _locked(cache_dir):
            get_cache(cache_dir).cache_notebook_bundle(
                CacheBundleIn(nb, str(path), data={"execution_seconds": result.time}),
                check_validity=False, overwrite=True)
        print(f"[{name}] {chapter}: executed in {result.time:.0f} s", flush=True)
    return None


def _stream_process(name: str, notebooks: list[str], cache_dir: str) -> None:
    sys.exit(1 if run_stream(name, notebooks, cache_dir) else 0)


def write_phantoms() -> None:
    """The book profile's phantom and the quick profile's, written once before the streams start."""
    from liverlib.config import load_config
    from liverlib.data import ensure_phantom
    from liverlib.teaching import quick_config  # the exercise solutions' profile

    configs = {config.phantom_dir: config for config in (load_config(), quick_config())}  # the same with quick
    for config in configs.values():
        start = time.perf_counter()
        path = ensure_phantom(config)
        print(f"phantom of the {config.profile} profile: {path.name} ({time.perf_counter() - start:.0f} s)",
              flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path_output", type=Path, help="the folder given to jupyter-book build --path-output")
    args = parser.parse_args(argv)
    from jupyter_cache import get_cache

    cache_dir = (args.path_output / "_build" / ".jupyter_cache").resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    get_cache(cache_dir).list_cache_records()  # creates the index before two processes open it
    start = time.perf_counter()
    write_phantoms()
    context = multiprocessing.get_context("spawn")
    pages = book_pages()
    workers = {name: context.Process(target=_stream_process, args=(
                   name, [str(pages[c]) for c in chapters], str(cache_dir)))
               for name, chapters in zip(("run stream", "other stream"), streams())}
    for worker in workers.values():
        worker.start()
    for worker in workers.values():
        worker.join()
    print(f"chapters executed in two streams in {time.perf_counter() - start:.0f} s", flush=True)
    failed = [name for name, worker in workers.items() if worker.exitcode]
    if failed:
        print(f"execute_chapters: the {' and the '.join(failed)} stopped at a failed chapter (its error is above); "
              "the chapters that finished are cached: fix the error and run `make book` again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
