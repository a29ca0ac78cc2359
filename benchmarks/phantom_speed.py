"""Phantom generation speed: slices per second at 512 x 512 for the default 4,741-slice dataset.

Target (issue: synthetic phantom): the default dataset in under 2 minutes on the 2-core machine.
Writes benchmarks/results/phantom_speed.json.

    python -m benchmarks.phantom_speed [--n 4741] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_info, write_result
from liverlib.config import load_config
from liverlib.data import MANIFEST_FILE
from liverlib.phantom import write_phantom_dataset


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4741)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.repeats = 60, 1
    default = load_config("laptop")  # the default dataset: kept for the other benchmarks if it is not there yet
    seconds = []
    for _ in range(args.repeats):
        tmp = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        write_phantom_dataset(tmp / "phantom", n=args.n, seed=0, size=args.size, progress=False)
        seconds.append(time.perf_counter() - start)
        keep = (args.n, args.size, 0) == (default.phantom_n, default.phantom_size, default.phantom_seed)
        if keep and not (default.phantom_dir / MANIFEST_FILE).exists():  # paths in it are relative
            default.phantom_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(default.phantom_dir, ignore_errors=True)
            shutil.move(tmp / "phantom", default.phantom_dir)
        shutil.rmtree(tmp)
    result = {
        "n_slices": args.n, "size": args.size, "repeats": args.repeats,
        "seconds": [round(s, 2) for s in seconds], "seconds_median": round(statistics.median(seconds), 2),
        "slices_per_s": round(args.n / statistics.median(seconds), 1),
        "target_seconds_for_4741": 120.0, "machine": machine_info(),
    }
    write_result("phantom_speed_smoke" if args.smoke else "phantom_speed", result)
    print({k: v for k, v in result.items() if k != "machine"})
    return result


if __name__ == "__main__":
    main()
