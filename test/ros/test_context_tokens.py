"""The fuser's budget is counted in the edge model's tokens, not words."""

import time

import pytest
from spotvlm_msgs.msg import CloudContext

from harness import Probe, start_node, stop
from spotvlm_ros.models.tiny import tiny_checkpoint
from spotvlm_ros.models.tokens import token_counter
from spotvlm_ros.nodes import convert

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BUDGET = 8
# Eight words; the tiny tokenizer spells every digit: far more than eight tokens.
ANSWER = 'Limit 120 ahead, car 3456 m away, speed 78 now. Brake.'


def test_the_token_counter_counts_the_edge_models_tokens():
    count = token_counter('tiny')
    assert count(ANSWER) > 2 * BUDGET  # the premise of the node test below
    assert token_counter(str(tiny_checkpoint()))(ANSWER) == count(ANSWER)
    assert token_counter('')(ANSWER) == len(ANSWER.split())


def test_the_fuser_compresses_cloud_answers_to_a_budget_in_tokens(tmp_path):
    fuser = start_node('context_fuser', tmp_path, **{'tokenizer': 'tiny',
                                                      'context.budget_tokens': BUDGET,
                                                      'image_reliable': True})
    probe = Probe()
    try:
        probe.wait_for_subscribers(1)
        frame = probe.publish_frame()
        time.sleep(0.3)
        stamp = convert.to_sec(frame.header.stamp)
        reply = CloudContext(header=frame.header, keyframe_seq=1, query='What now?',
                             answer=ANSWER, status=CloudContext.STATUS_OK, model='m',
                             image_width=320, image_height=240)
        assert probe.wait_for(lambda: (probe.cloud_pub.publish(reply) or True) and any(
            f.turns for f in probe.fused), 30), 'no fused context with the reply'
        turn = next(f for f in probe.fused if f.turns).turns[0]
        assert convert.to_sec(turn.source_stamp) == pytest.approx(stamp)
        assert 0 < token_counter('tiny')(turn.answer) <= BUDGET, turn.answer
    finally:
        probe.close()
        codes = stop(fuser)
    assert codes == {'0': 0}, f'unclean exit {codes}; logs in {tmp_path}'


def test_spotvlm_run_gives_the_fuser_the_edge_models_tokenizer():
    from spotvlm_ros.run import _arguments, _overrides

    overrides = _overrides(_arguments(['-p', 'edge_node:model.path=/models/edge']), None)
    assert overrides['context_fuser']['tokenizer'] == '/models/edge'
    mine = _overrides(_arguments(['-p', 'edge_node:model.path=/models/edge',
                                  '-p', 'context_fuser:tokenizer=/models/other']), None)
    assert mine['context_fuser']['tokenizer'] == '/models/other'
