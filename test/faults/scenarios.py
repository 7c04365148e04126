"""Fault scenarios against the real nodes: one rig (fuser, edge, bridge, fault server, probe).

Shared by the tests (test/ros/test_faults_*.py, short runs) and benchmarks/fault_table.py (the
table in docs/faults.md). Every scenario streams good frames before, during and after its fault
and measures: whether the edge kept answering during the fault, answers lost (frames the edge
says it answered minus answers received), recovery time and peak resident memory.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'test' / 'ros'))
from harness import EDGE, Probe, rss_mb, start_node, stop, values_of  # noqa: E402

from spotvlm_msgs.msg import CloudContext  # noqa: E402
from spotvlm_ros.nodes.qos import CLOUD_CONTEXT_QOS  # noqa: E402
from spotvlm_ros.run import free_port, port_open  # noqa: E402

FAULT_SERVER = ROOT / 'test' / 'resources' / 'fault_server.py'
KEY_ENV = 'SPOTVLM_FAULT_TEST_KEY'
RATE_HZ = 5.0
FUSER = {'context.max_age_s': 30.0}


def bridge_params(port: int) -> dict:
    """A bridge that gives up fast, so each fault shows within seconds."""
    return {'cloud.base_url': f'http://127.0.0.1:{port}/v1', 'cloud.model': 'tiny',
            'cloud.api_key_env': KEY_ENV, 'cloud.timeout_s': 3.0, 'cloud.retries': 1,
            'cloud.max_in_flight': 4, 'keyframe.max_in_flight': 2,
            'keyframe.min_interval_s': 0.4, 'keyframe.max_interval_s': 1.0,
            'keyframe.breaker_failures': 3, 'keyframe.breaker_cooldown_s': 1.0}


@dataclass
class Row:
    """One line of the fault table."""

    fault: str
    kept_answering: Optional[bool]  # None: no frames to answer during the fault
    rate_hz: float  # answers per second to frames sent during the fault
    baseline_hz: float
    processed: int  # frames the edge says it answered during the scenario
    received: int  # answers that arrived
    recovery_s: Optional[float]  # None: did not recover within the scenario's limit
    peak_rss_mb: dict = field(default_factory=dict)
    note: str = ''

    @property
    def lost(self) -> int:
        return max(0, self.processed - self.received)

    def line(self) -> str:
        """The row of the fault table (docs/faults.md)."""
        rss = ' / '.join(f'{self.peak_rss_mb.get(n, 0):.0f}' for n in ('edge', 'fuser', 'bridge'))
        kept = {True: 'yes', False: 'NO', None: 'n/a (no frames)'}[self.kept_answering]
        kept += f' ({self.rate_hz:.1f} Hz)' if self.kept_answering is not None else ''
        recovery = 'none' if self.recovery_s is None else f'{self.recovery_s:.1f}'
        return (f'| {self.fault} | {kept} | {self.lost} of {self.processed} | {recovery} | '
                f'{rss} | {self.note} |')


class MemoryWatch(threading.Thread):
    """Samples every watched process's RSS twice a second; keeps the peaks since reset()."""

    def __init__(self, procs: dict):
        super().__init__(daemon=True)
        self.procs = procs
        self.peaks: dict = {}
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.5):
            for name, proc in list(self.procs.items()):
                try:
                    self.peaks[name] = max(self.peaks.get(name, 0.0), rss_mb(proc.pid))
                except (OSError, RuntimeError):
                    pass  # gone or restarting

    def reset(self) -> None:
        self.peaks = {}

    def close(self) -> None:
        self._stop.set()


class Rig:
    """Edge, fuser and bridge as processes, the fault server, a probe; started once."""

    def __init__(self, log_dir: pathlib.Path, api_key: str = 'sk-fault-test-5ecret-8d1f'):
        self.log_dir = log_dir
        self.api_key = api_key
        os.environ[KEY_ENV] = api_key  # the bridge and server read it from their environment
        self.port = free_port()
        self.server = self._start_server()
        self.procs = {'fuser': start_node('context_fuser', log_dir, **FUSER),
                      'edge': start_node('edge_node', log_dir, **EDGE),
                      'bridge': start_node('cloud_bridge', log_dir, **bridge_params(self.port))}
        self.probe = Probe()
        self.cloud: list = []  # (arrival monotonic, CloudContext)
        self.probe.node.create_subscription(
            CloudContext, 'cloud_context', lambda m: self.cloud.append((time.monotonic(), m)),
            CLOUD_CONTEXT_QOS)
        self.memory = MemoryWatch(self.procs)
        self.memory.start()
        self.probe.wait_for_edge()
        self.probe.wait_for_subscribers(3)

    def _start_server(self) -> subprocess.Popen:
        log = open(self.log_dir / f'fault-server-{self.port}.log', 'w')
        proc = subprocess.Popen([sys.executable, str(FAULT_SERVER), '--port', str(self.port),
                                 '--api-key-env', KEY_ENV], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            assert proc.poll() is None and time.monotonic() < deadline, 'fault server did not start'
            time.sleep(0.1)
        return proc

    def set_fault(self, mode: str, **extra) -> dict:
        """Switch the fault server's behaviour; its state."""
        request = urllib.request.Request(
            f'http://127.0.0.1:{self.port}/_fault', method='POST',
            data=json.dumps({'mode': mode, **extra}).encode(),
            headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=5) as reply:
            return json.loads(reply.read())

    def stop_server(self) -> None:
        stop(self.server)

    def restart_server(self) -> None:
        self.server = self._start_server()

    def restart(self, name: str) -> None:
        """SIGKILL one node and start it again at once (a crash and a supervisor's restart)."""
        module = {'fuser': 'context_fuser', 'edge': 'edge_node', 'bridge': 'cloud_bridge'}[name]
        params = {'fuser': FUSER, 'edge': EDGE, 'bridge': bridge_params(self.port)}[name]
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.procs[name] = start_node(module, self.log_dir, **params)

    def edge_processed(self) -> int:
        """Frames answered by every edge incarnation so far, from its diagnostics."""
        total, previous = 0, 0
        for status in list(self.probe.diagnostics.get('edge_node', [])):
            value = int(values_of(status).get('answered', 0))
            if value < previous:  # a restarted node counts from zero
                total += previous
            previous = value
        return total + previous

    def ok_contexts_since(self, t: float) -> list:
        return [m for arrival, m in self.cloud if arrival >= t and m.status == CloudContext.STATUS_OK]

    def close(self) -> dict:
        self.memory.close()
        self.probe.close()
        codes = stop(*self.procs.values(), self.server)
        return codes


def stream_with(probe: Probe, seconds: float, extra: Optional[Callable[[int], None]] = None,
                rate_hz: float = RATE_HZ) -> list:
    """Publish good frames at `rate_hz` (and `extra(i)` before each); the headers sent."""
    sent, start, i = [], time.monotonic(), 0
    while time.monotonic() - start < seconds:
        if extra is not None:
            extra(i)
        sent.append(probe.publish_frame().header)
        i += 1
        time.sleep(max(0.0, start + i / rate_hz - time.monotonic()))
    return sent


def stamp_of(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def answers_to(probe: Probe, headers: list) -> list:
    """The answers received for these frames."""
    stamps = {(h.stamp.sec, h.stamp.nanosec) for h in headers}
    return [a for a in list(probe.answers)
            if (a.header.stamp.sec, a.header.stamp.nanosec) in stamps]


def first_answer_after(probe: Probe, t_wall_stamp: float, timeout_s: float) -> Optional[float]:
    """Seconds until an answer arrives for a frame stamped after `t_wall_stamp` (ROS time)."""
    start = time.monotonic()
    ok = probe.wait_for(lambda: any(stamp_of(a.header) >= t_wall_stamp
                                    for a in list(probe.answers)[-20:]), timeout_s)
    return time.monotonic() - start if ok else None


def now_stamp(probe: Probe) -> float:
    return probe.node.get_clock().now().nanoseconds * 1e-9


def run(rig: Rig, fault: str, inject: Callable[[], None], recovered: Callable[[float], bool],
        during: Optional[Callable[[int], None]] = None, fault_s: float = 6.0,
        restore: Optional[Callable[[], None]] = None, recover_limit_s: float = 60.0,
        baseline_s: float = 3.0, note: str = '', stream_during: bool = True) -> Row:
    """One scenario: baseline, fault (inject, stream, `during` per frame), restore, recovery.

    `recovered(t0)` says whether the system is whole again, t0 being the monotonic time the
    fault ended; recovery time is measured from then.
    """
    probe = rig.probe
    rig.memory.reset()
    processed_before, answers_before = rig.edge_processed(), len(probe.answers)
    base = stream_with(probe, baseline_s)
    window_start = now_stamp(probe)
    inject()
    if stream_during:
        stream_with(probe, fault_s, during)
    else:
        time.sleep(fault_s)
    window_end = now_stamp(probe)
    if restore is not None:
        restore()
    t0 = time.monotonic()
    recovery = None
    while time.monotonic() - t0 < recover_limit_s:
        stream_with(probe, 0.2)
        if recovered(t0):
            recovery = time.monotonic() - t0
            break
    stream_with(probe, 1.0)
    time.sleep(2.5)  # the last answers, and a diagnostics message that counts them
    base_hz = len(answers_to(probe, base)) / baseline_s
    # Answers to any frame sent during the fault (the fault's own frames count too).
    rate = sum(window_start <= stamp_of(a.header) < window_end
               for a in list(probe.answers)) / fault_s
    kept = rate >= 0.5 * base_hz and rate > 0 if stream_during else None
    row = Row(fault, kept, rate, base_hz,
              rig.edge_processed() - processed_before, len(probe.answers) - answers_before,
              recovery, dict(rig.memory.peaks), note)
    return row


# Cloud faults -----------------------------------------------------------------------------

def cloud_recovered(rig: Rig) -> Callable[[float], bool]:
    """Recovered: an OK reply for a keyframe sent after the fault ended has been published."""
    def check(t0: float) -> bool:
        return bool(rig.ok_contexts_since(t0))
    return check


def cloud_fault(rig: Rig, mode: str, fault_s: float = 6.0, note: str = '', **extra) -> Row:
    """Switch the server to `mode` for `fault_s`, then back to ok."""
    return run(rig, f'cloud: {mode}', lambda: rig.set_fault(mode, **extra), cloud_recovered(rig),
               fault_s=fault_s, restore=lambda: rig.set_fault('ok', delay_s=0.3), note=note)


def cloud_outage(rig: Rig, fault_s: float = 6.0) -> Row:
    """The server process is gone: connections are refused."""
    return run(rig, 'cloud: outage (connection refused)', rig.stop_server, cloud_recovered(rig),
               fault_s=fault_s, restore=rig.restart_server)


def cloud_reorder(rig: Rig) -> Row:
    """Replies overtake each other; older ones are cancelled. None may be published late."""
    start = len(rig.cloud)
    superseded = int(bridge_value(rig, 'superseded'))
    row = cloud_fault(rig, 'reorder', fault_s=8.0)
    published = [m for _, m in rig.cloud[start:] if m.status == CloudContext.STATUS_OK]
    newest, late = 0.0, 0
    for msg in published:
        late += stamp_of(msg.header) < newest
        newest = max(newest, stamp_of(msg.header))
    cancelled = int(bridge_value(rig, 'superseded')) - superseded
    row.note = (f'{cancelled} cancelled as superseded, {late} of {len(published)} replies '
                f'published older than one before them')
    return row


def bridge_value(rig: Rig, key: str) -> str:
    """The bridge's latest diagnostics value for `key`."""
    return rig.probe.status_values('cloud_bridge').get(key, '0')


# Camera faults ----------------------------------------------------------------------------

def bad_image(kind: str, probe: Probe):
    """A malformed or extreme Image message."""
    from sensor_msgs.msg import Image

    good = probe.pool[0]
    if kind == 'zero':
        return Image(height=0, width=0, encoding='rgb8', step=0)
    if kind == 'longer':
        msg = Image(height=good.height, width=good.width, encoding='rgb8', step=good.step)
        msg.data = bytes(good.data) + bytes(1000)
        return msg
    if kind == 'shorter':
        msg = Image(height=good.height, width=good.width, encoding='rgb8', step=good.step)
        msg.data = bytes(good.data)[:-1000]
        return msg
    if kind == 'encoding':
        msg = Image(height=good.height, width=good.width, encoding='yuv422', step=good.step)
        msg.data = bytes(good.data)
        return msg
    raise ValueError(kind)


def camera_fault(rig: Rig, kind: str, label: str, note: str = '') -> Row:
    """Every good frame preceded by a bad one of `kind`; the edge must answer the good ones."""
    probe = rig.probe
    msg = bad_image(kind, probe)

    def publish_bad(i: int) -> None:
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        probe.image_pub.publish(msg)

    return run(rig, f'camera: {label}', lambda: None, edge_recovered(rig), during=publish_bad,
               note=note)


def edge_recovered(rig: Rig) -> Callable[[float], bool]:
    """Recovered: an answer to a good frame sent after the fault ended has arrived."""
    def check(t0: float) -> bool:
        return first_answer_after(rig.probe, now_stamp(rig.probe) - (time.monotonic() - t0),
                                  0) is not None
    return check


def camera_8k(rig: Rig) -> Row:
    """Two 7680x4320 frames a second between good ones (100 MB each on the wire)."""
    probe = rig.probe
    big = np.full((4320, 7680, 3), 90, np.uint8)
    big[1000:2000, 3000:5000] = (200, 40, 40)
    from spotvlm_ros.nodes.images import rgb_to_image
    msg = rgb_to_image(big)

    def publish_big(i: int) -> None:
        if i % 3 == 0:
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            probe.image_pub.publish(msg)

    return run(rig, 'camera: 8K frames (7680x4320)', lambda: None, edge_recovered(rig),
               during=publish_big, note='accepted (limit 8192 px a side)')


def camera_flood(rig: Rig) -> Row:
    """100 Hz for the fault's length."""
    return run(rig, 'camera: 100 Hz flood', lambda: None, edge_recovered(rig),
               during=lambda i: [rig.probe.publish_frame() for _ in range(19)],
               note='latest-frame policy drops the rest')


def camera_backwards(rig: Rig) -> Row:
    """Frame stamps jump 30 s into the past and go on from there."""
    probe = rig.probe
    fused_before = len(probe.fused)

    def publish_past(i: int) -> None:
        msg = probe.pool[i % len(probe.pool)]
        t = probe.node.get_clock().now().nanoseconds - 30 * 10**9
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 10**9)
        probe.image_pub.publish(msg)

    def fused_follows(t0: float) -> bool:
        # The fuser must publish contexts for the new (earlier) timeline, not wait 30 s.
        return any(stamp_of(f.header) < now_stamp(probe) - 20 for f in probe.fused[fused_before:])

    row = run(rig, 'camera: timestamps 30 s backwards', lambda: None, fused_follows,
              during=publish_past, recover_limit_s=20)
    return row


def camera_gap(rig: Rig, gap_s: float = 5.0) -> Row:
    """No frames at all for `gap_s`."""
    return run(rig, f'camera: {gap_s:g} s gap', lambda: None, edge_recovered(rig),
               fault_s=gap_s, stream_during=False, note='no frames: nothing to answer')


# Process faults ---------------------------------------------------------------------------

def process_kill(rig: Rig, name: str) -> Row:
    """SIGKILL `name` mid-stream and restart it; recovery from the kill."""
    probe = rig.probe
    killed_at = {}

    def kill() -> None:
        killed_at['t'] = time.monotonic()
        rig.restart(name)

    def whole(t0: float) -> bool:
        t = killed_at['t']
        if name == 'edge':
            return first_answer_after(probe, now_stamp(probe) - (time.monotonic() - t), 0) \
                is not None
        if name == 'fuser':
            return probe.node.count_publishers('fused_context') > 0 and any(
                stamp_of(f.header) >= now_stamp(probe) - (time.monotonic() - t)
                for f in list(probe.fused)[-10:])
        return bool(rig.ok_contexts_since(t))

    row = run(rig, f'process: {name} killed, restarted', kill, whole, fault_s=1.0,
              recover_limit_s=180)
    # Recovery counts from the kill, not from the end of the fault phase.
    if row.recovery_s is not None:
        row.recovery_s += 1.0
    return row


# Bags -------------------------------------------------------------------------------------

def bag_row(rig: Rig, label: str, bag: pathlib.Path, expect_frames: bool) -> Row:
    """Play a bag with image_source (a process); did it exit cleanly, did the edge answer it."""
    probe = rig.probe
    rig.memory.reset()
    processed_before, answers_before = rig.edge_processed(), len(probe.answers)
    started, t0 = now_stamp(probe), time.monotonic()
    source = start_node('image_source', rig.log_dir, **{'source.path': str(bag),
                                                        'wait_for_subscribers': 3,
                                                        'wait_timeout_s': 10.0})
    rig.memory.procs['source'] = source
    try:
        code = source.wait(60)
    except subprocess.TimeoutExpired:
        code = stop(source)['0']
    played_s = time.monotonic() - t0
    rig.memory.procs.pop('source', None)
    time.sleep(2.5)
    from_bag = [a for a in list(probe.answers)[answers_before:]
                if stamp_of(a.header) >= started and a.header.frame_id == 'camera']
    # Recovery: the live camera (the probe) is answered again after the bag is over.
    ended, t_end = now_stamp(probe), time.monotonic()
    recovery = None
    while recovery is None and time.monotonic() - t_end < 20:
        stream_with(probe, 0.2)
        if first_answer_after(probe, ended, 0) is not None:
            recovery = time.monotonic() - t_end
    time.sleep(2.5)  # the last answers, and a diagnostics message that counts them
    log = sorted(rig.log_dir.glob('image_source-*.log'))[-1].read_text()
    said = next((line.split(']: ', 1)[-1] for line in log.splitlines()
                 if 'ERROR' in line or 'WARN' in line), 'no warning')
    row = Row(f'bag: {label}', bool(from_bag) if expect_frames else None,
              len(from_bag) / max(1e-9, played_s), 0.0,
              rig.edge_processed() - processed_before, len(probe.answers) - answers_before,
              recovery, dict(rig.memory.peaks), f'image_source exit {code}; {said[:70]}')
    return row


def truncated_bag(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """A copy of a bag whose MCAP file is cut in half (a recording that lost power)."""
    import shutil

    shutil.copytree(src, dst)
    mcap = next(dst.glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    return dst


def bag_with_unknown_type(path: pathlib.Path, frames: list) -> pathlib.Path:
    """Images plus a topic of a message type no installed package defines."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg('float64 speed\nstring note', 'acme_msgs/msg/Secret'))
    Image, Secret = store.types['sensor_msgs/msg/Image'], store.types['acme_msgs/msg/Secret']
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection('/camera/image_raw', Image.__msgtype__, typestore=store)
        secrets = writer.add_connection('/acme/secret', Secret.__msgtype__, typestore=store)
        for i, frame in enumerate(frames):
            t_ns = round((1_700_000_000.0 + i * 0.1) * 1e9)
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id='camera')
            image = Image(header=header, height=frame.shape[0], width=frame.shape[1],
                          encoding='rgb8', is_bigendian=0, step=frame.shape[1] * 3,
                          data=np.ascontiguousarray(frame).reshape(-1))
            writer.write(images, t_ns, store.serialize_cdr(image, Image.__msgtype__))
            writer.write(secrets, t_ns + 1, store.serialize_cdr(Secret(speed=float(i), note='x'),
                                                                Secret.__msgtype__))
    return path


def median(values) -> float:
    return statistics.median(values) if values else float('nan')
