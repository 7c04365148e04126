"""Close-up references: an edge answer that points at a crop becomes that crop's box."""

import json

import numpy as np
import pytest

from spotvlm_ros.core.close_ups import close_up_reference, resolve_close_up
from spotvlm_ros.core.focus import FocusConfig, plan_focus_from_config
from spotvlm_ros.core.types import Region

FRAME = np.zeros((336, 448, 3), np.uint8)
CAR = Region('car', 200.4, 130.0, 229.6, 160.2)
SIGN = Region('sign', 20.0, 40.0, 60.0, 90.0, score=0.5)


@pytest.fixture(scope='module')
def plan():
    focus = plan_focus_from_config(FRAME, [CAR, SIGN], FocusConfig(token_budget=160))
    assert [c.label.split(' at ')[0] for c in focus.crops] == ['car', 'sign']
    return focus


def boxes(answer: str) -> list:
    return [(item['bbox_2d'], item['label']) for item in json.loads(answer)]


def test_a_reference_becomes_the_box_its_caption_gives(plan):
    assert boxes(resolve_close_up(close_up_reference(1), plan)) == [([200, 130, 230, 160], 'car')]
    assert boxes(resolve_close_up('Close-up 2.', plan)) == [([20, 40, 60, 90], 'sign')]
    for crop in plan.crops:  # the caption and the written-out box are one box
        box = [round(v) for v in (crop.shown.x1, crop.shown.y1, crop.shown.x2, crop.shown.y2)]
        assert crop.label.endswith(f'at [{box[0]}, {box[1]}, {box[2]}, {box[3]}]')


@pytest.mark.parametrize('text', ['close-up 3', 'close-up 0'])
def test_a_reference_to_a_close_up_not_shown_is_an_empty_answer(plan, text):
    assert resolve_close_up(text, plan) == '[]'
    assert resolve_close_up('close-up 1', None) == '[]'


@pytest.mark.parametrize('text', ['red', '[{"bbox_2d": [1, 2, 3, 4], "label": "car"}]',
                                  'the close-up 1 shows a car', ''])
def test_any_other_answer_is_left_as_it_is(plan, text):
    assert resolve_close_up(text, plan) == text
