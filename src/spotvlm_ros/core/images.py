"""Image helpers shared by focus and flow: fast antialiased resize, gray conversion."""

from __future__ import annotations

import numpy as np


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resized copy: halved by Gaussian pyramid while 2x too big, then bilinear.

    Antialiased like area averaging, at a fraction of its cost for non-integer ratios.
    """
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return np.ascontiguousarray(image).copy()
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.pyrDown(image)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def thumbnail_size(width: int, height: int, max_side: int) -> tuple:
    """(width, height) scaled so the long side is at most `max_side` px."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """`frame` with its long side at most `max_side` px (at thumbnail_size)."""
    height, width = frame.shape[:2]
    if max(height, width) <= max_side:
        return frame
    return resize_image(frame, *thumbnail_size(width, height, max_side))


def gray_at(image: np.ndarray, size: tuple) -> np.ndarray:
    """8-bit single-channel copy of an RGB or gray image, resized to `size` (width, height)."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.shape[1] != size[0] or image.shape[0] != size[1]:
        image = resize_image(image, size[0], size[1])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return gray if gray.dtype == np.uint8 else cv2.convertScaleAbs(gray)
