"""One record per (strategy, trace, frame, question): what was answered, when, and how well."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

# Strategy names and their table order live in core.composition; re-exported for the tables.
from spotvlm_ros.core.composition import (  # noqa: F401
    AUTO, CLOUD_LATEST, CLOUD_WAIT, CONTEXT_TRANSFER, EDGE_ONLY, EDGE_OWN_HISTORY, FOCUS_ONLY,
    NODE_STRATEGIES, OFFLOAD, PARTITIONED, REPLACEMENT_ONLY, STRATEGIES)

# What live mode runs: the edge node's strategies, and the cloud waited for through the bridge,
# sent the frame or (partitioned) its visual tokens.
LIVE_STRATEGIES = NODE_STRATEGIES + (CLOUD_WAIT, PARTITIONED)


@dataclass
class AnswerRecord:
    """One question about one frame, answered (or not) by one strategy under one trace.

    Times are seconds on the bag's clock, from its first frame.
    """

    strategy: str
    trace: str  # the trace's name
    mean_delay_s: float  # mean delay of the trace's answered requests over the bag
    frame_index: int  # index of the frame among the bag's frames
    frame_stamp: float
    question: str
    family: str  # description, vqa or grounding
    truth: str  # the true answer (grounding: bbox_2d JSON in frame pixels)
    width: int  # the frame's size, for grounding boxes
    height: int
    answered: bool = False
    answer: str = ''  # the raw reply; '' when not answered
    answered_at: Optional[float] = None  # when the answer was there to use
    latency_s: Optional[float] = None  # answered_at - frame_stamp
    source_stamp: Optional[float] = None  # stamp of the frame the answer was computed on
    context_age_s: Optional[float] = None  # frame_stamp minus the newest cloud keyframe used
    used_context: bool = False  # history turns were in the prompt
    used_focus: bool = False  # focus crops were in the prompt
    prompt_tokens: int = 0
    new_tokens: int = 0
    score: Optional[float] = None  # 0..1, set by metrics.score_record
    drive: str = ''  # the bag (drive) the frame belongs to, when several are evaluated
    answer_source: str = ''  # auto, offload: the source that answered (a fixed strategy's name)


def to_json_line(record: AnswerRecord) -> str:
    """The record as one JSON line, keys in field order (stable across runs)."""
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False, allow_nan=False)


def write_jsonl(path: Union[str, Path], records: Iterable[AnswerRecord]) -> int:
    """Write records one per line; how many."""
    count = 0
    with open(path, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(to_json_line(record) + '\n')
            count += 1
    return count


def read_jsonl(path: Union[str, Path]) -> list:
    """The records of a JSONL file written by write_jsonl."""
    with open(path, encoding='utf-8') as f:
        return [AnswerRecord(**json.loads(line)) for line in f if line.strip()]
