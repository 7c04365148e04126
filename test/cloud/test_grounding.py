"""Grounding parsers on replies in every format real models write, broken ones included."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import (
    FORMAT_GRID_1000, FORMAT_NORMALIZED, FORMAT_PIXELS, GROUNDING_FORMATS, system_prompt)

FIXTURES = Path(__file__).parent / 'fixtures'
KEYFRAME = (1280, 720)
SENT = (616, 364)  # the keyframe as the client sends it: max side 640, multiples of 28
SX, SY = KEYFRAME[0] / SENT[0], KEYFRAME[1] / SENT[1]


def _pixels(label, x1, y1, x2, y2):
    return (label, x1 * SX, y1 * SY, x2 * SX, y2 * SY)


# fixture file -> (format, answer text, regions in keyframe pixels, warning substring)
CASES = {
    'qwen25_fenced.txt': (
        FORMAT_PIXELS, 'The traffic light ahead is red and a pedestrian is crossing.',
        [_pixels('traffic light', 301, 18, 329, 77), _pixels('pedestrian', 120, 150, 180, 330)],
        ''),
    'qwen25_bare_in_prose.txt': (
        FORMAT_PIXELS, 'A cyclist is on the left. Keep distance.',
        [_pixels('cyclist', 10, 100, 110, 300)], ''),
    'qwen25_single_object.txt': (
        FORMAT_PIXELS, 'One car is parked.', [_pixels('car', 300, 200, 500, 330)], ''),
    'qwen2_box_tokens.txt': (
        FORMAT_GRID_1000, 'The stop sign is on the right.',
        [('stop sign', 320.0, 72.0, 640.0, 288.0)], ''),
    'qwen3_grid1000_fenced.txt': (
        FORMAT_GRID_1000, 'Two vehicles block the lane.',
        [('truck', 0.0, 360.0, 320.0, 720.0), ('car', 640.0, 360.0, 960.0, 540.0)], ''),
    'normalized_fenced.txt': (
        FORMAT_NORMALIZED, 'A dog is near the curb.', [('dog', 128.0, 144.0, 384.0, 288.0)], ''),
    'swapped_corners.txt': (
        FORMAT_PIXELS, 'A car, boxed with its corners swapped.',
        [_pixels('car', 100, 100, 200, 300)], ''),
    'empty_list.txt': (FORMAT_PIXELS, 'Nothing relevant is visible.', [], ''),
    'no_regions.txt': (FORMAT_PIXELS, 'The road ahead is clear.', [], ''),
    'malformed_items.txt': (
        FORMAT_PIXELS, 'Several objects.', [_pixels('car', 10, 20, 110, 220)],
        'skipped 5 malformed or out-of-image'),
}
BROKEN = ['broken_truncated_fence.txt', 'broken_single_quotes.txt', 'broken_bare_truncated.txt']


@pytest.mark.parametrize('name', sorted(CASES))
def test_fixture_parses_to_answer_and_keyframe_regions(name):
    fmt, text, expected, warning = CASES[name]
    answer, regions, got_warning = parse_regions(
        (FIXTURES / name).read_text(), fmt, SENT, KEYFRAME)
    assert answer == text
    assert [r.label for r in regions] == [e[0] for e in expected]
    for region, (_, x1, y1, x2, y2) in zip(regions, expected):
        assert (region.x1, region.y1, region.x2, region.y2) == pytest.approx((x1, y1, x2, y2))
        assert region.source == 'cloud'
    if warning:
        assert warning in got_warning
    else:
        assert got_warning == ''


@pytest.mark.parametrize('name', BROKEN)
def test_broken_regions_leave_answer_intact_without_regions(name):
    reply = (FIXTURES / name).read_text()
    answer, regions, warning = parse_regions(reply, FORMAT_PIXELS, SENT, KEYFRAME)
    assert answer == reply.strip()
    assert regions == ()
    assert 'unparseable' in warning


def test_single_object_keeps_its_score():
    _, regions, _ = parse_regions(
        (FIXTURES / 'qwen25_single_object.txt').read_text(), FORMAT_PIXELS, SENT, KEYFRAME)
    assert regions[0].score == pytest.approx(0.8)


def test_same_reply_read_in_another_format_scales_differently():
    reply = '```json\n[{"bbox_2d": [100, 100, 200, 200], "label": "x"}]\n```'
    boxes = {fmt: parse_regions(reply, fmt, SENT, KEYFRAME)[1][0] for fmt in
             (FORMAT_PIXELS, FORMAT_GRID_1000)}
    assert boxes[FORMAT_PIXELS].x2 == pytest.approx(200 * SX)
    assert boxes[FORMAT_GRID_1000].x2 == pytest.approx(200 * 1.28)


def test_boxes_are_clipped_to_the_keyframe():
    reply = '[{"bbox_2d": [-50, -10, 700, 400], "label": "wide"}]'
    _, (region,), _ = parse_regions(reply, FORMAT_PIXELS, SENT, KEYFRAME)
    assert (region.x1, region.y1, region.x2, region.y2) == (0.0, 0.0, 1280.0, 720.0)


def test_oversized_reply_is_cut_before_parsing():
    reply = 'Short answer. ' + 'x' * 10_000 + ' [{"bbox_2d": [1, 2, 3, 4], "label": "late"}]'
    answer, regions, warning = parse_regions(reply, FORMAT_PIXELS, SENT, KEYFRAME,
                                             max_chars=1000)
    assert len(answer) <= 1000
    assert regions == ()
    assert 'cut to 1000 characters' in warning


def test_prose_brackets_are_not_taken_for_regions():
    reply = 'Lane [2] is free {mostly}. [{"bbox_2d": [1, 2, 30, 40], "label": "cone"}]'
    answer, regions, warning = parse_regions(reply, FORMAT_PIXELS, SENT, KEYFRAME)
    assert answer == 'Lane [2] is free {mostly}.'
    assert [r.label for r in regions] == ['cone']
    assert warning == ''


def test_the_word_box_in_prose_is_no_warning():
    answer, regions, warning = parse_regions('A box lies on the road.', FORMAT_PIXELS, SENT,
                                             KEYFRAME)
    assert (answer, regions, warning) == ('A box lies on the road.', (), '')


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match='grounding_format'):
        parse_regions('text', 'yolo', SENT, KEYFRAME)


@pytest.mark.parametrize('fmt', GROUNDING_FORMATS)
def test_system_prompt_asks_for_json_boxes_in_its_format(fmt):
    prompt = system_prompt(fmt, SENT)
    assert 'bbox_2d' in prompt and '```json' in prompt
    assert ('616x364' in prompt) == (fmt == FORMAT_PIXELS)
    assert ('1000' in prompt) == (fmt == FORMAT_GRID_1000)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_without_raising(text):
    answer, regions, warning = parse_regions(text, FORMAT_PIXELS, SENT, KEYFRAME, max_chars=300)
    assert len(answer) <= 300
    for r in regions:
        assert 0 <= r.x1 < r.x2 <= KEYFRAME[0] and 0 <= r.y1 < r.y2 <= KEYFRAME[1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 615), st.integers(0, 363),
                          st.integers(1, 616), st.integers(1, 364)), min_size=1, max_size=6),
       st.sampled_from(['fenced', 'bare']))
def test_pixel_boxes_map_back_exactly(boxes, style):
    boxes = [(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)) for x1, y1, x2, y2 in boxes]
    boxes = [b for b in boxes if b[2] <= SENT[0] and b[3] <= SENT[1]]
    payload = json.dumps([{'bbox_2d': list(b), 'label': f'o{i}'} for i, b in enumerate(boxes)])
    reply = f'Answer.\n```json\n{payload}\n```' if style == 'fenced' else f'Answer. {payload}'
    answer, regions, warning = parse_regions(reply, FORMAT_PIXELS, SENT, KEYFRAME)
    assert answer == 'Answer.' and warning == ''
    got = [v for r in regions for v in (r.x1, r.y1, r.x2, r.y2)]
    assert got == pytest.approx([v for x1, y1, x2, y2 in boxes
                                 for v in (x1 * SX, y1 * SY, x2 * SX, y2 * SY)])
