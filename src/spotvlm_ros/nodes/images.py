"""sensor_msgs Image and CompressedImage subscriptions and messages for the nodes."""

from __future__ import annotations

from typing import Optional

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from spotvlm_ros.io.images import (
    ImageError, compressed_thumbnail, compressed_to_rgb, image_to_rgb, rgb8_fields)


def rgb_to_image(frame: np.ndarray, header=None) -> Image:
    """An rgb8 Image message from an HxWx3 uint8 array."""
    msg = Image(**rgb8_fields(frame))
    if header is not None:
        msg.header = header
    return msg


def thumbnail_or_skip(node, msg, counts: dict, max_side: int) -> Optional[tuple]:
    """(the frame shrunk to `max_side`, its full (width, height)) of `msg`, or None as
    frame_or_skip says."""
    from spotvlm_ros.core.images import shrink

    if isinstance(msg, CompressedImage):
        try:
            return compressed_thumbnail(msg, max_side)
        except ImageError as err:
            return _skip(node, err, counts)
    frame = frame_or_skip(node, msg, counts)
    if frame is None:
        return None
    return shrink(frame, max_side), (frame.shape[1], frame.shape[0])


def subscribe_images(node, transport: str, callback, qos, **kwargs):
    """Subscribe to the camera as `transport` (the image_transport parameter) says: 'raw' reads
    `image` (Image), 'compressed' reads `image/compressed` (CompressedImage), as
    image_transport names a camera's topics. The callback gets either message; frame_or_skip
    decodes both."""
    if transport == 'compressed':
        return node.create_subscription(CompressedImage, 'image/compressed', callback, qos,
                                        **kwargs)
    return node.create_subscription(Image, 'image', callback, qos, **kwargs)


def frame_or_skip(node, msg, counts: dict) -> Optional[np.ndarray]:
    """The RGB frame of `msg` (Image or CompressedImage), or None after counting it in
    counts['bad_frames'] and warning."""
    try:
        if isinstance(msg, CompressedImage):
            return compressed_to_rgb(msg)
        return image_to_rgb(msg)
    except ImageError as err:
        return _skip(node, err, counts)


def _skip(node, err: ImageError, counts: dict) -> None:
    counts['bad_frames'] += 1
    node.get_logger().warning(f'skipping frame: {err}', throttle_duration_sec=5.0)
