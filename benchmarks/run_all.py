"""Run every benchmark in turn (``make bench``); each writes its JSON under benchmarks/results/.

    python -m benchmarks.run_all [--smoke] [--only NAME ...]

``--smoke`` runs each on tiny inputs, only to check that it works (what CI runs). Two measurements are
not part of ``make bench`` because they take longer than its 30 minutes: the whole-course cost
(``python -m benchmarks.course_cost``: make test and make book on a fresh clone) and how well the phantom's
classes can be told apart (``python -m benchmarks.phantom_separability``, and to convergence on the laptop
run's inputs, ``python -m benchmarks.phantom_ceiling``). The training-recipe work has its own scripts
(``benchmarks.liver_crop``, ``benchmarks.recipe_ablation``, and the leading recipes with three seeds at the
full budget, ``benchmarks.recipe_seeds``). summary.json is written last, from every
result file present.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import machine_info, write_result
from benchmarks import classify_latency, phantom_speed, pipeline, summary, training_speed

BENCHMARKS = {"phantom_speed": phantom_speed.main, "pipeline": pipeline.main,
              "classify_latency": classify_latency.main, "training_speed": training_speed.main}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    args = parser.parse_args(argv)
    seconds = {}
    for name in args.only or BENCHMARKS:
        start = time.perf_counter()
        print(f"==== {name}", flush=True)
        BENCHMARKS[name](["--smoke"] if args.smoke else [])
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"==== {name}: {seconds[name]:.0f} s", flush=True)
    total = sum(seconds.values())
    print(f"==== all: {total / 60:.1f} min (target for make bench: under 30 min)")
    if not args.smoke and not args.only:
        write_result("make_bench", {"seconds": seconds, "total_minutes": round(total / 60, 2),
                                    "target_minutes": 30, "machine": machine_info()})
    if not args.smoke:
        summary.main([])


if __name__ == "__main__":
    main()
