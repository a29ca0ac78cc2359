"""Whole-study latency: a 100-slice 512 x 512 phantom series, from its DICOM files to the study answer.

A modified ResNet-50 at the laptop profile's input size (64 px; untrained: latency does not depend on the
weights) with the laptop profile's crop, one malignant phantom study written as a DICOM series folder. Reported:

* ``cold``: a fresh process (``liverlib classify STUDY --json`` as a user runs it), twice: the first one
  converts the model to LiteRT (once per model), the second one finds ``model.tflite`` ready. Wall time of the
  whole command and of the study call alone (model load included), and the process's peak memory.
* ``warm``: the model loaded and converted, ``classify_study`` on the folder, repeated; with Grad-CAM for the
  top slices and without; and each stage alone: read the series (:func:`liverlib.imaging.studies.read_study`), pick
  the liver slices, prepare them as the card says, the forward pass on the chosen slices, Grad-CAM on the
  top slices.
* ``forward``: the chosen slices through LiteRT in batches of 16 (what study_classify does), LiteRT one by one
  (classify's single-slice interpreter) and one batched TensorFlow function (the path without LiteRT).
* ``peak_memory_mib``: resource.getrusage's maximum resident set size of this process.

    python -m benchmarks.study_latency [--slices 100] [--size 512] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import liverlib  # noqa: F401  (sets TensorFlow's CPU speed settings before TensorFlow is imported)
from benchmarks.common import machine_info, write_result

REPO = Path(__file__).resolve().parent.parent


def _median_ms(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(float(np.median(times)), 1), "min_ms": round(float(np.min(times)), 1),
            "repeats": repeats}


def _peak_mib(who=resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # Linux: kilobytes


def _cold(study: Path, run: Path) -> dict:
    """One fresh ``liverlib classify --json`` process: wall time, the study call's own time, peak memory."""
    code = ("import json, resource, sys, time; t0 = time.perf_counter(); import liverlib.cli as c; "
            "t1 = time.perf_counter(); status = c.main(sys.argv[1:]); t2 = time.perf_counter(); "
            "print(json.dumps({'import_s': t1 - t0, 'command_s': t2 - t1, 'status': status, "
            "'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "classify", str(study), "--model", str(run), "--json"],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - start
    stats = json.loads(next(line for line in reversed(proc.stderr.splitlines()) if line.startswith('{"import_s"')))
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["status"] == 0, proc.stderr[-2000:]
    return {"wall_s": round(wall, 2), "import_s": round(stats["import_s"], 2),
            "classify_command_s": round(stats["command_s"], 2), "study_seconds_reported": answer["seconds"],
            "peak_memory_mib": round(stats["peak_mib"], 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="12 slices of 128 px, one repeat, no cold processes")
    args = parser.parse_args(argv)
    if args.smoke:
        args.slices, args.size, args.repeats = 12, 128, 1
    import keras

    from liverlib.backbone import backbone_name
    from liverlib.config import CLASS_NAMES, load_config
    from liverlib.model import build_modified_resnet50
    from liverlib.phantom.studies import make_study, write_study_dicom
    from liverlib.runs import CARD_FILE, MODEL_FILE
    from liverlib.imaging.studies import read_study
    from liverlib.study_classify import N_TOP, classify_study, get_study_classifier, pick_liver_slices

    laptop = load_config("laptop")
    size = 64 if args.smoke else laptop.image_size
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory(prefix="study-latency-") as tmp:
        run, folder = Path(tmp) / "run", Path(tmp) / "P00001"
        run.mkdir()
        # smoke: the quick profile's ResNet-14 (the machinery, without ResNet-50's graph-building time)
        blocks = load_config("quick").backbone_blocks if args.smoke else laptop.backbone_blocks
        build_modified_resnet50(len(CLASS_NAMES), size, blocks=blocks).save(run / MODEL_FILE)
        card = {"class_names": list(CLASS_NAMES), "input_size": size, "crop": laptop.crop, "synthetic_data": True,
                "backbone": backbone_name(blocks),
                "window": {"level": laptop.window_level, "width": laptop.window_width}}
        (run / CARD_FILE).write_text(json.dumps(card))
        start = time.perf_counter()
        study = make_study("malignant", seed=(0, 1), size=args.size, n_slices=args.slices)
        write_study_dicom(study, folder, "bench/P00001")
        phantom_seconds = time.perf_counter() - start
        result = {"n_slices": args.slices, "slice_size": args.size, "input_size": size, "crop": laptop.crop,
                  "series_mib": round(sum(p.stat().st_size for p in folder.iterdir()) / 2**20, 1),
                  "phantom_seconds": round(phantom_seconds, 1), "true_liver_slices": len(study.liver_slices)}
        del study
        if not args.smoke:
            result["cold"] = {"first_process_converts_to_litert": _cold(folder, run),
                              "later_process_litert_ready": _cold(folder, run)}
        # in this process: the first call loads the model (and converts it, if no process above did)
        start = time.perf_counter()
        (first,) = classify_study(folder, run)
        result["first_call_in_process_s"] = round(time.perf_counter() - start, 2)
        clf = get_study_classifier(run)
        result["forward_backend"] = clf.slices.fast.backend
        result["liver_slices_picked"] = len(first.liver_slices)

        volume = read_study(folder)[0]
        pick = pick_liver_slices(volume.hu)
        greys = np.stack([clf.model_grey(volume.hu[i], pick, i) for i in pick.indices])
        x = clf.network_input(greys)
        top = x[:N_TOP]
        clf.explain(top)  # traces Grad-CAM once
        r = args.repeats
        stages = {
            "read_series": _median_ms(lambda: read_study(folder), r),
            "pick_liver_slices": _median_ms(lambda: pick_liver_slices(volume.hu), r),
            "prepare_inputs": _median_ms(lambda: clf.network_input(np.stack(
                [clf.model_grey(volume.hu[i], pick, i) for i in pick.indices])), r),
            "forward_chosen_slices": _median_ms(lambda: clf.predict(x), r),
            f"gradcam_top_{N_TOP}": _median_ms(lambda: clf.explain(top), r),
        }
        result["warm"] = {
            "classify_study": _median_ms(lambda: classify_study(folder, run), r),
            "classify_study_with_gradcam": _median_ms(lambda: classify_study(folder, run, gradcam=True), r),
            "stages": stages,
        }
        import tensorflow as tf

        spec = tf.TensorSpec((None, size, size, 3), tf.float32)
        batched = tf.function(lambda v: clf.slices.model(v, training=False), input_signature=[spec])
        batched(x[:16])
        fast = clf.slices.fast.forward  # LiteRT one slice at a time (or TensorFlow without LiteRT)
        n = len(x)
        litert = clf.litert_batches()
        paths = {"tensorflow_batches_of_16": lambda: np.concatenate(
            [batched(x[i:i + 16]).numpy() for i in range(0, n, 16)])}
        if litert is not None:
            paths["litert_batches_of_16"] = lambda: litert.forward(x)
            paths["litert_one_by_one"] = lambda: np.concatenate([fast(x[i:i + 1]) for i in range(n)])
        result["forward"] = {}
        for name, fn in paths.items():
            timing = _median_ms(fn, r)
            result["forward"][name] = {"ms_per_slice": round(timing["median_ms"] / n, 2), **timing}
        outputs = [fn() for fn in paths.values()]
        result["forward"]["max_abs_difference"] = max(float(np.abs(o - outputs[0]).max()) for o in outputs)
    result["peak_memory_mib"] = _peak_mib()
    result["model"] = backbone_name(blocks) + (" (smoke)" if args.smoke else "")
    result["machine"] = machine_info()
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    write_result("study_latency_smoke" if args.smoke else "study_latency", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
