"""Benchmark results as tables and figures, and what the paper profile would take on a GPU.

The numbers come from ``make bench`` (``benchmarks/``), which writes one JSON file per benchmark and
``summary.json``; this module only reads them. :func:`summary` is the flat object of headline figures,
:func:`targets_table` sets each against its target, :func:`gpu_estimates` turns published training rates
into hours for the paper profile, and :func:`gpu_runs_table` lists the training steps measured on a GPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# headline figure -> (where it comes from, target, "min" if higher is better / "max" if lower is better, unit)
TARGETS = {
    "pipeline_speedup_vs_imagedatagenerator": ("input pipeline, cached epochs, vs the paper's loader", 5.0, "min", "x"),
    "pipeline_over_training_throughput": ("input pipeline over ResNet-50 training speed at 224 px", 5.0, "min", "x"),
    "train_images_per_s_224": ("ResNet-50 training at 224 px, batch 46", None, "min", "images/s"),
    "train_fraction_of_matmul_224": ("achieved GFLOP/s over NumPy matmul GFLOP/s, 224 px", 0.5, "min", ""),
    "classify_forward_ms_224": ("one slice, forward pass, 224 px (median)", 70.0, "max", "ms"),
    "classify_speedup_vs_predict": ("forward pass vs a naive model.predict", 3.0, "min", "x"),
    "phantom_slices_per_s": ("phantom generation, 512 x 512", 4741 / 120, "min", "slices/s"),
    "make_test_minutes": ("make test on a fresh clone", 20.0, "max", "min"),
    "make_book_minutes": ("make book (laptop profile) on a fresh clone", 45.0, "max", "min"),
}

# Published ResNet-50 training rates at 224 px (images/s), for the estimate table; each with its source.
PUBLISHED_RATES = {
    "NVIDIA A100, mixed precision (NVIDIA reference figure)": 2400.0,
}


def default_results_dir() -> Path:
    """``benchmarks/results`` of a source checkout (or ``$LIVERLIB_BENCH_RESULTS``)."""
    if os.environ.get("LIVERLIB_BENCH_RESULTS"):
        return Path(os.environ["LIVERLIB_BENCH_RESULTS"])
    return Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def load_results(folder: str | os.PathLike | None = None) -> dict[str, dict]:
    """Every benchmark result file in ``folder`` (smoke-mode files left out), by name."""
    folder = Path(folder) if folder else default_results_dir()
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
            if not p.stem.endswith("_smoke") and p.stem != "summary"}


def _get(results: dict, *keys):
    value = results
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


def summary(results: dict[str, dict]) -> dict[str, float | None]:
    """The headline figures (the keys of :data:`TARGETS`), None where a benchmark has not been run."""
    train_224 = _get(results, "training_speed", "train_images_per_s_224")
    pipeline = _get(results, "pipeline", "ours_augmented", "cached_epochs")
    course = results.get("course_cost", {})
    return {
        "pipeline_speedup_vs_imagedatagenerator": _get(results, "pipeline", "speedup_vs_imagedatagenerator",
                                                       "cached_epochs"),
        "pipeline_over_training_throughput": pipeline / train_224 if pipeline and train_224 else None,
        "train_images_per_s_224": train_224,
        "train_fraction_of_matmul_224": _get(results, "training_speed", "train_fraction_of_matmul_224"),
        "classify_forward_ms_224": _get(results, "classify_latency", "forward_ms"),
        "classify_speedup_vs_predict": _get(results, "classify_latency", "speedup_vs_predict"),
        "phantom_slices_per_s": _get(results, "phantom_speed", "slices_per_s"),
        "make_test_minutes": _get(course, "make_test", "minutes"),
        "make_book_minutes": _get(course, "make_book", "minutes"),
    }


def targets_table(figures: dict[str, float | None]):
    """One row per headline figure: what it measures, the figure, its target and whether it is met."""
    import pandas as pd

    rows = []
    for key, (what, target, sense, unit) in TARGETS.items():
        value = figures.get(key)
        met = None if value is None or target is None else (value >= target if sense == "min" else value <= target)
        rows.append({"figure": key, "what": what, "measured": value, "unit": unit,
                     "target": None if target is None else (f">= {target:g}" if sense == "min" else f"<= {target:g}"),
                     "met": {None: "", True: "yes", False: "no"}[met]})
    return pd.DataFrame(rows).set_index("figure")


def _gpu_run_label(device: str, run: dict) -> str:
    precision = "mixed precision" if run.get("mixed_precision") else "float32"
    return f"{device}, {run['keras_backend']}, {precision}, batch {run['batch']} (measured)"


def gpu_runs_table(gpu: dict):
    """One row per training step measured by ``benchmarks.gpu_training_step``, fastest first."""
    import pandas as pd

    rows = [{"backend": r["keras_backend"], "batch": r["batch"], "size": r["size"],
             "precision": "mixed float16" if r["mixed_precision"] else "float32",
             "compiled (XLA)": r["jit_compile"], "images_per_s": r["images_per_s_median"],
             "min": r["images_per_s_min"], "max": r["images_per_s_max"], "achieved_tflops": r["achieved_tflops"],
             "fraction_of_matmul": r["fraction_of_matmul"], "first_epoch_s": r["first_epoch_seconds"]}
            for r in gpu.get("runs", [])]
    table = pd.DataFrame(rows)
    return table.sort_values("images_per_s", ascending=False, ignore_index=True) if rows else table


def gpu_estimates(train_images: int, epochs: int, measured_cpu_images_per_s: float | None = None,
                  rates: dict[str, float] | None = None, measured_gpu: dict | None = None,
                  size: int = 224):
    """Hours for ``epochs`` epochs over ``train_images`` images at each rate (training steps only).

    ``measured_gpu`` is ``gpu_training_step.json``: its runs at ``size`` px are added as rows.
    """
    import pandas as pd

    rates = dict(PUBLISHED_RATES if rates is None else rates)
    for run in (measured_gpu or {}).get("runs", []):
        if run.get("size") == size:
            rates[_gpu_run_label(measured_gpu.get("device", "GPU"), run)] = run["images_per_s_median"]
    if measured_cpu_images_per_s:
        rates["this 2-core CPU, float32 (measured by make bench)"] = measured_cpu_images_per_s
    rows = [{"hardware": name, "images_per_s": rate, "images_per_epoch": train_images, "epochs": epochs,
             "seconds_per_epoch": train_images / rate, "hours_total": epochs * train_images / rate / 3600}
            for name, rate in rates.items()]
    return pd.DataFrame(rows).set_index("hardware")


def throughput_figure(training: dict):
    """ResNet-50 training images/s by input size, ours vs the paper's loop, with the spread over steps."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    rows = [r for r in training.get("throughput", []) if "images_per_s_median" in r]
    sizes = sorted({r["size"] for r in rows})
    for offset, loop, label in ((-0.18, "ours", "liverlib (tf.data + our compile)"),
                                (0.18, "paper", "paper (ImageDataGenerator + model.fit)")):
        chosen = [next((r for r in rows if r["size"] == s and r["loop"] == loop), None) for s in sizes]
        xs = [i + offset for i, r in enumerate(chosen) if r]
        med = [r["images_per_s_median"] for r in chosen if r]
        err = [[r["images_per_s_median"] - r["images_per_s_min"] for r in chosen if r],
               [r["images_per_s_max"] - r["images_per_s_median"] for r in chosen if r]]
        ax.bar(xs, med, width=0.36, yerr=err, capsize=3, label=label)
        frac = [r["fraction_of_matmul"] for r in chosen if r]
        ax2.bar(xs, frac, width=0.36, label=label)
    for a in (ax, ax2):
        a.set_xticks(range(len(sizes)), [f"{s} px" for s in sizes])
    ax.set_ylabel("training images/s (median, min-max)")
    ax.set_yscale("log")
    ax.set_title("ResNet-50 training throughput")
    ax2.axhline(0.5, color="k", ls="--", lw=1, label="target (50%)")
    ax2.set_ylabel("achieved GFLOP/s / matmul GFLOP/s")
    ax2.set_title("Share of the machine's matmul rate")
    ax2.legend(fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def latency_figure(latency: dict):
    """Single-slice latency (median with p95) of each way to run the model."""
    import matplotlib.pyplot as plt

    names = [("naive_predict", "model.predict"), ("forward_tf_function", "tf.function forward"),
             ("forward_litert", "LiteRT forward (classify)"), ("classify_no_gradcam", "classify, no Grad-CAM"),
             ("classify_total", "classify with Grad-CAM")]
    names = [(k, label) for k, label in names if k in latency]
    fig, ax = plt.subplots(figsize=(7, 3))
    med = [latency[k]["median_ms"] for k, _ in names]
    p95 = [latency[k]["p95_ms"] - latency[k]["median_ms"] for k, _ in names]
    ax.barh([label for _, label in names], med, xerr=[[0] * len(med), p95], capsize=3, color="tab:blue")
    ax.axvline(latency.get("target_forward_ms", 70), color="k", ls="--", lw=1, label="forward target")
    ax.set_xlabel(f"ms per slice at {latency.get('image_size', 224)} px (median; bar to p95)")
    ax.legend(fontsize=7)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def scaling_figure(training: dict, pipeline: dict | None = None):
    """Time per epoch against dataset size, and throughput with 1 and 2 threads."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = (training.get("scaling") or {}).get("epochs", {})
    if epochs:
        n = sorted(int(k) for k in epochs)
        ax.plot(n, [epochs[str(k)]["epoch_seconds"] for k in n], "o-")
        ax.set_xlabel("slices in the training set")
        ax.set_ylabel("seconds per epoch (64 px, batch 32)")
        ax.set_title("Time per epoch grows linearly with the data")
    bars = {}
    for r in training.get("sweep", []):
        if "images_per_s_median" in r and set(r) & {"threads"} and r.get("batch") == 32:
            bars[f"training, {r['threads']} thread"] = r["images_per_s_median"]
    base = next((r for r in training.get("sweep", []) if "images_per_s_median" in r and r.get("batch") == 32
                 and not {"threads", "onednn", "precision"} & set(r)), None)
    if base:
        bars["training, 2 threads"] = base["images_per_s_median"]
    for key, label in (("ours_augmented_1_thread", "pipeline, 1 thread"), ("ours_augmented", "pipeline, 2 threads")):
        if pipeline and key in pipeline:
            bars[label] = pipeline[key]["cached_epochs"]
    if bars:
        ax2.barh(list(bars), list(bars.values()), color="tab:green")
        ax2.set_xscale("log")
        ax2.set_xlabel("images/s (training at 64 px; pipeline at 224 px, cached epochs)")
        ax2.set_title("1 thread vs 2")
    fig.tight_layout()
    return fig
