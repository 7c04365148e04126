"""Scoring an answer against a frame's ground truth, per task family."""

from __future__ import annotations

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS
from spotvlm_ros.scenes.truth import DESCRIPTION, GROUNDING, QA

IOU_HIT = 0.5


def normalise(text: str) -> str:
    return text.strip().lower().rstrip('.').strip()


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def split_reply(text: str, size: tuple) -> tuple:
    """(short answer, regions) of a reply, bare or with a bbox_2d JSON part, in `size` pixels."""
    answer, regions, _ = parse_regions(text, FORMAT_PIXELS, size, size)
    return answer, list(regions)


def score(qa: QA, reply: str, size: tuple) -> float:
    """1.0 for a right answer, 0.0 for a wrong one; descriptions score the share of right slots."""
    answer, regions = split_reply(reply, size)
    if qa.family == GROUNDING:
        if not regions:
            return 0.0
        r = regions[0]
        return float(iou((r.x1, r.y1, r.x2, r.y2), qa.regions[0].box) >= IOU_HIT)
    if qa.family == DESCRIPTION:
        truth = normalise(qa.answer).split(', ')
        said = normalise(answer).split(', ')
        return sum(t == s for t, s in zip(truth, said)) / len(truth)
    return float(normalise(answer) == normalise(qa.answer))
