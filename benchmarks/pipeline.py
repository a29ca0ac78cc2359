"""Input pipeline throughput: liverlib's tf.data pipeline against the paper's ImageDataGenerator loader.

Same files (phantom PNGs, 512 x 512), same task: 224 x 224 x 3 batches of 46 with the paper's
augmentation (rotation, width/height shift, zoom, horizontal flip). Measures images/s for the first
epoch (decoding) and for later epochs (ours caches the decoded, resized images), with and without
augmentation. Target: ours at least 5x ImageDataGenerator, and at least 5x the model's training speed
(2.9 images/s at 224 px on this CPU, shared/FINDINGS.md), so training never waits on data.
Writes benchmarks/results/pipeline.json.

    python -m benchmarks.pipeline [--n 920] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import liverlib  # noqa: F401  (TensorFlow speed settings)
from benchmarks.common import bench_phantom, machine_info, paper_loader, write_result
from liverlib.config import load_config
from liverlib.data import scan_dataset
from liverlib.preprocess import make_pipeline

RESNET50_TRAIN_IMAGES_PER_S_224 = 2.9  # shared/FINDINGS.md, oneDNN on, this 2-core CPU


def _rate(iterable, count_of) -> float:
    start, n = time.perf_counter(), 0
    for batch in iterable:
        n += count_of(batch)
    return n / (time.perf_counter() - start)


def _summary(rates: list[float]) -> dict:
    later = rates[1:] or rates
    return {"first_epoch": rates[0], "cached_epochs": statistics.median(later), "cached_epochs_min": min(later),
            "cached_epochs_max": max(later), "epochs_images_per_s": rates}


def ours(files, labels, augmentation, epochs: int, threads: int | None = None) -> dict:
    pipeline = make_pipeline(files, labels, 224, 46, training=augmentation is not None, augmentation=augmentation)
    if threads:  # tf.data's own thread pool, and the ops inside it, limited to `threads`
        import tensorflow as tf

        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = threads
        pipeline = pipeline.with_options(options)
    return _summary([_rate(pipeline, lambda b: int(b[1].shape[0])) for _ in range(epochs)])


def imagedatagenerator(directory: Path, n_images: int, augment: bool, epochs: int) -> dict:
    flow = paper_loader(directory, 224, 46, augment)
    steps = -(-n_images // 46)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _ in range(steps):
            next(flow)
        rates.append(steps * 46 / (time.perf_counter() - start))
    return {**_summary(rates), "images_the_loader_found": flow.samples}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=920, help="images (default 920 = 20 batches of 46)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.epochs = 92, 2
    data = bench_phantom(args.n)
    manifest = scan_dataset(data).manifest
    augmentation = load_config("paper").augmentation
    result = {"n_images": len(manifest), "image_size": 224, "batch_size": 46, "epochs": args.epochs}
    for name, aug in (("augmented", augmentation), ("plain", None)):
        result[f"ours_{name}"] = ours(manifest["file"], manifest["label"], aug, args.epochs)
        result[f"imagedatagenerator_{name}"] = imagedatagenerator(data, len(manifest), aug is not None, args.epochs)
    result["ours_augmented_1_thread"] = ours(manifest["file"], manifest["label"], augmentation, args.epochs, threads=1)
    ours_aug, idg_aug = result["ours_augmented"], result["imagedatagenerator_augmented"]
    result["speedup_vs_imagedatagenerator"] = {
        "first_epoch": ours_aug["first_epoch"] / idg_aug["first_epoch"],
        "cached_epochs": ours_aug["cached_epochs"] / idg_aug["cached_epochs"]}
    # against FINDINGS' training figure here; summary.json uses the rate training_speed measures in the same run
    result["pipeline_over_training_throughput"] = ours_aug["cached_epochs"] / RESNET50_TRAIN_IMAGES_PER_S_224
    result["machine"] = machine_info()
    write_result("pipeline_smoke" if args.smoke else "pipeline", result)
    for key, value in result.items():
        if key != "machine":
            print(f"{key}: {value}")
    return result


if __name__ == "__main__":
    main()
