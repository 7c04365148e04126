"""The edge node's `offload`: the cloud's answer on the frame when the link is known to be fast
enough, else the edge model's, at once or at the deadline (real processes; the probe plays the
bridge: it answers each cloud_request after a set delay)."""

import time

import pytest

from harness import (answers_to, assert_cloud_answered_each_frame, edge_with_request_bridge,
                     late_then_prompt, stream_frames)
from spotvlm_ros.nodes import convert

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'What now?'
REPLY = 'A red light is ahead.'


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    params = {'strategy': 'offload', 'offload.deadline_s': 1.0, 'query': QUERY}
    with edge_with_request_bridge(tmp_path_factory.mktemp('offload-logs'), params, REPLY) as rigged:
        yield rigged


def test_offload_asks_the_cloud_only_once_a_round_trip_meets_the_deadline(rig):
    probe, bridge = rig
    # No round trip known yet: the edge model answers at once, nothing is asked.
    frames = stream_frames(probe, 1.5, 4.0)
    time.sleep(1.0)
    answered = answers_to(probe, frames)
    assert len(answered) >= 3 and not bridge.requests
    assert all(a.source == 'edge_only' and a.strategy == 'offload' for a in answered)

    # A keyframe's reply shows a 0.3 s link: from now on every frame goes to the cloud.
    bridge.answer(frames[-1].header, QUERY, 0.3)
    time.sleep(0.5)
    assert_cloud_answered_each_frame(probe, bridge)


def test_offload_falls_back_to_the_edge_at_the_deadline_then_stops_asking(rig):
    probe, bridge = rig
    bridge.delay_s = 1.6  # past the 1 s deadline
    frames = stream_frames(probe, 4.0, 4.0)
    time.sleep(2.5)
    answered = answers_to(probe, frames)
    assert answered and all(a.source == 'edge_only' and a.model != 'cloud' for a in answered)
    # Until a 1.6 s round trip is known, the edge answers each asked frame at the deadline;
    # after it, at once without asking.
    late, prompt = late_then_prompt(answered, 1.0)
    asked = {convert.stamp_key(r.header) for r in bridge.requests}
    assert {convert.stamp_key(a.header) for a in late} <= asked
    assert not {convert.stamp_key(a.header) for a in prompt} & asked
