"""Write and read CT slices as DICOM, carrying Hounsfield units through RescaleSlope/RescaleIntercept."""

from __future__ import annotations

import io
import os
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
    no pixel data, a compressed transfer syntax without a decoder, a multi-frame volume.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else Path(source)
    if not isinstance(source, bytes | bytearray):
        name = str(source)
    try:
        ds = pydicom.dcmread(fp, force=False)
    except InvalidDicomError as exc:
        raise LiverlibError(f"{name} is not a DICOM file (no DICM header): {exc}") from None
    except Exception as exc:  # truncated or malformed
        raise LiverlibError(f"{name} could not be read as DICOM ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise LiverlibError(f"{name} is a DICOM file without pixel data (an SR, a report or a header only); "
                            "export the CT image series instead")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise LiverlibError(f"{name} is a multi-frame volume with {frames} frames; export single axial slices")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError when no decoder handles the transfer syntax
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_name = getattr(syntax, "name", str(syntax))
        raise LiverlibError(f"{name} uses the compressed transfer syntax {syntax_name!r}, which cannot be decoded "
                            "here; re-export it uncompressed (explicit VR little endian) or install a decoder "
                            f"such as pylibjpeg ({type(exc).__name__})") from None
    if pixels.ndim != 2:
        raise LiverlibError(f"{name} holds a {pixels.ndim}-D pixel array of shape {pixels.shape}; "
                            "a single grey axial slice is needed")
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    hu = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    spacing = ds.get("PixelSpacing")
    window = None
    if "WindowCenter" in ds and "WindowWidth" in ds:
        wc, ww = ds.WindowCenter, ds.WindowWidth
        wc = wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc
        ww = ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww
        window = (float(wc), float(ww))
    return DicomSlice(hu=hu, pixel_spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing else None,
                      window=window, modality=str(ds.get("Modality", "")),
                      description=str(ds.get("SeriesDescription", "")))
