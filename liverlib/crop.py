"""Liver-region crop ("patch extraction"): find the liver in a slice from the image itself, crop to it.

At 64 px a whole 512 px slice shrinks 8x and a 10 mm lesion becomes two pixels. Cropping to the liver
before resizing gives the same network input two to four times the detail. Real data has no label maps, so
the crop is found from the image alone, in three steps that any windowed axial abdominal slice allows:

1. **Body outline.** Everything brighter than air (fat at the abdomen window L40/W400 is about grey 38,
   air is 0) forms the body; the largest connected part, holes filled, is kept.
2. **Orientation.** The spine is the brightest structure in the middle third of the body's width: it
   marks the posterior side, so a slice rotated by 180 degrees (a prone scan) is recognised. The liver is
   the largest connected region of liver density (portal-venous liver is 100-130 HU; we accept
   :data:`LIVER_HU`), which tells the patient's right side, so a left-right flipped slice is recognised too.
3. **Extent.** ``"liver"``: the bounding box of that region, with a margin, made square. When the region is
   implausible (too small or too large for a liver), a fixed box relative to the body outline is used,
   mirrored to the orientation found (:data:`LIVER_BOX_IN_BODY`, measured on the phantom's label maps).
   ``"body"``: the square box around the body outline only (drops the air around the patient).

When no body is found (a blank, non-CT or unusual image), the crop falls back to the whole slice and says
so in :attr:`Crop.note`; callers show it (classify warns, the data report counts it).

MONAI calls the same idea ``CropForeground``; this is a small dependency-free version for 2-D slices that
also records its box (:class:`Crop`), so a figure can draw it and a reader can undo it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CROP_MODES: tuple[str, ...] = ("none", "body", "liver")
"""``none``: the whole slice (the paper's input); ``body``: the body outline; ``liver``: the liver region."""

LIVER_HU: tuple[float, float] = (70.0, 175.0)
"""Densities taken as liver-like: portal-venous liver (100-130 HU) with room for noise and steatosis."""

BONE_GREY = 250
"""Grey level taken as bone: cortical bone (700+ HU) saturates the abdomen window, and so do most windows."""

AIR_GREY = 12
"""Grey level (0-255) above which a pixel belongs to the body: air is 0, fat at L40/W400 about 38."""

LIVER_BOX_IN_BODY = (0.18, 0.91, 0.06, 0.67)
"""Fallback box as fractions of the body box (top, bottom, left, right) in the standard view (anterior up,
patient's right on the image left): where 96% of the phantom's liver pixels lie (2-98% extent)."""

ANALYSIS_SIZE = 128  # the crop is found on a copy this size (the box is then scaled back): about 3 ms a slice
MARGIN = 0.12  # margin added around the liver region, as a fraction of its larger side
LIVER_AREA = (0.03, 0.55)  # plausible liver area as a share of the body area


@dataclass(frozen=True)
class Crop:
    """Where a crop lies in the original image: rows ``top:bottom`` and columns ``left:right``."""

    top: int
    bottom: int
    left: int
    right: int
    method: str  # "liver region", "body-relative box", "body outline", "whole slice"
    note: str = ""  # why the crop fell back, for the user
    flipped: bool = False  # the liver lies on the image right (a left-right flipped view)
    prone: bool = False  # the spine lies at the top (rotated by 180 degrees)

    @property
    def fell_back(self) -> bool:
        """True when no liver region was found and a weaker box (or the whole slice) was used."""
        return self.method in ("whole slice", "body-relative box")

    @property
    def side(self) -> int:
        return max(self.bottom - self.top, self.right - self.left)

    def apply(self, image: np.ndarray) -> np.ndarray:
        return image[self.top:self.bottom, self.left:self.right]


def hu_to_grey(hu: float, window: tuple[float, float] = (40.0, 400.0)) -> float:
    """The 0-255 grey level a density has after the window ``(level, width)``."""
    level, width = window
    return float(np.clip((hu - (level - width / 2)) / width * 255.0, 0, 255))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage  # local: scipy is only needed when cropping

    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def _square(top, bottom, left, right, height, width) -> tuple[int, int, int, int]:
    """Grow the shorter side of a box about its centre until it is square, then keep it inside the image."""
    side = min(max(bottom - top, right - left), height, width)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    top = int(round(np.clip(cy - side / 2, 0, height - side)))
    left = int(round(np.clip(cx - side / 2, 0, width - side)))
    return top, top + int(side), left, left + int(side)


def find_crop(grey: np.ndarray, mode: str = "liver", window: tuple[float, float] = (40.0, 400.0)) -> Crop:
    """The crop box of one slice (grey levels 0-255, any size), found from the image itself.

    ``window``: the (level, width) the grey levels were windowed with, to place the liver and bone densities
    on the grey scale (PNG/JPEG slices are assumed to use the abdomen window L40/W400, as the phantom's do).
    """
    from scipy import ndimage  # local: scipy is only needed when cropping

    if mode not in CROP_MODES:
        raise ValueError(f"unknown crop mode {mode!r}; choose one of {', '.join(CROP_MODES)}")
    grey = np.asarray(grey)
    if grey.ndim != 2:
        raise ValueError(f"find_crop takes one grey image (H x W), got shape {grey.shape}")
    height, width = grey.shape
    whole = Crop(0, height, 0, width, "whole slice")
    if mode == "none":
        return whole
    scale = ANALYSIS_SIZE / max(height, width)
    small_shape = (max(int(round(height * scale)), 8), max(int(round(width * scale)), 8))
    from PIL import Image

    small = np.asarray(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).resize(small_shape[::-1], Image.BILINEAR),
                       dtype=np.float32)
    sy, sx = height / small.shape[0], width / small.shape[1]

    body = ndimage.binary_opening(small > AIR_GREY, iterations=2)
    body = ndimage.binary_fill_holes(_largest_component(body))
    if body.sum() < 0.05 * body.size:
        return Crop(0, height, 0, width, "whole slice",
                    note="no body outline found (is this an axial CT slice, windowed for the abdomen?); the whole "
                         "slice is used")
    rows, cols = np.nonzero(body)
    b_top, b_bottom, b_left, b_right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    b_height, b_width = b_bottom - b_top, b_right - b_left

    def to_image(top, bottom, left, right, method, note=""):
        box = _square(top * sy, bottom * sy, left * sx, right * sx, height, width)
        return Crop(*box, method=method, note=note, flipped=flipped, prone=prone)

    # orientation: the spine (bone in the middle third of the body's width) marks the posterior side
    smooth = ndimage.gaussian_filter(small, 1.0)
    middle = np.zeros_like(body)
    middle[:, b_left + b_width // 3: b_right - b_width // 3] = True
    bone = body & middle & (small >= BONE_GREY)
    prone = bool(bone.sum() >= 3 and np.nonzero(bone)[0].mean() < (b_top + b_bottom) / 2)

    if mode == "body":
        flipped = False
        return to_image(b_top, b_bottom, b_left, b_right, "body outline")

    # the liver: the largest connected region of liver density inside the body (away from the body wall)
    low, high = hu_to_grey(LIVER_HU[0], window), hu_to_grey(LIVER_HU[1], window)
    inner = ndimage.binary_erosion(body, iterations=3)
    liver_like = ndimage.binary_opening(inner & (smooth >= low) & (smooth <= high), iterations=2)
    region = _largest_component(liver_like)
    area = region.sum() / body.sum()
    centre_x = (b_left + b_right) / 2
    if LIVER_AREA[0] <= area <= LIVER_AREA[1]:
        r_rows, r_cols = np.nonzero(region)
        flipped = bool(r_cols.mean() > centre_x)
        top, bottom, left, right = r_rows.min(), r_rows.max() + 1, r_cols.min(), r_cols.max() + 1
        pad = MARGIN * max(bottom - top, right - left) + 2
        return to_image(top - pad, bottom + pad, left - pad, right + pad, "liver region")

    # no plausible liver region: the body-relative box, mirrored to the orientation found
    flipped = bool(liver_like.sum() and np.nonzero(liver_like)[1].mean() > centre_x)
    f_top, f_bottom, f_left, f_right = LIVER_BOX_IN_BODY
    if prone:
        f_top, f_bottom = 1 - f_bottom, 1 - f_top
    if flipped:
        f_left, f_right = 1 - f_right, 1 - f_left
    note = (f"no liver-like region found (liver-density tissue covers {area:.0%} of the body, expected "
            f"{LIVER_AREA[0]:.0%}-{LIVER_AREA[1]:.0%}); a fixed box relative to the body outline is used")
    return to_image(b_top + f_top * b_height, b_top + f_bottom * b_height,
                    b_left + f_left * b_width, b_left + f_right * b_width, "body-relative box", note)


def crop_grey(grey: np.ndarray, mode: str, window: tuple[float, float] = (40.0, 400.0)) -> tuple[np.ndarray, Crop]:
    """The cropped grey image and its :class:`Crop` (``mode="none"`` returns the image unchanged)."""
    crop = find_crop(grey, mode, window)
    return crop.apply(np.asarray(grey)), crop
