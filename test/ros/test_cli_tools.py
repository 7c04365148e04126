"""`spotvlm ask`, `spotvlm watch` and `spotvlm trace-from-bag` as a user runs them: real processes."""

import math
import os
import pathlib
import subprocess
import sys
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from spotvlm_msgs.msg import CloudContext, EdgeAnswer

from spotvlm_ros.core.traces import LatencyTrace
from spotvlm_ros.nodes.qos import ANSWER_QOS, CLOUD_CONTEXT_QOS
from spotvlm_ros.testing.relay import stop_process, wait_until

pytestmark = pytest.mark.ros
SERVER = pathlib.Path(__file__).parents[1] / 'resources' / 'ask_server.py'


def spotvlm(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', 'spotvlm_ros.cli', *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ask_streams_the_feedback_and_prints_the_answer():
    action = f'ask_{os.getpid()}'
    server = subprocess.Popen([sys.executable, str(SERVER), action])
    try:
        out, err = spotvlm('ask', 'is the road clear', '--action', action).communicate(timeout=90)
    finally:
        assert stop_process(server) == 0
    lines = out.splitlines()
    assert lines[0] == 'clear road the is', (out, err)  # the feedback, word by word
    assert lines[1].startswith('[answer] frame') and "'clear road the is'" in lines[1], out


def test_ask_without_an_edge_node_says_so_in_one_line():
    proc = spotvlm('ask', 'anyone?', '--action', f'nobody_{os.getpid()}', '--wait', '2')
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert len(err.strip().splitlines()) == 1 and 'spotvlm run' in err, err


def test_watch_prints_answers_cloud_contexts_and_diagnostics_as_they_arrive(node):
    answers = node.create_publisher(EdgeAnswer, 'answer', ANSWER_QOS)
    clouds = node.create_publisher(CloudContext, 'cloud_context', CLOUD_CONTEXT_QOS)
    diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    watch = spotvlm('watch', '--count', '3', '--duration', '90')
    try:
        assert wait_until(node, lambda: answers.get_subscription_count() > 0
                          and diagnostics.get_subscription_count() > 0, 60), 'watch never subscribed'
        for i in range(50):
            if watch.poll() is not None:
                break
            answer = EdgeAnswer(answer=f'red {i}', latency_s=0.25, context_age_s=1.5)
            answer.header.stamp.sec = 100 + i
            answers.publish(answer)
            clouds.publish(CloudContext(keyframe_seq=i, answer='red light', round_trip_s=2.0))
            diagnostics.publish(DiagnosticArray(status=[DiagnosticStatus(
                level=DiagnosticStatus.WARN, name='edge_node', message='slow')]))
            wait_until(node, lambda: False, 0.5)
        out, err = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert "[answer] frame 100.000 latency 250 ms context age 1.50 s | 'red 0'" in out, out
    assert out.count('[answer]') == 3
    assert "[cloud] keyframe 0" in out and "'red light' (0 regions)" in out
    assert '[diagnostics] edge_node WARN: slow' in out


def write_cloud_bag(path: pathlib.Path, round_trips: list) -> None:
    """CloudContext messages as a bridge publishes them: (request time s, round trip, status)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from spotvlm_ros.io.bags import CLOUD_CONTEXT_TYPE, spotvlm_typestore

    store = spotvlm_typestore()
    Msg, Time, Header = (store.types[n] for n in (
        CLOUD_CONTEXT_TYPE, 'builtin_interfaces/msg/Time', 'std_msgs/msg/Header'))

    def stamp(t):
        return Time(sec=int(t), nanosec=round((t - int(t)) * 1e9))

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/front/cloud_context', CLOUD_CONTEXT_TYPE, typestore=store)
        # Written in arrival order: a late reply comes after a quicker, newer one.
        order = sorted(range(len(round_trips)), key=lambda i: sum(round_trips[i][:2]))
        for i in order:
            sent, rtt, status = round_trips[i]
            msg = Msg(header=Header(stamp=stamp(sent - 0.05), frame_id='cam'), keyframe_seq=i + 1,
                      query='q', answer='a', regions=[], image_width=4, image_height=3,
                      model='m', request_stamp=stamp(sent), response_stamp=stamp(sent + rtt),
                      round_trip_s=rtt, status=status, error_message='')
            writer.write(conn, round((sent + rtt) * 1e9), store.serialize_cdr(msg, CLOUD_CONTEXT_TYPE))


def test_trace_from_bag_writes_the_recorded_round_trips_as_a_trace(tmp_path):
    trips = [(1_700_000_000.0, 1.25, 0), (1_700_000_000.5, 3.0, 1), (1_700_000_001.0, 0.5, 0),
             (1_700_000_002.0, 0.75, 2)]
    write_cloud_bag(tmp_path / 'drive', trips)
    proc = spotvlm('trace-from-bag', tmp_path / 'drive', '-o', tmp_path / 'link.csv')
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '4 round trips (2 ok, 1 timeouts)' in err
    trace = LatencyTrace.from_csv(tmp_path / 'link.csv')
    assert trace.times_s.tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0])
    delays = trace.delays_s.tolist()
    assert delays[0] == pytest.approx(1.25) and delays[2] == pytest.approx(0.5)
    assert math.isnan(delays[1]), 'a timeout is an outage of the link'
    assert delays[3] == pytest.approx(0.75), 'an error reply still took its round trip'
