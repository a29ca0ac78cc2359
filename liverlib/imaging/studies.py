"""Whole studies in: a folder of DICOM files, a NIfTI volume (.nii, .nii.gz) or a .zip of either.

:func:`read_study` dispatches on what it is given and returns one :class:`~liverlib.imaging.volume.Volume` per axial
CT series (a NIfTI file is one volume). Every volume is in the same radiological axial view, whatever its
source: ``hu[z, y, x]`` with z from head to feet, y from anterior (up) to posterior, x from the patient's
right (image left) to the patient's left: nibabel axis codes ``"IPL"``.

* DICOM: :func:`~liverlib.imaging.dicom_series.find_series` and :func:`~liverlib.imaging.dicom_series.read_dicom_series`
  (grouping by SeriesInstanceUID, skipping reports, localisers and dose sheets, ordering by position).
* NIfTI: :func:`read_nifti`, through nibabel; the voxel axes are matched to the patient axes by the file's
  affine (io_orientation) and flipped or transposed to the view above; spacing from the header's zooms.
* ZIP: :func:`extract_zip` refuses member names that climb out of the folder, links, encryption, and zip
  bombs (by total size and compression ratio, checked before a byte is written, and again while writing).

Problems are :class:`~liverlib.errors.LiverlibError` sentences that name the bad value and what to do.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from liverlib.imaging.dicom_series import SeriesInfo, SeriesList, find_series, read_dicom_series, read_series
from liverlib.errors import LiverlibError
from liverlib.imaging.volume import DISPLAY_AXCODES, Volume, check_size, to_display

__all__ = ["DISPLAY_AXCODES", "SeriesInfo", "SeriesList", "Volume", "extract_zip", "find_series",
           "read_dicom_series", "read_nifti", "read_study"]

MAX_ZIP_BYTES = 4 * 2**30  # what an archive may unpack to; a 1,000-slice CT series is about 0.5 GiB
MAX_ZIP_RATIO = 200.0  # DEFLATE packs CT DICOM 2-10 to 1; a zip bomb packs 1,000 to 1 and more
_RATIO_FLOOR = 2**20  # sizes below 1 MiB are not judged by their ratio
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _short(text: str, limit: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def read_study(path: str | os.PathLike, series_uid: str | None = None, *, max_zip_bytes: int = MAX_ZIP_BYTES,
               max_zip_ratio: float = MAX_ZIP_RATIO) -> list[Volume]:
    """The CT volume(s) of one study: each axial CT series of a DICOM folder (or the one named by
    ``series_uid``), a NIfTI file's volume, or those of a .zip holding either. ``max_zip_bytes`` and
    ``max_zip_ratio`` bound what an archive may unpack to (total size, and compression ratio)."""
    path = Path(path)
    if not path.exists():
        raise LiverlibError(f"{path} does not exist; give a folder of DICOM files, a .nii/.nii.gz volume or a .zip")
    if path.is_dir():
        return _read_folder(path, series_uid)
    if _is_nifti(path):
        return [read_nifti(path)]
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="liverlib-study-") as tmp:
            extract_zip(path, tmp, max_bytes=max_zip_bytes, max_ratio=max_zip_ratio)
            try:
                volumes = _read_folder(Path(tmp), series_uid)
            except LiverlibError as exc:  # name the archive, not the temporary folder
                raise LiverlibError(_in_archive(str(exc), tmp, path)) from None
        for volume in volumes:
            volume.source = _in_archive(volume.source, tmp, path)
            volume.notes = [_in_archive(note, tmp, path) for note in volume.notes]
        return volumes
    return _read_folder(path, series_uid)  # a single DICOM file


def _in_archive(text: str, tmp: str, archive: Path) -> str:
    return text.replace(tmp + os.sep, f"{archive}:").replace(tmp, str(archive))


def _read_folder(folder: Path, series_uid: str | None) -> list[Volume]:
    if folder.is_dir() and series_uid is None:
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        niftis = [p for p in files if _is_nifti(p)]
        if niftis and len(niftis) == len(files):
            return [read_nifti(p) for p in niftis]
    if series_uid is not None:
        return [read_dicom_series(folder, series_uid)]
    listing = find_series(folder)
    return [read_series(info, str(folder), listing.notes) for info in listing]


# ---------------------------------------------------------------------------------------------- NIfTI

def read_nifti(path: str | os.PathLike) -> Volume:
    """A 3-D NIfTI-1/2 volume in HU (.nii or .nii.gz), reoriented to the display view (``"IPL"``)."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise LiverlibError(f"{name} does not exist or is not a file; give a .nii or .nii.gz volume")
    logger = logging.getLogger("nibabel.global")  # nibabel prints its header fixes ("setting to 0") there
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return _read_nifti(path, name)
    finally:
        logger.setLevel(level)


def _read_nifti(path: Path, name: str) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(name)
        header = img.header
        shape = tuple(int(n) for n in img.shape)
        zooms = [float(z) for z in header.get_zooms()]
        affine = np.asarray(img.affine, dtype=np.float64)
        dtype = header.get_data_dtype()
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, EOFError, zlib/gzip errors...
        raise LiverlibError(f"{name} is not a readable NIfTI file: its header is damaged or the file is truncated "
                            f"({type(exc).__name__}: {_message(exc)}); re-export the volume") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise LiverlibError(f"{name} is a {type(img).__name__}, not NIfTI; convert it to .nii or .nii.gz")
    if len(shape) > 3 and any(n > 1 for n in shape[3:]):
        dims = " x ".join(map(str, shape))
        raise LiverlibError(f"{name} is a {len(shape)}-D image ({dims}: {int(np.prod(shape[3:]))} volumes); a CT "
                            "study is one 3-D volume: save the CT volume on its own as a 3-D NIfTI")
    if len(shape) < 2 or min(shape) < 1:
        raise LiverlibError(f"{name} has shape {shape}; a CT volume needs 3 dimensions (x, y, slices)")
    if dtype.fields is not None or dtype.kind not in "iuf":
        raise LiverlibError(f"{name} stores {dtype} voxels (colour or complex); a CT volume stores one number "
                            "per voxel")
    zooms = (zooms + [1.0, 1.0, 1.0])[:3]
    if not all(np.isfinite(z) and 0.01 <= z <= 50 for z in zooms):
        raise LiverlibError(f"{name}: its voxel size (pixdim) {[round(z, 4) for z in zooms]} mm is not plausible "
                            "for CT (0.01 to 50 mm); the header is damaged, re-export the volume")
    check_size(shape[:3], name)
    _check_length(path, header, shape, dtype)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape[:3] + (1,) * (3 - len(shape[:3])))
    except Exception as exc:
        raise LiverlibError(f"{name}: its voxels cannot be read, the file is truncated or damaged "
                            f"({type(exc).__name__}: {_message(exc)}); re-export the volume") from None
    notes = []
    finite = np.isfinite(data)
    if not finite.all():
        if not finite.any():
            raise LiverlibError(f"{name} holds no finite voxel (all NaN or infinite); re-export the volume")
        notes.append(f"{int((~finite).sum()):,} NaN or infinite voxels were set to -1024 HU (air)")
        data = np.where(finite, data, np.float32(-1024))
    lo, hi = float(data.min()), float(data.max())
    if max(abs(lo), abs(hi)) > 1e5:
        raise LiverlibError(f"{name} holds values from {lo:g} to {hi:g}, not Hounsfield units (CT spans about "
                            "-1024 to +3000); check the header's scl_slope/scl_inter or give the CT volume in HU")
    if lo > -200 or hi - lo < 100:
        notes.append(f"the voxels span {lo:g} to {hi:g}, which does not look like CT in Hounsfield units "
                     "(air is -1000, liver about +60): is this a CT volume in HU, not a mask or a normalised image?")
    hu, spacing, affine = to_display(data, affine, zooms, name)
    return Volume(hu=hu, spacing_mm=spacing, affine=affine, source=name, description=path.name, notes=notes)


def _message(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_length(path: Path, header, shape, dtype) -> None:
    """An uncompressed .nii must hold the voxels its header declares: say 'truncated' before nibabel reads."""
    try:
        offset = int(header.get_data_offset())
    except Exception:
        return
    needed = offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):  # the gzip trailer's ISIZE: the unpacked size modulo 2**32
        if needed >= 2**32:
            raise LiverlibError(f"{path} declares {needed / 2**30:.1f} GiB of voxels, more than a CT study has; "
                                "crop or resample it")
        with open(path, "rb") as fh:
            fh.seek(max(size - 4, 0))
            size = int.from_bytes(fh.read(4).ljust(4, b"\0"), "little")
    if size < needed:
        raise LiverlibError(f"{path} is truncated: its header declares {' x '.join(map(str, shape))} {dtype} voxels "
                            f"({needed:,} bytes with the header) but the file holds {size:,} bytes; re-export the "
                            "volume")


# ---------------------------------------------------------------------------------------------- ZIP

def extract_zip(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_ZIP_BYTES,
                max_ratio: float = MAX_ZIP_RATIO) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely, or refuse it with a :class:`LiverlibError` before writing.

    Refused: member names that are absolute or climb out with ``..``, links, encrypted members, more than
    ``max_bytes`` in all, and compression ratios over ``max_ratio`` (each member over 1 MiB, and the whole).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except Exception as exc:  # BadZipFile, OSError, EOFError, NotImplementedError (an unknown zip version)...
        raise LiverlibError(f"{archive} is not a readable zip archive ({type(exc).__name__}: {_message(exc)}); "
                            "re-create it, or give the unpacked folder") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        _check_members(archive, infos, max_bytes, max_ratio)
        written, root = 0, dest.resolve()
        extracted = []
        for info in infos:
            target = (dest / PurePosixPath(info.filename.replace("\\", "/"))).resolve()
            if root not in target.parents:
                raise LiverlibError(f"{archive}: member {_short(info.filename)} would land outside the extraction "
                                    "folder; refusing to extract the archive")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    member = 0
                    while chunk := src.read(2**20):
                        member += len(chunk)
                        written += len(chunk)
                        if member > info.file_size or written > max_bytes:
                            raise LiverlibError(f"{archive}: member {_short(info.filename)} unpacks to more than it "
                                                "declares (a zip bomb or a damaged archive); refusing to extract it")
                        out.write(chunk)
            except LiverlibError:
                raise
            except Exception as exc:  # CRC errors, truncation, unsupported compression methods
                raise LiverlibError(f"{archive}: member {_short(info.filename)} cannot be extracted, the archive is "
                                    f"damaged ({type(exc).__name__}: {_message(exc)}); re-create it") from None
            extracted.append(target)
    return extracted


def _check_members(archive: Path, infos, max_bytes: int, max_ratio: float) -> None:
    if not infos:
        raise LiverlibError(f"{archive} is an empty archive: it holds no file; zip the study's DICOM folder")
    if len(infos) > 50_000:
        raise LiverlibError(f"{archive} holds {len(infos):,} files, more than one CT study has (limit 50,000)")
    total = packed = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in PurePosixPath(name).parts:
            raise LiverlibError(f"{archive}: member {_short(info.filename)} is an absolute path or climbs out of the "
                                "folder with '..'; refusing to extract a malicious or broken archive")
        if info.flag_bits & 0x1:
            raise LiverlibError(f"{archive}: member {_short(info.filename)} is encrypted; unzip it yourself and give "
                                "the folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise LiverlibError(f"{archive}: member {_short(info.filename)} is a symbolic link; refusing to extract "
                                "links, give the folder instead")
        if info.file_size > _RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
            raise LiverlibError(f"{archive}: member {_short(info.filename)} is compressed "
                                f"{info.file_size / max(info.compress_size, 1):,.0f} to 1, more than CT data can be "
                                f"(limit {max_ratio:g} to 1): a zip bomb; refusing to extract it")
        total += info.file_size
        packed += info.compress_size
    if total > max_bytes:
        raise LiverlibError(f"{archive} would unpack to {total / 2**20:,.1f} MiB, over the {max_bytes / 2**20:,.1f} "
                            "MiB limit (max_zip_bytes); unzip it yourself and give the folder, or raise the limit")
    if total > _RATIO_FLOOR and total > max_ratio * max(packed, 1):
        raise LiverlibError(f"{archive} is compressed {total / max(packed, 1):,.0f} to 1 overall, more than CT data "
                            f"can be (limit {max_ratio:g} to 1): a zip bomb; refusing to extract it")
