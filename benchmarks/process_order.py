"""Does the order of training processes change their speed? The same 224 px configuration, several times.

On this VM a make bench run once measured the first ResNet-50 process at 224 px about 20% slower than
later ones. This check runs the same configuration (our loop by default) in fresh processes one after
another, with an idle pause before the first and, optionally, a pass that touches a few GiB of memory
before the last. It writes the median images/s of every process, so the spread between processes can be
compared with any gap between two loops measured once each. Not part of ``make bench`` (about 10 min).
Writes benchmarks/results/process_order.json.

    python -m benchmarks.process_order [--loops ours ours ours] [--idle 60] [--pretouch-gb 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from benchmarks.common import bench_phantom, machine_info, write_result
from benchmarks.training_speed import run_config


def pretouch(gib: int) -> float:
    """Seconds to allocate and write ``gib`` GiB in a child process (the VM backs fresh memory lazily)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import numpy as np; np.ones({gib} * 2**30 // 8).sum()"], check=True)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", nargs="+", default=["ours", "ours", "ours"], choices=["ours", "paper"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=46)
    parser.add_argument("--idle", type=float, default=60, help="seconds to wait before the first process")
    parser.add_argument("--pretouch-gb", type=int, default=10, help="GiB touched before the last process (0: none)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model, 64 px, two processes")
    args = parser.parse_args(argv)
    extra = {}
    if args.smoke:
        args.loops, args.size, args.batch, args.idle, args.pretouch_gb = ["ours", "paper"], 64, 4, 0, 1
        extra = {"model": "tiny"}
    data = bench_phantom(92 if args.smoke else 920)
    time.sleep(args.idle)
    runs = []
    for i, loop in enumerate(args.loops):
        row = {"order": i + 1, "loop": loop}
        if args.pretouch_gb and i == len(args.loops) - 1 and len(args.loops) > 1:
            row["pretouch_seconds"] = pretouch(args.pretouch_gb)
        r = run_config({"size": args.size, "batch": args.batch, "loop": loop, "data": str(data), "steps": 6,
                        "warmup": 2, **extra})
        row.update({k: r[k] for k in ("images_per_s_median", "images_per_s_min", "images_per_s_max", "error",
                                      "process_seconds") if k in r})
        runs.append(row)
        print(row, flush=True)
    rates = [r["images_per_s_median"] for r in runs if "images_per_s_median" in r]
    result = {"size": args.size, "batch": args.batch, "idle_seconds": args.idle, "pretouch_gib": args.pretouch_gb,
              "processes": runs,
              "spread_max_over_min": max(rates) / min(rates) if rates else None, "machine": machine_info()}
    write_result("process_order_smoke" if args.smoke else "process_order", result)
    return result


if __name__ == "__main__":
    main()
