"""Training samples as chat messages, built exactly as the backends build them at run time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, system_prompt
from spotvlm_ros.core.close_ups import close_up_reference, resolve_close_up
from spotvlm_ros.core.focus import FocusConfig, plan_focus_from_config
from spotvlm_ros.core.regions import fenced_reply, region_items
from spotvlm_ros.core.types import SOURCE_CLOUD, FocusPlan, HistoryTurn, Region
from spotvlm_ros.core.images import resize_image
from spotvlm_ros.models.prompt import build_messages, text_part
from spotvlm_ros.scenes.scoring import score_answer
from spotvlm_ros.scenes.truth import (
    GROUNDING, Q_LIGHT, Q_LIMIT, QA, VEHICLE_KINDS, asked_object, box_json)
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


def cloud_target(qa: QA) -> str:
    """A Qwen2.5-VL style reply: a short answer, then its regions as a ```json fence."""
    short = asked_object(qa.question) if qa.family == GROUNDING else qa.answer
    return fenced_reply(short, region_items(regions_of(qa)))


# Questions whose answer a crop around their object keeps (a count or an action it would not).
ZOOMABLE = (Q_LIGHT, Q_LIMIT)
ZOOM_CONTEXT = 6.0  # the closest crop is this many times its object's height


def zoom_window(box: tuple, t: float, rng: np.random.Generator) -> tuple:
    """A 4:3 crop (x, y, w, h) holding `box`: t = 0 closest (ZOOM_CONTEXT x its height),
    t = 1 the whole frame, sizes between geometric; placed at random around the box."""
    x1, y1, x2, y2 = box
    close = max(y2 - y1, 4.0, (x2 - x1) * FRAME_H / FRAME_W) * ZOOM_CONTEXT
    h = min(FRAME_H, close ** (1 - t) * FRAME_H ** t)
    w = min(FRAME_W, h * FRAME_W / FRAME_H)
    x = rng.uniform(max(0.0, x2 - w), max(0.0, min(x1, FRAME_W - w)))
    y = rng.uniform(max(0.0, y2 - h), max(0.0, min(y1, FRAME_H - h)))
    return x, y, w, h


def zoomed(frame: np.ndarray, qa: QA, window: tuple) -> tuple:
    """(the crop at the frame's size, the QA with its objects' boxes in the crop's pixels)."""
    x, y, w, h = window
    crop = frame[int(y):int(y + h), int(x):int(x + w)]
    sx, sy = FRAME_W / crop.shape[1], FRAME_H / crop.shape[0]
    objects = [dataclasses.replace(o, box=(
        max(0.0, (o.box[0] - int(x)) * sx), max(0.0, (o.box[1] - int(y)) * sy),
        min(FRAME_W, (o.box[2] - int(x)) * sx), min(FRAME_H, (o.box[3] - int(y)) * sy)))
        for o in qa.regions]
    answer = qa.answer if qa.family != GROUNDING else box_json(objects)
    return resize_image(crop, FRAME_W, FRAME_H), dataclasses.replace(qa, answer=answer,
                                                                      regions=objects)


def zoomable(qa: QA) -> bool:
    """Whether a crop around the question's object keeps its answer true."""
    return bool(qa.regions) and (qa.family == GROUNDING or qa.question in ZOOMABLE)


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
    return Sample(build_messages(frame, qa.question, turns, focus), edge_target(qa, focus),
                  qa.family)


def edge_target(qa: QA, focus: Optional[FocusPlan]) -> str:
    """The truth, or `close-up N` if the N-th close-up's box, written out, scores as the truth
    does (the first such): the edge learns to point at a box it would not copy."""
    if qa.family != GROUNDING or focus is None:
        return qa.answer
    for number in range(1, len(focus.crops) + 1):
        reference = close_up_reference(number)
        if score_answer(GROUNDING, qa.answer, resolve_close_up(reference, focus),
                        (FRAME_W, FRAME_H)) >= 1.0:
            return reference
    return qa.answer


def teacher_turn(question: str, answer: str, age_s: float, stamp_s: float) -> HistoryTurn:
    """A history turn as the context fuser hands it over: the cloud's text, with its age."""
    return HistoryTurn(question, answer, stamp_s - age_s, age_s, SOURCE_CLOUD)


def with_target(sample: Sample) -> list:
    """The sample's messages with the assistant's target appended."""
    return sample.messages + [{'role': 'assistant', 'content': [text_part(sample.target)]}]
