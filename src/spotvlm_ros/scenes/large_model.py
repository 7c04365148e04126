"""A stand-in for a 72B-class cloud model on synthetic drives: it reads the frame's ground truth.

A large VLM cannot run on these machines, and the project's trained cloud checkpoint (1 M
parameters) is barely more accurate than the edge, so it cannot show what late answers of a
much stronger model are worth. This model answers from the truth of the frame it was sent,
wrong at fixed rates, in the reply format a Qwen2.5-VL writes (short answer, then its
regions as a ```json fence in pixels of the image it received). The rates were fixed before
any run and are not tuned on results: they make a model clearly stronger than the edge, not
a perfect one. It can only answer frames of a synthetic drive, whose truth it is handed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.checks import fraction
from spotvlm_ros.core.regions import fenced_reply
from spotvlm_ros.core.types import Region
from spotvlm_ros.scenes.truth import (
    DESCRIPTION, GROUNDING, MAX_COUNT, Q_ACTION, Q_COUNT, Q_LIGHT, Q_LIMIT, Q_PEDESTRIAN,
    Q_WHERE, asked_object)

NAME = 'simulated'  # what `--cloud` says to get this model instead of a checkpoint
# Qwen2.5-VL-72B's decoder width and pixels per visual token (14 px patches merged 2x2):
# what the partitioned baseline would send for this model.
HIDDEN_SIZE = 8192
TOKEN_PX = 28

# Each VQA question's closed vocabulary: a wrong answer is another word of it.
VOCABULARY = {
    Q_LIGHT: ('red', 'yellow', 'green', 'none'),
    Q_COUNT: tuple(str(n) for n in range(MAX_COUNT + 1)),
    Q_LIMIT: ('30', '50', '70', 'none'),
    Q_PEDESTRIAN: ('yes', 'no'),
    Q_ACTION: ('stop', 'slow down', 'go'),
}
# The description's five slots, in `truth.description` order, and each slot's values.
DESCRIPTION_SLOTS = (
    ('red light', 'yellow light', 'green light', 'no light'),
    tuple(f'{n} vehicles' for n in range(MAX_COUNT + 1)),
    ('pedestrian ahead', 'no pedestrian'),
    ('limit 30', 'limit 50', 'limit 70', 'limit none'),
    ('stop', 'slow down', 'go'),
)


@dataclass(frozen=True)
class LargeModelErrors:
    """How often the simulated model is wrong (each a probability) and how loose its boxes are."""

    vqa: float = 0.1  # a short answer is another word of the question's vocabulary
    description_slot: float = 0.05  # each slot of a description, independently
    grounding_miss: float = 0.1  # a "where is" reply names no box
    box_jitter: float = 0.05  # box edges move by this share of the box's size (sd)

    def __post_init__(self):
        for name in ('vqa', 'description_slot', 'grounding_miss', 'box_jitter'):
            fraction(f'simulated.{name}', getattr(self, name))


class SimulatedLargeModel:
    """Replies like a large VLM from a frame's truth; the same frame and question, the same reply."""

    name = NAME

    def __init__(self, errors: Optional[LargeModelErrors] = None):
        self.errors = errors or LargeModelErrors()

    def reply(self, question: str, family: str, answer: str, regions: Sequence[Region],
              scale: tuple = (1.0, 1.0), key: str = '') -> str:
        """The reply to `question` whose truth is (`answer`, `regions` in frame pixels).

        `scale` maps frame pixels to the sent image's; `key` names the frame, so that its
        errors are drawn once: asked again, the model says the same.
        """
        rng = np.random.default_rng(zlib.crc32(f'{key}|{question}'.encode()))
        boxes = [self._jittered(r, scale, rng) for r in regions]
        if family == GROUNDING:
            short = asked_object(question)
            if rng.random() < self.errors.grounding_miss:
                boxes = []
        elif family == DESCRIPTION:
            short = self._description(answer, rng)
        else:
            short = self._short_answer(question, answer, rng)
        return fenced_reply(short, boxes)

    def reply_about(self, frame, question: str, size: tuple) -> str:
        """The reply about a bag frame (io.replay.BagFrame) sent at (width, height)."""
        truth = frame.question(question)
        if truth is None and question not in Q_WHERE.values():
            raise ValueError(f'the simulated cloud model answers from ground truth, and frame '
                             f'{frame.index} has none for {question!r}')
        family, answer, regions = ((truth.family, truth.answer, truth.regions) if truth
                                   else (GROUNDING, '', ()))  # nothing of the kind in view
        scale = (size[0] / frame.size[0], size[1] / frame.size[1])
        return self.reply(question, family, answer, regions, scale, frame_key(frame))

    def _short_answer(self, question: str, answer: str, rng) -> str:
        words = VOCABULARY.get(question, ())
        if answer in words and rng.random() < self.errors.vqa:
            return _other(words, answer, rng)
        return answer

    def _description(self, answer: str, rng) -> str:
        slots = answer.rstrip('.').split(', ')
        if len(slots) != len(DESCRIPTION_SLOTS):
            return answer
        for i, words in enumerate(DESCRIPTION_SLOTS):
            if slots[i] in words and rng.random() < self.errors.description_slot:
                slots[i] = _other(words, slots[i], rng)
        return ', '.join(slots) + '.'

    def _jittered(self, region: Region, scale: tuple, rng) -> dict:
        sx, sy = scale
        spread = self.errors.box_jitter
        w, h = region.x2 - region.x1, region.y2 - region.y1
        dx1, dx2 = rng.normal(0.0, spread * w, 2)
        dy1, dy2 = rng.normal(0.0, spread * h, 2)
        x1, x2 = sorted(((region.x1 + dx1) * sx, (region.x2 + dx2) * sx))
        y1, y2 = sorted(((region.y1 + dy1) * sy, (region.y2 + dy2) * sy))
        return {'bbox_2d': [round(x1), round(y1), round(x2), round(y2)], 'label': region.label}


def visual_token_bytes(size: tuple, dtype: str = 'float16') -> int:
    """Bytes of a 72B-class model's visual tokens for an image of (width, height)."""
    rows = (size[0] // TOKEN_PX) * (size[1] // TOKEN_PX)
    if dtype == 'int8':
        return rows * (HIDDEN_SIZE + 4)  # one byte a value, one float32 scale a token
    return rows * HIDDEN_SIZE * 2


def _other(words: Sequence[str], right: str, rng) -> str:
    """A word of `words` other than `right`, at random."""
    wrong = [w for w in words if w != right]
    return wrong[int(rng.integers(len(wrong)))]


def frame_key(frame) -> str:
    """A bag frame's name for its error draws: its time and pixels, so drives differ."""
    return f'{frame.stamp:.3f}|{zlib.crc32(np.ascontiguousarray(frame.image[::16, ::16]))}'


def is_simulated(spec) -> bool:
    """Whether a `--cloud` value names the simulated model rather than a checkpoint."""
    return str(spec) == NAME
