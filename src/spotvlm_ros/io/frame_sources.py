"""Where frames come from: an image folder, a video file or camera, a bag, or drifting boxes."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from spotvlm_ros.io.images import ImageError, compressed_to_rgb, image_to_rgb

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


@dataclass
class Frame:
    """One frame (or, from a bag, another topic's raw message) with its recorded time."""

    time_s: Optional[float]  # recorded time; None: pace by the source's rate
    rgb: Optional[np.ndarray] = None  # HxWx3 uint8, for camera frames
    topic: str = ''  # for pass-through bag messages
    msgtype: str = ''
    raw: bytes = b''  # CDR bytes of a pass-through message
    error: str = ''  # why this camera frame could not be decoded (it is skipped)


class SourceError(RuntimeError):
    """A source that cannot be opened or read; says which and why."""


def folder_frames(path: str) -> Iterator[Frame]:
    """Every image in a folder, sorted by name."""
    import cv2

    files = sorted(p for p in pathlib.Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {path}')
    for file in files:
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f'cannot read image {file}')
        yield Frame(None, bgr[:, :, ::-1].copy())


def capture_frames(uri: str) -> Iterator[Frame]:
    """Frames of a video file, stream URL or camera index ('0') through OpenCV."""
    import cv2

    cap = cv2.VideoCapture(int(uri) if uri.isdigit() else uri)
    if not cap.isOpened():
        raise SourceError(f'cannot open video source {uri}')
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield Frame(None, bgr[:, :, ::-1].copy())
    finally:
        cap.release()


def open_bag(path: str):
    """An open rosbags reader for a bag folder or file; SourceError when it cannot be read."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([pathlib.Path(path)],
                           default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as err:  # rosbags raises several unrelated types for a broken bag
        raise SourceError(f'cannot open bag {path}: {type(err).__name__}: {err}') from None
    return reader


def pick_image_topic(connections, wanted: str = '') -> str:
    """The bag's image topic: `wanted` if it is there, else the only Image/CompressedImage one.

    SourceError names the image topics when there is none or more than one to choose from.
    """
    images = sorted({c.topic for c in connections if c.msgtype in IMAGE_TYPES})
    if wanted:
        if wanted in images:
            return wanted
        topics = ', '.join(sorted({c.topic for c in connections})) or 'none'
        raise SourceError(f'bag has no image topic {wanted} (image topics: '
                          f'{", ".join(images) or "none"}; all topics: {topics})')
    if len(images) == 1:
        return images[0]
    if not images:
        topics = ', '.join(sorted({f'{c.topic} ({c.msgtype})' for c in connections})) or 'none'
        raise SourceError(f'bag has no sensor_msgs/Image or CompressedImage topic (topics: {topics})')
    raise SourceError(f'bag has {len(images)} image topics ({", ".join(images)}): '
                      'set source.image_topic to one of them')


def bag_image_topic(path: str, wanted: str = '') -> str:
    """The image topic to play from a bag (see pick_image_topic); SourceError names the bag."""
    reader = open_bag(path)
    try:
        return pick_image_topic(reader.connections, wanted)
    except SourceError as err:
        raise SourceError(f'{path}: {err}') from None
    finally:
        reader.close()


def bag_topics(path: str, image_topic: str) -> list:
    """(topic, msgtype) of every topic in a bag but the images."""
    reader = open_bag(path)
    try:
        return sorted({(c.topic, c.msgtype) for c in reader.connections if c.topic != image_topic})
    finally:
        reader.close()


def bag_frames(path: str, image_topic: str, passthrough: bool) -> Iterator[Frame]:
    """Images of one topic in a ROS 2 bag (and, if asked, every other message as raw bytes)."""
    bag = pathlib.Path(path)
    reader = open_bag(path)
    try:
        try:
            image_topic = pick_image_topic(reader.connections, image_topic)
        except SourceError as err:
            raise SourceError(f'bag {bag}: {err}') from None
        images = [c for c in reader.connections if c.topic == image_topic]
        wanted = reader.connections if passthrough else images
        for conn, timestamp, raw in reader.messages(connections=wanted):
            if conn.topic == image_topic:
                try:
                    rgb = _bag_image_rgb(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                except (ImageError, ValueError) as err:
                    yield Frame(timestamp * 1e-9, error=str(err))
                    continue
                yield Frame(timestamp * 1e-9, rgb)
            else:
                yield Frame(timestamp * 1e-9, topic=conn.topic, msgtype=conn.msgtype,
                            raw=bytes(raw))
    finally:
        reader.close()


def _bag_image_rgb(msg, msgtype: str) -> np.ndarray:
    """RGB pixels of a bag's Image or CompressedImage message (rosbags' fields are rclpy's)."""
    if msgtype.endswith('CompressedImage'):
        return compressed_to_rgb(msg)
    return image_to_rgb(msg)


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
