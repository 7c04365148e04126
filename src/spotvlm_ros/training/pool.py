"""A pool of rendered frames with their ground truth, kept as JPEG to stay small in memory."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spotvlm_ros.scenes.truth import FrameTruth, frame_truth
from spotvlm_ros.scenes.world import sample_scene

FRAME_W, FRAME_H = 448, 336  # the size every default model is trained at
FPS = 10.0
# Seeds from here on are never used for training: the held-out split.
HELD_OUT_SEED_START = 1_000_000


@dataclass
class PooledFrame:
    jpeg: bytes
    truth: FrameTruth

    def image(self) -> np.ndarray:
        """The frame as HxWx3 uint8 RGB."""
        bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_jpeg(frame: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode('.jpg', frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()


def build_pool(seeds, frame_step: int, frames: int = 100) -> dict:
    """{seed: [PooledFrame every `frame_step` frames]} for each seed."""
    pool = {}
    for seed in seeds:
        scene = sample_scene(seed)
        pooled = []
        for index in range(0, frames, frame_step):
            frame, truth = frame_truth(scene, index, FRAME_W, FRAME_H, FPS)
            pooled.append(PooledFrame(encode_jpeg(frame), truth))
        pool[seed] = pooled
    return pool
