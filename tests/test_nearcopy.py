"""The near-copy signature that groups augmented copies of one slice (liverlib.nearcopy)."""

import numpy as np

from liverlib.imaging.windowing import window_to_uint8
from liverlib.nearcopy import signature
from liverlib.phantom import make_slice


def _ct(seed=0, cls="normal", size=128):
    return make_slice(cls, seed=seed, size=size)


def test_signature_is_invariant_to_flip_rotation_shift_and_zoom():
    from liverlib.phantom import random_affine

    sl = _ct(5, "benign", size=256)
    base = signature(window_to_uint8(sl.hu, 40, 400))
    rng = np.random.default_rng(0)
    distances = []
    for _ in range(5):
        hu, _ = random_affine(sl.hu, sl.labels, rng, rotation_deg=12, shift=0.06, zoom=0.08)
        distances.append(np.linalg.norm(signature(window_to_uint8(hu, 40, 400)) - base))
    other = np.linalg.norm(signature(window_to_uint8(_ct(6, "benign", size=256).hu, 40, 400)) - base)
    assert max(distances) < 0.05 < other
