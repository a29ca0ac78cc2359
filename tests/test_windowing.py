"""Window level/width: Hounsfield units to display grey levels (liverlib.imaging.windowing)."""

import numpy as np
import pytest

from liverlib.errors import LiverlibError
from liverlib.imaging.windowing import parse_window, window_hu, window_to_uint8


def test_window_maps_hand_computed_hu_values():
    hu = np.array([-1000, -160, 40, 140, 240, 1000], dtype=np.float32)
    assert window_hu(hu, 40, 400).tolist() == pytest.approx([0, 0, 0.5, 0.75, 1, 1])
    assert window_to_uint8(hu, 40, 400).tolist() == [0, 0, 128, 191, 255, 255]
    # liver window L30/W150: [-45, 105]
    assert window_hu(np.array([-45.0, 30.0, 105.0]), 30, 150).tolist() == pytest.approx([0, 0.5, 1])


@pytest.mark.parametrize("spec,expected", [("abdomen", (40, 400)), ("liver", (30, 150)), ("L40/W400", (40, 400)),
                                           ("l-50/w300", (-50, 300)), ("60,200", (60, 200)), ((10, 80), (10, 80))])
def test_parse_window(spec, expected):
    assert parse_window(spec) == expected


def test_bad_window_is_a_clear_error():
    with pytest.raises(LiverlibError, match="cannot read window"):
        parse_window("soft tissue please")
    with pytest.raises(LiverlibError, match="width must be positive"):
        parse_window("L40/W0")
