"""benchmarks/results/summary.json: the headline figures of every benchmark, one flat object of numbers.

Reads the result files the other benchmarks wrote (``liverlib.performance.summary`` says which figure
comes from where); a figure whose benchmark has not been run is null. ``make bench`` writes it last.

    python -m benchmarks.summary
"""

from __future__ import annotations

import json

from benchmarks.common import RESULTS
from liverlib.performance import load_results, summary, targets_table


def main(argv=None) -> dict:
    figures = summary(load_results(RESULTS))
    (RESULTS / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    missing = [k for k, v in figures.items() if v is None]
    print(targets_table(figures).to_string())
    if missing:
        print("not measured yet: " + ", ".join(missing) + " (course cost: python -m benchmarks.course_cost)")
    return figures


if __name__ == "__main__":
    main()
