"""How the method's parts are put together: the strategy table, the fuse step, the edge step.

The context fuser, the edge node, the offline evaluator and the training-sample generator all
call these two steps, so what is trained, what is evaluated and what runs on the vehicle are
one composition:

- `fuse`: the store's history turns for a frame (cloud answers replacing the edge's own turns)
  and the newest cloud answer's regions carried to that frame;
- `edge_inputs`: what one strategy takes of a fused context: which turns, which focus plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.context import SOURCE_EDGE, ContextStore
from spotvlm_ros.core.flow import FlowMemo
from spotvlm_ros.core.focus import FocusConfig, focus_regions, plan_focus_from_config
from spotvlm_ros.core.regions import fenced_reply, region_items, scale_regions
from spotvlm_ros.core.types import SOURCE_CLOUD, FocusPlan, HistoryTurn

Size = tuple  # (width, height)


@dataclass(frozen=True)
class Strategy:
    """What one strategy answers with."""

    name: str
    cloud_turns: bool = False  # late cloud answers as history turns
    own_turns: bool = False  # the edge model's own recent answers as history turns
    focus: bool = False  # the newest cloud answer's regions as focus crops
    on_edge: bool = True  # the edge model answers (False: the cloud's answer is the answer)
    on_node: bool = True  # the edge node's `strategy` parameter can name it


# Every strategy, in the order tables list them; names are spelled here and nowhere else.
EDGE_ONLY = 'edge_only'  # the edge model alone, no history
EDGE_OWN_HISTORY = 'edge_own_history'  # the edge model with its own earlier answers only
CLOUD_LATEST = 'cloud_latest'  # the newest cloud answer already back, however old
CLOUD_WAIT = 'cloud_wait'  # every frame to the cloud; its answer when it comes back
OFFLOAD = 'offload'  # to the cloud when the predicted delay meets the deadline, else the edge
PARTITIONED = 'partitioned'  # the cloud's vision encoder on the edge, its visual tokens sent
CONTEXT_TRANSFER = 'context_transfer'  # own turns replaced by cloud turns, plus focus crops
REPLACEMENT_ONLY = 'replacement_only'  # ablation: the replaced history only
FOCUS_ONLY = 'focus_only'  # ablation: focus crops only
AUTO = 'auto'  # per frame, the source a calibration table expects to score best
STRATEGY_TABLE = {s.name: s for s in (
    Strategy(EDGE_ONLY),
    Strategy(EDGE_OWN_HISTORY, own_turns=True),
    Strategy(CLOUD_LATEST, on_edge=False),
    Strategy(CLOUD_WAIT, on_edge=False, on_node=False),
    Strategy(OFFLOAD, on_edge=False),
    Strategy(PARTITIONED, on_edge=False, on_node=False),
    Strategy(CONTEXT_TRANSFER, cloud_turns=True, own_turns=True, focus=True),
    Strategy(REPLACEMENT_ONLY, cloud_turns=True, own_turns=True),
    Strategy(FOCUS_ONLY, focus=True),
    Strategy(AUTO, cloud_turns=True, own_turns=True, focus=True),
)}
STRATEGIES = tuple(STRATEGY_TABLE)
NODE_STRATEGIES = tuple(s.name for s in STRATEGY_TABLE.values() if s.on_node)


def strategy(name: str) -> Strategy:
    """The strategy called `name`; ValueError naming the known ones otherwise."""
    if name not in STRATEGY_TABLE:
        raise ValueError(f"unknown strategy '{name}'; one of {', '.join(STRATEGIES)}")
    return STRATEGY_TABLE[name]


@dataclass
class FusedContext:
    """What the fuser hands the edge for one frame (the FusedContext message, ROS-free)."""

    stamp: float  # the frame it was fused for
    frame_size: Size
    turns: list = field(default_factory=list)  # HistoryTurns, oldest first
    regions: list = field(default_factory=list)  # focus regions in frame_size pixels
    newest_cloud_stamp: Optional[float] = None  # keyframe of the newest cloud answer used

    @property
    def has_context(self) -> bool:
        return bool(self.turns) or bool(self.regions)


@dataclass
class EdgeInputs:
    """What the edge model gets for one frame under one strategy."""

    turns: list  # HistoryTurns aged for the frame, oldest first
    regions: list  # focus regions in the frame's pixels
    focus: Optional[FocusPlan]  # None: the whole frame alone
    context_age_s: Optional[float]  # frame stamp minus the newest cloud keyframe used

    @property
    def crops(self) -> int:
        return len(self.focus.crops) if self.focus is not None else 0

    @property
    def used_cloud_turns(self) -> bool:
        """Whether a cloud answer is among the turns (the edge's own ones do not count)."""
        return any(t.source == SOURCE_CLOUD for t in self.turns)


def fuse(store: ContextStore, stamp: float, frame_size: Size, config: FocusConfig,
         key_image: Optional[np.ndarray] = None,
         cur_image: Optional[np.ndarray] = None,
         via_images: Sequence[np.ndarray] = (),
         via_stamps: Sequence[float] = (),
         memo: Optional[FlowMemo] = None) -> FusedContext:
    """The fused context for the frame at `stamp`: turns, and the newest regions carried.

    `key_image` is the newest cloud answer's keyframe if still at hand (any size: flow runs on
    shrunk copies), `cur_image` the frame, `via_images` the frames between that flow steps
    through (track_path picks them) and `via_stamps` their times; without both, regions stay
    where the cloud saw them (and their crops are widened by their age: edge_inputs). `memo`
    keeps the flow's steps for the next frames (FlowMemo).
    """
    fused = FusedContext(stamp, tuple(frame_size), store.turns_for(stamp))
    newest = store.newest_cloud(stamp)
    if newest is not None:
        fused.newest_cloud_stamp = newest.keyframe_stamp
        fused.regions = focus_regions(newest.regions, newest.image_size, tuple(frame_size),
                                      config, key_image=key_image, cur_image=cur_image,
                                      via_images=via_images,
                                      stamps=(newest.keyframe_stamp, *via_stamps, stamp),
                                      memo=memo)
    return fused


def edge_inputs(name: str, context: Optional[FusedContext], frame: np.ndarray, stamp: float,
                config: FocusConfig, max_age_s: float = math.inf) -> EdgeInputs:
    """What strategy `name` gives the edge model for `frame` (at `stamp`) from `context`.

    Turns about a later frame than this one, or older than `max_age_s` (the edge's own limit,
    should the fuser fall silent), are dropped, and so are regions of a cloud answer that old;
    regions fused for a frame of another size are scaled to this one; a focus plan is made
    only when there is a region to look at.
    """
    chosen = strategy(name)
    if context is None or not chosen.on_edge:
        return EdgeInputs([], [], None, None)
    turns = [_aged(t, stamp) for t in context.turns if _wanted(t, chosen)]
    turns = [t for t in turns if 0 <= t.age_s <= max_age_s]
    fresh = context.newest_cloud_stamp is not None and \
        stamp - context.newest_cloud_stamp <= max_age_s
    regions = _in_frame(context, frame) if chosen.focus and fresh else []
    focus = plan_focus_from_config(frame, regions, config, stamp - context.newest_cloud_stamp) \
        if regions else None
    newest = max((t.source_stamp for t in turns if t.source == SOURCE_CLOUD), default=None)
    if newest is None and regions:
        newest = context.newest_cloud_stamp
    return EdgeInputs(turns, regions, focus, None if newest is None else stamp - newest)


def newest_cloud_turn(context: Optional[FusedContext], query: str, stamp: float,
                      max_age_s: float = math.inf) -> Optional[HistoryTurn]:
    """The newest cloud turn about `query` in `context`, at most `max_age_s` old at `stamp`."""
    turns = [t for t in (context.turns if context else ()) if t.source == SOURCE_CLOUD
             and t.query == query and 0 <= stamp - t.source_stamp <= max_age_s]
    return max(turns, key=lambda t: t.source_stamp, default=None)


def cloud_reply(turn: HistoryTurn, context: FusedContext) -> tuple:
    """cloud_latest's answer: (the cloud's turn as written, its words then its regions in a
    ```json fence; those regions). The regions are the fused ones, carried to this frame,
    when they come from the turn's own keyframe."""
    same = context.newest_cloud_stamp is not None and \
        abs(context.newest_cloud_stamp - turn.source_stamp) < 1e-6
    regions = list(context.regions) if same else []
    return (fenced_reply(turn.answer, region_items(regions)) if regions else turn.answer), regions


def _wanted(turn: HistoryTurn, chosen: Strategy) -> bool:
    return chosen.own_turns if turn.source == SOURCE_EDGE else chosen.cloud_turns


def _aged(turn: HistoryTurn, stamp: float) -> HistoryTurn:
    return HistoryTurn(turn.query, turn.answer, turn.source_stamp, stamp - turn.source_stamp,
                       turn.source)


def _in_frame(context: FusedContext, frame: np.ndarray) -> list:
    """The context's regions in this frame's pixels (none when the context has no cloud)."""
    if context.newest_cloud_stamp is None or not context.regions:
        return []
    size = (frame.shape[1], frame.shape[0])
    src = tuple(context.frame_size)
    return scale_regions(context.regions, src, size) if src != size and all(src) else \
        list(context.regions)
