"""The evaluator asks the cloud model with the bridge's prompt and reads it with the bridge's parser."""

import numpy as np
import pytest

from spotvlm_ros.cloud.client import CloudClientConfig
from spotvlm_ros.cloud.prompts import FORMAT_GRID_1000, system_prompt
from spotvlm_ros.evaluation.answering import Answerer
from spotvlm_ros.io.replay import BagFrame
from spotvlm_ros.models.base import EdgeResult


class RecordingModel:
    """A cloud model that notes what it was shown and answers with a fixed reply."""

    name = 'recording'

    def __init__(self, reply: str):
        self.reply = reply
        self.seen = []

    def answer(self, frame, query, history=(), focus=None, system_prompt=None, on_text=None):
        self.seen.append((frame.shape, system_prompt))
        return EdgeResult(self.reply, prompt_tokens=7, new_tokens=3)


def frame_of(width: int, height: int) -> BagFrame:
    return BagFrame(0, 1.5, np.zeros((height, width, 3), np.uint8), ())


def test_the_cloud_sees_the_bridges_prompt_and_size():
    model = RecordingModel('A car.\n```json\n[{"bbox_2d": [0, 0, 322, 238], "label": "car"}]\n```')
    answerer = Answerer(None, model, cloud_config=CloudClientConfig(max_image_side=1024))

    answer, raw = answerer.cloud(frame_of(640, 480), 'What is ahead?', seq=4)

    # The bridge sends 640x480 as 644x476 (multiples of 28) and names that size.
    assert model.seen == [((476, 644, 3), system_prompt('pixels', (644, 476)))]
    assert (answer.text, answer.keyframe_seq, answer.image_size) == ('A car.', 4, (640, 480))
    region = answer.regions[0]
    assert (region.x2, region.y2) == pytest.approx((320, 240), abs=1)  # back in frame pixels
    assert raw.text == model.reply and (raw.prompt_tokens, raw.new_tokens) == (7, 3)


def test_structured_replies_and_other_grounding_formats_are_read_as_the_bridge_reads_them():
    model = RecordingModel('{"answer": "A bus.", "regions": '
                           '[{"bbox_2d": [500, 500, 1000, 1000], "label": "bus"}]}')
    config = CloudClientConfig(grounding_format=FORMAT_GRID_1000)
    answerer = Answerer(None, model, cloud_config=config)

    answer, _ = answerer.cloud(frame_of(448, 336), 'What is ahead?')

    assert model.seen[0][1] == system_prompt(FORMAT_GRID_1000, (448, 336))
    assert answer.text == 'A bus.'
    region = answer.regions[0]
    assert (region.label, region.x1, region.y1, region.x2, region.y2) == \
        ('bus', 224, 168, 448, 336)
