"""The edge node's `auto` waits for the cloud on a frame, hedged (real processes; the probe
plays the bridge: it answers each cloud_request after a set delay)."""

import time

import pytest

from harness import (answers_to, assert_cloud_answered_each_frame, calibration_preferring,
                     edge_with_request_bridge, late_then_prompt, stream_frames)

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'What now?'
REPLY = 'A red light is ahead.'


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    # The cloud's answer on the very frame is expected to score best.
    table = calibration_preferring(tmp_path_factory.mktemp('waits') / 'calibration.json',
                                   'cloud_wait', QUERY)
    params = {'strategy': 'auto', 'auto.calibration': table, 'auto.deadline_s': 1.0,
              'query': QUERY}
    with edge_with_request_bridge(tmp_path_factory.mktemp('waits-logs'), params, REPLY) as rigged:
        yield rigged


def test_auto_gives_the_cloud_reply_that_comes_in_time_then_stops_waiting_on_a_slow_link(rig):
    probe, bridge = rig
    assert_cloud_answered_each_frame(probe, bridge)

    bridge.delay_s = 1.6  # now past the 1 s deadline
    frames = stream_frames(probe, 4.0, 4.0)
    time.sleep(2.0)
    answered = answers_to(probe, frames)
    assert answered and not any(a.source == 'cloud_wait' for a in answered)
    # Until a 1.6 s round trip is known, the waits end at the deadline with the hedge; after
    # it, the edge answers at once without asking.
    late_then_prompt(answered, 0.95)
    assert all(a.source == 'edge_only' for a in answered)
