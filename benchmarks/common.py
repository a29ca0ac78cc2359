"""What every benchmark result records: the machine, the versions, the date."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

from liverlib.environment import speed_settings, versions

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "versions": versions(),
            "settings": speed_settings(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return path


def bench_phantom(n: int) -> Path:
    """The 512 x 512 phantom of ``n`` slices the pipeline and training benchmarks share, generated once."""
    from liverlib.phantom import write_phantom_dataset

    data = Path(os.environ.get("LIVERLIB_ARTIFACTS_DIR", "artifacts")) / "data" / f"bench-pipeline-n{n}"
    if not (data / "manifest.csv").exists():
        write_phantom_dataset(data, n=n, seed=0, size=512, overwrite=True)
    return data


def paper_loader(directory: Path, size: int, batch: int, augment: bool = True):
    """The paper's loader: ImageDataGenerator.flow_from_directory with its augmentation, sparse labels, /255.

    Reads the four class folders only (a phantom folder also holds masks/). ImageDataGenerator is deprecated
    and lives only in Keras' legacy module now.
    """
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from liverlib.config import CLASS_NAMES

    kwargs = dict(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1,
                  horizontal_flip=True) if augment else {}
    return ImageDataGenerator(rescale=1.0 / 255, **kwargs).flow_from_directory(
        directory, target_size=(size, size), color_mode="rgb", batch_size=batch, class_mode="sparse", shuffle=True,
        seed=0, classes=list(CLASS_NAMES))


def tiny_model(keras, size: int, classes: int):
    """A three-layer stand-in for ResNet-50 in smoke runs: the benchmarks' machinery without its 40 s trace."""
    return keras.Sequential([keras.Input((size, size, 3)), keras.layers.Conv2D(4, 3, strides=4),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes, activation="softmax")])
