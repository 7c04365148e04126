"""The simulated large cloud model: truth at fixed error rates, in the bridge's reply format."""

import pytest

from spotvlm_ros.cloud.client import CloudClientConfig
from spotvlm_ros.cloud.replies import answer_from_reply
from spotvlm_ros.core.types import Region
from spotvlm_ros.evaluation.answering import Answerer
from spotvlm_ros.io.replay import load_bag
from spotvlm_ros.scenes.large_model import (
    VOCABULARY, LargeModelErrors, SimulatedLargeModel, is_simulated, visual_token_bytes)
from spotvlm_ros.scenes.truth import (
    DESCRIPTION, GROUNDING, Q_DESCRIBE, Q_LIGHT, Q_WHERE, VQA)
from spotvlm_ros.share import SAMPLE_BAG, resolve

LIGHT = Region('traffic light', 100.0, 40.0, 110.0, 64.0)
EXACT = LargeModelErrors(vqa=0.0, description_slot=0.0, grounding_miss=0.0, box_jitter=0.0)


def parsed(text: str, sent=(448, 336), frame=(448, 336)):
    """The reply as the bridge reads it: (short answer, regions in frame pixels)."""
    answer, _ = answer_from_reply(text, CloudClientConfig(), sent, frame, 0.0, 0, 'q', 'm')
    return answer.text, answer.regions


def test_without_errors_the_reply_is_the_truth_in_the_bridge_format():
    model = SimulatedLargeModel(EXACT)
    text, regions = parsed(model.reply(Q_LIGHT, VQA, 'red', [LIGHT], key='a'))
    assert text == 'red'
    assert [(r.label, r.x1, r.y1, r.x2, r.y2) for r in regions] == [
        ('traffic light', 100, 40, 110, 64)]


def test_boxes_are_in_pixels_of_the_sent_image():
    model = SimulatedLargeModel(EXACT)
    reply = model.reply(Q_WHERE['traffic light'], GROUNDING, '', [LIGHT], scale=(0.5, 0.5))
    assert '[50, 20, 55, 32]' in reply
    _, regions = parsed(reply, sent=(224, 168))  # the bridge maps them back to the frame
    assert (regions[0].x1, regions[0].y2) == (100, 64)


def test_the_same_frame_and_question_get_the_same_reply():
    model = SimulatedLargeModel()
    replies = {model.reply(Q_LIGHT, VQA, 'red', [LIGHT], key='frame 7') for _ in range(5)}
    assert len(replies) == 1


def test_errors_come_at_their_rates():
    model = SimulatedLargeModel(LargeModelErrors(vqa=0.1, grounding_miss=0.2))
    keys = [f'frame {i}' for i in range(2000)]
    answers = [parsed(model.reply(Q_LIGHT, VQA, 'red', [LIGHT], key=k))[0] for k in keys]
    wrong = [a for a in answers if a != 'red']
    assert 0.07 < len(wrong) / len(answers) < 0.13  # 0.1 +- 4 standard errors
    assert set(wrong) <= set(VOCABULARY[Q_LIGHT]) - {'red'} and len(set(wrong)) == 3
    missed = [k for k in keys
              if not parsed(model.reply(Q_WHERE['traffic light'], GROUNDING, '', [LIGHT],
                                        key=k))[1]]
    assert 0.16 < len(missed) / len(keys) < 0.24


def test_description_errors_change_slots_not_the_form():
    model = SimulatedLargeModel(LargeModelErrors(description_slot=0.5))
    truth = 'red light, 2 vehicles, no pedestrian, limit 50, stop.'
    text, _ = parsed(model.reply(Q_DESCRIBE, DESCRIPTION, truth, [], key='x'))
    assert text != truth and text.endswith('.') and len(text.split(', ')) == 5


def test_box_jitter_keeps_most_boxes_on_their_object():
    model = SimulatedLargeModel(LargeModelErrors(box_jitter=0.05))
    boxes = [parsed(model.reply(Q_WHERE['traffic light'], GROUNDING, '', [LIGHT],
                                key=str(i)))[1] for i in range(200)]
    moved = [b[0] for b in boxes if b and (b[0].x1, b[0].y1) != (100, 40)]
    assert moved and all(abs(b.x1 - 100) <= 3 and abs(b.y2 - 64) <= 6 for b in moved)


@pytest.mark.parametrize('field', ['vqa', 'description_slot', 'grounding_miss', 'box_jitter'])
def test_rates_are_checked(field):
    with pytest.raises(ValueError, match=f'simulated.{field}'):
        LargeModelErrors(**{field: 1.5})


def test_names_and_payload():
    assert is_simulated('simulated') and not is_simulated('models/spotvlm-cloud')
    assert visual_token_bytes((448, 336)) == 192 * 8192 * 2  # 3.1 MB a keyframe
    assert visual_token_bytes((448, 336), 'int8') == 192 * (8192 + 4)


def test_the_evaluator_asks_it_about_bag_frames_with_their_truth():
    frames = load_bag(resolve(SAMPLE_BAG), max_frames=12)
    frame = frames[10]
    answerer = Answerer(None, SimulatedLargeModel(EXACT))
    for question in frame.questions:
        answer, raw = answerer.cloud(frame, question.question)
        if question.family == VQA:
            assert answer.text == question.answer
        if question.family == GROUNDING:
            assert question.regions and answer.regions  # the ground truth's box, read back
            assert abs(answer.regions[0].x1 - question.regions[0].x1) <= 1
    reply, payload = answerer.partitioned(frame, Q_LIGHT)
    assert payload == visual_token_bytes(frame.size)
    assert reply.text.split('\n')[0] == frame.question(Q_LIGHT).answer


def test_a_frame_without_that_truth_is_an_error_or_nothing_in_view():
    frame = load_bag(resolve(SAMPLE_BAG), max_frames=1)[0]
    model = SimulatedLargeModel(EXACT)
    absent = next(q for q in Q_WHERE.values() if frame.question(q) is None)
    assert model.reply_about(frame, absent, frame.size).endswith('[]\n```')
    with pytest.raises(ValueError, match='answers from ground truth'):
        model.reply_about(frame, 'What is the weather?', frame.size)
