"""Any single image a user may have (PNG, JPEG, BMP, TIFF, DICOM) to one grey image, and the sentence a bad
file gets (liverlib.imaging.decode)."""

import io

import numpy as np
import pytest
from PIL import Image

from liverlib.errors import LiverlibError
from liverlib.imaging.decode import decode_file, decode_image, quantise8
from liverlib.imaging.dicom import write_ct_dicom
from liverlib.imaging.windowing import window_to_uint8
from liverlib.phantom import make_slice


def _ct(seed=0, cls="normal", size=128):
    return make_slice(cls, seed=seed, size=size)


def _png_bytes(array, fmt="PNG", **kw):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)  # uint16 arrays become 16-bit ("I;16") images
    return buf.getvalue()


def test_dicom_is_decoded_through_rescale_and_window(tmp_path):
    hu = np.full((64, 64), 40.0, dtype=np.float32)
    hu[:, :32] = -160.0  # bottom of the abdomen window
    hu[:32, 32:] = 240.0  # top
    path = tmp_path / "slice.dcm"
    write_ct_dicom(path, hu, pixel_spacing_mm=0.7, patient_id="X", slice_index=0, z_mm=0, slice_thickness_mm=5,
                   window=(40, 400), uid_seed="t")
    decoded = decode_file(path)
    assert decoded.format == "DICOM" and decoded.window == (40, 400)
    assert decoded.grey[10, 5] == pytest.approx(0) and decoded.grey[10, 40] == pytest.approx(255)
    assert decoded.grey[50, 40] == pytest.approx(127.5)
    liver = decode_file(path, window=(30, 150))  # [-45, 105]: 40 HU is 85/150 of the way
    assert liver.grey[50, 40] == pytest.approx(255 * 85 / 150, abs=0.01)
    # the same file without an extension is recognised by its DICM header
    bare = tmp_path / "IM0001"
    bare.write_bytes(path.read_bytes())
    assert decode_file(bare).format == "DICOM"


def test_every_common_file_type_decodes_to_grey(tmp_path):
    grey = window_to_uint8(_ct(3).hu, 40, 400)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    cases = {
        "grey.png": _png_bytes(grey),
        "sixteen.png": _png_bytes(grey.astype(np.uint16) * 257),
        "rgb.png": _png_bytes(rgb),
        "rgba.png": _png_bytes(np.dstack([rgb, np.full_like(grey, 255)])),
        "palette.png": (lambda b: (Image.fromarray(grey).convert("P").save(b, format="PNG"), b.getvalue())[1])(io.BytesIO()),
        "grey.jpg": _png_bytes(grey, fmt="JPEG", quality=95),
        "cmyk.jpg": (lambda b: (Image.fromarray(rgb).convert("CMYK").save(b, format="JPEG", quality=95), b.getvalue())[1])(io.BytesIO()),
        "grey.bmp": _png_bytes(grey, fmt="BMP"),
        "grey.tif": _png_bytes(grey, fmt="TIFF"),
    }
    for name, data in cases.items():
        decoded = decode_image(data, name)
        assert decoded.grey.shape == grey.shape, name
        assert decoded.grey.dtype == np.float32
        err = np.abs(decoded.grey - grey).mean()
        assert err < 3.0, f"{name}: mean error {err:.1f} grey levels"
        assert not decoded.warnings, f"{name}: {decoded.warnings}"
        # the 8-bit form that preprocessing resizes is the float grey levels rounded, whatever the file type
        assert decoded.grey8.dtype == np.uint8 and np.array_equal(decoded.grey8, quantise8(decoded.grey)), name
    assert decode_image(cases["sixteen.png"], "s.png").bits == 16
    assert np.array_equal(decode_image(cases["grey.png"], "g.png").grey8, grey)  # 8-bit PNG: the file's pixels


def test_a_colour_photo_is_flagged():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    decoded = decode_image(_png_bytes(photo), "holiday.png")
    assert any("colour image" in w for w in decoded.warnings)


@pytest.mark.parametrize("data,message", [
    (b"", "is empty"),
    (b"this is text, not an image", "not an image PIL can read"),
    (_png_bytes(np.zeros((4, 4), np.uint8)), "only 4 x 4 pixels"),
])
def test_bad_files_get_a_sentence(data, message):
    with pytest.raises(LiverlibError, match=message):
        decode_image(data, "upload.png")


def test_truncated_png_and_decompression_bomb_are_refused():
    good = _png_bytes(window_to_uint8(_ct(1).hu, 40, 400))
    with pytest.raises(LiverlibError, match="damaged or truncated"):
        decode_image(good[: len(good) // 2], "half.png")
    # a PNG header that declares 30000 x 30000 pixels
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    iend = b"IEND"
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + iend + struct.pack(">I", zlib.crc32(iend)))
    with pytest.raises(LiverlibError, match="30000 x 30000|enormous"):
        decode_image(bomb, "bomb.png")
