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


def machine_of(result: dict) -> dict:
    """The ``machine`` record of one result file: at its top level, or in its first entry that has one."""
    if isinstance(result.get("machine"), dict):
        return result["machine"]
    return next((v["machine"] for v in result.values() if isinstance(v, dict) and isinstance(v.get("machine"), dict)),
                {})


def measured_on(results: dict[str, dict]):
    """One row per benchmark: when, on what CPU, with how many cores and which TensorFlow it was measured."""
    import pandas as pd

    rows = []
    for name, result in results.items():
        machine = machine_of(result)
        date = machine.get("date") or next((r.get("date") for r in reversed(result.get("runs", []))
                                            if isinstance(r, dict) and r.get("date")), "")
        rows.append({"benchmark": name, "measured": str(date)[:16].replace("T", " "),
                     "machine": machine.get("cpu") or result.get("device", ""), "cores": machine.get("cores"),
                     "tensorflow": machine.get("versions", {}).get("tensorflow-cpu", "")})
    return pd.DataFrame(rows).astype({"cores": "Int64"}).set_index("benchmark") if rows else pd.DataFrame()


def _spread(entry: dict, key: str) -> str:
    return f"{entry.get(key + '_min', entry[key]):.0f}-{entry.get(key + '_max', entry[key]):.0f}"


def pipeline_table(pipeline: dict):
    """Each loader of ``pipeline.json``: images/s in the first epoch and in cached epochs, with their spread."""
    import pandas as pd

    rows = {key.replace("_", " "): {"first epoch (images/s)": v["first_epoch"],
                                    "first-epoch spread": _spread(v, "first_epoch"),
                                    "cached epochs (images/s)": v["cached_epochs"],
                                    "cached spread": _spread(v, "cached_epochs")}
            for key, v in pipeline.items() if isinstance(v, dict) and "first_epoch" in v and "cached_epochs" in v
            and not key.startswith("speedup")}
    return pd.DataFrame(rows).T.rename_axis("loader")


def process_order_table(order: dict):
    """The fresh processes of ``process_order.json`` in the order they ran, with their training speed."""
    import pandas as pd

    return pd.DataFrame(order.get("processes", [])).set_index("order") if order.get("processes") else pd.DataFrame()


def throughput_table(training: dict):
    """ResNet-50 training speed by image size and loop (``training_speed.json``'s ``throughput``)."""
    import pandas as pd

    return pd.DataFrame([{"size": r["size"], "batch": r["batch"], "loop": r["loop"],
                          "images/s (median)": r.get("images_per_s_median"),
                          "min-max over steps": f"{r.get('images_per_s_min', 0):.2f}-{r.get('images_per_s_max', 0):.2f}",
                          "GFLOP/s": r.get("gflops"), "share of matmul": r.get("fraction_of_matmul"),
                          "first steps (s, tracing)": r.get("first_steps_seconds")}
                         for r in training.get("throughput", [])])


def _change(entry: dict, default_batch: int = 32) -> str:
    changed = ", ".join(f"{k}={entry[k]}" for k in _OFF_RECIPE if k in entry)
    return changed or (f"batch={entry['batch']}" if entry["batch"] != default_batch else "none (defaults)")


_OFF_RECIPE = ("onednn", "threads", "precision")  # the sweep's settings other than the batch


def sweep_table(training: dict):
    """The settings sweep at 64 px: one setting changed from the defaults per row, and the speed it gave."""
    import pandas as pd

    return pd.DataFrame([{"change from the defaults": _change(r), "images/s (median)": r.get("images_per_s_median"),
                          "min-max": f"{r.get('images_per_s_min', 0):.1f}-{r.get('images_per_s_max', 0):.1f}",
                          "share of matmul": r.get("fraction_of_matmul"), "error": r.get("error", "")}
                         for r in training.get("sweep", [])])


def scaling_table(training: dict):
    """Seconds per epoch and images/s against the number of training slices (``training_speed.json``)."""
    import pandas as pd

    epochs = (training.get("scaling") or {}).get("epochs", {})
    table = pd.DataFrame(epochs).T.rename_axis("slices")
    if len(table):
        table.index = table.index.astype(int)
    return table


LATENCY_PATHS = ("naive_predict", "forward_tf_function", "forward_litert", "classify_no_gradcam", "classify_total")


def latency_table(latency: dict):
    """Milliseconds per slice (median, p95, min) for each way of running the model (``classify_latency.json``)."""
    import pandas as pd

    return pd.DataFrame({k: v for k, v in latency.items() if isinstance(v, dict) and "median_ms" in v}).T


def course_cost_table(course: dict):
    """``make test`` and ``make book`` on a fresh clone: minutes, target, exit code and commit."""
    import pandas as pd

    rows = [{"command": c["command"], "minutes": c["minutes"], "target (minutes)": c.get("target_minutes"),
             "exit code": c.get("exit_code"), "commit": str(c.get("commit", ""))[:10]}
            for c in (course.get(k) for k in ("make_test", "make_book")) if c]
    return pd.DataFrame(rows).set_index("command") if rows else pd.DataFrame()


def course_stages(course: dict):
    """Seconds per stage of ``make test`` and of ``make book`` (one column each)."""
    import pandas as pd

    columns = [pd.Series(c.get("stages_seconds", {}), dtype=float, name=c["command"])
               for c in (course.get(k) for k in ("make_test", "make_book")) if c]
    return pd.concat(columns, axis=1, sort=False).rename_axis("stage") if columns else pd.DataFrame()


def training_images(config) -> int:
    """Training slices in a profile's split (its phantom's size times the training fraction)."""
    return round(config.phantom_n * config.split_fractions[0])


def training_hours(images_per_s: float, config) -> float:
    """Hours of training steps for a profile's epochs over its training split at ``images_per_s``."""
    if not images_per_s or images_per_s <= 0:
        raise ValueError(f"images_per_s must be a positive rate, got {images_per_s!r}")
    return config.epochs * training_images(config) / images_per_s / 3600


# --------------------------------------------------------------------------- the chapter's glued numbers

def _fact(key: str, fmt=None, scale: float = 1.0, root=None):
    from liverlib import facts

    try:
        return facts.fact(key, fmt, scale=scale, root=root)
    except Exception:  # a benchmark not run here: say so on the page rather than fail the build
        return facts.Fact("(not measured)", None, key)


def _derived(value, fmt=None, key: str = "derived"):
    from liverlib import facts

    if value is None:
        return facts.Fact("(not measured)", None, key)
    return facts.Fact(facts.format_number(value, fmt), value, key)


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_GPU_RUN = "gpu_training_step.runs[keras_backend={backend},batch={batch},mixed_precision={mixed}]"


def chapter_facts(root=None, paper_config=None) -> dict:
    """Every number the performance chapter's prose quotes, by glue name: a :class:`liverlib.facts.Fact` read
    from ``benchmarks/results`` (or ``root``) by key, or derived from such facts. Missing benchmarks give
    "(not measured)" instead of an error, so the page still builds."""
    from liverlib import facts
    from liverlib.config import load_config

    f = {}
    f["bench_minutes"] = _fact("make_bench.total_minutes", ".0f", root=root)
    # the input pipeline
    f["pipeline_cached"] = _fact("pipeline.ours_augmented.cached_epochs", ",.0f", root=root)
    f["pipeline_first"] = _fact("pipeline.ours_augmented.first_epoch", ",.0f", root=root)
    f["decode_ceiling"] = _fact("pipeline.decode_ceiling_2_threads", ",.0f", root=root)
    f["first_epoch_speedup"] = _fact("pipeline.speedup_vs_imagedatagenerator.first_epoch", ".1f", root=root)
    f["cached_speedup"] = _fact("pipeline.speedup_vs_imagedatagenerator.cached_epochs", ".0f", root=root)
    target = TARGETS["pipeline_speedup_vs_imagedatagenerator"][1]
    first = f["first_epoch_speedup"].value
    f["first_epoch_verdict"] = _derived(None if first is None else ("meets" if first >= target else "falls short of"))
    ceiling = f["decode_ceiling"].value
    f["first_epoch_share_of_ceiling"] = _derived(f["pipeline_first"].value / ceiling
                                                 if ceiling and f["pipeline_first"].value else None, ".0%")
    f["load_resized_ms"] = _fact("pipeline.load_resized_ms_per_image", ".1f", root=root)
    f["train_224"] = _fact("training_speed.train_images_per_s_224", ".2f", root=root)
    rate, train = f["pipeline_cached"].value, f["train_224"].value
    f["pipeline_over_training"] = _derived(rate / train if rate and train else None, ",.0f")
    # training throughput and the order of processes
    f["matmul_gflops"] = _fact("training_speed.matmul.gflops_median", ".0f", root=root)
    f["matmul_min"] = _fact("training_speed.matmul.gflops_min", ".0f", root=root)
    f["matmul_max"] = _fact("training_speed.matmul.gflops_max", ".0f", root=root)
    f["train_share_224"] = _fact("training_speed.train_fraction_of_matmul_224", ".0%", root=root)
    order = facts.value("process_order", root) if facts.has("process_order", root) else {}
    processes = order.get("processes", [])
    f["order_processes"] = _derived(len(processes) or None)
    f["order_idle_s"] = _fact("process_order.idle_seconds", ".0f", root=root)
    f["order_pretouch_gib"] = _fact("process_order.pretouch_gib", ".0f", root=root)
    rates = [p["images_per_s_median"] for p in processes]
    f["order_rates"] = _derived(_words([f"{r:.2f}" for r in rates]) if rates else None)
    f["order_spread"] = _derived(order["spread_max_over_min"] - 1 if "spread_max_over_min" in order else None, ".0%")
    if rates:
        place = ("the fastest" if rates[0] == max(rates) else "the slowest" if rates[0] == min(rates)
                 else "neither the fastest nor the slowest")
    f["order_first"] = _derived(place if rates else None)
    # one slice
    f["forward_ms"] = _fact("classify_latency.forward_ms", ".0f", root=root)
    f["forward_backend"] = _fact("classify_latency.forward_backend", root=root)
    f["forward_share"] = _fact("classify_latency.forward_fraction_of_matmul", ".0%", root=root)
    f["latency_matmul"] = _fact("classify_latency.matmul.gflops_median", ".0f", root=root)
    f["forward_speedup"] = _fact("classify_latency.speedup_vs_predict", ".1f", root=root)
    forward, matmul = f["forward_ms"].value, f["latency_matmul"].value
    target_ms = TARGETS["classify_forward_ms_224"][1]
    f["forward_verdict"] = _derived(None if forward is None else ("meets" if forward <= target_ms else "misses"))
    # at the same share of the matmul rate, the forward time scales with 1 / (matmul rate)
    f["forward_needed_matmul"] = _derived(matmul * forward / target_ms if forward and matmul else None, ".0f")
    # the whole course
    f["make_test_minutes"] = _fact("course_cost.make_test.minutes", ".0f", root=root)
    f["make_book_minutes"] = _fact("course_cost.make_book.minutes", ".0f", root=root)
    f["import_compiled_s"] = _fact("course_cost.make_book.stack_import_seconds.compiled", ".0f", root=root)
    f["import_uncompiled_s"] = _fact("course_cost.make_book.stack_import_seconds.uncompiled", ".0f", root=root)
    # the GPU run
    f["gpu_device"] = _fact("gpu_training_step.device", root=root)
    f["gpu_date"] = _derived(str(facts.value("gpu_training_step.runs[0].date", root))[:10]
                             if facts.has("gpu_training_step.runs[0].date", root) else None)

    def gpu(backend, batch, mixed, field, fmt):
        return _fact(_GPU_RUN.format(backend=backend, batch=batch, mixed=mixed) + f".{field}", fmt, root=root)

    f["gpu_b46_f32"] = gpu("jax", 46, "false", "images_per_s_median", ",.0f")
    f["gpu_b46_mixed"] = gpu("jax", 46, "true", "images_per_s_median", ",.0f")
    shares = [gpu("jax", 46, m, "fraction_of_matmul", ".0%") for m in ("false", "true")]
    shares = sorted((s for s in shares if s.value is not None), key=lambda s: s.value)
    f["gpu_b46_share_low"] = shares[0] if shares else _derived(None)
    f["gpu_b46_share_high"] = shares[-1] if shares else _derived(None)
    f["gpu_b256_mixed"] = gpu("jax", 256, "true", "images_per_s_median", ",.0f")
    f["gpu_b256_share"] = gpu("jax", 256, "true", "fraction_of_matmul", ".0%")
    f["jax_f32_tflops"] = gpu("jax", 46, "false", "matmul.float32_tflops", ".0f")
    f["torch_f32_tflops"] = gpu("torch", 46, "true", "matmul.float32_tflops", ".0f")
    f["torch_eager"] = gpu("torch", 46, "true", "images_per_s_median", ",.0f")
    jax, torch = f["gpu_b46_mixed"].value, f["torch_eager"].value
    f["jax_over_torch"] = _derived(jax / torch if jax and torch else None, ".0f")
    paper = paper_config or load_config("paper")
    f["paper_train_images"] = _derived(training_images(paper), ",d")
    f["paper_epochs"] = _derived(paper.epochs)
    f["paper_minutes_at_gpu"] = _derived(training_hours(jax, paper) * 60 if jax else None, ".0f")
    return f


headline_figures = summary  # the chapters' name for it (``ll.headline_figures``): ``summary`` says little in a chapter
