"""image_source as a real process: an image folder, and a bag with a ground-truth topic."""

import pathlib

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image
from std_msgs.msg import String

from harness import start_node
from spotvlm_ros.io.frame_sources import moving_box_frames
from spotvlm_ros.io.images import image_to_rgb
from spotvlm_ros.nodes.qos import image_qos
from spotvlm_ros.testing.relay import wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SOURCE = {'wait_for_subscribers': 1, 'image_reliable': True, 'frame_id': 'front'}
# Bags play faster than real time: a reader queue of the source's own depth (5) drops frames
# whenever this test process is slower than a few frames to take them (seen on a loaded machine).
DEEP_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def collect(node, topic_type, topic, qos=10):
    received = []
    node.create_subscription(topic_type, topic, received.append, qos)
    return received


def test_a_folder_is_published_frame_by_frame_and_the_node_exits_at_its_end(node, tmp_path):
    frames = list(moving_box_frames(5, 160, 120, seed=3))
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f'{i:03d}.png'), frame[:, :, ::-1])
    images = collect(node, Image, 'image', image_qos(True))
    proc = start_node('image_source', tmp_path, **SOURCE, **{
        'source.kind': 'folder', 'source.path': str(tmp_path), 'rate_hz': 20.0})
    assert wait_until(node, lambda: len(images) >= 5, 60), f'{len(images)} of 5 frames'
    assert proc.wait(30) == 0, 'image_source did not end with its source'
    for sent, msg in zip(frames, images):
        assert msg.header.frame_id == 'front'
        assert np.array_equal(image_to_rgb(msg), sent)


def write_bag(path: pathlib.Path, count: int) -> list:
    """Images at 10 Hz plus a std_msgs/String ground-truth message per frame; the strings."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Img, Str, Header, Time = (store.types[n] for n in (
        'sensor_msgs/msg/Image', 'std_msgs/msg/String', 'std_msgs/msg/Header',
        'builtin_interfaces/msg/Time'))
    truths = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection('/camera/image_raw', Img.__msgtype__, typestore=store)
        truth = writer.add_connection('/ground_truth', Str.__msgtype__, typestore=store)
        for i, frame in enumerate(moving_box_frames(count, 64, 48)):
            t_ns = 1_000_000_000 * 1000 + i * 100_000_000
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id='cam')
            msg = Img(header=header, height=48, width=64, encoding='rgb8', is_bigendian=0,
                      step=192, data=frame.reshape(-1))
            writer.write(images, t_ns, store.serialize_cdr(msg, Img.__msgtype__))
            truths.append(f'frame {i}: light red')
            writer.write(truth, t_ns + 1, store.serialize_cdr(Str(data=truths[-1]), Str.__msgtype__))
    return truths


def test_a_bag_keeps_recorded_stamps_and_passes_ground_truth_through(node, tmp_path):
    truths = write_bag(tmp_path / 'bag', 8)
    images = collect(node, Image, 'image', DEEP_RELIABLE)
    strings = collect(node, String, 'ground_truth')
    proc = start_node('image_source', tmp_path, **SOURCE, **{
        'source.kind': 'bag', 'source.path': str(tmp_path / 'bag'), 'restamp': False,
        'rate_factor': 4.0})
    assert wait_until(node, lambda: len(images) >= 8 and len(strings) >= 7, 60), \
        f'{len(images)} images, {len(strings)} ground-truth messages'
    wait_until(node, lambda: len(strings) >= 8, 2.0)  # the last one may still be on its way
    assert proc.wait(30) == 0
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images]
    assert np.allclose(np.diff(stamps), 0.1, atol=1e-6), 'recorded stamps were not kept'
    # The publisher is created on the first ground-truth message, which may go out before
    # this subscription matched; every later one arrives intact and in order.
    assert [s.data for s in strings] == truths[len(truths) - len(strings):]


def test_restamped_frames_and_their_ground_truth_share_one_stamp(node, tmp_path):
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import DurabilityPolicy

    store = get_typestore(Stores.ROS2_JAZZY)
    Img, Point, PointMsg, Header, Time = (store.types[n] for n in (
        'sensor_msgs/msg/Image', 'geometry_msgs/msg/PointStamped', 'geometry_msgs/msg/Point',
        'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    with Writer(tmp_path / 'bag', version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection('/camera/image_raw', Img.__msgtype__, typestore=store)
        truth = writer.add_connection('/ground_truth', Point.__msgtype__, typestore=store)
        for i, frame in enumerate(moving_box_frames(6, 64, 48)):
            t_ns = 1_000_000_000 * 1000 + i * 100_000_000
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id='cam')
            writer.write(images, t_ns, store.serialize_cdr(Img(
                header=header, height=48, width=64, encoding='rgb8', is_bigendian=0, step=192,
                data=frame.reshape(-1)), Img.__msgtype__))
            # Recorded at the image's time, as make-bag records its ground truth.
            writer.write(truth, t_ns, store.serialize_cdr(Point(
                header=header, point=PointMsg(x=float(i), y=0.0, z=0.0)), Point.__msgtype__))
    images = collect(node, Image, 'image', DEEP_RELIABLE)
    # Transient local: the source keeps its last 100, so a late match loses nothing.
    points = collect(node, PointStamped, 'ground_truth', QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    proc = start_node('image_source', tmp_path, **SOURCE, **{
        'source.kind': 'bag', 'source.path': str(tmp_path / 'bag'), 'restamp': True,
        'rate_factor': 4.0})
    assert wait_until(node, lambda: len(images) >= 6 and len(points) >= 6, 60), \
        f'{len(images)} images, {len(points)} ground-truth messages'
    assert proc.wait(30) == 0
    stamp = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec)
    assert [p.point.x for p in points] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [stamp(p) for p in points] == [stamp(m) for m in images]
    assert stamp(images[0])[0] != 1000, 'the frames were not restamped'


def write_image_bag(path: pathlib.Path, topics: dict, count: int = 4) -> None:
    """A bag with these image topics ({topic: 'Image' | 'CompressedImage'}) and a String topic."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Img, Jpeg, Str, Header, Time = (store.types[n] for n in (
        'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'std_msgs/msg/String',
        'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, (Img if k == 'Image' else Jpeg).__msgtype__,
                                          typestore=store) for t, k in topics.items()}
        other = writer.add_connection('/ground_truth', Str.__msgtype__, typestore=store)
        for i, frame in enumerate(moving_box_frames(count, 64, 48)):
            t_ns = 1_000_000_000 * 1000 + i * 100_000_000
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id='cam')
            for topic, kind in topics.items():
                if kind == 'Image':
                    msg = Img(header=header, height=48, width=64, encoding='rgb8',
                              is_bigendian=0, step=192, data=frame.reshape(-1))
                else:
                    jpeg = cv2.imencode('.png', frame[:, :, ::-1])[1]  # lossless, still compressed
                    msg = Jpeg(header=header, format='png', data=jpeg.reshape(-1))
                writer.write(conns[topic], t_ns, store.serialize_cdr(msg, msg.__msgtype__))
            writer.write(other, t_ns, store.serialize_cdr(Str(data=f'{i}'), Str.__msgtype__))


def test_a_bags_only_image_topic_is_found_without_naming_it(node, tmp_path):
    write_image_bag(tmp_path / 'bag', {'/cam/front/image_raw/compressed': 'CompressedImage'})
    images = collect(node, Image, 'image', image_qos(True))
    proc = start_node('image_source', tmp_path, **SOURCE, **{
        'source.kind': 'bag', 'source.path': str(tmp_path / 'bag'), 'source.image_topic': '',
        'rate_factor': 4.0})
    assert wait_until(node, lambda: len(images) >= 4, 60), f'{len(images)} of 4 frames'
    assert proc.wait(30) == 0
    assert np.array_equal(image_to_rgb(images[0]), next(moving_box_frames(1, 64, 48)))


def test_a_bag_with_two_image_topics_names_both_and_fails(tmp_path):
    write_image_bag(tmp_path / 'bag', {'/left/image_raw': 'Image',
                                       '/right/image_raw/compressed': 'CompressedImage'})
    proc = start_node('image_source', tmp_path, **SOURCE, **{
        'source.kind': 'bag', 'source.path': str(tmp_path / 'bag'), 'source.image_topic': ''})
    assert proc.wait(60) == 1
    log = max(tmp_path.glob('image_source-*.log')).read_text()
    assert '/left/image_raw' in log and '/right/image_raw/compressed' in log, log
    assert 'source.image_topic' in log, log
