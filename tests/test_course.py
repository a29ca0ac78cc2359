"""The chapters' one import: every name resolves to the module that owns it, and nothing heavy loads early."""

import subprocess
import sys

import pytest

from liverlib import course


def test_every_name_resolves_to_its_owner():
    for name in dir(course):
        value = getattr(course, name)
        if name not in course.MODULES:
            assert getattr(__import__(course.where(name), fromlist=[name]), name) is value


def test_unknown_names_say_what_there_is():
    with pytest.raises(AttributeError, match="re-exports"):
        course.no_such_thing


def test_importing_the_course_loads_no_tensorflow():
    code = "import sys; from liverlib import course as ll; ll.load_config; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_modules_are_reached_by_their_own_name_also_inside_sub_packages():
    import liverlib.imaging
    import liverlib.imaging.windowing

    assert course.windowing is liverlib.imaging.windowing and course.imaging is liverlib.imaging
    assert course.studies.__name__ == "liverlib.imaging.studies" and course.blocks.__name__ == "liverlib.blocks"
    assert {"windowing", "dicom", "studies", "imaging"} <= set(dir(course))
