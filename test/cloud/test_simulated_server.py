"""The simulated large model behind the real server: the bridge's JPEGs in, the evaluator's replies out."""

import base64

import pytest

from spotvlm_ros.cloud.client import CloudClientConfig
from spotvlm_ros.cloud.encoding import encode_keyframe
from spotvlm_ros.cloud.replies import keyframe_prompt
from spotvlm_ros.cloud.responders import SimulatedResponder, simulated_responder
from spotvlm_ros.cloud.server import main as server_main
from spotvlm_ros.cloud.server import make_app
from spotvlm_ros.evaluation.answering import Answerer
from spotvlm_ros.io.replay import load_bag
from spotvlm_ros.scenes.large_model import SimulatedLargeModel
from spotvlm_ros.share import SAMPLE_BAG, resolve

BRIDGE = CloudClientConfig()


@pytest.fixture(scope='module')
def frames():
    return load_bag(resolve(SAMPLE_BAG))


def _body(frame, question: str) -> dict:
    prompt = keyframe_prompt(BRIDGE, frame.size)[0]
    jpeg, _ = encode_keyframe(frame.image, BRIDGE.jpeg_quality, BRIDGE.max_image_side,
                              BRIDGE.image_multiple)
    url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')
    return {'model': 'simulated', 'max_tokens': 256, 'messages': [
        {'role': 'system', 'content': prompt},
        {'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': url}},
                                     {'type': 'text', 'text': question}]}]}


def test_served_replies_are_the_offline_evaluators(post_all, frames):
    asks = [(f, q.question) for f in frames[::9] for q in f.questions]
    replies = post_all(make_app(SimulatedResponder(frames)),
                       [_body(f, q) for f, q in asks])
    offline = Answerer(None, SimulatedLargeModel(), cloud_config=BRIDGE)
    for (frame, question), (status, body) in zip(asks, replies):
        assert status == 200, body
        # The JPEG is matched back to its bag frame, so the errors drawn are the same too.
        assert body['choices'][0]['message']['content'] == offline.cloud(frame, question)[1].text


def test_a_question_without_ground_truth_is_a_clear_400(post_all, frames):
    (status, body), = post_all(make_app(SimulatedResponder(frames)),
                               [_body(frames[0], 'What is the weather like?')])
    assert status == 400 and body['error']['code'] == 'unsupported_input'
    assert 'answers from ground truth' in body['error']['message']


def test_it_needs_a_bag_with_ground_truth(tmp_path, capsys):
    with pytest.raises(ValueError, match='needs a bag with ground truth'):
        SimulatedResponder([])
    assert server_main(['--model', 'simulated']) == 2
    assert '--truth-bag' in capsys.readouterr().err
    assert simulated_responder(resolve(SAMPLE_BAG)).name == 'simulated'
