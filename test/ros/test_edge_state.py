"""The edge node's own state under two image publishers and a dead fuser (real processes)."""

import threading
import time

import pytest
import rclpy
from sensor_msgs.msg import Image
from spotvlm_msgs.msg import CloudContext

from harness import edge_and_fuser, stop
from spotvlm_ros.io.frame_sources import moving_box_frames
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.images import rgb_to_image
from spotvlm_ros.nodes.qos import image_qos

pytestmark = [pytest.mark.ros, pytest.mark.slow]
MAX_AGE_S = 2.0


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    logs = tmp_path_factory.mktemp('edge-state-logs')
    with edge_and_fuser(logs, edge_params={'context.max_age_s': MAX_AGE_S}) as rigged:
        yield rigged


def _counts(probe) -> dict:
    return probe.status_values('edge_node')


def _publisher_thread(publish, stamp_offset_s: float, seconds: float, rate_hz: float, clock):
    def run():
        start, n = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            publish(n, clock.now().nanoseconds * 1e-9 + stamp_offset_s)
            n += 1
            time.sleep(max(0.0, start + n / rate_hz - time.monotonic()))
    return threading.Thread(target=run)


def test_two_publishers_never_make_an_older_frame_answered_after_a_newer_one(rig):
    probe, _ = rig
    second = rclpy.create_node('second_camera')
    pub_b = second.create_publisher(Image, 'image', image_qos(True))
    pool_a = probe.pool
    pool_b = [rgb_to_image(f) for f in moving_box_frames(30, 320, 240)]
    try:
        assert probe.wait_for(lambda: probe.image_pub.get_subscription_count() >= 2
                              and pub_b.get_subscription_count() >= 2, 60)
        sent = {'a': 0, 'b': 0}

        def publisher(pool, pub, key):
            def publish(n, stamp):
                msg = pool[n % len(pool)]
                msg.header.stamp = convert.to_stamp(stamp)
                msg.header.frame_id = key
                pub.publish(msg)
                sent[key] += 1
            return publish

        time.sleep(1.5)  # quiet: earlier frames are all counted
        before = _counts(probe)
        start = len(probe.answers)
        clock = probe.node.get_clock()
        # Camera b relays the same scene 0.5 s late: its frames are always the older ones.
        threads = [_publisher_thread(publisher(pool_a, probe.image_pub, 'a'), 0.0, 4.0, 15, clock),
                   _publisher_thread(publisher(pool_b, pub_b, 'b'), -0.5, 4.0, 15, clock)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(3.0)  # the last answer and the diagnostics that count it
        stamps = [convert.to_sec(a.header.stamp) for a in probe.answers[start:]]
        assert len(stamps) >= 5, f'only {len(stamps)} answers'
        back = [(x, y) for x, y in zip(stamps, stamps[1:]) if y < x]
        assert not back, f'{len(back)} answers to a frame older than the one answered before'
        after = _counts(probe)
        delta = {k: int(after[k]) - int(before[k]) for k in ('received', 'answered', 'dropped')}
        # Every frame received is answered or dropped, none counted twice or lost.
        assert delta['received'] == delta['answered'] + delta['dropped'], delta
        assert delta['received'] >= 0.8 * (sent['a'] + sent['b']), (delta, sent)
    finally:
        second.destroy_node()


def test_a_dead_fusers_last_context_expires_with_a_diagnostic(rig):
    probe, procs = rig

    def stream_with_reply(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = probe.publish_frame()
            probe.cloud_pub.publish(CloudContext(
                header=frame.header, keyframe_seq=len(probe.sent), query='What now?',
                answer='A red light is ahead.', status=CloudContext.STATUS_OK, model='m',
                image_width=320, image_height=240))
            time.sleep(0.2)

    start = len(probe.answers)
    assert probe.wait_for(lambda: (stream_with_reply(0.4) or True) and any(
        a.used_context for a in probe.answers[start:]), 60), 'the edge never used the context'
    stop(procs['fuser'])  # its last fused context stays latched (transient local) at the edge
    killed = convert.to_sec(probe.node.get_clock().now().to_msg())
    probe.stream(MAX_AGE_S + 3.0, 5.0)
    time.sleep(2.0)
    late = [a for a in probe.answers[start:]
            if convert.to_sec(a.header.stamp) > killed + MAX_AGE_S + 0.5]
    assert late, 'no answers after the context expired'
    used = [a for a in late if a.used_context or a.has_context or a.context_age_s >= 0]
    assert not used, f'{len(used)} of {len(late)} answers used a context past its maximum age'
    status = probe.latest_status('edge_node')
    assert status.level == status.WARN and 'context stale' in status.message, status
    assert _counts(probe)['context_stale'] == 'True'
