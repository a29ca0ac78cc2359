"""Whole studies in: DICOM series, NIfTI volumes and zips of them, read into one display orientation.

Small synthetic series (8 slices of 32 x 32) are written with pydicom in tmp_path; every bad case has its
own test and message; a seeded mutation test feeds a few hundred damaged files to the public readers.
"""

import gzip
import io
import logging
import shutil
import signal
import time
import zipfile

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from liverlib.imaging.dicom import read_dicom_hu, write_ct_dicom
from liverlib.errors import LiverlibError
from liverlib.imaging.decode import decode_image
from liverlib.imaging.studies import find_series, read_dicom_series, read_nifti, read_study

SHAPE = (8, 32, 32)  # z, y, x
STEP, PIXEL = 2.5, 0.75  # mm
FAKE_NAME, FAKE_ID, FAKE_BIRTH = "ZZFAKENAME^QWERTYPERSON", "ZZ-ID-97531", "19020304"


def _volume(seed=0):
    """Integer HU with no symmetry: any flip or transposition shows."""
    return np.random.default_rng(seed).integers(-1000, 1500, SHAPE).astype(np.float32)


def write_series(folder, vol=None, *, series="s1", patient=FAKE_ID, mutate=None, names=None):
    """One axial series as write_ct_dicom writes it: slice k at z = -k * STEP (head to feet), IOP [1,0,0,0,1,0]."""
    vol = _volume() if vol is None else vol
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, sl in enumerate(vol):
        path = folder / (names(k) if names else f"{series}_{k:03d}.dcm")
        write_ct_dicom(path, sl, pixel_spacing_mm=PIXEL, patient_id=patient, slice_index=k, z_mm=k * STEP,
                       slice_thickness_mm=STEP, window=(40, 400), uid_seed=f"{series}/{k}")
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientBirthDate = FAKE_NAME, FAKE_BIRTH
        if mutate:
            mutate(ds, k)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _nifti(path, vol, layout="RAS"):
    """The display volume (z: I, y: P, x: L) stored in another voxel layout with the affine that says so."""
    sz, sy, sx = STEP, PIXEL, PIXEL
    if layout == "RAS":
        data, affine = vol[::-1, ::-1, ::-1].transpose(2, 1, 0), np.diag([sx, sy, sz, 1.0])
    elif layout == "LAS":  # radiological storage, as many converters write
        data, affine = vol[::-1, ::-1, :].transpose(2, 1, 0), np.diag([-sx, sy, sz, 1.0])
    else:  # "SRA": slices first, then x, then y (a transposed layout)
        data = vol[::-1, ::-1, ::-1].transpose(0, 2, 1)
        affine = np.array([[0, sx, 0, 0], [0, 0, sy, 0], [sz, 0, 0, 0], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data).astype(np.int16), affine), str(path))
    return path


# ---------------------------------------------------------------------------------------------- good studies

def test_series_reads_head_to_feet_in_the_radiological_view_whatever_the_file_order(tmp_path):
    vol = _volume()
    write_series(tmp_path / "s", vol, names=lambda k: f"IM{(k * 5) % 8:04d}")  # file order != slice order
    (series,) = find_series(tmp_path / "s")
    assert series.count == 8 and series.modality == "CT" and series.plane == "axial"
    volume = read_dicom_series(tmp_path / "s")
    assert np.array_equal(volume.hu, vol) and volume.hu.dtype == np.float32
    assert volume.spacing_mm == pytest.approx((STEP, PIXEL, PIXEL))
    assert volume.orientation == "IPL" and volume.series_uid == series.series_uid
    assert nib.aff2axcodes(volume.affine) == ("I", "P", "L")
    assert "8 x 32 x 32 voxels" in repr(volume)


def test_a_flipped_acquisition_reads_to_the_same_view(tmp_path):
    vol = _volume(1)

    def flip(ds, k):  # rows towards anterior, columns towards the patient's right: pixels stored upside down
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.ImagePositionPatient = [31 * PIXEL, 31 * PIXEL, -k * STEP]
        ds.PixelData = (vol[k, ::-1, ::-1] + 1024).astype(np.uint16).tobytes()

    write_series(tmp_path / "s", vol, mutate=flip)
    assert np.array_equal(read_dicom_series(tmp_path / "s").hu, vol)


@pytest.mark.parametrize("layout", ["RAS", "LAS", "SRA"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_dicom_and_nifti_of_one_volume_read_to_the_same_array(tmp_path, layout, suffix):
    vol = _volume(2)
    write_series(tmp_path / "dicom", vol)
    from_dicom = read_study(tmp_path / "dicom")[0]
    from_nifti = read_study(_nifti(tmp_path / f"v{suffix}", vol, layout))[0]
    assert np.array_equal(from_nifti.hu, from_dicom.hu) and np.array_equal(from_nifti.hu, vol)
    assert from_nifti.spacing_mm == pytest.approx(from_dicom.spacing_mm)
    assert np.allclose(from_nifti.affine[:3, :3], from_dicom.affine[:3, :3])
    assert from_nifti.orientation == from_dicom.orientation == "IPL"


def test_two_axial_series_in_one_folder_are_both_found(tmp_path):
    write_series(tmp_path / "study", _volume(3), series="arterial")
    write_series(tmp_path / "study", _volume(4)[:6], series="portal")
    listing = find_series(tmp_path / "study")
    assert sorted(s.count for s in listing) == [6, 8]
    volumes = read_study(tmp_path / "study")
    assert sorted(v.hu.shape[0] for v in volumes) == [6, 8]
    with pytest.raises(LiverlibError, match="holds 2 axial CT series.*series_uid"):
        read_dicom_series(tmp_path / "study")
    portal = next(s for s in listing if s.count == 6)
    assert np.array_equal(read_dicom_series(tmp_path / "study", portal.series_uid).hu, _volume(4)[:6])
    assert len(read_study(tmp_path / "study", series_uid=portal.series_uid)) == 1


def test_a_localiser_and_a_dose_report_are_skipped_with_a_note(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    folder = tmp_path / "study"
    write_series(folder, _volume(5))

    def scout(ds, k):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal scout

    write_series(folder / "scout", _volume(6)[:1], series="scout", mutate=scout)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = FileDataset(str(folder / "dose.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    sr.SOPClassUID, sr.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    sr.Modality, sr.PatientID, sr.PatientName, sr.SeriesInstanceUID = "SR", FAKE_ID, FAKE_NAME, generate_uid()
    sr.save_as(folder / "dose.dcm", enforce_file_format=True)

    def dose_sheet(ds, k):  # a screen capture of the dose page: pixels, no position
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        del ds.ImagePositionPatient

    write_series(folder, _volume(7)[:1], series="dosesheet", mutate=dose_sheet)

    def unmarked_scout(ds, k):  # in the axial series itself, ImageType not saying LOCALIZER
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]  # coronal

    write_series(folder, _volume(7)[:1], names=lambda k: "scout_in_series.dcm", mutate=unmarked_scout)
    (folder / "README.txt").write_text("exported by the PACS")
    listing = find_series(folder)
    assert [s.count for s in listing] == [8]
    notes = " | ".join(listing.notes)
    assert "1 localiser" in notes and "without pixel data" in notes and "without a slice position" in notes
    assert "not DICOM" in notes and "coronal or sagittal image(s) inside an axial series" in notes
    (volume,) = read_study(folder)
    assert volume.hu.shape == SHAPE and any("localiser" in n for n in volume.notes)


def test_a_single_slice_series_is_a_volume_of_one(tmp_path):
    write_series(tmp_path / "s", _volume()[:1])
    (volume,) = read_study(tmp_path / "s")
    assert volume.hu.shape == (1, 32, 32) and volume.spacing_mm == pytest.approx((STEP, PIXEL, PIXEL))
    assert any("has one slice" in n for n in volume.notes)


def test_a_zip_of_a_series_reads_like_the_folder_and_names_the_archive(tmp_path):
    paths = write_series(tmp_path / "s", _volume(8))
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            zf.write(p, f"DICOM/{p.name}")
        zf.writestr("DICOM/notes.txt", "not an image")
    (volume,) = read_study(archive)
    assert np.array_equal(volume.hu, _volume(8)) and volume.source == str(archive)
    assert any(str(archive) in n for n in volume.notes)
    nifti_zip = tmp_path / "nifti.zip"
    with zipfile.ZipFile(nifti_zip, "w") as zf:
        zf.write(_nifti(tmp_path / "v.nii.gz", _volume(8)), "v.nii.gz")
    assert np.array_equal(read_study(nifti_zip)[0].hu, _volume(8))


# ---------------------------------------------------------------------------------------------- bad studies

def _gap(folder):
    write_series(folder)
    (folder / "s1_004.dcm").unlink()


def _duplicate(folder):
    paths = write_series(folder)
    ds = pydicom.dcmread(paths[3])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "copy_of_3.dcm", enforce_file_format=True)


def _set(**tags):
    def mutate(ds, k):
        if k == 3:
            for key, value in tags.items():
                setattr(ds, key, value)
    return mutate


def _uneven(ds, k):
    if k >= 4:
        ds.ImagePositionPatient = [0.0, 0.0, -k * STEP - 0.8]


def _coronal(ds, k):
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    ds.ImagePositionPatient = [0.0, k * STEP, 0.0]


BAD_SERIES = {
    "empty folder": (lambda f: f.mkdir(), r"is an empty folder: there is no file to read"),
    "no DICOM": (lambda f: (f.mkdir(), (f / "a.txt").write_text("x")), r"holds no DICOM file to read"),
    "two patients": (lambda f: (write_series(f), write_series(f, series="s2", patient="ZZ-OTHER-1")),
                     r"mixes files of two different patients"),
    "MR": (lambda f: write_series(f, mutate=lambda ds, k: setattr(ds, "Modality", "MR")),
           r"no axial CT series to read: series 1 .* is MR \(Modality 'MR'\), not CT"),
    "gap": (_gap, r"has a gap: .*s1_003.dcm and .*s1_005.dcm are 5.00 mm apart where the series steps 2.50 mm "
                  r"\(about 1 slice\(s\) missing\)"),
    "duplicates": (_duplicate, r"has duplicate slices: .* are both at"),
    "uneven steps": (lambda f: write_series(f, mutate=_uneven),
                     r"inconsistent slice spacing: steps of 2.50 mm and 3.30 mm"),
    "pixel spacing": (lambda f: write_series(f, mutate=_set(PixelSpacing=[0.9, 0.9])),
                      r"inconsistent pixel spacing: PixelSpacing is \[0.75, 0.75\] mm in .* but \[0.9, 0.9\] mm"),
    "orientation": (lambda f: write_series(f, mutate=_set(ImageOrientationPatient=[1, 0, 0, 0, 0.995, 0.0998749])),
                    r"inconsistent orientation: ImageOrientationPatient is \[1, 0, 0, 0, 1, 0\] in .* but "
                    r"\[1, 0, 0, 0, 0.995, 0.09987\]"),
    "image size": (lambda f: write_series(f, mutate=_set(Rows=16, PixelData=b"\0" * 1024)),
                   r"inconsistent image sizes"),
    "coronal": (lambda f: write_series(f, mutate=_coronal), r"is coronal, not axial: export the axial series"),
}


@pytest.mark.parametrize("case", list(BAD_SERIES))
def test_a_bad_series_gets_one_sentence_naming_the_problem(case, tmp_path):
    make, message = BAD_SERIES[case]
    folder = tmp_path / "study"
    make(folder)
    with pytest.raises(LiverlibError, match=message) as info:
        read_study(folder)
    assert "\n" not in str(info.value)
    _assert_no_phi(str(info.value))


def _nifti_4d(path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), str(path))


def _truncated(path):
    _nifti(path, _volume())
    path.write_bytes(path.read_bytes()[:2000])


BAD_NIFTI = {
    "4-D": ("v.nii.gz", _nifti_4d, r"is a 4-D image \(8 x 8 x 4 x 3: 3 volumes\)"),
    "garbage": ("v.nii", lambda p: p.write_bytes(b"not a nifti header" * 40), r"is not a readable NIfTI file"),
    "truncated .nii": ("v.nii", _truncated, r"is truncated: its header declares 32 x 32 x 8 int16 voxels"),
    "truncated .nii.gz": ("v.nii.gz", _truncated, r"truncated|not a readable NIfTI"),
    "empty": ("v.nii", lambda p: p.write_bytes(b""), r"is not a readable NIfTI file"),
}


@pytest.mark.parametrize("case", list(BAD_NIFTI))
def test_a_bad_nifti_gets_one_sentence(case, tmp_path):
    filename, make, message = BAD_NIFTI[case]
    make(tmp_path / filename)
    with pytest.raises(LiverlibError, match=message) as info:
        read_nifti(tmp_path / filename)
    assert "\n" not in str(info.value)


def test_a_zip_bomb_is_refused_before_extraction(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM0001.dcm", b"\0" * (40 * 2**20))  # 40 MiB of zeros packs to about 40 KiB
    assert bomb.stat().st_size < 2**20
    with pytest.raises(LiverlibError, match=r"is compressed 1,0\d\d to 1, more than CT data can be.*zip bomb"):
        read_study(bomb)
    with pytest.raises(LiverlibError, match=r"would unpack to 40.0 MiB, over the 1.0 MiB limit \(max_zip_bytes\)"):
        read_study(bomb, max_zip_bytes=2**20, max_zip_ratio=1e9)
    written = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: written.append(a) or pytest.fail("extracted"))
    with pytest.raises(LiverlibError):
        read_study(bomb)
    assert not written


@pytest.mark.parametrize("member", ["../../evil.dcm", "/etc/evil.dcm", "DICOM/../../evil.dcm", "C:/evil.dcm"])
def test_a_zip_member_that_climbs_out_is_refused(tmp_path, member):
    archive = tmp_path / "sub" / "study.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("DICOM/IM1.dcm", b"x")
        zf.writestr(zipfile.ZipInfo(member), b"evil")
    with pytest.raises(LiverlibError, match=r"is an absolute path or climbs out of the folder"):
        read_study(archive)
    assert not (tmp_path / "evil.dcm").exists() and not (tmp_path.parent / "evil.dcm").exists()


def test_a_damaged_zip_is_a_clear_error(tmp_path):
    archive = tmp_path / "study.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(LiverlibError, match="is not a readable zip archive"):
        read_study(archive)


# ---------------------------------------------------------------------------------------------- header values

HEADER_MUTATIONS = {
    "Rows wrong": ({"Rows": 64}, r"header does not match its pixel data: Rows 64 x Columns 32 .* needs 4,096 bytes, "
                                 r"but PixelData holds 2,048 bytes \(Rows 32 would fit"),
    "BitsAllocated wrong": ({"BitsAllocated": 8}, r"Rows 32 x Columns 32 x SamplesPerPixel 1 at BitsAllocated 8 "
                                                  r"needs 1,024 bytes, .* \(BitsAllocated 16 would fit"),
    "SamplesPerPixel wrong": ({"SamplesPerPixel": 3}, r"SamplesPerPixel 3 .* \(SamplesPerPixel 1 would fit"),
    "slope 0": ({"RescaleSlope": 0}, r"RescaleSlope 0 is not a plausible CT rescale"),
    "slope 1e30": ({"RescaleSlope": 1e30}, r"RescaleSlope 1e\+30 is not a plausible CT rescale"),
    "intercept NaN": ({"RescaleIntercept": float("nan")}, r"RescaleIntercept nan is not a plausible CT rescale"),
    "intercept 1e9": ({"RescaleIntercept": 1e9}, r"RescaleIntercept 1e\+09 is not a plausible CT rescale"),
}


@pytest.mark.parametrize("case", list(HEADER_MUTATIONS))
def test_header_values_are_checked_by_the_slice_and_the_series_reader(case, tmp_path):
    tags, message = HEADER_MUTATIONS[case]
    paths = write_series(tmp_path / "s", mutate=_set(**tags))
    with pytest.raises(LiverlibError, match=message) as info:
        read_dicom_hu(paths[3])
    assert "compressed" not in str(info.value)  # explicit VR little endian is not compressed
    with pytest.raises(LiverlibError, match=message):
        decode_image(paths[3].read_bytes(), "slice.dcm")
    with pytest.raises(LiverlibError, match=message):
        read_study(tmp_path / "s")
    assert read_dicom_hu(paths[2]).hu.shape == (32, 32)  # the untouched slices still read


def _assert_no_phi(text):
    for secret in (*FAKE_NAME.split("^"), FAKE_ID, FAKE_BIRTH, "ZZ-OTHER-1"):
        assert secret not in text, f"patient data leaked: {text[:300]}"


def test_patient_names_ids_and_birth_dates_never_leave_the_reader(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    seen = []
    with _all_warnings() as caught:
        write_series(tmp_path / "ok")
        volume = read_study(tmp_path / "ok")[0]
        listing = find_series(tmp_path / "ok")
        seen += [repr(volume), repr(vars(volume)), repr(listing), *listing.notes, repr(listing[0].__dict__)]
        for case in ("two patients", "gap", "MR", "duplicates"):
            folder = tmp_path / case.replace(" ", "_")
            BAD_SERIES[case][0](folder)
            with pytest.raises(LiverlibError) as info:
                read_study(folder)
            seen.append(str(info.value))
    seen += [str(w.message) for w in caught] + [caplog.text, *capsys.readouterr()]
    assert FAKE_ID in pydicom.dcmread(tmp_path / "ok" / "s1_000.dcm").PatientID  # the secret is in the files
    _assert_no_phi(" ".join(seen))


class _all_warnings:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        return caught

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ---------------------------------------------------------------------------------------------- mutation test

def _mutants(rng, good: bytes, header: int, count: int):
    """Byte flips (half of them in the first ``header`` bytes), truncations and overwritten header runs."""
    for i in range(count):
        data = bytearray(good)
        kind = i % 3
        if kind == 0:
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(0, header if rng.random() < 0.5 else len(data)))
                data[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            pos = int(rng.integers(0, min(header, len(data) - 4)))
            data[pos:pos + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        yield bytes(data)


def _dicom_field_mutants(rng, path, count):
    """Decoding-relevant tags set to random, extreme or nonsense values, written by pydicom."""
    fields = {"Rows": [0, 1, 33, 65535], "Columns": [0, 31, 65535], "BitsAllocated": [0, 1, 8, 12, 32, 64],
              "BitsStored": [0, 16, 40], "SamplesPerPixel": [0, 3, 4], "PixelRepresentation": [1, 5],
              "RescaleSlope": [0, -1, 1e30, 1e-9], "RescaleIntercept": [1e30, -1e9],
              "NumberOfFrames": [0, 2, 1000000], "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL"],
              "PixelSpacing": [[0, 0], [1e9, 1]], "HighBit": [0, 30]}
    keys = sorted(fields)
    for _ in range(count):
        ds = pydicom.dcmread(path)
        for key in rng.choice(keys, size=int(rng.integers(1, 3)), replace=False):
            values = fields[str(key)]
            setattr(ds, str(key), values[int(rng.integers(0, len(values)))])
        buf = io.BytesIO()
        try:
            ds.save_as(buf, enforce_file_format=True)
        except Exception:
            continue
        yield buf.getvalue()


def _nifti_field_mutants(rng, vol, tmp_path, count):
    fields = {"dim": lambda: [int(rng.integers(0, 8)), *rng.integers(-2, 70000, 7)],
              "pixdim": lambda: rng.normal(0, 1e3, 8),
              "datatype": lambda: int(rng.choice([0, 1, 2, 4, 16, 32, 128, 2304, 1792, 9999])),
              "vox_offset": lambda: float(rng.integers(-10, 10**7)),
              "scl_slope": lambda: float(rng.choice([0, np.nan, 1e38, -5])),
              "bitpix": lambda: int(rng.integers(0, 128)), "sform_code": lambda: int(rng.integers(-3, 9))}
    keys = sorted(fields)
    for i in range(count):
        path = _nifti(tmp_path / f"field{i}.nii", vol, "RAS")
        img = nib.load(str(path))
        raw = img.header.binaryblock
        hdr = nib.Nifti1Header(bytes(raw), check=False)
        for key in rng.choice(keys, size=int(rng.integers(1, 3)), replace=False):
            try:
                hdr[str(key)] = fields[str(key)]()
            except Exception:
                pass
        data = hdr.binaryblock + path.read_bytes()[len(raw):]
        yield data


def test_damaged_files_give_a_result_or_one_sentence_never_a_crash_or_a_hang(tmp_path):
    rng = np.random.default_rng(20250101)
    vol = _volume(9)
    grey = np.clip(vol[3] / 10 + 128, 0, 255).astype(np.uint8)
    grey = np.kron(grey, np.ones((2, 2), np.uint8))  # 64 x 64: above the slice reader's 32-pixel minimum
    png, jpeg = io.BytesIO(), io.BytesIO()
    Image.fromarray(grey).save(png, format="PNG")
    Image.fromarray(grey).save(jpeg, format="JPEG", quality=90)
    paths = write_series(tmp_path / "good", vol)
    dicom = paths[0].read_bytes()
    nii = _nifti(tmp_path / "good.nii", vol).read_bytes()
    niigz = gzip.compress(nii, mtime=0)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            zf.write(p, p.name)

    cases = []  # (reader, name, bytes)
    cases += [("slice", "m.png", d) for d in _mutants(rng, png.getvalue(), 64, 60)]
    cases += [("slice", "m.jpg", d) for d in _mutants(rng, jpeg.getvalue(), 600, 60)]
    cases += [("slice", "m.dcm", d) for d in _mutants(rng, dicom, 1200, 60)]
    cases += [("slice", "f.dcm", d) for d in _dicom_field_mutants(rng, paths[0], 60)]
    cases += [("study", "m.nii", d) for d in _mutants(rng, nii, 352, 45)]
    cases += [("study", "f.nii", d) for d in _nifti_field_mutants(rng, vol, tmp_path, 45)]
    cases += [("study", "m.nii.gz", d) for d in _mutants(rng, niigz, 64, 30)]
    cases += [("study", "f.nii.gz", gzip.compress(d, mtime=0)) for d in _nifti_field_mutants(rng, vol, tmp_path, 30)]
    cases += [("study", "m.zip", d) for d in _mutants(rng, zbuf.getvalue(), 2000, 30)]
    assert len(cases) >= 400

    def on_alarm(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outcomes, slowest, start = {"ok": 0, "error": 0}, 0.0, time.perf_counter()
    try:
        for i, (reader, name, data) in enumerate(cases):
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                if reader == "slice":
                    decode_image(data, name)
                else:
                    folder = tmp_path / f"case{i}"
                    folder.mkdir()
                    (folder / name).write_bytes(data)
                    read_study(folder / name)
                    shutil.rmtree(folder)
                outcomes["ok"] += 1
            except LiverlibError as exc:
                message = str(exc)
                assert message and "\n" not in message.strip(), f"case {i} ({name}): {message!r}"
                outcomes["error"] += 1
            except TimeoutError:
                pytest.fail(f"case {i} ({name}) hung for more than 10 s")
            except Exception as exc:  # any other exception type is a bug in a reader
                pytest.fail(f"case {i} ({name}) raised {type(exc).__name__}: {exc}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    print(f"{len(cases)} damaged files: {outcomes}, slowest {slowest:.2f} s, all {elapsed:.1f} s")
    assert outcomes["error"] > len(cases) // 3  # most damage is caught, not read silently
    assert slowest < 5.0
