"""The modified ResNet-50's training step on whatever accelerator is at hand: images/s at 224 px.

A short, prepared check for a GPU machine. GPU images often carry Keras with JAX or PyTorch but not
TensorFlow, and the model code is backend-neutral Keras 3, so this script runs on any backend: it picks
TensorFlow if installed, else JAX, else PyTorch (or set ``KERAS_BACKEND``). It trains on in-memory random
images (the input pipeline is measured separately, on the CPU) for a few epochs of ``--steps-per-epoch``
steps, discards the first epoch (compilation), and times the rest. In the same process it measures the
device's matrix-multiply rate (8192 x 8192 in float32 and float16, through ``keras.ops``) so the step can be
read as a share of what the device does on plain matrix products, as on the CPU page.

Each run is merged into ``benchmarks/results/gpu_training_step.json`` (one entry per backend, size,
batch, precision and compile setting), so a sweep is several calls of this script:

    python -m benchmarks.gpu_training_step [--batch 46] [--mixed-precision] [--xla | --no-jit]

The committed results (one NVIDIA H100 80GB, 2026-11-27) came from this sweep, on a machine with JAX and
PyTorch but no TensorFlow. Keras 3.15.1, namex and optree were installed there from wheels:

    for args in "" "--mixed-precision" "--mixed-precision --batch 256"; do
        KERAS_BACKEND=jax python -m benchmarks.gpu_training_step $args; done
    KERAS_BACKEND=torch python -m benchmarks.gpu_training_step --mixed-precision --epochs 4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.training_speed import gflop_per_train_image

RESULTS = Path(__file__).resolve().parent / "results"


def pick_backend() -> str:
    for name in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise SystemExit("no Keras backend found: install tensorflow, jax or torch")


def device_info() -> dict:
    """The GPU's name, memory and driver from nvidia-smi, or the CPU when there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
        if out:
            name, memory, driver = (part.strip() for part in out.splitlines()[0].split(","))
            return {"device": name, "memory": memory, "driver": driver}
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return {"device": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"}


def backend_version(backend: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}[backend]:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def matmul_tflops(keras, dtype: str, n: int, repeats: int = 10) -> float:
    """Median TFLOP/s of an n x n x n matrix product in ``dtype`` on the backend's default device."""
    ops = keras.ops
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)

    def sync(x):
        return float(ops.convert_to_numpy(x[0, 0]))

    sync(ops.matmul(a, b))  # warm-up (and compilation, where the backend compiles)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        c = a
        for _ in range(repeats):
            c = ops.matmul(a, b)
        sync(c)
        rates.append(2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12)
    return statistics.median(rates)


def merge(path: Path, run: dict, device: dict) -> dict:
    """Add ``run`` to the results file at ``path``, replacing an earlier run of the same settings."""
    key = ("keras_backend", "size", "batch", "mixed_precision", "jit_compile")
    data = json.loads(path.read_text()) if path.is_file() else {}
    if data.get("device") != device.get("device"):
        data = {}  # another device: its runs are not comparable with this one's
    runs = [r for r in data.get("runs", []) if tuple(r.get(k) for k in key) != tuple(run[k] for k in key)]
    data.update(device)
    data["runs"] = runs + [run]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=46, help="the paper's batch (46); try 128 or 256 on a GPU")
    parser.add_argument("--steps-per-epoch", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs + 1 (the first, compiling, is dropped)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (float32 weights)")
    jit = parser.add_mutually_exclusive_group()
    jit.add_argument("--xla", action="store_true", help="jit_compile=True (TensorFlow; JAX always compiles)")
    jit.add_argument("--no-jit", action="store_true", help="jit_compile=False (PyTorch eager, TensorFlow graph)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results file")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny model, 32 px, batch 2, 3 epochs of 2 steps: only checks the script")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.steps_per_epoch, args.epochs = 32, 2, 2, 3
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is not timed")
    backend = os.environ.setdefault("KERAS_BACKEND", pick_backend())
    import keras
    import numpy as np

    from liverlib.model import build_modified_resnet50

    device = device_info()
    on_gpu = "CPU" not in device["device"]
    n = 8192 if on_gpu else 512
    matmul = {f"{dtype}_tflops": matmul_tflops(keras, dtype, n) for dtype in ("float32", "float16")}
    print(f"{device['device']}: {n} x {n} matmul, TFLOP/s: "
          + ", ".join(f"{k[:-7]} {v:.1f}" for k, v in matmul.items()), flush=True)

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    if args.smoke:  # the script's machinery (backend, timing, merge), without ResNet-50's 45 s first trace
        from benchmarks.common import tiny_model  # local, as the other helpers of common
        model = tiny_model(keras, args.size, 4)
    else:
        model = build_modified_resnet50(4, args.size)
    jit_compile = True if args.xla else False if args.no_jit else "auto"
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = args.batch * args.steps_per_epoch
    x = rng.uniform(0, 1, (images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 4, images).astype("int32")

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.marks = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):  # reading the loss waits for the device
            float(logs["loss"])
            self.marks.append(time.perf_counter())

    timer = Timer()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[timer])
    periods = np.diff(timer.marks)
    rates = [images / p for p in periods[1:]]
    median = statistics.median(rates)
    achieved = median * gflop_per_train_image(args.size) / 1000
    peak = matmul["float16_tflops" if args.mixed_precision else "float32_tflops"]
    run = {"model": "tiny (smoke)" if args.smoke else "modified ResNet-50",
           "keras_backend": backend, "backend_version": backend_version(backend), "keras": keras.__version__,
           "size": args.size, "batch": args.batch,
           "mixed_precision": args.mixed_precision, "jit_compile": bool(model.jit_compile),
           "first_epoch_seconds": float(periods[0]), "timed_epochs": len(rates),
           "steps_per_epoch": args.steps_per_epoch, "images_per_s_median": median,
           "images_per_s_min": min(rates), "images_per_s_max": max(rates), "achieved_tflops": achieved,
           "matmul": {**matmul, "n": n}, "fraction_of_matmul": achieved / peak,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    name = "gpu_training_step_smoke" if args.smoke else "gpu_training_step"
    merge(args.results / f"{name}.json", run, device)
    print(json.dumps({**device, **run}, indent=2), flush=True)
    return run


if __name__ == "__main__":
    main()
