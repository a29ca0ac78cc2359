"""CT windowing: map Hounsfield units to display grey levels with a window level and width.

A window of level L and width W shows HU values in [L - W/2, L + W/2] as black-to-white; everything
below is black and everything above is white. Radiologists read the liver in an abdomen window
(L40/W400) or a narrower liver window (L30/W150) that stretches the contrast between parenchyma and
lesions.
"""

from __future__ import annotations

import re

import numpy as np

from liverlib.errors import LiverlibError

WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (40.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
}
"""Named windows as (level, width) in HU."""
DEFAULT_WINDOW = "abdomen"


def window_hu(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU image -> float32 in [0, 1] under the window (level, width)."""
    if width <= 0:
        raise LiverlibError(f"window width must be positive, got {width:g} HU")
    low = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - np.float32(low)) / np.float32(width)
    return np.clip(out, 0.0, 1.0)


def to_uint8(image01: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> 8-bit grey levels, rounded to nearest."""
    return np.round(np.clip(image01, 0.0, 1.0) * 255.0).astype(np.uint8)


def window_to_uint8(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU image -> 8-bit windowed image, as written to PNG."""
    return to_uint8(window_hu(hu, level, width))


_WINDOW_SPEC = re.compile(r"^\s*L?\s*(-?\d+(?:\.\d+)?)\s*[/,]\s*W?\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def parse_window(spec: str | tuple[float, float]) -> tuple[float, float]:
    """A window given as a name ('abdomen', 'liver', 'bone'), 'L40/W400', '40,400' or (level, width)."""
    if isinstance(spec, tuple):
        level, width = (float(v) for v in spec)
    else:
        key = spec.strip().lower()
        if key in WINDOWS:
            return WINDOWS[key]
        match = _WINDOW_SPEC.match(spec)
        if not match:
            raise LiverlibError(
                f"cannot read window {spec!r}; use a name ({', '.join(WINDOWS)}) or level/width such as 'L40/W400'")
        level, width = float(match.group(1)), float(match.group(2))
    if width <= 0:
        raise LiverlibError(f"window width must be positive, got {width:g} HU")
    return level, width
