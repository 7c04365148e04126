"""Writes camera frames into ROS 2 bags (MCAP) with rosbags; no ROS install needed."""

from __future__ import annotations

import pathlib
from typing import Iterable

import numpy as np


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
            msg = Image(header=header, height=frame.shape[0], width=frame.shape[1],
                        encoding='rgb8', is_bigendian=0, step=frame.shape[1] * 3,
                        data=np.ascontiguousarray(frame, np.uint8).reshape(-1))
            writer.write(conn, t_ns, store.serialize_cdr(msg, Image.__msgtype__))
            count += 1
    return count


def moving_box_frames(count: int, width: int = 640, height: int = 480,
                      seed: int = 0) -> Iterable[np.ndarray]:
    """A plain road-coloured scene with a few boxes drifting across: motion for flow and policy."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform([0, 0.3, 0.05, 0.05], [0.8, 0.8, 0.2, 0.2], size=(4, 4))
    colours = rng.integers(40, 255, size=(4, 3), dtype=np.uint8)
    for i in range(count):
        frame = np.full((height, width, 3), (90, 90, 100), np.uint8)
        frame[: height // 3] = (150, 180, 220)  # sky
        for (x, y, w, h), colour in zip(boxes, colours):
            x0 = int(((x + 0.01 * i) % 1.0) * width)
            y0 = int(y * height)
            frame[y0: y0 + int(h * height), x0: x0 + int(w * width)] = colour
        yield frame
