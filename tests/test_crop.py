"""The liver-region crop: finds the liver from the image alone, in any size and orientation, and falls back
to the whole slice, saying so, when there is nothing to find."""

from __future__ import annotations

import numpy as np
import pytest

from liverlib.crop import CROP_MODES, Crop, crop_grey, find_crop
from liverlib.phantom import make_slice
from liverlib.preprocess import prepare_grey
from liverlib.imaging.windowing import window_to_uint8

LIVER_LABELS = (15, 16, 17, *range(20, 30))


@pytest.fixture(scope="module")
def slices():
    """Phantom slices of every class, windowed to 8-bit as the PNG files are, with their liver masks."""
    out = []
    for k, cls in enumerate(("benign", "cirrhosis", "malignant", "normal")):
        s = make_slice(cls, seed=10 + k, size=256)
        out.append((window_to_uint8(s.hu, 40, 400), np.isin(s.labels, LIVER_LABELS)))
    return out


def liver_inside(crop: Crop, liver: np.ndarray) -> float:
    return float(crop.apply(liver).sum() / liver.sum())


def test_liver_crop_holds_the_liver_and_is_smaller(slices):
    for grey, liver in slices:
        crop = find_crop(grey, "liver")
        assert crop.method == "liver region", crop.note
        assert liver_inside(crop, liver) > 0.9
        assert crop.side < 0.75 * grey.shape[0]  # at least 1.33x the detail
        assert crop.bottom - crop.top == crop.right - crop.left  # square: no distortion when resized


@pytest.mark.parametrize("view", ["left-right flipped", "rotated 180 (prone)"])
def test_orientation(slices, view):
    turn = (lambda a: a[:, ::-1]) if view.startswith("left") else (lambda a: a[::-1, ::-1])
    for grey, liver in slices:
        upright = find_crop(grey, "liver")
        crop = find_crop(np.ascontiguousarray(turn(grey)), "liver")
        assert liver_inside(crop, turn(liver)) > 0.9
        assert crop.flipped and not upright.flipped
        assert crop.side == upright.side


def test_any_size_and_aspect(slices):
    from PIL import Image

    grey, liver = slices[0]
    for shape in ((512, 512), (300, 400), (400, 300), (97, 97)):
        g = np.asarray(Image.fromarray(grey).resize(shape[::-1], Image.BILINEAR))
        m = np.asarray(Image.fromarray(liver.astype(np.uint8) * 255).resize(shape[::-1], Image.NEAREST)) > 0
        crop = find_crop(g, "liver")
        assert 0 <= crop.top < crop.bottom <= shape[0] and 0 <= crop.left < crop.right <= shape[1]
        assert liver_inside(crop, m) > 0.85, shape


def test_blank_and_noise_fall_back_to_the_whole_slice():
    for image in (np.zeros((200, 200), np.uint8), np.random.default_rng(0).integers(0, 8, (200, 300)).astype(np.uint8)):
        crop = find_crop(image, "liver")
        assert crop.method == "whole slice" and crop.fell_back
        assert (crop.top, crop.bottom, crop.left, crop.right) == (0, image.shape[0], 0, image.shape[1])
        assert "no body outline" in crop.note


def test_body_without_liver_uses_the_body_relative_box():
    # a uniform fat-density ellipse: a body, but nothing of liver density in it
    yy, xx = np.mgrid[:256, :256]
    body = ((xx - 128) / 110) ** 2 + ((yy - 128) / 80) ** 2 < 1
    grey = np.where(body, 38, 0).astype(np.uint8)
    crop = find_crop(grey, "liver")
    assert crop.method == "body-relative box" and crop.fell_back
    assert "no liver-like region" in crop.note
    assert crop.left < 128  # the standard view puts the liver on the image left


def test_body_mode_and_none(slices):
    grey, _ = slices[0]
    assert (find_crop(grey, "none").side, find_crop(grey, "none").method) == (256, "whole slice")
    body = find_crop(grey, "body")
    assert body.method == "body outline" and body.side <= 256
    assert body.side > find_crop(grey, "liver").side


def test_prepare_grey_applies_the_same_crop_at_any_size(slices):
    grey, _ = slices[1]
    out, crop = prepare_grey(grey, 64, "liver")
    assert out.shape == (64, 64) and out.dtype == np.uint8
    cropped, same = crop_grey(grey, "liver")
    assert same == crop and cropped.shape == (crop.side, crop.side)
    whole, none = prepare_grey(grey, 64, "none")
    assert none.method == "whole slice" and not np.array_equal(whole, out)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown crop mode"):
        find_crop(np.zeros((10, 10), np.uint8), "kidney")
    with pytest.raises(ValueError, match="one grey image"):
        find_crop(np.zeros((10, 10, 3), np.uint8), "liver")
    assert CROP_MODES == ("none", "body", "liver")
