"""ResNet-50 training throughput on this CPU, against the paper's loop and against the machine's matmul rate.

Each configuration runs in its own process (oneDNN and thread counts must be set before TensorFlow
starts), training the modified ResNet-50 on phantom PNGs for a few steps and timing every step after
the first ones (which trace the graph, about 40 s). One step's period includes waiting for data.

* ``ours``: liverlib's pipeline (tf.data: parallel decode, cache, one combined affine augmentation) and
  liverlib's compile (``liverlib.train.compile_for_training``);
* ``paper``: the paper's loader, ``ImageDataGenerator.flow_from_directory`` with its augmentation, and
  a plain ``model.compile`` + ``model.fit``; same model, same batch.

Efficiency: ResNet-50's forward pass is about 4.1 GMAC (8.2 GFLOP) per 224 px image, scaling with the
pixel count, and a training step costs about 3 forward passes; images/s x that gives the achieved
GFLOP/s, divided by this machine's NumPy float32 4096 x 4096 matmul rate measured in the same run.
Also: a settings sweep at 64 px (oneDNN off, 1 thread, batch 32/64, mixed bfloat16) and time per epoch
against dataset size (1,000, 2,000 and 4,741 slices). Writes benchmarks/results/training_speed.json.

    python -m benchmarks.training_speed [--smoke] [--only throughput sweep scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GFLOP_PER_IMAGE_224_FORWARD = 2 * 4.1  # 4.1 GMAC
TRAIN_STEP_OVER_FORWARD = 3.0
TARGET_FRACTION_OF_MATMUL_224 = 0.5

# (image size, batch): the profiles' sizes and batches (quick 64/16, paper 224/46), and 128 px at 32
THROUGHPUT = [(64, 16), (128, 32), (224, 46)]
SWEEP_BASE = {"size": 64, "batch": 32, "loop": "ours"}
# batch 16 at 64 px is the throughput table's quick-profile row, so the sweep does not repeat it
SWEEP = [{}, {"onednn": False}, {"threads": 1}, {"batch": 64}, {"precision": "mixed_bfloat16"}]
SCALING_SIZES = [1000, 2000, 4741]


def gflop_per_train_image(size: int) -> float:
    return GFLOP_PER_IMAGE_224_FORWARD * TRAIN_STEP_OVER_FORWARD * (size / 224) ** 2


def matmul_gflops(n: int = 4096, repeats: int = 5) -> dict:
    """NumPy float32 n x n matmul rate (2 n^3 FLOP per product), over ``repeats`` products after one warm-up."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return {"n": n, "gflops_median": statistics.median(rates), "gflops_min": min(rates), "gflops_max": max(rates),
            "repeats": repeats}


# ------------------------------------------------------------------------------- one configuration, one process
def _worker(spec: dict) -> dict:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if spec.get("onednn", True) else "0"  # before TensorFlow starts
    import numpy as np
    import tensorflow as tf

    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    import keras

    from liverlib.config import CLASS_NAMES, load_config
    from liverlib.data import scan_dataset
    from liverlib.model import build_modified_resnet50
    from liverlib.preprocess import make_pipeline
    from liverlib.train import compile_for_training

    if spec.get("precision"):
        keras.mixed_precision.set_global_policy(spec["precision"])
    keras.utils.set_random_seed(0)
    size, batch, steps, warmup = spec["size"], spec["batch"], spec["steps"], spec["warmup"]
    paper = load_config("paper")
    manifest = scan_dataset(spec["data"]).manifest
    if spec.get("model") == "tiny":  # smoke mode: the benchmark's machinery, without ResNet-50's 40 s trace
        from benchmarks.common import tiny_model  # local, as the other helpers of common
        model = tiny_model(keras, size, len(CLASS_NAMES))
    else:
        model = build_modified_resnet50(len(CLASS_NAMES), size)

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    def periods(timer) -> list[float]:
        return list(np.diff([timer.start] + timer.ends))

    if spec.get("dataset_sizes"):  # time per epoch against dataset size, each subset its own cached pipeline
        compile_for_training(model, paper)
        epochs = {}
        for n in spec["dataset_sizes"]:
            rows = manifest.sample(n=min(n, len(manifest)), random_state=0)
            ds = make_pipeline(rows["file"], rows["label"], size, batch, training=True, augmentation=paper.augmentation)
            for _ in ds:  # decode and cache first: a later epoch of a real run reads the cache
                pass
            if not epochs:  # trace the training step once, outside the timed epochs
                model.fit(ds.take(1), epochs=1, verbose=0)
            timer = StepTimer()
            model.fit(ds, epochs=1, verbose=0, callbacks=[timer])
            epochs[str(len(rows))] = {"epoch_seconds": timer.ends[-1] - timer.start,
                                      "images_per_s": len(rows) / (timer.ends[-1] - timer.start)}
        return {"epochs": epochs}

    timer = StepTimer()
    if spec["loop"] == "ours":
        ds = make_pipeline(manifest["file"], manifest["label"], size, batch, training=True,
                           augmentation=paper.augmentation).repeat()
        compile_for_training(model, paper)
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
    else:
        from benchmarks.common import paper_loader

        flow = paper_loader(spec["data"], size, batch)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(flow, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
    steady = periods(timer)[warmup:]
    rates = [batch / p for p in steady]
    found = flow.samples if spec["loop"] == "paper" else len(manifest)
    return {"images_in_dataset": len(manifest), "images_the_loader_found": found,
            "first_steps_seconds": sum(periods(timer)[:warmup]), "step_seconds": steady,
            "images_per_s_median": statistics.median(rates), "images_per_s_min": min(rates),
            "images_per_s_max": max(rates), "measured_steps": len(steady)}


def run_config(spec: dict) -> dict:
    """Run one configuration in a fresh Python process; its result, or the error it ended with."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.training_speed", "--worker", json.dumps(spec)],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**spec, "error": " | ".join(tail), "process_seconds": round(time.perf_counter() - start, 1)}
    return {**spec, **json.loads(lines[-1][len("RESULT "):]), "process_seconds": round(time.perf_counter() - start, 1)}


def _show(result: dict) -> None:
    keys = ("size", "batch", "loop", "onednn", "threads", "precision")
    label = " ".join(f"{k}={result[k]}" for k in keys if k in result)
    if "error" in result:
        print(f"  {label}: FAILED {result['error']}", flush=True)
    elif "epochs" in result:
        print(f"  {label}: " + ", ".join(f"{n} slices {e['epoch_seconds']:.0f} s" for n, e in result["epochs"].items()),
              flush=True)
    else:
        print(f"  {label}: {result['images_per_s_median']:.2f} images/s ({result['images_per_s_min']:.2f}-"
              f"{result['images_per_s_max']:.2f}) over {result['measured_steps']} steps; "
              f"process {result['process_seconds']:.0f} s", flush=True)


def datasets(smoke: bool) -> tuple[Path, Path]:
    """A 920-slice phantom for the throughput runs (the pipeline benchmark's) and the default 4,741 for scaling."""
    from benchmarks.common import bench_phantom
    from liverlib.config import load_config
    from liverlib.data import ensure_phantom

    small = bench_phantom(92 if smoke else 920)
    big = small if smoke else ensure_phantom(load_config("laptop"))
    return small, big


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny model for a few steps: only checks that the benchmark works")
    parser.add_argument("--only", nargs="*", choices=["throughput", "sweep", "scaling"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return {}
    from benchmarks.common import RESULTS, machine_info, write_result

    parts = args.only or ["throughput", "sweep", "scaling"]
    smoke_model = {"model": "tiny"} if args.smoke else {}
    small, big = datasets(args.smoke)
    result: dict = {"matmul": matmul_gflops(n=1024 if args.smoke else 4096)}
    peak = result["matmul"]["gflops_median"]
    print(f"NumPy float32 matmul: {peak:.0f} GFLOP/s", flush=True)

    def efficiency(r: dict) -> dict:
        if "images_per_s_median" in r:
            r["gflops"] = r["images_per_s_median"] * gflop_per_train_image(r["size"])
            r["fraction_of_matmul"] = r["gflops"] / peak
        return r

    steps = {64: (3, 10), 128: (2, 6), 224: (2, 4)}  # (warm-up steps, measured steps)
    if "throughput" in parts:
        print("throughput: ours vs the paper's loader", flush=True)
        result["throughput"] = []
        for size, batch in ([(64, 4)] if args.smoke else THROUGHPUT):
            warmup, measured = (2, 2) if args.smoke else steps[size]
            for loop in ("ours", "paper"):
                r = efficiency(run_config({"size": size, "batch": batch, "loop": loop, "data": str(small),
                                           "steps": warmup + measured, "warmup": warmup, **smoke_model}))
                result["throughput"].append(r)
                _show(r)
    if "sweep" in parts:
        print("settings at 64 px", flush=True)
        result["sweep"] = []
        for change in (SWEEP[1:2] if args.smoke else SWEEP):
            spec = {**SWEEP_BASE, **change, "data": str(small)}
            slow = spec.get("precision") == "mixed_bfloat16"
            spec["warmup"], measured = (1, 2) if (slow or args.smoke) else (3, 8)
            spec["steps"] = spec["warmup"] + measured
            if args.smoke:
                spec.update(batch=4, **smoke_model)
            r = efficiency(run_config(spec))
            result["sweep"].append(r)
            _show(r)
    if "scaling" in parts:
        print("time per epoch against dataset size (64 px, batch 32)", flush=True)
        sizes = [40, 80] if args.smoke else SCALING_SIZES
        r = run_config({"size": 64, "batch": 32, "loop": "ours", "data": str(big), "dataset_sizes": sizes,
                        "steps": 0, "warmup": 0, **smoke_model})
        result["scaling"] = r
        _show(r)
    summary = next((r for r in result.get("throughput", []) if r["size"] == 224 and r["loop"] == "ours"), None)
    if summary and "gflops" in summary:
        result["train_images_per_s_224"] = summary["images_per_s_median"]
        result["train_fraction_of_matmul_224"] = summary["fraction_of_matmul"]
    result.update(gflop_per_train_image_224=gflop_per_train_image(224),
                  target_fraction_of_matmul_224=TARGET_FRACTION_OF_MATMUL_224, machine=machine_info())
    name = "training_speed_smoke" if args.smoke else "training_speed"
    previous = RESULTS / f"{name}.json"
    if args.only and previous.exists():  # a partial run keeps the other parts' figures
        result = {**json.loads(previous.read_text()), **result}
    write_result(name, result)
    return result


if __name__ == "__main__":
    main()
