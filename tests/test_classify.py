"""Classifying uploaded slices: the pure function, the CLI, and every bad file a user can drop on it."""

import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from liverlib.classify import classify, display_name, get_classifier
from liverlib.cli import main
from liverlib.imaging.dicom import write_ct_dicom
from liverlib.errors import LiverlibError
from liverlib.imaging.decode import MAX_FILE_BYTES
from liverlib.phantom import make_slice
from liverlib.preprocess import resize_grey, to_model_input
from liverlib.imaging.windowing import window_to_uint8


def _encode(array, fmt="PNG", mode=None, **kw):
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.fixture(scope="module")
def ct_slice():
    return make_slice("malignant", seed=3, size=128)


@pytest.fixture(scope="module")
def grey(ct_slice):
    return window_to_uint8(ct_slice.hu, 40, 400)


def _dicom_bytes(tmp_path, hu, name="slice.dcm", **changes):
    import pydicom

    path = tmp_path / name
    write_ct_dicom(path, hu, pixel_spacing_mm=0.8, patient_id="T1", slice_index=0, z_mm=0.0,
                   slice_thickness_mm=5.0, window=(40, 400), uid_seed="test")
    if changes:
        ds = pydicom.dcmread(path)
        for key, value in changes.items():
            if value is None:
                delattr(ds, key)
            else:
                setattr(ds, key, value)
        ds.save_as(path)
    return path.read_bytes()


# --------------------------------------------------------------------------------------- the pure function

def test_probabilities_follow_the_card_and_match_the_model(tiny_run, grey):
    result = classify(_encode(grey), "slice.png", tiny_run)
    clf = get_classifier(tiny_run)
    assert list(result.probabilities) == clf.card["class_names"]
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert result.predicted_class == max(result.probabilities, key=result.probabilities.get)
    # exactly the training preprocessing: same input, same output as calling the Keras model directly
    x = to_model_input(resize_grey(grey.astype(np.float32), 64))[None]
    expected = clf.model.predict(x, verbose=0)[0]
    np.testing.assert_allclose(list(result.probabilities.values()), expected, atol=1e-5)
    assert result.model_input.shape == (64, 64) and result.model_input.dtype == np.uint8
    assert result.heatmap.shape == (64, 64) and 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert result.seconds > 0
    assert set(result.as_json()) >= {"file", "predicted_class", "probabilities", "warnings"}


def test_model_is_loaded_once_and_reused(tiny_run, grey):
    first = get_classifier(tiny_run)
    classify(_encode(grey), "a.png", tiny_run)
    assert get_classifier(tiny_run) is first


def test_dicom_is_windowed_with_the_cards_window(tiny_run, tmp_path, ct_slice, grey):
    from_dicom = classify(_dicom_bytes(tmp_path, ct_slice.hu), "slice.dcm", tiny_run)
    from_png = classify(_encode(grey), "slice.png", tiny_run)
    assert from_dicom.source["window"] == [40.0, 400.0]
    assert np.abs(from_dicom.model_input.astype(int) - from_png.model_input).max() <= 1
    other = classify(_dicom_bytes(tmp_path, ct_slice.hu), "slice.dcm", tiny_run, window=(60, 160))
    assert other.source["window"] == [60.0, 160.0]
    assert any("differs from the one the model was trained with" in w for w in other.warnings)


def test_a_photo_and_a_blank_image_are_warned_about(tiny_run):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    assert any("colour image" in w for w in classify(_encode(photo), "cat.jpg", tiny_run).warnings)
    black = np.zeros((96, 96), np.uint8)
    assert any("no liver-like tissue" in w for w in classify(_encode(black), "black.png", tiny_run).warnings)


def test_a_wide_image_is_warned_about(tiny_run, grey):
    wide = np.concatenate([grey, grey], axis=1)
    assert any("stretched" in w for w in classify(_encode(wide), "wide.png", tiny_run).warnings)


def test_a_missing_or_inconsistent_run_is_a_clear_error(tiny_run, tmp_path, grey):
    with pytest.raises(LiverlibError, match="not a finished training run"):
        classify(_encode(grey), "a.png", tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    card = json.loads((broken / "model_card.json").read_text())
    card["class_names"] = card["class_names"][:3]
    (broken / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(LiverlibError, match="inconsistent"):
        classify(_encode(grey), "a.png", broken)


# --------------------------------------------------------------------------- bad input: a corpus, each a test

def _bomb():
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _huge_image():
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")  # a real 20000 x 20000 image, ~50 KB on disk
    return buf.getvalue()


BAD = {
    "empty": (lambda g, t, s: b"", "empty.png", "is empty"),
    "text named png": (lambda g, t, s: b"just some notes\n" * 20, "notes.png", "not an image"),
    "truncated png": (lambda g, t, s: _encode(g)[: len(_encode(g)) // 2], "half.png", "damaged or truncated"),
    "truncated jpeg": (lambda g, t, s: _encode(g, "JPEG")[:300], "half.jpg", "damaged or truncated"),
    "decompression bomb": (lambda g, t, s: _bomb(), "bomb.png", "10,000,000,000 pixels: a decompression bomb"),
    "1x1 image": (lambda g, t, s: _encode(np.zeros((1, 1), np.uint8)), "dot.png", "only 1 x 1 pixels"),
    "20000x20000 image": (lambda g, t, s: _huge_image(), "huge.png", "400,000,000 pixels"),
    "over the size limit": (lambda g, t, s: b"\0" * (MAX_FILE_BYTES + 1), "big.dcm", "over the 64 MiB limit"),
    "dicom without pixel data": (lambda g, t, s: _dicom_bytes(t, s.hu, PixelData=None), "nopix.dcm", "without pixel data"),
    "dicom of another modality": (lambda g, t, s: _dicom_bytes(t, s.hu, Modality="MR"), "mr.dcm", "MR image, not CT"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_gets_a_clear_message_and_the_next_file_still_works(case, tiny_run, tmp_path, grey, ct_slice):
    make, name, message = BAD[case]
    with pytest.raises(LiverlibError, match=message) as info:
        classify(make(grey, tmp_path, ct_slice), name, tiny_run)
    assert name in str(info.value)  # the message names the file
    assert "\n" not in str(info.value).strip()
    assert classify(_encode(grey), "next.png", tiny_run).predicted_class  # and the next upload works


def test_dicom_with_a_compressed_syntax_and_no_decoder(tiny_run, tmp_path, ct_slice, grey):
    from pydicom.uid import JPEG2000

    data = _dicom_bytes(tmp_path, ct_slice.hu)
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = JPEG2000  # claims JPEG 2000 compression; no decoder can read these bytes
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(LiverlibError, match="compress") as info:
        classify(buf.getvalue(), "j2k.dcm", tiny_run)
    assert "j2k.dcm" in str(info.value)
    assert classify(_encode(grey), "next.png", tiny_run).predicted_class


def test_a_multi_frame_dicom_volume_is_refused(tiny_run, tmp_path, ct_slice):
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(tmp_path, ct_slice.hu)))
    frame = ds.pixel_array
    volume = np.stack([frame, frame, frame])
    ds.NumberOfFrames = 3
    ds.PixelData = volume.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(LiverlibError, match="3 frames|multi-frame|volume"):
        classify(buf.getvalue(), "volume.dcm", tiny_run)


@pytest.mark.parametrize("name,mode,fmt", [("sixteen.png", "I;16", "PNG"), ("alpha.png", "RGBA", "PNG"),
                                           ("palette.png", "P", "PNG"), ("cmyk.jpg", "CMYK", "JPEG"),
                                           ("slice.bmp", None, "BMP"), ("slice.tif", None, "TIFF")])
def test_unusual_but_valid_formats_are_classified_like_the_grey_png(name, mode, fmt, tiny_run, grey):
    if mode == "I;16":
        data = _encode((grey.astype(np.uint16) * 257), fmt)
    else:
        data = _encode(grey, fmt, mode)
    result = classify(data, name, tiny_run)
    reference = classify(_encode(grey), "reference.png", tiny_run)
    tolerance = 6 if fmt == "JPEG" else 2  # lossy JPEG and the palette's quantisation
    assert np.abs(result.model_input.astype(int) - reference.model_input).mean() < tolerance
    assert not any("colour image" in w for w in result.warnings)


@pytest.mark.parametrize("raw,shown", [("../../etc/passwd.png", "passwd.png"), ("C:\\Users\\x\\scan.png", "scan.png"),
                                       ("bad\x00name\n.png", "bad?name?.png"), ("", "unnamed file"),
                                       ("résumé 肝臓.png", "résumé 肝臓.png")])
def test_filenames_with_separators_or_odd_characters(raw, shown, tiny_run, grey):
    assert display_name(raw) == shown
    result = classify(_encode(grey), raw, tiny_run)
    assert result.file == shown and "/" not in result.file and "\\" not in result.file


# ------------------------------------------------------------------------------------------------- the CLI

def test_cli_json_one_line_per_file_errors_do_not_stop_the_rest(tiny_run, tmp_path, grey, ct_slice, capsys):
    folder = tmp_path / "slices"
    folder.mkdir()
    (folder / "a.png").write_bytes(_encode(grey))
    (folder / "b.dcm").write_bytes(_dicom_bytes(tmp_path, ct_slice.hu))
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    status = main(["classify", str(folder), str(tmp_path / "missing.png"), "--model", str(tiny_run), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in out]
    assert status == 1
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.dcm", "broken.png", "missing.png"]
    for row in rows[:2]:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted_class"] in row["probabilities"] and isinstance(row["warnings"], list)
    assert "not an image" in rows[2]["error"] and "does not exist" in rows[3]["error"]


def test_cli_table_and_exit_status(tiny_run, tmp_path, grey, capsys):
    good = tmp_path / "good.png"
    good.write_bytes(_encode(grey))
    assert main(["classify", str(good), "--model", str(tiny_run)]) == 0
    captured = capsys.readouterr()
    assert "predicted" in captured.out and "good.png" in captured.out and "benign" in captured.out
    assert "not for diagnosis" in captured.err
    (tmp_path / "empty.png").write_bytes(b"")
    assert main(["classify", str(good), str(tmp_path / "empty.png"), "--model", str(tiny_run)]) == 1
    err = capsys.readouterr().err
    assert "empty.png: error:" in err and "Traceback" not in err
    assert main(["classify", str(good), "--model", str(tmp_path / "no-run")]) == 1
    assert "not a finished training run" in capsys.readouterr().err
