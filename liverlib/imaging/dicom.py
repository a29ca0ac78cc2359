"""Write and read CT slices as DICOM, carrying Hounsfield units through RescaleSlope/RescaleIntercept."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverlib.errors import LiverlibError

_INTERCEPT = -1024.0  # stored value 0 is -1024 HU, the bottom of the CT scale


@dataclass
class DicomSlice:
    """HU pixels of one CT slice and the tags a classifier needs."""

    hu: np.ndarray  # float32, Hounsfield units
    pixel_spacing_mm: tuple[float, float] | None
    window: tuple[float, float] | None  # (level, width) stored in the file, if any
    modality: str
    description: str


def write_ct_dicom(path: str | os.PathLike, hu: np.ndarray, *, pixel_spacing_mm: float, patient_id: str,
                   slice_index: int, z_mm: float, slice_thickness_mm: float, window: tuple[float, float],
                   uid_seed: str, comment: str = "SYNTHETIC PHANTOM - not a real patient") -> None:
    """Write a 2-D HU image as a CT Image Storage DICOM file (explicit VR little endian, 16-bit).

    UIDs are derived from ``uid_seed``, so the same phantom seed gives byte-identical files.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    hu = np.asarray(hu, dtype=np.float32)
    stored = np.clip(np.round(hu - _INTERCEPT), 0, 4095).astype(np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed, "instance"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["liverlib"])

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient_id, uid_seed.rsplit("/", 1)[0], "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient_id, uid_seed.rsplit("/", 1)[0], "series"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[patient_id, uid_seed.rsplit("/", 1)[0], "frame"])
    ds.Modality = "CT"
    ds.PatientName = "SYNTHETIC^PHANTOM"
    ds.PatientID = patient_id
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20250101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
    ds.Manufacturer = "liverlib synthetic phantom"
    ds.BodyPartExamined = "ABDOMEN"
    ds.ImageComments = comment
    ds.SeriesDescription = "Synthetic abdomen, portal-venous phase"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = slice_index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(-z_mm)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceLocation = float(-z_mm)
    ds.SliceThickness = float(slice_thickness_mm)
    ds.PixelSpacing = [float(pixel_spacing_mm), float(pixel_spacing_mm)]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _INTERCEPT
    ds.RescaleSlope = 1.0
    ds.RescaleType = "HU"
    ds.WindowCenter = float(window[0])
    ds.WindowWidth = float(window[1])
    ds.PixelData = stored.tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def read_dicom_hu(source: str | os.PathLike | bytes, name: str = "the file") -> DicomSlice:
    """Read a single-frame DICOM slice and return its pixels in HU.

    Raises :class:`LiverlibError` with a sentence a user can act on for the usual problems: not DICOM,
    no pixel data, a compressed transfer syntax without a decoder, a multi-frame volume, and header values
    that disagree with the pixel data or make no sense for CT (see :func:`hu_pixels`).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else Path(source)
    if not isinstance(source, bytes | bytearray):
        name = str(source)
    try:
        with quiet():
            ds = pydicom.dcmread(fp, force=False)
    except InvalidDicomError as exc:
        raise LiverlibError(f"{name} is not a DICOM file (no DICM header): {_one_line(exc)}") from None
    except Exception as exc:  # truncated or malformed
        raise LiverlibError(f"{name} could not be read as DICOM ({type(exc).__name__}: {_one_line(exc)})") from None
    hu = hu_pixels(ds, name)
    return DicomSlice(hu=hu, pixel_spacing_mm=pixel_spacing(ds), window=_window(ds), modality=text(ds, "Modality"),
                      description=text(ds, "SeriesDescription"))


# ---------------------------------------------------------------------------------------------- header checks
# Shared by the slice reader above and the series reader (liverlib.imaging.dicom_series): every header value that
# decoding relies on is checked before it is trusted, and a bad one is named in the error.

SLOPE_RANGE = (1e-3, 1e3)  # CT scanners write 1 (a few 0.5 or 2); 0, negatives or 1e30 mean a damaged header
INTERCEPT_LIMIT = 65536.0  # the span of 16-bit stored values; CT scanners write -1024, -1000, -8192 or 0
_BITS = (1, 8, 16, 32, 64)
MAX_SLICE_PIXELS = 4096 * 4096  # CT slices are 512 x 512, a few 1024 x 1024


@contextlib.contextmanager
def quiet():
    """Silence pydicom's warnings and log records while reading: they may quote header values, patient names
    among them, and none of those may reach a message, a log or a notebook."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    msg = " ".join(str(exc).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def text(ds, keyword: str) -> str:
    """A header string ("" when missing or unreadable); never used for patient tags."""
    try:
        with quiet():
            value = ds.get(keyword, "")
        return " ".join(str(value if value is not None else "").split())
    except Exception:
        return ""


def number(ds, keyword: str, name: str, default: float | None = None, index: int = 0) -> float | None:
    """A numeric header value (the ``index``-th of a multi-value); a :class:`LiverlibError` names a bad one."""
    try:
        with quiet():
            if keyword not in ds:
                return default
            value = ds[keyword].value
    except Exception as exc:
        raise LiverlibError(f"{name}: its {keyword} cannot be read ({type(exc).__name__}); the header is damaged, "
                            "re-export the file") from None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[index] if len(value) > index else None
    elif index:
        value = None
    if value is None or value == "" or value == b"":
        return default
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        shown = str(value)[:24]
        raise LiverlibError(f"{name}: {keyword} {shown!r} is not a number; the header is damaged, re-export "
                            "the file") from None


def _count(ds, keyword: str, name: str, default: int | None = None) -> int:
    value = number(ds, keyword, name, default)
    if value is None:
        raise LiverlibError(f"{name} has pixel data but no {keyword}; the header is incomplete, re-export the file")
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise LiverlibError(f"{name}: {keyword} {value:g} is not a whole number; the header is damaged, re-export "
                            "the file")
    return int(value)


def _syntax(ds) -> tuple[str, bool | None]:
    """The transfer syntax's name and whether its pixel data are encapsulated (compressed); None: unknown."""
    try:
        syntax = ds.file_meta.TransferSyntaxUID
        return syntax.name, bool(syntax.is_encapsulated)
    except Exception:  # missing, or not a transfer syntax UID
        return "an unknown transfer syntax", None


def check_pixel_header(ds, name: str) -> None:
    """Rows, Columns, BitsAllocated, SamplesPerPixel and NumberOfFrames against each other and the PixelData length."""
    frames = _count(ds, "NumberOfFrames", name, 1) or 1
    if frames > 1:
        raise LiverlibError(f"{name} is a multi-frame volume with {frames} frames; export single axial slices")
    rows, cols = _count(ds, "Rows", name), _count(ds, "Columns", name)
    bits, spp = _count(ds, "BitsAllocated", name), _count(ds, "SamplesPerPixel", name, 1)
    if rows == 0 or cols == 0:
        raise LiverlibError(f"{name}: Rows {rows} x Columns {cols} is an empty image; the header is damaged, "
                            "re-export the file")
    if rows * cols > MAX_SLICE_PIXELS:
        raise LiverlibError(f"{name}: Rows {rows} x Columns {cols} is more than a CT slice has (limit "
                            f"{MAX_SLICE_PIXELS:,} pixels; CT: 512 x 512); the header is damaged, re-export the file")
    if bits not in _BITS:
        raise LiverlibError(f"{name}: BitsAllocated {bits} is not a valid DICOM pixel size (8, 16 or 32; CT uses 16); "
                            "the header is damaged, re-export the file")
    if spp not in (1, 3):
        raise LiverlibError(f"{name}: SamplesPerPixel {spp} is not valid (1 for grey, 3 for colour; CT uses 1); "
                            "the header is damaged, re-export the file")
    if _syntax(ds)[1] is False:  # uncompressed; for compressed pixel data the decoder checks the frame size
        _check_length(ds, name, rows, cols, spp, bits, frames)
    stored = number(ds, "BitsStored", name, bits)
    if not 1 <= stored <= bits:
        raise LiverlibError(f"{name}: BitsStored {stored:g} does not fit in BitsAllocated {bits}; the header is "
                            "damaged, re-export the file")


def _check_length(ds, name: str, rows: int, cols: int, spp: int, bits: int, frames: int) -> None:
    try:
        with quiet():
            length = len(ds.PixelData)
    except Exception as exc:
        raise LiverlibError(f"{name}: its PixelData cannot be read ({type(exc).__name__}); the file is damaged, "
                            "re-export it") from None
    n_bits = rows * cols * spp * bits * frames
    expected = (n_bits + 7) // 8
    if length in (expected, expected + 1):  # +1: the pad byte to an even length
        return
    have, fits = length * 8, []
    for keyword, others, test in (("Rows", cols * spp * bits, None), ("Columns", rows * spp * bits, None),
                                  ("BitsAllocated", rows * cols * spp, _BITS[1:4]),
                                  ("SamplesPerPixel", rows * cols * bits, (1, 3))):
        if others and have % others == 0 and (test is None or have // others in test) and have // others > 0:
            value = have // others
            square = (value == cols) if keyword == "Rows" else (value == rows) if keyword == "Columns" else rows == cols
            fits.append((not square, f"{keyword} {value}"))
    hint = ""
    if fits:
        fits.sort()
        others = f"; or {', '.join(f for _, f in fits[1:])}" if len(fits) > 1 else ""
        hint = f" ({fits[0][1]} would fit{others})"
    raise LiverlibError(f"{name}: its header does not match its pixel data: Rows {rows} x Columns {cols} x "
                        f"SamplesPerPixel {spp} at BitsAllocated {bits} needs {expected:,} bytes, but PixelData holds "
                        f"{length:,} bytes{hint}; the file is damaged, re-export it from the scanner or PACS")


def rescale(ds, name: str) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept, checked: finite, the slope within SLOPE_RANGE, the intercept within
    +-INTERCEPT_LIMIT."""
    slope = number(ds, "RescaleSlope", name, 1.0)
    intercept = number(ds, "RescaleIntercept", name, 0.0)
    if not (math.isfinite(slope) and SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]):
        raise LiverlibError(f"{name}: RescaleSlope {slope:g} is not a plausible CT rescale (it must be a finite "
                            f"number from {SLOPE_RANGE[0]:g} to {SLOPE_RANGE[1]:g}; CT scanners write 1); the header "
                            "is damaged, re-export the file")
    if not (math.isfinite(intercept) and abs(intercept) <= INTERCEPT_LIMIT):
        raise LiverlibError(f"{name}: RescaleIntercept {intercept:g} is not a plausible CT rescale (it must be a "
                            f"finite number within +-{INTERCEPT_LIMIT:g}; CT scanners write -1024 or -1000); the "
                            "header is damaged, re-export the file")
    return slope, intercept


def hu_pixels(ds, name: str) -> np.ndarray:
    """The slice's pixels in HU (2-D float32), after checking the header values that decoding relies on."""
    if "PixelData" not in ds:
        raise LiverlibError(f"{name} is a DICOM file without pixel data (an SR, a report or a header only); "
                            "export the CT image series instead")
    check_pixel_header(ds, name)
    try:
        with quiet():
            pixels = ds.pixel_array
    except Exception as exc:
        syntax_name, encapsulated = _syntax(ds)
        if encapsulated:  # no decoder handles this transfer syntax
            raise LiverlibError(f"{name} uses the compressed transfer syntax {syntax_name!r}, which cannot be decoded "
                                "here; re-export it uncompressed (explicit VR little endian) or install a decoder "
                                f"such as pylibjpeg ({type(exc).__name__})") from None
        raise LiverlibError(f"{name}: its pixel data ({syntax_name}) cannot be decoded ({type(exc).__name__}: "
                            f"{_one_line(exc)}); the file is damaged, re-export it") from None
    if pixels.ndim != 2:
        raise LiverlibError(f"{name} holds a {pixels.ndim}-D pixel array of shape {pixels.shape}; "
                            "a single grey axial slice is needed")
    slope, intercept = rescale(ds, name)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def pixel_spacing(ds, name: str = "the file", strict: bool = False) -> tuple[float, float] | None:
    """PixelSpacing (row, column) in mm when present and plausible (0.01-50 mm); ``strict`` raises otherwise."""
    try:
        values = (number(ds, "PixelSpacing", name, None, 0), number(ds, "PixelSpacing", name, None, 1))
    except LiverlibError:
        if strict:
            raise
        return None
    if values[0] is None and values[1] is None and not strict:
        return None
    if None in values or not all(math.isfinite(v) and 0.01 <= v <= 50 for v in values):
        if not strict:
            return None
        shown = "missing" if values[0] is None else "/".join(f"{v:g}" if v is not None else "?" for v in values)
        raise LiverlibError(f"{name}: PixelSpacing {shown} is not a plausible pixel size (0.01 to 50 mm); the header "
                            "is damaged, re-export the series")
    return values


def _window(ds) -> tuple[float, float] | None:
    try:
        level, width = number(ds, "WindowCenter", "", None), number(ds, "WindowWidth", "", None)
    except LiverlibError:
        return None
    if level is None or width is None or not (math.isfinite(level) and math.isfinite(width) and width > 0):
        return None
    return level, width
