"""Whole-course cost: wall time of `make test` and `make book` on a fresh clone, each stage listed.

Clones the repository's committed HEAD into a temporary folder (so nothing cached here helps: a new
virtual environment, a new phantom, new training runs) and runs the README's commands there:

* ``make test``: the stage times come from scripts/run-tests.sh's own table;
* ``make book`` (laptop profile): setup, then each notebook's execution time from the book's execution
  cache (jupyter-cache), the rest being Sphinx; and the slowest cells (``slowest_cells``: notebook, cell
  index, seconds), timed by an IPython startup file that the book's kernels load (``IPYTHONDIR``). The
  chapters run in two streams side by side (scripts/execute_chapters.py), so their times overlap and do not
  add up: ``chapters_wall_seconds`` is the wall time of both streams with the phantoms written before them.
  ``stack_import_seconds``: one process's import of the course's libraries, with and without the .pyc files
  that ``make setup`` compiles (measured after setup, outside the total).

Targets (issue "Benchmarks"): make test under 20 minutes, make book under 45 minutes. Each takes as long as
it measures, so ``make bench`` does not run this; run it on an otherwise idle machine:

    python -m benchmarks.course_cost [--only test|book] [--keep]

Writes benchmarks/results/course_cost.json (merging with figures already there for the other command).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, machine_info, write_result

REPO = Path(__file__).resolve().parent.parent
TARGET_MINUTES = {"test": 20.0, "book": 45.0}


def _run(command: list[str], cwd: Path, log: Path, extra_env: dict | None = None) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVERLIB_", "VIRTUAL_ENV"))}
    env.update(extra_env or {})
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    return time.perf_counter() - start, code


def test_stages(log_text: str) -> dict[str, float]:
    """Stage name -> seconds, from the table scripts/run-tests.sh prints at the end."""
    table = log_text.rsplit("==== time per stage", 1)[-1]
    return {m.group(1).strip(): float(m.group(2))
            for m in re.finditer(r"^(\S.*?)\s+(\d+) s\b", table, flags=re.M) if "total" not in m.group(1)}


def notebook_seconds(build_dir: Path) -> dict[str, float]:
    """Notebook path -> execution seconds, from a Jupyter Book build's execution cache."""
    from jupyter_cache import get_cache

    cache_dir = build_dir / "_build" / ".jupyter_cache"
    if not cache_dir.exists():
        return {}
    found = {}
    for record in get_cache(cache_dir).list_cache_records():
        seconds = (record.data or {}).get("execution_seconds")
        if seconds is not None:
            found[Path(record.uri).name] = round(float(seconds), 1)
    return found


# an IPython startup file for the book's kernels: each executed cell's wall time, keyed by a hash of its source
CELL_TIMER = """
import hashlib, json, os, time
_log, _started = os.environ["COURSE_COST_CELL_LOG"], {}
def _pre(info):
    _started["source"], _started["t"] = info.raw_cell or "", time.perf_counter()
def _post(result):
    with open(_log, "a") as out:
        out.write(json.dumps({"kernel": os.getpid(), "seconds": round(time.perf_counter() - _started["t"], 2),
                              "sha1": hashlib.sha1(_started["source"].encode()).hexdigest()}) + "\\n")
get_ipython().events.register("pre_run_cell", _pre)
get_ipython().events.register("post_run_cell", _post)
"""


def _myst_cells(path: Path) -> list:
    """The cells of a MyST Markdown page, read as the book reads it (none for a page without code cells)."""
    from myst_nb.core.read import read_myst_markdown_notebook

    text = path.read_text()
    return read_myst_markdown_notebook(text, path=path).cells if "{code-cell}" in text else []


def slowest_cells(clone: Path, log: Path, n: int = 25) -> list[dict]:
    """The ``n`` slowest cells of the book's execution: notebook (or MyST page), cell index, seconds, first line.
    A cell whose source appears in several chapters is credited to the first."""
    if not log.is_file():
        return []
    where = {}
    for path in sorted((clone / "notebooks").glob("*.ipynb")) + sorted((clone / "book").glob("*.md")):
        cells = json.loads(path.read_text())["cells"] if path.suffix == ".ipynb" else _myst_cells(path)
        for index, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                where.setdefault(hashlib.sha1(source.encode()).hexdigest(), (path.name, index, source))
    rows = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        notebook, index, source = where.get(record["sha1"], ("?", None, ""))
        first = next((ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")), "")
        rows.append({"notebook": notebook, "cell": index, "seconds": record["seconds"], "first_line": first[:100]})
    return sorted(rows, key=lambda r: -r["seconds"])[:n]


def _cell_timer_env(logs: Path) -> dict:
    """The environment that makes every kernel started under it log its cells' times (``CELL_TIMER``)."""
    startup = logs / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-cell-times.py").write_text(CELL_TIMER)
    return {"IPYTHONDIR": str(logs / "ipython"), "COURSE_COST_CELL_LOG": str(logs / "cell-times.jsonl")}


def _timed_notebook(tmp: Path, sources: list[str]) -> tuple[Path, Path]:
    """Execute a notebook of ``sources`` in a kernel with the cell timer: (its clone folder, the timer's log)."""
    import nbformat
    from nbclient import NotebookClient

    (tmp / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, tmp / "notebooks" / "timed.ipynb")
    env = _cell_timer_env(tmp)
    NotebookClient(nb, kernel_name="python3", timeout=120).execute(env={**os.environ, **env})  # the kernel's
    return tmp, Path(env["COURSE_COST_CELL_LOG"])


STACK = "import tensorflow, keras, pandas, scipy.ndimage, sklearn.metrics, matplotlib.pyplot, skimage, pydicom"


def import_seconds(python: Path) -> dict[str, float]:
    """What one new Python process (a kernel, a test's subprocess) spends importing the course's libraries from
    the clone's virtual environment: with the .pyc files that ``make setup`` writes (``uv --compile-bytecode``),
    and without them, as where uv installed without that flag and PYTHONDONTWRITEBYTECODE is set (an empty
    PYTHONPYCACHEPREFIX hides the .pyc files; nothing is written)."""
    times = {}
    with tempfile.TemporaryDirectory() as empty:
        for name, env in (("compiled", {}),
                          ("uncompiled", {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty})):
            start = time.perf_counter()
            subprocess.run([str(python), "-c", STACK], env={**os.environ, **env}, check=True, capture_output=True)
            times[name] = round(time.perf_counter() - start, 1)
    return times


def measure(which: str, clone: Path, logs: Path) -> dict:
    extra = {}
    if which == "test":
        seconds, code = _run(["make", "test"], clone, logs / "make-test.log")
        stages = test_stages((logs / "make-test.log").read_text(errors="replace"))
    else:
        setup, code = _run(["make", "setup"], clone, logs / "make-setup.log")
        extra["stack_import_seconds"] = import_seconds(clone / ".venv" / "bin" / "python")  # not in the total
        timer = _cell_timer_env(logs)
        cell_log = Path(timer["COURSE_COST_CELL_LOG"])
        seconds, code2 = _run(["make", "book"], clone, logs / "make-book.log", timer)
        seconds += setup
        code = code or code2
        stages = {"setup (.venv)": round(setup, 1)}
        stages.update({f"notebook {k}": v for k, v in sorted(notebook_seconds(clone / "_build" / "laptop").items())})
        extra["slowest_cells"] = slowest_cells(clone, cell_log)
        streams = re.search(r"chapters executed in two streams in (\d+) s",
                            (logs / "make-book.log").read_text(errors="replace"))
        if streams:
            extra["chapters_wall_seconds"] = float(streams.group(1))
    return {"command": f"make {which}", "seconds": round(seconds, 1), "minutes": round(seconds / 60, 2),
            "exit_code": code, "stages_seconds": stages, "target_minutes": TARGET_MINUTES[which], **extra}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["test", "book"], help="measure one command (default: both)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs")
    parser.add_argument("--smoke", action="store_true", help="only check that the stage parsers work")
    parser.add_argument("--note", default=None, help="a remark stored with the figures (e.g. what else ran)")
    args = parser.parse_args(argv)
    if args.smoke:
        sample = "==== time per stage (x)\nsetup (.venv)     12 s  ok\nbrowser tests     3 s  ok\ntotal (wall clock)  15 s\n"
        assert test_stages(sample) == {"setup (.venv)": 12.0, "browser tests": 3.0}, test_stages(sample)
        with tempfile.TemporaryDirectory() as tmp:  # the cell timer, in a kernel that runs a two-cell notebook
            cells = slowest_cells(*_timed_notebook(Path(tmp), ["import time\ntime.sleep(0.3)", "x = 1"]))
        assert [c["cell"] for c in cells] == [0, 1] and cells[0]["seconds"] >= 0.3, cells
        assert cells[0]["notebook"] == "timed.ipynb" and cells[0]["first_line"] == "import time", cells
        print("course_cost smoke: stage parser and cell timer work")
        return {}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    path = RESULTS / "course_cost.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    for which in [args.only] if args.only else ["test", "book"]:
        tmp = Path(tempfile.mkdtemp(prefix=f"liverlib-{which}-"))
        clone = tmp / "liverlib"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        print(f"==== make {which} in a fresh clone of {head[:10]}: {clone} (logs in {tmp})", flush=True)
        load_before = os.getloadavg()[0]
        figures = measure(which, clone, tmp)
        # a load average well above what the command itself makes (about 2) means something else shared the CPU
        figures["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        figures["commit"] = head
        if args.note:
            figures["note"] = args.note
        figures["machine"] = machine_info()
        result[f"make_{which}"] = figures
        print(json.dumps({k: v for k, v in figures.items() if k != "machine"}, indent=2), flush=True)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    write_result("course_cost", result)
    return result


if __name__ == "__main__":
    main()
