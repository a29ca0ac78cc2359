"""Speed and quality measurements; each writes JSON under benchmarks/results/. Never run as timed tests."""
