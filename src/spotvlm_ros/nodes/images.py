"""sensor_msgs Image and CompressedImage subscriptions and messages for the nodes."""

from __future__ import annotations

from typing import Optional

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from spotvlm_ros.io.images import ImageError, compressed_to_rgb, image_to_rgb, rgb8_fields


def rgb_to_image(frame: np.ndarray, header=None) -> Image:
    """An rgb8 Image message from an HxWx3 uint8 array."""
    msg = Image(**rgb8_fields(frame))
    if header is not None:
        msg.header = header
    return msg


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
        counts['bad_frames'] += 1
        node.get_logger().warning(f'skipping frame: {err}', throttle_duration_sec=5.0)
        return None
