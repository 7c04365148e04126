"""The edge and cloud models' answers for the evaluator, each computed once per distinct input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, system_prompt
from spotvlm_ros.core.focus import FocusConfig, plan_focus_from_config
from spotvlm_ros.core.types import CloudAnswer, HistoryTurn, Region


@dataclass(frozen=True)
class Answer:
    """A model's reply, what it cost, and whether focus crops were in its input."""

    text: str  # the raw reply, as scored
    cost_s: float  # the fixed cost, or the measured inference time
    prompt_tokens: int
    new_tokens: int
    crops: int = 0


class Answerer:
    """Asks the edge and cloud backends; an identical question is answered from the cache.

    `edge_cost_s` None measures each answer's inference time (once: a cached answer keeps its
    first measurement); a number is the fixed cost model, which keeps runs bit-identical.
    """

    def __init__(self, edge, cloud, focus: FocusConfig, edge_cost_s: Optional[float] = 0.1,
                 cloud_cost_s: float = 0.0):
        self.edge_backend = edge
        self.cloud_backend = cloud
        self.focus = focus
        self.edge_cost_s = edge_cost_s
        self.cloud_cost_s = cloud_cost_s
        self._edge: dict = {}
        self._cloud: dict = {}
        self.calls = {'edge': 0, 'cloud': 0}

    def edge(self, frame, question: str, turns: Sequence[HistoryTurn] = (),
             regions: Sequence[Region] = ()) -> Answer:
        """The edge model on `frame` with these history turns and focus regions."""
        key = (frame.index, question, tuple(turns), tuple(regions))  # both frozen
        if key not in self._edge:
            # As the edge node does: a focus plan only when there are regions to look at.
            plan = plan_focus_from_config(frame.image, regions, self.focus) if regions else None
            result = self.edge_backend.answer(frame.image, question, list(turns), plan)
            self.calls['edge'] += 1
            cost = result.timings.total_s if self.edge_cost_s is None else self.edge_cost_s
            self._edge[key] = Answer(result.text, cost, result.prompt_tokens, result.new_tokens,
                                     len(plan.crops) if plan else 0)
        return self._edge[key]

    def cloud(self, frame, question: str, seq: int = 0) -> tuple:
        """(CloudAnswer as the bridge would publish it, the raw Answer) for a keyframe."""
        key = (frame.index, question)
        if key not in self._cloud:
            prompt = system_prompt(FORMAT_PIXELS, frame.size)
            result = self.cloud_backend.answer(frame.image, question, system_prompt=prompt)
            self.calls['cloud'] += 1
            text, regions, _ = parse_regions(result.text, FORMAT_PIXELS, frame.size, frame.size)
            parsed = CloudAnswer(frame.stamp, 0, question, text, regions,
                                 model=getattr(self.cloud_backend, 'name', ''),
                                 image_size=frame.size)
            raw = Answer(result.text, self.cloud_cost_s, result.prompt_tokens, result.new_tokens)
            self._cloud[key] = (parsed, raw)
        parsed, raw = self._cloud[key]
        return dataclasses.replace(parsed, keyframe_seq=seq), raw
