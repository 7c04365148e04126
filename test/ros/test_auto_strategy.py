"""The edge node's `auto` strategy: each answer says which source answered (real processes)."""

import time

import pytest
from spotvlm_msgs.msg import CloudContext

from harness import calibration_preferring, edge_and_fuser

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'What now?'
REPLY = 'A red light is ahead.'


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    # The newest cloud answer is expected to score best whenever one is back.
    table = calibration_preferring(tmp_path_factory.mktemp('auto') / 'calibration.json',
                                   'cloud_latest', QUERY)
    logs = tmp_path_factory.mktemp('auto-logs')
    params = {'strategy': 'auto', 'auto.calibration': table, 'query': QUERY}
    with edge_and_fuser(logs, edge_params=params) as rigged:
        yield rigged


def test_auto_answers_from_the_edge_until_a_cloud_answer_then_from_it(rig):
    probe, _ = rig
    start = len(probe.answers)
    probe.stream(1.5, 5.0)
    time.sleep(1.0)
    before = probe.answers[start:]
    assert before and {a.source for a in before} == {'edge_only'}
    assert all(a.strategy == 'auto' and not a.used_context for a in before)
    # No bridge listens for cloud_request here: auto does not wait for a cloud it cannot ask.
    assert all(a.latency_s < 0.9 for a in before), [a.latency_s for a in before]

    start = len(probe.answers)

    def reply_to_each_frame(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = probe.publish_frame()
            probe.cloud_pub.publish(CloudContext(
                header=frame.header, keyframe_seq=len(probe.sent), query=QUERY, answer=REPLY,
                status=CloudContext.STATUS_OK, model='m', image_width=320, image_height=240))
            time.sleep(0.2)

    assert probe.wait_for(lambda: (reply_to_each_frame(0.4) or True) and any(
        a.source == 'cloud_latest' for a in probe.answers[start:]), 60), \
        'auto never took the newest cloud answer'
    taken = [a for a in probe.answers[start:] if a.source == 'cloud_latest']
    assert all(a.answer == REPLY and a.used_context and a.context_age_s >= 0 for a in taken)
    assert all(a.inference_time_s == 0.0 and a.new_tokens == 0 for a in taken)
