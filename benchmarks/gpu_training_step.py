"""The modified ResNet-50's training step on whatever accelerator is at hand: images/s at 224 px.

A short, prepared check for a GPU machine. GPU images often carry Keras with JAX or PyTorch but not
TensorFlow, and the model code is backend-neutral Keras 3, so this script runs on any backend: it picks
TensorFlow if installed, else JAX, else PyTorch (or set ``KERAS_BACKEND``). It trains on one in-memory
batch of random images (the input pipeline is measured separately, on the CPU), times every step after
the warm-up, and names the device. Writes benchmarks/results/gpu_training_step.json.

    python -m benchmarks.gpu_training_step [--batch 46] [--steps 30] [--mixed-precision] [--xla]
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

RESULTS = Path(__file__).resolve().parent / "results"


def pick_backend() -> str:
    for name in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise SystemExit("no Keras backend found: install tensorflow, jax or torch")


def device_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
        if out:
            return out.splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=46, help="the paper's batch (46); try 128 or 256 on a GPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--xla", action="store_true", help="jit_compile=True (TensorFlow, JAX)")
    parser.add_argument("--smoke", action="store_true", help="32 px, batch 2, 3 steps: only checks that it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.steps, args.warmup = 32, 2, 3, 1
    backend = os.environ.setdefault("KERAS_BACKEND", pick_backend())
    import keras
    import numpy as np

    from liverlib.model import build_modified_resnet50

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = build_modified_resnet50(4, args.size)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  jit_compile=True if args.xla else ("auto" if backend != "tensorflow" else False))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 4, args.batch).astype("int32")

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.marks = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):  # one step per epoch; the loss value syncs the device
            float(logs["loss"])
            self.marks.append(time.perf_counter())

    timer = Timer()
    model.fit(x, y, batch_size=args.batch, epochs=args.warmup + args.steps, verbose=0, shuffle=False,
              callbacks=[timer])
    periods = np.diff(timer.marks)[args.warmup:]
    rates = [args.batch / p for p in periods]
    result = {"device": device_name(), "keras_backend": backend, "keras": keras.__version__, "size": args.size,
              "batch": args.batch, "mixed_precision": args.mixed_precision, "xla": args.xla,
              "warmup_seconds": float(sum(np.diff(timer.marks)[:args.warmup])), "steps": len(rates),
              "images_per_s_median": statistics.median(rates), "images_per_s_min": min(rates),
              "images_per_s_max": max(rates), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    name = "gpu_training_step_smoke" if args.smoke else "gpu_training_step"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
