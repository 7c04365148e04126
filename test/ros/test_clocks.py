"""The bridge's circuit breaker on frames stamped far from now: recorded bag stamps
(`restamp: false`) and sim time. It must close again once the cloud recovers."""

import json
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'faults'))
import scenarios as sc  # noqa: E402

from harness import Probe, start_node, stop  # noqa: E402
from spotvlm_msgs.msg import CloudContext  # noqa: E402
from spotvlm_ros.nodes.qos import CLOUD_CONTEXT_QOS  # noqa: E402
from spotvlm_ros.run import free_port, port_open  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BAG_START_S = 1000.0  # a recording's stamps: 55 years before the wall clock


class _Cloud:
    """The fault server alone, on a free port, with the bridge's key."""

    def __init__(self, logs: pathlib.Path, mode: str):
        self.port = free_port()
        self.log = open(logs / f'fault-server-{self.port}.log', 'w')
        self.proc = subprocess.Popen(
            [sys.executable, str(sc.FAULT_SERVER), '--port', str(self.port), '--mode', mode,
             '--api-key-env', sc.KEY_ENV], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)

    def set_fault(self, mode: str, **extra) -> None:
        request = urllib.request.Request(
            f'http://127.0.0.1:{self.port}/_fault', method='POST',
            data=json.dumps({'mode': mode, **extra}).encode(),
            headers={'Content-Type': 'application/json'})
        urllib.request.urlopen(request, timeout=5).close()


def _to_time(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def _run(tmp_path, monkeypatch, sim_time: bool) -> tuple:
    """Fail the cloud until the breaker opens, heal it; the statuses of every reply after."""
    monkeypatch.setenv(sc.KEY_ENV, 'sk-clock-test-key')
    cloud = _Cloud(tmp_path, '500')
    params = {**sc.bridge_params(cloud.port), 'cloud.retries': 0,
              'keyframe.min_interval_s': 0.2, 'keyframe.max_interval_s': 0.3,
              'keyframe.max_in_flight': 1, 'image_reliable': True}
    if sim_time:
        params['use_sim_time'] = True
    bridge = start_node('cloud_bridge', tmp_path, **params)
    probe = Probe()
    replies: list = []
    probe.node.create_subscription(CloudContext, 'cloud_context', replies.append,
                                   CLOUD_CONTEXT_QOS)
    clock = probe.node.create_publisher(Clock, '/clock', 10)
    sim = {'t': 50.0}
    try:
        probe.wait_for_subscribers(1)

        def publish(i: int) -> None:
            # Bag stamps run with real time from 1000 s; sim time at half speed from 50 s.
            stamp = sim['t'] if sim_time else BAG_START_S + i * 0.1
            if sim_time:
                clock.publish(Clock(clock=_to_time(stamp)))
                sim['t'] += 0.05
            msg = probe.pool[i % len(probe.pool)]
            msg.header.stamp = _to_time(stamp)
            probe.image_pub.publish(msg)

        frames = iter(range(10**6))

        def stream(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                publish(next(frames))
                time.sleep(0.1)

        assert probe.wait_for(lambda: (stream(0.5) or True) and sum(
            r.status == r.STATUS_ERROR for r in replies) >= 3, 30), 'the cloud never failed'
        healed = len(replies)
        cloud.set_fault('ok', delay_s=0.05)
        probe.wait_for(lambda: (stream(0.5) or True) and any(
            r.status == r.STATUS_OK for r in replies[healed:]), 15)
        return [r.status for r in replies[healed:]], _breaker(probe)
    finally:
        probe.close()
        stop(bridge, cloud.proc)


def _breaker(probe: Probe) -> str:
    status = probe.latest_status('cloud_bridge')
    return status.message if status is not None else 'no status'


def test_the_breaker_closes_again_on_recorded_bag_stamps(tmp_path, monkeypatch):
    statuses, breaker = _run(tmp_path, monkeypatch, sim_time=False)
    assert CloudContext.STATUS_OK in statuses, f'no keyframe after the cloud healed: {breaker}'


def test_the_breaker_closes_again_on_sim_time(tmp_path, monkeypatch):
    statuses, breaker = _run(tmp_path, monkeypatch, sim_time=True)
    assert CloudContext.STATUS_OK in statuses, f'no keyframe after the cloud healed: {breaker}'
