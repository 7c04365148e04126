"""Scores a reply against a frame's ground truth: one plainly named metric per task family."""

from __future__ import annotations

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS
from spotvlm_ros.scenes.truth import DESCRIPTION, FAMILIES, GROUNDING, VQA

IOU_HIT = 0.5  # a box hits when its intersection over union with the true box reaches this
# Descriptions are comma-separated slots; their punctuation carries no words of its own.
_WORD_PUNCTUATION = str.maketrans({',': ' ', '.': ' '})


def normalise(text: str) -> str:
    """Lower case, outer blanks and a final full stop dropped."""
    return text.strip().lower().rstrip('.').strip()


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def split_reply(text: str, size: tuple) -> tuple:
    """(short answer, regions) of a reply, bare or with a bbox_2d JSON part, in `size` pixels."""
    answer, regions, _ = parse_regions(text, FORMAT_PIXELS, size, size)
    return answer, list(regions)


def words(text: str) -> list:
    """A description's words: normalised, ',' and '.' made spaces, split on whitespace."""
    return normalise(text).translate(_WORD_PUNCTUATION).split()


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two word lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(truth: list, answer: list) -> float:
    """ROUGE-L F1 of two word lists (precision over the answer, recall over the truth)."""
    common = lcs_length(truth, answer)
    if common == 0:
        return 0.0
    precision, recall = common / len(answer), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def exact_match(truth: str, answer: str) -> float:
    """1.0 when the normalised short answer is the normalised truth, else 0.0."""
    return float(normalise(answer) == normalise(truth))


def box_hit(truth_regions: list, answer_regions: list) -> float:
    """1.0 when the answer's first box has IOU_HIT or more with the truth's first box."""
    if not answer_regions or not truth_regions:
        return 0.0
    said, true = answer_regions[0], truth_regions[0]
    overlap = iou((said.x1, said.y1, said.x2, said.y2), (true.x1, true.y1, true.x2, true.y2))
    return float(overlap >= IOU_HIT)


# The metric of each family, as reports name it.
METRICS = {DESCRIPTION: 'ROUGE-L F1 over words', VQA: 'exact match after normalising',
           GROUNDING: f'first box hit (IoU >= {IOU_HIT})'}


def score_answer(family: str, truth: str, answer: str, size: tuple) -> float:
    """Score of one reply against the truth in 0..1 by its family's metric (METRICS); `size` is
    the frame's (width, height), in whose pixels grounding boxes are written."""
    if family not in FAMILIES:
        raise ValueError(f'unknown family {family!r}; one of {FAMILIES}')
    if not answer.strip():
        return 0.0
    short, regions = split_reply(answer, size)
    if family == VQA:
        return exact_match(truth, short)
    if family == DESCRIPTION:
        return rouge_l(words(truth), words(short))
    return box_hit(split_reply(truth, size)[1], regions)
