"""Input pipeline throughput: liverlib's tf.data pipeline against the paper's ImageDataGenerator loader.

Same files (phantom PNGs, 512 x 512), same task: 224 x 224 x 3 batches of 46 with the paper's
augmentation (rotation, width/height shift, zoom, horizontal flip). Measures images/s for the first
epoch (decoding) and for later epochs (ours caches the decoded, resized images), with and without
augmentation. Our first epoch is timed on three fresh pipelines (median), since a single one varies by
up to 2x on this VM; ImageDataGenerator caches nothing, so each of its epochs is a first epoch. Also
measured: decoding and resizing alone in two threads with PIL, the most any loader's first epoch could
reach here. Target: ours at least 5x ImageDataGenerator, and at least 5x the model's training speed
(224 px, measured by benchmarks/training_speed.py on this CPU), so training never waits on data.
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
from liverlib.preprocess import forget_loaded, load_resized, make_pipeline



def resnet50_training_images_per_s_224() -> float | None:
    """ResNet-50's training rate at 224 px, batch 46, as benchmarks/training_speed.py measured it here."""
    from liverlib.facts import training_speeds

    return training_speeds().get((224, 46))


def _rate(iterable, count_of) -> float:
    start, n = time.perf_counter(), 0
    for batch in iterable:
        n += count_of(batch)
    return n / (time.perf_counter() - start)


def _summary(rates: list[float], first_epochs: list[float] | None = None) -> dict:
    """First-epoch and cached-epoch images/s; ``first_epochs``: the first epoch of several fresh pipelines."""
    later = rates[1:] or rates
    first = first_epochs or rates[:1]
    return {"first_epoch": statistics.median(first), "first_epoch_min": min(first), "first_epoch_max": max(first),
            "first_epochs_images_per_s": first, "cached_epochs": statistics.median(later),
            "cached_epochs_min": min(later), "cached_epochs_max": max(later), "epochs_images_per_s": rates}


def ours(files, labels, augmentation, epochs: int, threads: int | None = None, first_repeats: int = 1) -> dict:
    """Our pipeline: ``first_repeats`` fresh pipelines each timed over its first (decoding) epoch, then the
    last one over ``epochs - 1`` more (cached) epochs."""
    first = []
    for _ in range(first_repeats):
        forget_loaded()  # a fresh pipeline in a fresh process decodes every file
        pipeline = _our_pipeline(files, labels, augmentation, threads)
        first.append(_rate(pipeline, lambda b: int(b[1].shape[0])))
    rates = [first[-1]] + [_rate(pipeline, lambda b: int(b[1].shape[0])) for _ in range(epochs - 1)]
    return _summary(rates, first)


def _our_pipeline(files, labels, augmentation, threads):
    pipeline = make_pipeline(files, labels, 224, 46, training=augmentation is not None, augmentation=augmentation)
    if threads:  # tf.data's own thread pool, and the ops inside it, limited to `threads`
        import tensorflow as tf

        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = threads
        pipeline = pipeline.with_options(options)
    return pipeline


def decode_ms_per_image(files, size: int = 224, n: int = 200) -> float:
    """Milliseconds for liverlib's decode and resize of one file (``load_resized``), in one thread."""
    files = [str(f) for f in files][:n]
    forget_loaded()
    start = time.perf_counter()
    for path in files:
        load_resized(path, size)
    return (time.perf_counter() - start) / len(files) * 1000


def decode_ceiling(files, threads: int = 2) -> float:
    """Images/s of decoding and resizing alone (PIL, 8-bit bilinear, ``threads`` threads; no TensorFlow):
    what any loader's first epoch could reach on this machine at best."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def decode_resize(path):
        with Image.open(path) as image:
            return image.convert("L").resize((224, 224), Image.BILINEAR)

    files = [str(f) for f in files]
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(decode_resize, files))
        return len(files) / (time.perf_counter() - start)


def imagedatagenerator(directory: Path, n_images: int, augment: bool, epochs: int) -> dict:
    flow = paper_loader(directory, 224, 46, augment)
    steps = -(-n_images // 46)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _ in range(steps):
            next(flow)
        rates.append(steps * 46 / (time.perf_counter() - start))
    # it caches nothing: every epoch decodes again, so each one is a sample of its first-epoch speed
    return {**_summary(rates, rates), "images_the_loader_found": flow.samples}


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
    result["load_resized_ms_per_image"] = statistics.median(decode_ms_per_image(manifest["file"]) for _ in range(3))
    result["decode_ceiling_2_threads"] = statistics.median(decode_ceiling(manifest["file"]) for _ in range(3))
    for name, aug in (("augmented", augmentation), ("plain", None)):
        result[f"ours_{name}"] = ours(manifest["file"], manifest["label"], aug, args.epochs,
                                      first_repeats=3 if aug is not None else 1)
        result[f"imagedatagenerator_{name}"] = imagedatagenerator(data, len(manifest), aug is not None, args.epochs)
    result["ours_augmented_1_thread"] = ours(manifest["file"], manifest["label"], augmentation, args.epochs, threads=1)
    ours_aug, idg_aug = result["ours_augmented"], result["imagedatagenerator_augmented"]
    result["speedup_vs_imagedatagenerator"] = {
        "first_epoch": ours_aug["first_epoch"] / idg_aug["first_epoch"],
        "cached_epochs": ours_aug["cached_epochs"] / idg_aug["cached_epochs"],
        "first_epoch_ceiling": result["decode_ceiling_2_threads"] / idg_aug["first_epoch"]}
    # against the last committed training benchmark; summary.json uses the rate training_speed measures in the same run
    training_rate = resnet50_training_images_per_s_224()
    result["pipeline_over_training_throughput"] = ours_aug["cached_epochs"] / training_rate if training_rate else None
    result["machine"] = machine_info()
    write_result("pipeline_smoke" if args.smoke else "pipeline", result)
    for key, value in result.items():
        if key != "machine":
            print(f"{key}: {value}")
    return result


if __name__ == "__main__":
    main()
