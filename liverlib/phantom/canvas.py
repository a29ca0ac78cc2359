"""The drawing canvas of the phantom: an ideal HU map and a label map, painted shape by shape in millimetres."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


class Canvas:
    """An ideal HU map and a label map being painted, with mm coordinates of every pixel."""

    def __init__(self, size: int, spacing_mm: float):
        self.n = size
        self.spacing = spacing_mm
        coords = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) * np.float32(spacing_mm)
        self.xs = coords  # image columns, left to right (patient right to left)
        self.ys = coords  # image rows, top to bottom (anterior to posterior)
        self.hu = np.full((size, size), -1000.0, dtype=np.float32)
        self.labels = np.zeros((size, size), dtype=np.uint8)

    def bbox(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice] | None:
        """Row and column slices covering a box of half-sizes (rx, ry) mm around (cx, cy), or None if off-image."""
        half = (self.n - 1) / 2.0
        c0 = max(int(math.floor((cx - rx) / self.spacing + half)) - 1, 0)
        c1 = min(int(math.ceil((cx + rx) / self.spacing + half)) + 2, self.n)
        r0 = max(int(math.floor((cy - ry) / self.spacing + half)) - 1, 0)
        r1 = min(int(math.ceil((cy + ry) / self.spacing + half)) + 2, self.n)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def ellipse_field(self, cx, cy, rx, ry, angle=0.0, box=None) -> tuple[np.ndarray, tuple]:
        """1 - squared normalised radius of an ellipse (positive inside), on the box (default: its bbox)."""
        if box is None:
            r = max(rx, ry)
            box = self.bbox(cx, cy, r, r)
            if box is None:
                return np.zeros((0, 0), np.float32), (slice(0, 0), slice(0, 0))
        dx = self.xs[box[1]][None, :] - np.float32(cx)
        dy = self.ys[box[0]][:, None] - np.float32(cy)
        if angle:
            c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        rho = (dx / np.float32(rx)) ** 2 + (dy / np.float32(ry)) ** 2
        return 1.0 - rho, box

    def paint(self, mask: np.ndarray, box: tuple, hu: float | np.ndarray, label: int) -> None:
        """Set HU and label where ``mask`` is true inside ``box``."""
        if mask.size == 0:
            return
        hu_view, lab_view = self.hu[box], self.labels[box]
        if np.ndim(hu) == 0:
            hu_view[mask] = hu
        else:
            hu_view[mask] = hu[mask]
        lab_view[mask] = label

    def paint_ellipse(self, cx, cy, rx, ry, hu, label, angle=0.0, where=None) -> np.ndarray | None:
        """Paint a filled ellipse; ``where`` (a full-size bool mask) restricts it. Returns the full-size mask."""
        f, box = self.ellipse_field(cx, cy, rx, ry, angle)
        if f.size == 0:
            return None
        mask = f > 0
        if where is not None:
            mask &= where[box]
        self.paint(mask, box, hu, label)
        full = np.zeros((self.n, self.n), dtype=bool)
        full[box] = mask
        return full

    def segment_distance(self, x0, y0, x1, y1, pad) -> tuple[np.ndarray, tuple] | None:
        """Distance (mm) from each pixel of the segment's padded bbox to the segment."""
        box = self.bbox((x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2 + pad, abs(y1 - y0) / 2 + pad)
        if box is None:
            return None
        px = self.xs[box[1]][None, :]
        py = self.ys[box[0]][:, None]
        vx, vy = x1 - x0, y1 - y0
        length2 = vx * vx + vy * vy or 1e-6
        t = np.clip(((px - x0) * vx + (py - y0) * vy) / length2, 0.0, 1.0)
        return np.hypot(px - (x0 + t * vx), py - (y0 + t * vy)), box


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Grow a mask by about ``pixels`` in every direction (a square dilation done with a box filter)."""
    width = 2 * max(1, int(round(pixels))) + 1
    return ndimage.uniform_filter(mask.astype(np.float32), width) > 1e-3
