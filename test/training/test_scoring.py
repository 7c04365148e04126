"""Scoring replies against ground truth, per task family."""

from spotvlm_ros.scenes.render import SceneObject
from spotvlm_ros.scenes.truth import DESCRIPTION, GROUNDING, QA, VQA
from spotvlm_ros.training.scoring import score

SIZE = (448, 336)


def obj(box):
    return SceneObject(1, 'traffic light', '', box, 20.0, 6.0)


def test_vqa_exact_after_normalising():
    qa = QA(VQA, 'What colour is the traffic light?', 'red')
    assert score(qa, 'Red.', SIZE) == 1.0
    assert score(qa, 'green', SIZE) == 0.0
    # A cloud reply: the short answer before its JSON fence is what counts.
    assert score(qa, 'red\n```json\n[]\n```', SIZE) == 1.0


def test_description_scores_share_of_slots():
    qa = QA(DESCRIPTION, 'Describe the scene.', 'red light, 2 vehicles, no pedestrian, limit 50, stop.')
    assert score(qa, 'red light, 2 vehicles, no pedestrian, limit 50, stop.', SIZE) == 1.0
    assert score(qa, 'red light, 3 vehicles, no pedestrian, limit 70, stop.', SIZE) == 0.6


def test_grounding_needs_iou_half():
    qa = QA(GROUNDING, 'Where is the traffic light?', '', [obj((100, 50, 120, 90))])
    hit = '[{"bbox_2d": [101, 52, 121, 90], "label": "traffic light"}]'
    miss = '[{"bbox_2d": [130, 52, 150, 90], "label": "traffic light"}]'
    assert score(qa, hit, SIZE) == 1.0
    assert score(qa, miss, SIZE) == 0.0
    assert score(qa, 'no idea', SIZE) == 0.0
