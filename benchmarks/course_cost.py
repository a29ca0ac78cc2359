"""Whole-course cost: wall time of `make test` and `make book` on a fresh clone, each stage listed.

Clones the repository's committed HEAD into a temporary folder (so nothing cached here helps: a new
virtual environment, a new phantom, new training runs) and runs the README's commands there:

* ``make test``: the stage times come from scripts/run-tests.sh's own table;
* ``make book`` (laptop profile): setup, then each notebook's execution time from the book's execution
  cache (jupyter-cache), the rest being Sphinx.

Targets (issue "Benchmarks"): make test under 20 minutes, make book under 45 minutes. Each takes as long as
it measures, so ``make bench`` does not run this; run it on an otherwise idle machine:

    python -m benchmarks.course_cost [--only test|book] [--keep]

Writes benchmarks/results/course_cost.json (merging with figures already there for the other command).
"""

from __future__ import annotations

import argparse
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


def _run(command: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVERLIB_", "VIRTUAL_ENV"))}
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


def measure(which: str, clone: Path, logs: Path) -> dict:
    if which == "test":
        seconds, code = _run(["make", "test"], clone, logs / "make-test.log")
        stages = test_stages((logs / "make-test.log").read_text(errors="replace"))
    else:
        setup, code = _run(["make", "setup"], clone, logs / "make-setup.log")
        seconds, code2 = _run(["make", "book"], clone, logs / "make-book.log")
        seconds += setup
        code = code or code2
        stages = {"setup (.venv)": round(setup, 1)}
        stages.update({f"notebook {k}": v for k, v in sorted(notebook_seconds(clone / "_build" / "laptop").items())})
    return {"command": f"make {which}", "seconds": round(seconds, 1), "minutes": round(seconds / 60, 2),
            "exit_code": code, "stages_seconds": stages, "target_minutes": TARGET_MINUTES[which]}


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
        print("course_cost smoke: stage parser works")
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
