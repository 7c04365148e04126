"""The edge node's `auto` waits for the cloud on a frame, hedged (real processes; the probe
plays the bridge: it answers each cloud_request after a set delay)."""

import threading
import time

import pytest
from spotvlm_msgs.msg import CloudContext, CloudRequest

from harness import calibration_preferring, edge_and_fuser
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.qos import CLOUD_REQUEST_QOS

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
    with edge_and_fuser(tmp_path_factory.mktemp('waits-logs'), edge_params=params) as rigged:
        probe, _ = rigged
        bridge = Bridge(probe)
        assert probe.wait_for(lambda: probe.node.count_publishers('cloud_request') > 0, 60)
        yield probe, bridge


class Bridge:
    """Answers every request about a frame after `delay_s`, as the bridge publishes replies."""

    def __init__(self, probe):
        self.probe = probe
        self.delay_s = 0.3
        self.requests: list = []
        probe.node.create_subscription(CloudRequest, 'cloud_request', self._on_request,
                                       CLOUD_REQUEST_QOS)

    def _on_request(self, msg: CloudRequest) -> None:
        self.requests.append(msg)
        delay = self.delay_s
        threading.Timer(delay, self._reply, (msg, delay)).start()

    def _reply(self, request: CloudRequest, delay: float) -> None:
        self.probe.cloud_pub.publish(CloudContext(
            header=request.header, keyframe_seq=len(self.requests), query=request.query,
            answer=REPLY, status=CloudContext.STATUS_OK, model='cloud', round_trip_s=delay,
            image_width=320, image_height=240))


def answers_to(probe, frames) -> list:
    stamps = {convert.stamp_key(f.header) for f in frames}
    return [a for a in probe.answers if convert.stamp_key(a.header) in stamps]


def stream(probe, seconds: float, rate_hz: float) -> list:
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frames.append(probe.publish_frame())
        time.sleep(1 / rate_hz)
    return frames


def test_auto_gives_the_cloud_reply_that_comes_in_time_then_stops_waiting_on_a_slow_link(rig):
    probe, bridge = rig
    frames = stream(probe, 3.0, 4.0)
    time.sleep(1.5)
    answered = answers_to(probe, frames)
    asked = {convert.stamp_key(r.header) for r in bridge.requests}
    assert {convert.stamp_key(a.header) for a in answered} <= asked  # it waited on each
    waited = [a for a in answered if a.source == 'cloud_wait']
    assert len(waited) >= len(answered) - 1 >= 5, [(a.source, a.latency_s) for a in answered]
    assert all(a.answer == REPLY and a.model == 'cloud' for a in waited)
    assert all(0.3 <= a.latency_s < 1.0 for a in waited)

    bridge.delay_s = 1.6  # now past the 1 s deadline
    frames = stream(probe, 4.0, 4.0)
    time.sleep(2.0)
    answered = answers_to(probe, frames)
    assert answered and not any(a.source == 'cloud_wait' for a in answered)
    # Until a 1.6 s round trip is known, the waits end at the deadline with the hedge; after
    # it, the edge answers at once without asking.
    hedged = [a for a in answered if a.latency_s >= 0.95]
    prompt = [a for a in answered if a.latency_s < 0.6]
    assert hedged and prompt, [round(a.latency_s, 2) for a in answered]
    assert max(convert.to_sec(a.header.stamp) for a in hedged) < \
        min(convert.to_sec(a.header.stamp) for a in prompt)
    assert all(a.source == 'edge_only' for a in answered)
