"""The Performance chapter's figures: training throughput against the machine's matmul rate, classify's
latency by path, and epoch time against dataset size. They take the benchmark results
(:func:`liverlib.performance.load_results`) and draw them; they compute nothing of their own."""

from __future__ import annotations


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


# --------------------------------------------------------------------------- tables for the performance chapter
