"""Inputs for the model tests: deterministic frames, focus plans and history turns."""

import numpy as np

from spotvlm_ros.core.types import FocusCrop, FocusPlan, HistoryTurn, Region

QUERY = 'Describe the scene.'


def make_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic HxWx3 uint8 RGB frame."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_focus(frame: np.ndarray, global_size=(224, 448),
               crops=((0, 0, 112, 112, 'car'),)) -> FocusPlan:
    """The frame resized to `global_size` (h, w) plus unscaled crops (x1, y1, x2, y2, label)."""
    import cv2

    height, width = global_size
    global_view = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    plan = FocusPlan(global_view=global_view)
    for x1, y1, x2, y2, label in crops:
        plan.crops.append(FocusCrop(image=frame[y1:y2, x1:x2].copy(), label=label,
                                    region=Region(label, x1, y1, x2, y2)))
    return plan


def make_history(n: int = 1) -> list:
    """`n` cloud answers, oldest first."""
    return [HistoryTurn(query=f'What is ahead? ({i})',
                        answer=f'A car is crossing the left lane {i}.',
                        source_stamp=10.0 + i, age_s=2.4 + i) for i in range(n)]
