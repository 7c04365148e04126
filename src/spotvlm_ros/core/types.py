"""Plain data types shared by the method, the backends, the cloud path and the nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# Where a region came from; the same strings are the Region.msg SOURCE_* constants.
SOURCE_CLOUD = 'cloud'
SOURCE_PROPAGATED = 'propagated'
SOURCE_WIDENED = 'widened'
SOURCE_MERGED = 'merged'
SOURCE_GROUND_TRUTH = 'ground_truth'


@dataclass(frozen=True)
class Region:
    """An axis-aligned box in pixels of one image, with its label and score."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0
    source: str = SOURCE_CLOUD

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class HistoryTurn:
    """One earlier (query, answer) turn the edge model will see, with its age."""

    query: str
    answer: str
    source_stamp: float  # stamp (s) of the keyframe the answer is about
    age_s: float  # answered frame's stamp minus source_stamp
    source: str = SOURCE_CLOUD  # 'cloud' or 'edge' (own history)

    def prompt_text(self) -> str:
        """The answer as the edge model reads it, after whose it is and how old.

        Saying whose lets the model trust the cloud's turns more than its own, which sit
        next to them in the same history and are no better than its view of the frame. The
        answer starts a line, as the model's own answer does: the same tokens, so copying it
        is continuing a sequence already seen (with a space after the colon, most answers
        would start with a space token that the model's answers never start with).
        """
        whose = 'cloud' if self.source == SOURCE_CLOUD else 'own'
        return f'{whose}, {self.age_s:.1f} s ago:\n{self.answer}'


@dataclass
class FocusCrop:
    """A high-resolution crop of one focus region, with the label said in the prompt."""

    image: np.ndarray  # HxWx3 uint8 RGB, already resized to its token budget
    label: str
    region: Region  # the crop's box in the current frame's pixels
    shown: Optional[Region] = None  # the region it shows, as its caption gives it (frame px)


@dataclass
class FocusPlan:
    """The visual input for one frame: a low-resolution global view plus focus crops."""

    global_view: np.ndarray  # HxWx3 uint8 RGB
    crops: list[FocusCrop] = field(default_factory=list)
    visual_tokens: int = 0  # total, in the model's own units
    token_budget: int = 0


@dataclass(frozen=True)
class CloudAnswer:
    """A parsed LVLM reply for one keyframe: text, regions in the keyframe's pixels, status."""

    keyframe_stamp: float
    keyframe_seq: int
    query: str
    text: str
    regions: tuple[Region, ...] = ()
    model: str = ''
    status: str = 'ok'  # 'ok', 'timeout', 'error'
    error: str = ''
    request_time: float = 0.0
    response_time: float = 0.0
    image_size: Optional[tuple[int, int]] = None  # (width, height) of the keyframe
