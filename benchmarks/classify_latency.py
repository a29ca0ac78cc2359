"""Single-slice latency of classify at 224 px: end to end, forward pass alone, and the naive call.

For one 512 x 512 phantom PNG and a modified ResNet-50 at 224 px (untrained: latency does not depend on
the weights), after warm-up, over --repeats calls each:

* ``classify_total``: liverlib.classify end to end (decode, preprocess, forward, Grad-CAM);
* ``classify_no_gradcam``: the same without Grad-CAM;
* ``forward_litert``: the forward pass alone as classify runs it without Grad-CAM: LiteRT (XNNPACK, all
  cores), converted once by liverlib.litert;
* ``forward_tf_function``: the forward pass alone in TensorFlow, as classify runs it when LiteRT is not
  installed (a tf.function with a fixed input signature) and inside Grad-CAM;
* ``naive_predict``: ``model.predict`` on the one preprocessed image, the usual first attempt.

Targets (issue "Benchmarks"): forward pass at most 70 ms at 224 px, at least 3x faster than the naive
call, outputs equal to the Keras model's within 1e-5 (checked here on a phantom slice, and in
tests/test_litert.py). Writes benchmarks/results/classify_latency.json (median and p95 in milliseconds).

    python -m benchmarks.classify_latency [--size 224] [--repeats 50] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (sets TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import machine_info, write_result
from benchmarks.training_speed import GFLOP_PER_IMAGE_224_FORWARD, matmul_gflops


def _timings(fn, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
            "min_ms": float(np.min(times)), "repeats": repeats}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="64 px, 3 repeats: only checks that it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.repeats = 64, 3
    import keras
    from PIL import Image

    from liverlib.classify import Classifier
    from liverlib.backbone import RESNET50_BLOCKS, backbone_name, relative_compute
    from liverlib.config import CLASS_NAMES, load_config
    from liverlib.model import build_modified_resnet50
    from liverlib.phantom import make_slice
    from liverlib.preprocess import resize_grey, to_model_input
    from liverlib.runs import CARD_FILE, MODEL_FILE
    from liverlib.imaging.windowing import window_to_uint8

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        # smoke: the quick profile's ResNet-14 (the machinery, without ResNet-50's graph-building time)
        blocks = load_config("quick").backbone_blocks if args.smoke else RESNET50_BLOCKS
        build_modified_resnet50(len(CLASS_NAMES), args.size, blocks=blocks).save(run / MODEL_FILE)
        (run / CARD_FILE).write_text(json.dumps({"class_names": list(CLASS_NAMES), "input_size": args.size,
                                                 "window": {"level": 40, "width": 400}, "synthetic_data": True,
                                                 "backbone": backbone_name(blocks)}))
        classifier = Classifier(run)
        convert_start = time.perf_counter()
        fast = classifier.fast  # converts to LiteRT (once per model) if the runtime is installed
        convert_seconds = time.perf_counter() - convert_start
        grey = window_to_uint8(make_slice("malignant", seed=1, size=512).hu, 40, 400)
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, format="PNG")
        data = buf.getvalue()
        x = to_model_input(resize_grey(grey.astype(np.float32), args.size))[None]
        model = classifier.model
        reference = model.predict(x, verbose=0)
        max_diff = float(np.abs(classifier.forward(x) - reference).max())
        max_diff_tf = float(np.abs(classifier._forward(x).numpy() - reference).max())
        assert max(max_diff, max_diff_tf) <= 1e-5, f"forward pass differs from the Keras model by {max_diff}"
        result = {
            "image_size": args.size,
            "forward_backend": fast.backend,
            "conversion_seconds": round(convert_seconds, 1),
            "classify_total": _timings(lambda: classifier(data, "slice.png"), args.repeats),
            "classify_no_gradcam": _timings(lambda: classifier(data, "slice.png", gradcam=False), args.repeats),
            "forward_litert": _timings(lambda: classifier.forward(x), args.repeats),
            "forward_tf_function": _timings(lambda: classifier._forward(x).numpy(), args.repeats),
            "naive_predict": _timings(lambda: model.predict(x, verbose=0), args.repeats),
            "max_abs_difference_vs_keras": max_diff,
            "max_abs_difference_tf_function_vs_keras": max_diff_tf,
            "target_forward_ms": 70, "target_speedup_vs_predict": 3,
            # this machine's dense-arithmetic rate in the same run: a forward pass is read against it
            "matmul": matmul_gflops(n=1024 if args.smoke else 4096),
            "model": backbone_name(blocks) + (" (smoke)" if args.smoke else ""),
            "relative_compute": relative_compute(blocks),
            "machine": machine_info(),
        }
    result["forward_ms"] = result["forward_litert"]["median_ms"]  # classify's forward pass (LiteRT, or TF without it)
    result["speedup_vs_predict"] = result["naive_predict"]["median_ms"] / result["forward_ms"]
    if "matmul" in result:
        result["forward_gflops"] = (GFLOP_PER_IMAGE_224_FORWARD * result["relative_compute"] * (args.size / 224) ** 2
                                    / (result["forward_ms"] / 1000))
        result["forward_fraction_of_matmul"] = result["forward_gflops"] / result["matmul"]["gflops_median"]
    result["tf_function_speedup_vs_predict"] = (result["naive_predict"]["median_ms"]
                                                / result["forward_tf_function"]["median_ms"])
    write_result("classify_latency_smoke" if args.smoke else "classify_latency", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
