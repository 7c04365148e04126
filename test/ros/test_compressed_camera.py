"""A camera that streams only CompressedImage: edge, fuser and bridge read it (image_transport)."""

import copy
import time

import cv2
import pytest
import rclpy
from sensor_msgs.msg import CompressedImage
from spotvlm_msgs.msg import EdgeAnswer, FusedContext

from harness import EDGE, start_cloud_server, start_node, stop
from spotvlm_ros.io.frame_sources import moving_box_frames
from spotvlm_ros.nodes.qos import ANSWER_QOS, FUSED_CONTEXT_QOS, image_qos
from spotvlm_ros.testing.relay import wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
COMPRESSED = {'image_transport': 'compressed'}


def jpeg_frames(count: int) -> list:
    return [CompressedImage(format='jpeg', data=cv2.imencode('.jpg', f[:, :, ::-1])[1].tobytes())
            for f in moving_box_frames(count, 320, 240)]


def test_a_compressed_only_camera_is_answered_with_cloud_context(tmp_path):
    server, port = start_cloud_server(tmp_path, 0.3)
    bridge = {'cloud.base_url': f'http://127.0.0.1:{port}/v1', 'cloud.model': 'tiny',
              'cloud.api_key_env': '', 'cloud.retries': 0, 'keyframe.min_interval_s': 0.5,
              'keyframe.max_interval_s': 1.0}
    procs = [server,
             start_node('context_fuser', tmp_path, **COMPRESSED),
             start_node('cloud_bridge', tmp_path, **COMPRESSED, **bridge),
             start_node('edge_node', tmp_path, **COMPRESSED, **EDGE)]
    rclpy.init()
    node = rclpy.create_node('compressed_camera')
    answers, fused = [], []
    node.create_subscription(EdgeAnswer, 'answer', answers.append, ANSWER_QOS)
    node.create_subscription(FusedContext, 'fused_context', fused.append, FUSED_CONTEXT_QOS)
    camera = node.create_publisher(CompressedImage, 'image/compressed', image_qos(True))
    try:
        assert wait_until(node, lambda: camera.get_subscription_count() >= 3
                          and node.count_publishers('answer') > 0, 240), \
            f'{camera.get_subscription_count()} of 3 nodes read image/compressed'
        assert node.count_subscribers('image') == 0, 'a node still reads raw images'
        sent, pool = [], jpeg_frames(20)
        start = time.monotonic()
        while time.monotonic() - start < 15 or not any(a.used_context for a in answers):
            if time.monotonic() - start > 60:
                break
            msg = pool[len(sent) % len(pool)]
            msg.header.stamp = node.get_clock().now().to_msg()
            camera.publish(msg)
            sent.append(copy.deepcopy(msg.header.stamp))
            wait_until(node, lambda: False, 0.2)
        wait_until(node, lambda: False, 1.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        codes = stop(*procs)
    stamps = {(s.sec, s.nanosec) for s in sent}
    assert len(answers) >= 5, f'{len(answers)} answers to {len(sent)} compressed frames'
    assert all((a.header.stamp.sec, a.header.stamp.nanosec) in stamps for a in answers)
    assert any(f.has_context for f in fused), 'the fuser never fused a cloud context'
    assert any(a.used_context for a in answers), 'no answer used the cloud context'
    assert all(code == 0 for code in codes.values()), f'unclean exits {codes}; logs in {tmp_path}'


def test_an_unknown_image_transport_stops_the_node_with_exit_code_2(tmp_path):
    proc = start_node('context_fuser', tmp_path, image_transport='theora')
    assert proc.wait(60) == 2
    log = max(tmp_path.glob('context_fuser-*.log')).read_text()
    assert 'bad parameter image_transport' in log, log
