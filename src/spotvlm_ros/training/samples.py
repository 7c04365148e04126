"""Training samples as chat messages, built exactly as the backends build them at run time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, system_prompt
from spotvlm_ros.core.focus import FocusConfig, plan_focus_from_config
from spotvlm_ros.core.types import SOURCE_CLOUD, FocusPlan, HistoryTurn, Region
from spotvlm_ros.models.prompt import build_messages, text_part
from spotvlm_ros.scenes.truth import GROUNDING, QA, VEHICLE_KINDS
from spotvlm_ros.training.pool import FRAME_H, FRAME_W

# The edge model's focus views: a 48-token global view plus crops (its processor caps images
# at 48 tokens too, so without focus it sees the frame at 224x168).
EDGE_FOCUS = FocusConfig(token_budget=96)
CLOUD_SYSTEM_PROMPT = system_prompt(FORMAT_PIXELS, (FRAME_W, FRAME_H))
# Share of edge samples with (history, focus): the rest are plain single-image turns.
EDGE_MIXTURE = {(False, False): 0.4, (True, False): 0.2, (False, True): 0.2, (True, True): 0.2}


@dataclass
class Sample:
    """One chat to learn: the messages up to the user turn, and the assistant's target."""

    messages: list
    target: str
    family: str
    # Characters at the start of the target that are the answer itself; 0: all of it is.
    key_chars: int = 0


def region_label(kind: str) -> str:
    """How a region is named to and by the models."""
    return 'vehicle' if kind in VEHICLE_KINDS else kind


def regions_of(qa: QA) -> list:
    """The QA's objects as Regions in frame pixels."""
    return [Region(region_label(o.kind), *o.box) for o in qa.regions]


def regions_json(regions) -> str:
    return json.dumps([{'bbox_2d': [round(r.x1), round(r.y1), round(r.x2), round(r.y2)],
                        'label': r.label} for r in regions])


def cloud_target(qa: QA) -> str:
    """A Qwen2.5-VL style reply: a short answer, then its regions as a ```json fence."""
    short = qa.question.split('the ')[-1].rstrip('?') if qa.family == GROUNDING else qa.answer
    return f'{short}\n```json\n{regions_json(regions_of(qa))}\n```'


def cloud_sample(frame: np.ndarray, qa: QA) -> Sample:
    # The short answer is one or two tokens before ~40 of JSON digits: mark it, so that the
    # loss can weigh it (grounding's first line only repeats the question, its boxes count).
    target = cloud_target(qa)
    key = 0 if qa.family == GROUNDING else len(target.split('\n')[0])
    return Sample(build_messages(frame, qa.question, system_prompt=CLOUD_SYSTEM_PROMPT),
                  target, qa.family, key)


def jitter_regions(regions, age_s: float, rng: np.random.Generator) -> list:
    """True boxes moved and resized a little, more for older context: stand-ins for the
    cloud's regions carried to the current frame."""
    out = []
    for r in regions:
        w, h = max(r.width, 2.0), max(r.height, 2.0)
        spread = 0.1 + 0.03 * age_s
        dx, dy = rng.normal(0, spread, 2) * (w, h)
        grow = 1.0 + abs(rng.normal(0, spread))
        cx, cy = (r.x1 + r.x2) / 2 + dx, (r.y1 + r.y2) / 2 + dy
        out.append(Region(r.label, cx - grow * w / 2, cy - grow * h / 2,
                          cx + grow * w / 2, cy + grow * h / 2))
    return out


def edge_sample(frame: np.ndarray, qa: QA, history: Optional[HistoryTurn] = None,
                focus_regions: Optional[list] = None) -> Sample:
    """An edge turn: plain, with a teacher history turn, with focus crops, or with both."""
    focus: Optional[FocusPlan] = None
    if focus_regions is not None:
        focus = plan_focus_from_config(frame, focus_regions, EDGE_FOCUS)
    turns = [history] if history is not None else []
    return Sample(build_messages(frame, qa.question, turns, focus), qa.answer, qa.family)


def teacher_turn(question: str, answer: str, age_s: float, stamp_s: float) -> HistoryTurn:
    """A history turn as the context fuser hands it over: the cloud's text, with its age."""
    return HistoryTurn(question, answer, stamp_s - age_s, age_s, SOURCE_CLOUD)


def with_target(sample: Sample) -> list:
    """The sample's messages with the assistant's target appended."""
    return sample.messages + [{'role': 'assistant', 'content': [text_part(sample.target)]}]
