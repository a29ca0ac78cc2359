"""Find and read the axial CT series in a folder of DICOM files (one study, possibly several series).

:func:`find_series` lists the axial CT series with their image counts; :func:`read_dicom_series` reads one
into a :class:`~liverlib.imaging.volume.Volume` (``hu[z, y, x]``, head to feet, anterior up, the patient's right on
the image's left). Files that are not CT images to classify are skipped with a note: non-DICOM files,
objects without pixel data (dose reports and other structured reports, DICOMDIR), localisers/scouts,
screen captures without a slice position (dose sheets), multi-frame objects, and whole series that are
not CT or not axial. Everything that would make a wrong volume is a :class:`LiverlibError` that names the
bad value: two patients in one folder, duplicate slice positions, gaps, uneven slice steps, inconsistent
image size, pixel spacing or orientation. Patient names, IDs and birth dates are never read into a
message, a note or a return value; the check for two patients compares hashes of the raw PatientID bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverlib.imaging.dicom import hu_pixels, number, pixel_spacing, quiet, text
from liverlib.errors import LiverlibError
from liverlib.imaging.volume import Volume, check_size, to_display

MAX_FILES = 50_000
_PLANES = ("sagittal", "coronal", "axial")  # by the patient axis (x, y, z) the slice normal is closest to
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SKIPS = {
    "not-dicom": "file(s) that are not DICOM",
    "no-pixels": "DICOM object(s) without pixel data (dose or other structured reports, DICOMDIR)",
    "localizer": "localiser/scout image(s) (ImageType LOCALIZER)",
    "no-position": "image(s) without a slice position (screen captures such as dose sheets)",
    "multi-frame": "multi-frame object(s) (enhanced CT/MR or cine; export classic single-frame slices)",
    "not-axial": "coronal or sagittal image(s) inside an axial series (localisers/scouts?)",
}


@dataclass
class SeriesInfo:
    """One image series found in a folder: what it is and how many images it has."""

    series_uid: str
    number: str  # SeriesNumber, as written
    description: str  # SeriesDescription
    modality: str
    plane: str  # axial, coronal, sagittal or unknown
    files: list[Path] = field(default_factory=list, repr=False)
    shape: tuple[int, int] = (0, 0)  # Rows, Columns of the first image

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def label(self) -> str:
        return f"series {self.number or '?'} {self.description!r} ({self.count} images, UID {self.series_uid})"


class SeriesList(list):
    """The axial CT series found (a list of :class:`SeriesInfo`), with ``skipped`` series and ``notes``."""

    def __init__(self, series=(), skipped=(), notes=()):
        super().__init__(series)
        self.skipped: list[SeriesInfo] = list(skipped)
        self.notes: list[str] = list(notes)


def _paths(folder_or_files) -> tuple[list[Path], str]:
    if isinstance(folder_or_files, (str, os.PathLike)):
        root = Path(folder_or_files)
        if not root.exists():
            raise LiverlibError(f"{root} does not exist; give the folder that holds the exported DICOM series")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        name = str(root)
        if not files:
            raise LiverlibError(f"{root} is an empty folder: there is no file to read; put the exported DICOM series "
                                "there (or give a .nii, .nii.gz or .zip of the series)")
    else:
        files = sorted(Path(p) for p in folder_or_files)
        name = f"the {len(files)} files given"
        if not files:
            raise LiverlibError("no files were given; give the DICOM files of one series, or their folder")
    if len(files) > MAX_FILES:
        raise LiverlibError(f"{name} holds {len(files):,} files, more than one CT study has (limit {MAX_FILES:,}); "
                            "give the folder of one study")
    return files, name


def _plane(iop) -> str:
    if iop is None or len(iop) != 6 or not np.all(np.isfinite(iop)):
        return "unknown"
    normal = np.cross(iop[:3], iop[3:])
    if np.linalg.norm(normal) < 0.5:
        return "unknown"
    return _PLANES[int(np.argmax(np.abs(normal)))]


def _vector(ds, keyword: str, size: int, name: str) -> np.ndarray | None:
    if keyword not in ds:
        return None
    values = [number(ds, keyword, name, None, i) for i in range(size)]
    if any(v is None for v in values):
        return None
    return np.array(values, dtype=np.float64)


def _patient_key(ds) -> str | None:
    """A hash of the raw PatientID bytes: compared, never shown, never decoded."""
    try:
        elem = ds.get_item("PatientID")
        value = elem.value if elem is not None else None
    except Exception:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    value = bytes(value or b"").strip(b" \0")
    return hashlib.sha256(value).hexdigest() if value else None


def _read(path: Path, **kwargs):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with quiet():  # pydicom's warnings and log records may quote header values, patient names among them
            return pydicom.dcmread(path, force=False, **kwargs)
    except InvalidDicomError:
        return None
    except Exception as exc:
        raise LiverlibError(f"{path} is a damaged DICOM file and cannot be read ({type(exc).__name__}); remove it "
                            "or re-export the series") from None


def _scan(folder_or_files) -> tuple[dict[str, SeriesInfo], list[str], str]:
    files, name = _paths(folder_or_files)
    skipped: dict[str, list[Path]] = {}
    series: dict[str, SeriesInfo] = {}
    planes: dict[str, list[str]] = {}
    patients: dict[str, Path] = {}
    for path in files:
        ds = _read(path, defer_size=4096)
        if ds is None:
            skipped.setdefault("not-dicom", []).append(path)
            continue
        key = _patient_key(ds)
        if key is not None:
            patients.setdefault(key, path)
            if len(patients) > 1:
                first, second = patients.values()
                raise LiverlibError(f"{name} mixes files of two different patients (PatientID differs between "
                                    f"{first} and {second}); put each patient's study in its own folder and read "
                                    "them one at a time")
        image_type = text(ds, "ImageType").upper()
        iop = _vector(ds, "ImageOrientationPatient", 6, str(path))
        reason = ("no-pixels" if "PixelData" not in ds else "localizer" if "LOCALIZER" in image_type
                  else "no-position" if iop is None or "ImagePositionPatient" not in ds
                  or text(ds, "SOPClassUID").startswith(_SECONDARY_CAPTURE)
                  else "multi-frame" if (number(ds, "NumberOfFrames", str(path), 1) or 1) > 1 else None)
        if reason:
            skipped.setdefault(reason, []).append(path)
            continue
        uid = text(ds, "SeriesInstanceUID")
        if uid not in series:
            shape = (int(number(ds, "Rows", str(path), 0)), int(number(ds, "Columns", str(path), 0)))
            series[uid] = SeriesInfo(uid, text(ds, "SeriesNumber"), text(ds, "SeriesDescription"),
                                     text(ds, "Modality").upper(), "", shape=shape)
            planes[uid] = []
        series[uid].files.append(path)
        planes[uid].append(_plane(iop))
    for uid, info in series.items():
        info.plane = Counter(planes[uid]).most_common(1)[0][0]
        if info.plane == "axial" and len(set(planes[uid])) > 1:  # scouts that share the series, not so marked
            odd = [f for f, plane in zip(info.files, planes[uid]) if plane not in ("axial", "unknown")]
            info.files = [f for f, plane in zip(info.files, planes[uid]) if plane in ("axial", "unknown")]
            skipped.setdefault("not-axial", []).extend(odd)
    notes = [f"skipped {len(paths)} {_SKIPS[reason]}, e.g. {paths[0]}" for reason, paths in skipped.items()]
    if not series:
        what = "no DICOM file" if set(skipped) <= {"not-dicom"} else "no CT image series"
        detail = "; ".join(notes)
        raise LiverlibError(f"{name} holds {what} to read ({detail}); export the axial CT series of the study "
                            "as DICOM files (or give a .nii/.nii.gz volume)")
    return series, notes, name


def _why_not(info: SeriesInfo) -> str | None:
    if info.modality != "CT":
        return (f"{info.label} is {info.modality or 'of unknown modality'} (Modality {info.modality!r}), not CT: "
                "liverlib reads CT in Hounsfield units")
    if info.plane == "unknown":
        return f"{info.label} has no valid ImageOrientationPatient, so its plane is unknown: re-export the series"
    if info.plane != "axial":
        return (f"{info.label} is {info.plane}, not axial: export the axial series (reformats in other planes "
                "are not read)")
    return None


def find_series(folder_or_files) -> SeriesList:
    """The axial CT series in a folder (or list of files), sorted by SeriesNumber, with notes on what was skipped.

    Raises :class:`LiverlibError` when there is none to read, saying why (empty, not DICOM, MR, coronal...).
    """
    series, notes, name = _scan(folder_or_files)
    found, skipped = [], []
    for info in series.values():
        why = _why_not(info)
        (skipped if why else found).append(info)
        if why:
            notes.append(f"skipped {why}")
    if not found:
        raise LiverlibError(f"{name} holds no axial CT series to read: {'; '.join(_why_not(s) for s in skipped)}")
    found.sort(key=lambda s: (float(s.number) if s.number.lstrip("-").isdigit() else 1e9, s.series_uid))
    return SeriesList(found, skipped, notes)


def read_dicom_series(folder_or_files, series_uid: str | None = None) -> Volume:
    """Read one axial CT series into a :class:`Volume`: the folder's only one, or the one named by ``series_uid``."""
    if series_uid is None:
        listing = find_series(folder_or_files)
        name = str(folder_or_files) if isinstance(folder_or_files, (str, os.PathLike)) else "the files given"
        if len(listing) > 1:
            raise LiverlibError(f"{name} holds {len(listing)} axial CT series: "
                                f"{'; '.join(s.label for s in listing)}; name one with series_uid=..., or read "
                                "them all with read_study")
        return read_series(listing[0], name, listing.notes)
    series, notes, name = _scan(folder_or_files)
    if series_uid not in series:
        raise LiverlibError(f"{name} has no series with SeriesInstanceUID {series_uid!r}; it holds "
                            f"{'; '.join(s.label for s in series.values())}")
    why = _why_not(series[series_uid])
    if why:
        raise LiverlibError(f"{name}: {why}")
    return read_series(series[series_uid], name, notes)


def read_series(info: SeriesInfo, name: str, notes=()) -> Volume:
    """Decode, check and stack the images of one series found by :func:`find_series`."""
    check_size((info.count, *info.shape), f"{info.label} in {name}")
    where = f"{info.label} in {name}"
    slices = []
    for path in info.files:
        ds = _read(path)
        if ds is None:
            raise LiverlibError(f"{path} is no longer a DICOM file; re-export the series")
        hu = hu_pixels(ds, str(path))
        iop = _vector(ds, "ImageOrientationPatient", 6, str(path))
        ipp = _vector(ds, "ImagePositionPatient", 3, str(path))
        if iop is None or ipp is None or not (np.all(np.isfinite(iop)) and np.all(np.isfinite(ipp))):
            raise LiverlibError(f"{path}: ImageOrientationPatient or ImagePositionPatient is missing or not finite; "
                                "the slice cannot be placed in the volume, re-export the series")
        slices.append((path, hu, iop, ipp, pixel_spacing(ds, str(path), strict=True)))
    path0, hu0, iop0, _, spacing0 = slices[0]
    row, col = iop0[:3], iop0[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        raise LiverlibError(f"{path0}: ImageOrientationPatient {_fmt(iop0)} is not two perpendicular unit vectors; "
                            "the header is damaged, re-export the series")
    for path, hu, iop, _, spacing in slices[1:]:
        if hu.shape != hu0.shape:
            raise LiverlibError(f"{where} has inconsistent image sizes: {path0} is {hu0.shape[0]} x {hu0.shape[1]}, "
                                f"{path} is {hu.shape[0]} x {hu.shape[1]}; one series must have one image size")
        if not np.allclose(iop, iop0, atol=1e-3):
            raise LiverlibError(f"{where} has inconsistent orientation: ImageOrientationPatient is {_fmt(iop0)} in "
                                f"{path0} but {_fmt(iop)} in {path}; export one series per orientation")
        if not np.allclose(spacing, spacing0, rtol=1e-3, atol=1e-4):
            raise LiverlibError(f"{where} has inconsistent pixel spacing: PixelSpacing is {_fmt(spacing0)} mm in "
                                f"{path0} but {_fmt(spacing)} mm in {path}; re-export the series unresampled")
    normal = np.cross(row, col)
    if _plane(iop0) != "axial":
        raise LiverlibError(f"{where} is {_plane(iop0)}, not axial (ImageOrientationPatient {_fmt(iop0)}): "
                            "export the axial series")
    down = -normal if normal[2] > 0 else normal  # towards the feet (LPS+: -z), so slices are listed head first
    order = sorted(range(len(slices)), key=lambda i: float(slices[i][3] @ down))
    slices = [slices[i] for i in order]
    positions = np.array([s[3] @ down for s in slices])
    step, notes = _slice_step(positions, slices, where, ds), list(notes)
    if len(slices) == 1:
        notes.append(f"{where} has one slice; its z spacing ({step:g} mm) is the SliceThickness, or 1 mm without one")
    drift = np.array([[s[3] @ row, s[3] @ col] for s in slices])
    drift = float(np.abs(drift - drift[0]).max())
    if drift > 0.5 * min(spacing0):
        notes.append(f"the slices drift {drift:.1f} mm in-plane across the series (a gantry tilt?); the volume is "
                     "not resampled")
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = down * step, col * spacing0[0], row * spacing0[1]
    lps[:3, 3] = slices[0][3]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM's LPS+ to RAS+
    data = np.stack([s[1] for s in slices]).astype(np.float32, copy=False)
    hu, spacing, affine = to_display(data, affine, (step, spacing0[0], spacing0[1]), where)
    return Volume(hu=hu, spacing_mm=spacing, affine=affine, source=name, series_uid=info.series_uid,
                  description=info.description, notes=notes)


def _slice_step(positions: np.ndarray, slices, where: str, ds) -> float:
    """The even step between sorted slice positions; duplicates, gaps and uneven steps are errors."""
    if len(positions) < 2:
        thickness = number(ds, "SliceThickness", str(slices[0][0]), None)
        return float(thickness) if thickness and np.isfinite(thickness) and 0.01 <= thickness <= 50 else 1.0
    steps = np.diff(positions)
    for i in np.flatnonzero(steps < 0.01):
        raise LiverlibError(f"{where} has duplicate slices: {slices[i][0]} and {slices[i + 1][0]} are both at "
                            f"slice position {positions[i]:.2f} mm (ImagePositionPatient along the slice normal); "
                            "remove the duplicates or export one acquisition per series")
    step = float(np.median(steps))
    for i in np.flatnonzero(steps > 1.5 * step):
        missing = round(steps[i] / step) - 1
        raise LiverlibError(f"{where} has a gap: {slices[i][0]} and {slices[i + 1][0]} are {steps[i]:.2f} mm apart "
                            f"where the series steps {step:.2f} mm (about {missing} slice(s) missing); re-export the "
                            "complete series")
    uneven = np.flatnonzero(np.abs(steps - step) > max(0.02, 0.01 * step))
    if len(uneven):
        i = uneven[0]
        raise LiverlibError(f"{where} has inconsistent slice spacing: steps of {step:.2f} mm and {steps[i]:.2f} mm "
                            f"(between {slices[i][0]} and {slices[i + 1][0]}); a volume needs evenly spaced slices, "
                            "re-export the series unresampled or as one reconstruction")
    return step


def _fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
