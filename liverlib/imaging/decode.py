"""Decode the image files a user may have (PNG, JPEG, BMP, TIFF, DICOM) into one grey image.

Everything ends as a 2-D float32 array of display grey levels in [0, 255]:

* DICOM carries Hounsfield units; they are windowed (abdomen L40/W400 unless told otherwise).
* PNG, JPEG, BMP and TIFF are already windowed by whoever exported them. 8-bit grey is used as is;
  16-bit images are scaled by 255/65535; RGB, RGBA, palette and CMYK images are converted to grey with
  the ITU-R 601 luma weights (alpha is dropped).

Problems come back as :class:`~liverlib.errors.LiverlibError` with a sentence that names the file.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverlib.errors import LiverlibError
from liverlib.imaging.windowing import WINDOWS, window_hu

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 6,000 x 6,000 image; a CT slice is 512 x 512
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DICOM_SUFFIXES = {".dcm", ".dicom", ""}
IMAGE_SUFFIXES = RASTER_SUFFIXES | DICOM_SUFFIXES


@dataclass
class DecodedImage:
    grey: np.ndarray  # float32, H x W, display grey levels in [0, 255]
    format: str  # PNG, JPEG, BMP, TIFF, DICOM
    mode: str  # the file's own pixel mode (L, I;16, RGB, RGBA, P, CMYK, or MONOCHROME2 for DICOM)
    width: int
    height: int
    bits: int
    window: tuple[float, float] | None = None  # for DICOM: the window applied
    warnings: list[str] = field(default_factory=list)
    grey8: np.ndarray | None = field(default=None, repr=False)  # uint8: ``grey`` rounded to 8 bits

    def __post_init__(self):
        if self.grey8 is None:
            self.grey8 = quantise8(self.grey)


def quantise8(grey: np.ndarray) -> np.ndarray:
    """Grey levels (0-255) rounded to 8-bit integers: the form preprocessing resizes (uint8 passes as is)."""
    grey = np.asarray(grey)
    return grey if grey.dtype == np.uint8 else np.clip(np.round(grey), 0, 255).astype(np.uint8)


def is_dicom_bytes(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def decode_image(data: bytes, name: str = "the file", window: tuple[float, float] | None = None) -> DecodedImage:
    """Decode one image file's bytes into display grey levels; ``window`` applies to DICOM only."""
    if not data:
        raise LiverlibError(f"{name} is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise LiverlibError(f"{name} is {len(data) / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit "
                            "for one slice")
    if is_dicom_bytes(data) or Path(name).suffix.lower() in (".dcm", ".dicom"):
        return _decode_dicom(data, name, window)
    return _decode_raster(data, name)


def read_file(path: str | os.PathLike) -> bytes:
    """A file's bytes, refusing (before reading) one over the size limit for a slice."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LiverlibError(f"{path} cannot be read: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise LiverlibError(f"{path} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit for one slice")
    return path.read_bytes()


def decode_file(path: str | os.PathLike, window: tuple[float, float] | None = None) -> DecodedImage:
    return decode_image(read_file(path), str(path), window)


def _decode_dicom(data: bytes, name: str, window: tuple[float, float] | None) -> DecodedImage:
    from liverlib.imaging.dicom import read_dicom_hu

    sl = read_dicom_hu(data, name)
    notes = []
    if sl.modality and sl.modality != "CT":
        raise LiverlibError(f"{name} is a {sl.modality} image, not CT; Hounsfield units and CT windows only "
                            "make sense for CT slices")
    level, width = window or WINDOWS["abdomen"]
    grey = window_hu(sl.hu, level, width) * 255.0
    h, w = sl.hu.shape
    return DecodedImage(grey=grey.astype(np.float32), format="DICOM", mode="MONOCHROME2", width=w, height=h,
                        bits=16, window=(level, width), warnings=notes)


def _decode_raster(data: bytes, name: str) -> DecodedImage:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own MAX_PIXELS check is stricter
        try:
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise LiverlibError(f"{name} declares {width} x {height} pixels, more than a CT slice could have "
                                    f"(limit {MAX_PIXELS:,}); export the slice at its acquired size (CT: 512 x 512)")
            im.load()
            frames = getattr(im, "n_frames", 1)  # a damaged TIFF fails here, on reading its next directory
        except LiverlibError:
            raise
        except Image.DecompressionBombError as exc:
            import re

            count = re.search(r"\((\d+) pixels\)", str(exc))
            declared = f"{int(count.group(1)):,} pixels" if count else f"over {MAX_PIXELS:,} pixels"
            raise LiverlibError(f"{name} declares an enormous image ({declared}: a decompression bomb or not a slice); "
                                "refusing to decode it. Export the slice at its acquired size (CT: 512 x 512)") from None
        except UnidentifiedImageError:
            raise LiverlibError(f"{name} is not an image PIL can read (PNG, JPEG, BMP, TIFF) nor DICOM") from None
        except Exception as exc:  # PIL's plugins raise OSError, SyntaxError, ValueError, TypeError, struct.error...
            message = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise LiverlibError(f"{name} is damaged or truncated and cannot be decoded ({message})") from None
    fmt = (im.format or Path(name).suffix.lstrip(".")).upper()
    mode = im.mode
    notes: list[str] = []
    if frames > 1:
        notes.append(f"{name} has {frames} frames; only the first is used")
    if width < 32 or height < 32:
        raise LiverlibError(f"{name} is only {width} x {height} pixels; a CT slice needs at least 32 x 32")
    bits = 8
    grey8 = None  # set where the pixels are 8-bit grey levels already
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        bits = 16
        arr = np.asarray(im, dtype=np.float32)
        grey = arr * (255.0 / 65535.0) if arr.max() > 255 or mode.startswith("I;16") else arr
    elif mode == "F":
        bits = 32
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        grey = (arr - lo) / (hi - lo or 1.0) * 255.0
        notes.append(f"{name} holds floating-point pixels; they were rescaled to 0-255")
    else:  # 8-bit grey, colour, palette and 1-bit images: PIL's conversion to 8-bit grey
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (0, 0, 0, 255))
            im = Image.alpha_composite(background, im)
        grey8 = np.asarray(im if im.mode == "L" else im.convert("L"))
        grey = grey8.astype(np.float32)
    if mode in ("RGB", "RGBA", "CMYK", "P", "YCbCr"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
        spread = float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean())
        if spread > 8.0:
            notes.append(f"{name} is a colour image (mean channel spread {spread:.0f} grey levels); "
                         "a CT slice is grey. Is this a photo or a screenshot?")
    if grey8 is None:  # 16-bit, floating-point or 32-bit integer pixels: scaled above, may stray out of range
        grey = np.clip(grey, 0, 255)
    return DecodedImage(grey=np.asarray(grey, dtype=np.float32), format=fmt, mode=mode, width=width,
                        height=height, bits=bits, warnings=notes, grey8=grey8)
