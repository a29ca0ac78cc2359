"""What a notebook prints first: library versions and the settings that decide speed."""

from __future__ import annotations

import os
import platform
from importlib import metadata

KEY_PACKAGES = ("liverlib", "tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "numpy", "scikit-learn",
                "scikit-image", "pydicom", "pillow", "matplotlib", "seaborn", "jupyter-book", "ipywidgets")


def versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape results, without importing them."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def speed_settings() -> dict[str, str]:
    """Environment settings that change CPU training speed, and the machine they run on."""
    return {
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)"),
        "CPU cores": str(os.cpu_count()),
        "machine": f"{platform.system()} {platform.machine()}",
    }
