"""Frames for the core tests: textured (so optical flow has corners) and deterministic."""

import pytest

from spotvlm_ros.scenes.texture import shifted as shift_frame
from spotvlm_ros.scenes.texture import textured_frame as make_textured_frame


@pytest.fixture
def textured_frame():
    return make_textured_frame


@pytest.fixture
def shifted():
    return shift_frame
