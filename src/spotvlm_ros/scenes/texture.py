"""Textured frames and their shifted copies: scenes optical flow can track, for tests and benchmarks."""

import numpy as np


def textured_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Noise blurred at several scales, RGB uint8: corners everywhere and structure at every
    pyramid level, like a busy real scene."""
    import cv2

    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.float32)
    for sigma in (2.0, 6.0, 16.0):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        layer = cv2.GaussianBlur(noise, (0, 0), sigma)
        frame += layer / (layer.std() + 1e-6)
    frame = (frame - frame.min()) / (frame.max() - frame.min() + 1e-6) * 255
    return frame.astype(np.uint8)


def shifted(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The frame moved by (dx, dy) pixels, edges reflected."""
    import cv2

    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]),
                          borderMode=cv2.BORDER_REFLECT)
