"""ROS 2 bags (MCAP) through rosbags, no ROS needed: image and scene bags, spotvlm_msgs types."""

from __future__ import annotations

import pathlib
from typing import Iterable

import numpy as np

from spotvlm_ros.io.images import rgb8_fields

GROUND_TRUTH_TYPE = 'spotvlm_msgs/msg/GroundTruth'
ANSWER_TYPE = 'spotvlm_msgs/msg/EdgeAnswer'
CLOUD_CONTEXT_TYPE = 'spotvlm_msgs/msg/CloudContext'


def write_image_bag(path, frames: Iterable[np.ndarray], period_s: float,
                    topic: str = '/camera/image_raw', frame_id: str = 'camera',
                    start_s: float = 1_700_000_000.0) -> int:
    """Write HxWx3 uint8 RGB frames as sensor_msgs/Image at a fixed period; how many."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Image, Header, Time = (store.types[n] for n in (
        'sensor_msgs/msg/Image', 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    count = 0
    with Writer(pathlib.Path(path), version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(topic, Image.__msgtype__, typestore=store)
        for frame in frames:
            t_ns = round((start_s + count * period_s) * 1e9)
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame_id)
            fields = rgb8_fields(frame)
            fields['data'] = np.frombuffer(fields['data'], np.uint8)  # rosbags wants an array
            msg = Image(header=header, **fields)
            writer.write(conn, t_ns, store.serialize_cdr(msg, Image.__msgtype__))
            count += 1
    return count


_SCENE_MSGS = ('Region', 'SceneObject', 'QAPair', 'GroundTruth')


def spotvlm_msg_dir() -> pathlib.Path:
    """The spotvlm_msgs msg/ folder: installed share directory, else this source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return pathlib.Path(get_package_share_directory('spotvlm_msgs')) / 'msg'
    except Exception:  # noqa: BLE001 - no ament index: a source checkout
        return pathlib.Path(__file__).resolve().parents[2] / 'spotvlm_msgs' / 'msg'


def spotvlm_typestore():
    """A Jazzy typestore that also knows every spotvlm_msgs message (ground truth, answers,
    cloud contexts): the types this package's bags hold."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for path in sorted(spotvlm_msg_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'spotvlm_msgs/msg/{path.stem}'))
    store.register(types)
    return store


def _ground_truth_msg(store, header, truth):
    """A GroundTruth message of a scenes.truth.FrameTruth."""
    Region, SceneObject, QAPair, GroundTruth = (
        store.types[f'spotvlm_msgs/msg/{n}'] for n in _SCENE_MSGS)

    def region(o):
        x1, y1, x2, y2 = o.box
        return Region(label=o.kind, score=1.0, x1=x1, y1=y1, x2=x2, y2=y2,
                      source='ground_truth')

    objects = [SceneObject(track_id=o.track_id, kind=o.kind, colour=o.colour, box=region(o),
                           distance_m=o.distance_m, lateral_m=o.lateral_m,
                           visible_frac=o.visible_frac, light_state=o.light_state,
                           speed_limit=o.speed_limit) for o in truth.objects]
    qa = [QAPair(family=q.family, question=q.question, answer=q.answer,
                 regions=[region(o) for o in q.regions]) for q in truth.qa]
    return GroundTruth(
        header=header, seed=truth.seed, frame_index=truth.index, image_width=truth.width,
        image_height=truth.height, ego_speed_mps=truth.ego_speed,
        light_state=truth.light_state, speed_limit=truth.speed_limit,
        vehicle_count=truth.vehicle_count, pedestrian_ahead=truth.pedestrian_ahead,
        action=truth.action, objects=objects, qa=qa)


def write_scene_bag(path, frames_and_truths, period_s: float,
                    image_topic: str = '/camera/image_raw/compressed',
                    truth_topic: str = '/ground_truth', frame_id: str = 'camera',
                    jpeg_quality: int = 85, start_s: float = 1_700_000_000.0) -> int:
    """Write (frame, FrameTruth) pairs as CompressedImage (JPEG) + GroundTruth; how many."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = spotvlm_typestore()
    Compressed, Header, Time = (store.types[n] for n in (
        'sensor_msgs/msg/CompressedImage', 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    count = 0
    with Writer(pathlib.Path(path), version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection(image_topic, Compressed.__msgtype__, typestore=store)
        truth_conn = writer.add_connection(truth_topic, GROUND_TRUTH_TYPE, typestore=store)
        for frame, truth in frames_and_truths:
            t_ns = round((start_s + count * period_s) * 1e9)
            # Image and ground truth share one header: a consumer matches them by stamp.
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame_id)
            ok, jpeg = cv2.imencode('.jpg', np.ascontiguousarray(frame[:, :, ::-1]),
                                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise RuntimeError('JPEG encoding failed')
            image = Compressed(header=header, format='jpeg',
                               data=np.frombuffer(jpeg.tobytes(), np.uint8))
            writer.write(image_conn, t_ns, store.serialize_cdr(image, Compressed.__msgtype__))
            writer.write(truth_conn, t_ns, store.serialize_cdr(
                _ground_truth_msg(store, header, truth), GROUND_TRUTH_TYPE))
            count += 1
    return count


def read_ground_truth(path, topic: str = '/ground_truth') -> list:
    """Every GroundTruth message of a bag, in order, as rosbags objects."""
    from rosbags.rosbag2 import Reader

    store = spotvlm_typestore()
    with Reader(pathlib.Path(path)) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            return []  # rosbags reads every topic when given no connections
        return [store.deserialize_cdr(raw, c.msgtype)
                for c, _, raw in reader.messages(connections=conns)]
