"""A bag's frames with their ground truth, decoded the way the image_source node decodes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.types import SOURCE_GROUND_TRUTH, Region

IMAGE_TOPIC = '/camera/image_raw/compressed'
TRUTH_TOPIC = '/ground_truth'


@dataclass(frozen=True)
class Question:
    """One ground-truth question about a frame."""

    question: str
    family: str
    answer: str  # grounding: bbox_2d JSON in frame pixels
    regions: tuple = ()  # Regions the answer relies on, in frame pixels


@dataclass(frozen=True)
class BagFrame:
    """One camera frame of the bag, its time from the first frame, and its questions."""

    index: int  # position among the bag's frames
    stamp: float  # seconds since the bag's first frame
    image: np.ndarray  # HxWx3 uint8 RGB
    questions: tuple[Question, ...]

    @property
    def size(self) -> tuple:
        return (self.image.shape[1], self.image.shape[0])

    def question(self, text: str) -> Optional[Question]:
        """The frame's question with this text, if it has one."""
        return next((q for q in self.questions if q.question == text), None)


def _regions(msgs) -> tuple:
    return tuple(Region(r.label, r.x1, r.y1, r.x2, r.y2, 1.0, SOURCE_GROUND_TRUTH) for r in msgs)


def _stamp_key(seconds: float) -> int:
    return round(seconds * 1e6)  # microseconds: bag and header stamps agree to the ns


def load_bag(path, image_topic: str = IMAGE_TOPIC, truth_topic: str = TRUTH_TOPIC,
             max_frames: Optional[int] = None, need_truth: bool = True) -> list:
    """Every decodable frame of the bag with the questions of its ground truth (by stamp).

    `image_topic` '' finds the bag's one image topic; `need_truth` False reads a bag without
    ground truth (its frames then ask nothing).
    """
    from spotvlm_ros.io.bags import read_ground_truth

    truths = {}
    for msg in read_ground_truth(Path(path), truth_topic):
        key = _stamp_key(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        truths[key] = tuple(Question(q.question, q.family, q.answer, _regions(q.regions))
                            for q in msg.qa)
    if not truths and need_truth:
        raise ValueError(f'bag {path} has no ground truth on {truth_topic}: nothing to score')
    from spotvlm_ros.io.frame_sources import SourceError

    try:
        return _frames(path, image_topic, truths, max_frames)
    except SourceError as err:
        raise ValueError(str(err)) from None


def _frames(path, image_topic: str, truths: dict, max_frames: Optional[int]) -> list:
    from spotvlm_ros.io.frame_sources import bag_frames

    frames, first = [], None
    for frame in bag_frames(str(path), image_topic, passthrough=False):
        if frame.rgb is None:
            continue  # an undecodable image: the node skips it too
        first = frame.time_s if first is None else first
        questions = truths.get(_stamp_key(frame.time_s), ())
        # Whole microseconds: float seconds since 1970 carry ~0.2 us of noise.
        stamp = _stamp_key(frame.time_s - first) / 1e6
        frames.append(BagFrame(len(frames), stamp, frame.rgb, questions))
        if max_frames is not None and len(frames) >= max_frames:
            break
    return frames


def questions_of(frames: Sequence[BagFrame]) -> list:
    """Every question text the frames ask, in order of first appearance."""
    seen: dict = {}
    for frame in frames:
        for q in frame.questions:
            seen.setdefault(q.question, q.family)
    return list(seen)
