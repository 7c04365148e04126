"""Real node processes and a probe node that feeds them frames and collects what they say."""

from __future__ import annotations

import contextlib
import copy
import os
import pathlib
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from spotvlm_msgs.msg import CloudContext, CloudRequest, EdgeAnswer, FusedContext

from spotvlm_ros.io.frame_sources import moving_box_frames
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.images import rgb_to_image
from spotvlm_ros.nodes.qos import (ANSWER_QOS, CLOUD_CONTEXT_QOS, CLOUD_REQUEST_QOS,
                                   FUSED_CONTEXT_QOS, image_qos)
from spotvlm_ros.run import free_port, node_command, port_open, stop_all

CONFIG = str(pathlib.Path(__file__).parents[2] / 'config' / 'spotvlm.yaml')
# Small and fast for the tiny model on two cores.
EDGE = {'model.path': 'tiny', 'model.device': 'cpu', 'model.max_new_tokens': 4,
        'focus.token_budget': 64}


def calibration_preferring(path: pathlib.Path, source: str, query: str) -> str:
    """A calibration table at `path` that expects `source` to score 1.0 on `query` at every
    context age, and every other source 0.5; its path."""
    from spotvlm_ros.core.calibration import AGE_EDGES_S, MIN_SAMPLES, SOURCES, Sample, fit

    ages = [None, 0.5] + [edge + 0.5 for edge in AGE_EDGES_S]
    fit(Sample(s, query, 'vqa', age, 1.0 if s == source else 0.5)
        for s in SOURCES for age in ages for _ in range(MIN_SAMPLES)).save(path)
    return str(path)


def start_node(name: str, log_dir: pathlib.Path, **params) -> subprocess.Popen:
    """One node process with the project's params file and these overrides."""
    log = open(log_dir / f'{name}-{time.monotonic_ns()}.log', 'w')
    return subprocess.Popen(node_command(name, CONFIG, '', params), stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ))


def start_cloud_server(log_dir: pathlib.Path, delay_s: float) -> tuple:
    """The local cloud server on a free port with a constant delay; (process, port)."""
    from spotvlm_ros.models.tiny import tiny_checkpoint

    port = free_port()
    log = open(log_dir / f'cloud-server-{port}.log', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'spotvlm_ros.cloud.server', '--model', str(tiny_checkpoint()),
         '--served-model-name', 'tiny', '--port', str(port), '--max-new-tokens', '8',
         '--trace', 'constant', '--trace-param', f'delay_s={delay_s}'],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not port_open(port):
        assert proc.poll() is None and time.monotonic() < deadline, 'cloud server did not start'
        time.sleep(0.2)
    return proc, port


def stop(*procs: subprocess.Popen) -> dict:
    return stop_all({str(i): p for i, p in enumerate(procs)})


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'no VmRSS for {pid}')


class Probe:
    """A test node spun on its own thread: publishes frames, records answers and statuses."""

    def __init__(self):
        rclpy.init()
        self.node = rclpy.create_node('probe')
        self.answers: list[EdgeAnswer] = []
        self.fused: list[FusedContext] = []
        self.diagnostics: dict[str, list] = {}
        self.image_pub = self.node.create_publisher(Image, 'image', image_qos(True))
        self.cloud_pub = self.node.create_publisher(CloudContext, 'cloud_context',
                                                    CLOUD_CONTEXT_QOS)
        self.node.create_subscription(EdgeAnswer, 'answer', self.answers.append, ANSWER_QOS)
        self.node.create_subscription(FusedContext, 'fused_context', self.fused.append,
                                      FUSED_CONTEXT_QOS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        # A pool of ready messages, so the probe can publish at 100 Hz on a busy machine.
        self.pool = [rgb_to_image(f) for f in moving_box_frames(30, 320, 240)]
        self.sent: list = []

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics.setdefault(status.hardware_id, []).append(status)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_for_subscribers(self, count: int, timeout_s: float = 120) -> None:
        assert self.wait_for(lambda: self.image_pub.get_subscription_count() >= count, timeout_s), \
            f'{self.image_pub.get_subscription_count()} of {count} image subscribers'

    def wait_for_edge(self, timeout_s: float = 180) -> None:
        """Until an edge node has loaded its model (its answer publisher exists)."""
        assert self.wait_for(lambda: self.node.count_publishers('answer') > 0, timeout_s), \
            'edge node never loaded its model'

    def publish_frame(self, frame: np.ndarray = None) -> Image:
        """Publish a frame (the pool's next one by default), stamped now; returns it."""
        msg = self.pool[len(self.sent) % len(self.pool)] if frame is None else rgb_to_image(frame)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'test_camera'
        self.image_pub.publish(msg)
        self.sent.append(copy.deepcopy(msg.header))
        return msg

    def stream(self, seconds: float, rate_hz: float) -> int:
        """Publish frames at `rate_hz` for `seconds`; how many."""
        count, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            self.publish_frame()
            count += 1
            time.sleep(max(0.0, start + count / rate_hz - time.monotonic()))
        return count

    def latest_status(self, node_name: str):
        statuses = self.diagnostics.get(node_name) or [None]
        return statuses[-1]

    def status_values(self, node_name: str) -> dict:
        """The node's latest status as {key: value}; {} before its first status."""
        return values_of(self.latest_status(node_name))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        self._thread.join(5)


class RequestBridge:
    """Plays the cloud bridge for the edge node's waits: answers every cloud_request about a
    frame with `reply` after `delay_s`, as the bridge publishes replies."""

    def __init__(self, probe: Probe, reply: str, delay_s: float = 0.3):
        self.probe = probe
        self.reply = reply
        self.delay_s = delay_s
        self.requests: list = []
        probe.node.create_subscription(CloudRequest, 'cloud_request', self._on_request,
                                       CLOUD_REQUEST_QOS)

    def _on_request(self, msg: CloudRequest) -> None:
        self.requests.append(msg)
        delay = self.delay_s
        threading.Timer(delay, self.answer, (msg.header, msg.query, delay)).start()

    def answer(self, header, query: str, round_trip_s: float) -> None:
        """Publish the reply about the frame `header` stamps, as taking `round_trip_s`."""
        self.probe.cloud_pub.publish(CloudContext(
            header=header, keyframe_seq=len(self.requests), query=query, answer=self.reply,
            status=CloudContext.STATUS_OK, model='cloud', round_trip_s=round_trip_s,
            image_width=320, image_height=240))


def answers_to(probe: Probe, frames) -> list:
    """The probe's answers about these frames."""
    stamps = {convert.stamp_key(f.header) for f in frames}
    return [a for a in probe.answers if convert.stamp_key(a.header) in stamps]


def assert_cloud_answered_each_frame(probe: Probe, bridge: RequestBridge) -> None:
    """Stream 3 s of frames: each answer is about a frame asked of the bridge, and all but at
    most one are its reply, back within the 1 s deadline."""
    frames = stream_frames(probe, 3.0, 4.0)
    time.sleep(1.5)
    answered = answers_to(probe, frames)
    asked = {convert.stamp_key(r.header) for r in bridge.requests}
    assert {convert.stamp_key(a.header) for a in answered} <= asked  # it waited on each
    waited = [a for a in answered if a.source == 'cloud_wait']
    assert len(waited) >= len(answered) - 1 >= 5, [(a.source, a.latency_s) for a in answered]
    assert all(a.answer == bridge.reply and a.model == 'cloud' for a in waited)
    assert all(bridge.delay_s <= a.latency_s < 1.0 for a in waited)


def late_then_prompt(answered: list, late_s: float) -> tuple:
    """(the answers given at the deadline, at or after `late_s`; those under 0.6 s), both
    required, every late one about an earlier frame than every prompt one."""
    late = [a for a in answered if a.latency_s >= late_s]
    prompt = [a for a in answered if a.latency_s < 0.6]
    assert late and prompt, [round(a.latency_s, 2) for a in answered]
    assert max(convert.to_sec(a.header.stamp) for a in late) < \
        min(convert.to_sec(a.header.stamp) for a in prompt)
    return late, prompt


def stream_frames(probe: Probe, seconds: float, rate_hz: float) -> list:
    """Publish frames at about `rate_hz` for `seconds`; the frames."""
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frames.append(probe.publish_frame())
        time.sleep(1 / rate_hz)
    return frames


def blob_texture(height: int = 240, width: int = 320) -> np.ndarray:
    """Random 4 px blobs: a frame optical flow can track."""
    texture = np.random.default_rng(5).integers(0, 256, (height // 4, width // 4, 3),
                                                dtype=np.uint8)
    return np.repeat(np.repeat(texture, 4, axis=0), 4, axis=1)


def reply_with_box(header, box: tuple, keyframe_seq: int = 1) -> CloudContext:
    """A cloud reply about the frame of `header` with one 'car' region at `box` (320x240)."""
    from spotvlm_msgs.msg import Region

    return CloudContext(header=copy.deepcopy(header), keyframe_seq=keyframe_seq, query='where?',
                        answer='a car ahead', model='cloud', status=CloudContext.STATUS_OK,
                        image_width=320, image_height=240,
                        regions=[Region(label='car', score=1.0, x1=box[0], y1=box[1],
                                        x2=box[2], y2=box[3], source='cloud')])


def region_fused_for(probe: 'Probe', header):
    """The first region of the newest fused context for the frame of `header`, or None."""
    fused = [f for f in probe.fused if f.header.stamp == header.stamp and f.focus_regions]
    return fused[-1].focus_regions[0] if fused else None


def values_of(status) -> dict:
    """A DiagnosticStatus's values as {key: value}; {} for None."""
    return {kv.key: kv.value for kv in status.values} if status is not None else {}


def send_goal(client, goal, wait_for, feedback_callback=None, attempts: int = 3):
    """Send a goal and return its accepted handle.

    A goal sent right after wait_for_server can lose its response while the server's reply
    writer has not matched this client yet (DDS discovery of the service pair is separate);
    the goal is then sent again, and the first one answered wins.
    """
    for _ in range(attempts):
        sent = client.send_goal_async(goal, feedback_callback=feedback_callback)
        if wait_for(sent.done, 10):
            handle = sent.result()
            assert handle.accepted, 'goal rejected'
            return handle
    raise AssertionError(f'no goal response after {attempts} attempts')


@contextlib.contextmanager
def edge_and_fuser(logs: pathlib.Path, fuser_params: dict = None, edge_params: dict = None):
    """A fuser and an edge node as processes, and a probe that both already hear.

    Yields (probe, procs); procs may be replaced (a restarted node) and all are stopped at
    the end, each required to exit cleanly.
    """
    procs = {'fuser': start_node('context_fuser', logs, **(fuser_params or {})),
             'edge': start_node('edge_node', logs, **{**EDGE, **(edge_params or {})})}
    probe = Probe()
    try:
        probe.wait_for_edge()
        probe.wait_for_subscribers(2)
        yield probe, procs
    finally:
        probe.close()
        codes = stop(*procs.values())
        assert all(code == 0 for code in codes.values()), f'unclean exits {codes}; logs in {logs}'


@contextlib.contextmanager
def edge_with_request_bridge(logs: pathlib.Path, edge_params: dict, reply: str):
    """edge_and_fuser, and a RequestBridge answering `reply` that the edge node already asks;
    yields (probe, bridge)."""
    with edge_and_fuser(logs, edge_params=edge_params) as (probe, _):
        bridge = RequestBridge(probe, reply)
        assert probe.wait_for(lambda: probe.node.count_publishers('cloud_request') > 0, 60)
        yield probe, bridge
