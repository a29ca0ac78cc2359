"""Run every benchmark in turn (``make bench``); each writes its JSON under benchmarks/results/.

    python -m benchmarks.run_all [--smoke]

``--smoke`` runs each on tiny inputs, only to check that it works (what CI may run).
"""

from __future__ import annotations

import argparse
import time

from benchmarks import classify_latency, phantom_separability, phantom_speed, pipeline

BENCHMARKS = {"phantom_speed": phantom_speed.main, "pipeline": pipeline.main,
              "phantom_separability": phantom_separability.main, "classify_latency": classify_latency.main}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    args = parser.parse_args(argv)
    for name in args.only or BENCHMARKS:
        start = time.perf_counter()
        print(f"==== {name}")
        BENCHMARKS[name](["--smoke"] if args.smoke else [])
        print(f"==== {name}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
