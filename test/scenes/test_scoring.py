"""The one scorer: each family's metric by hand, as the evaluator and the held-out check use it."""

import pytest

from spotvlm_ros.scenes.render import SceneObject
from spotvlm_ros.scenes.scoring import METRICS, lcs_length, score_answer, words
from spotvlm_ros.scenes.truth import DESCRIPTION, FAMILIES, GROUNDING, QA, VQA, box_json

SIZE = (448, 336)
TRUTH_BOX = '[{"bbox_2d": [100, 100, 200, 200], "label": "traffic light"}]'


def box_reply(x1, y1, x2, y2, text='the traffic light'):
    return f'{text}\n```json\n[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "light"}}]\n```'


def test_every_family_has_a_named_metric():
    assert set(METRICS) == set(FAMILIES) and all(METRICS.values())


def test_vqa_exact_match_after_normalising():
    assert score_answer(VQA, 'red', 'red', SIZE) == 1.0
    assert score_answer(VQA, 'red', '  Red. ', SIZE) == 1.0
    assert score_answer(VQA, 'Slow down.', 'slow down', SIZE) == 1.0
    # The short answer before the JSON fence is what counts.
    assert score_answer(VQA, 'red', 'Red.\n```json\n[]\n```', SIZE) == 1.0
    assert score_answer(VQA, 'red', 'green', SIZE) == 0.0
    assert score_answer(VQA, 'red', 'red light', SIZE) == 0.0
    assert score_answer(VQA, '2', '3', SIZE) == 0.0


def test_empty_answer_scores_zero_in_every_family():
    assert score_answer(VQA, '', '', SIZE) == 0.0  # even where the truth is empty
    assert score_answer(DESCRIPTION, 'red light', '   ', SIZE) == 0.0
    assert score_answer(GROUNDING, TRUTH_BOX, '', SIZE) == 0.0


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError):
        score_answer('poetry', 'a', 'a', SIZE)


def test_description_words_drop_commas_and_dots():
    assert words('Red light, 2 vehicles,limit 50.') == [
        'red', 'light', '2', 'vehicles', 'limit', '50']


def test_lcs_length_by_hand():
    assert lcs_length(list('abcbdab'), list('bdcaba')) == 4  # the textbook example
    assert lcs_length([], ['a']) == 0
    assert lcs_length(['a', 'b'], ['b', 'a']) == 1


def test_description_rouge_l_by_hand():
    # truth: red light 2 vehicles limit 50 (6 words); answer: red light 3 vehicles (4 words).
    # LCS = red light vehicles = 3; P = 3/4, R = 3/6; F1 = 2 * 0.75 * 0.5 / 1.25 = 0.6.
    value = score_answer(DESCRIPTION, 'red light, 2 vehicles, limit 50', 'red light, 3 vehicles',
                         SIZE)
    assert value == pytest.approx(0.6)
    assert score_answer(DESCRIPTION, 'red light, 2 vehicles.', 'Red light, 2 vehicles',
                        SIZE) == pytest.approx(1.0)
    # Order matters: LCS of (a b c) and (c b a) is 1; P = R = 1/3.
    assert score_answer(DESCRIPTION, 'a b c', 'c b a', SIZE) == pytest.approx(1 / 3)
    assert score_answer(DESCRIPTION, 'red light', 'green', SIZE) == 0.0
    # A JSON fence after a description is not part of its words.
    assert score_answer(DESCRIPTION, 'red light', 'red light\n```json\n[]\n```',
                        SIZE) == pytest.approx(1.0)


def test_grounding_hit_needs_iou_half_with_the_first_boxes():
    # Against 100x100 at (100, 100): [100, 100, 200, 150] has IoU 5000/10000 = 0.5 exactly.
    assert score_answer(GROUNDING, TRUTH_BOX, box_reply(100, 100, 200, 150), SIZE) == 1.0
    # [100, 100, 200, 149]: IoU 4900/10000 = 0.49, just below.
    assert score_answer(GROUNDING, TRUTH_BOX, box_reply(100, 100, 200, 149), SIZE) == 0.0
    # [110, 100, 210, 200]: IoU 9000/11000 = 0.818, a hit; bare JSON works too.
    bare = '[{"bbox_2d": [110, 100, 210, 200], "label": "traffic light"}]'
    assert score_answer(GROUNDING, TRUTH_BOX, bare, SIZE) == 1.0
    # Only the first answer region counts, even if a later one would hit.
    two = ('```json\n[{"bbox_2d": [300, 250, 400, 330]}, '
           '{"bbox_2d": [100, 100, 200, 200]}]\n```')
    assert score_answer(GROUNDING, TRUTH_BOX, two, SIZE) == 0.0
    # Only the first truth box counts.
    truth_two = ('[{"bbox_2d": [300, 250, 400, 330], "label": "vehicle"}, '
                 '{"bbox_2d": [100, 100, 200, 200], "label": "vehicle"}]')
    assert score_answer(GROUNDING, truth_two, box_reply(100, 100, 200, 200), SIZE) == 0.0
    assert score_answer(GROUNDING, truth_two, box_reply(300, 250, 400, 330), SIZE) == 1.0


def test_grounding_without_regions_scores_zero():
    assert score_answer(GROUNDING, TRUTH_BOX, 'the traffic light is on the left', SIZE) == 0.0
    assert score_answer(GROUNDING, '[]', box_reply(100, 100, 200, 200), SIZE) == 0.0


def test_a_scene_grounding_truth_is_scored_against_its_own_box():
    # The ground truth's answer is its box as JSON (box_json), the form the scorer reads.
    light = SceneObject(1, 'traffic light', '', (100.4, 50.2, 120.3, 90.0), 20.0, 6.0)
    qa = QA(GROUNDING, 'Where is the traffic light?', box_json([light]), [light])
    hit = '[{"bbox_2d": [101, 52, 121, 90], "label": "traffic light"}]'
    miss = '[{"bbox_2d": [130, 52, 150, 90], "label": "traffic light"}]'
    assert score_answer(qa.family, qa.answer, hit, SIZE) == 1.0
    assert score_answer(qa.family, qa.answer, miss, SIZE) == 0.0
    assert score_answer(qa.family, qa.answer, 'no idea', SIZE) == 0.0


def test_a_scene_description_is_scored_by_rouge_l_not_by_slots():
    truth = 'red light, 2 vehicles, no pedestrian, limit 50, stop.'
    # Two of five slots wrong (slot share 0.6); 7 of 9 words in order on both sides: F1 = 7/9.
    said = 'red light, 3 vehicles, no pedestrian, limit 70, stop.'
    assert score_answer(DESCRIPTION, truth, said, SIZE) == pytest.approx(7 / 9)
