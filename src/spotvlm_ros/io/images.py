"""Image messages (rclpy or rosbags alike) <-> HxWx3 uint8 RGB; a clear error for a bad one."""

from __future__ import annotations

import numpy as np

# encoding -> (channels, channel order to reach RGB)
_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, [2, 1, 0]),
    'rgba8': (4, [0, 1, 2]),
    'bgra8': (4, [2, 1, 0]),
    'mono8': (1, None),
}
MAX_SIDE = 8192  # larger frames are refused: no VLM here needs them, and they cost memory


class ImageError(ValueError):
    """An image message that cannot be turned into an RGB frame; says why."""


def image_to_rgb(msg) -> np.ndarray:
    """An HxWx3 uint8 RGB array from an Image message; raises ImageError when malformed."""
    if msg.encoding not in _ENCODINGS:
        raise ImageError(f"unsupported encoding '{msg.encoding}' (supported: "
                         f"{', '.join(sorted(_ENCODINGS))})")
    channels, order = _ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ImageError(f'empty image {width}x{height}')
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f'image {width}x{height} exceeds {MAX_SIDE} px per side')
    if step < width * channels:
        raise ImageError(f'step {step} is shorter than width*channels = {width * channels}')
    if len(msg.data) != height * step:
        raise ImageError(f'data holds {len(msg.data)} bytes, height*step = {height * step}')
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, order] if order else pixels)


def rgb8_fields(frame: np.ndarray) -> dict:
    """The fields of an rgb8 Image message holding an HxWx3 uint8 array (data as bytes)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ImageError(f'expected HxWx3 uint8, got {frame.shape} {frame.dtype}')
    return dict(height=frame.shape[0], width=frame.shape[1], encoding='rgb8', is_bigendian=0,
                step=frame.shape[1] * 3, data=np.ascontiguousarray(frame).tobytes())


def compressed_to_rgb(msg) -> np.ndarray:
    """An HxWx3 uint8 RGB array from a CompressedImage (JPEG, PNG); ImageError when it is not one."""
    import cv2

    data = np.frombuffer(bytes(msg.data), np.uint8)
    if data.size == 0:
        raise ImageError('empty CompressedImage')
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"undecodable CompressedImage (format '{msg.format}')")
    if max(bgr.shape[:2]) > MAX_SIDE:
        raise ImageError(f'image {bgr.shape[1]}x{bgr.shape[0]} exceeds {MAX_SIDE} px per side')
    return bgr[:, :, ::-1].copy()
