"""Core types <-> spotvlm_msgs, stamps <-> float seconds, type names -> message classes."""

from __future__ import annotations

import importlib
from typing import Iterable, Optional

from builtin_interfaces.msg import Time
from spotvlm_msgs.msg import CloudContext, FusedContext as FusedContextMsg
from spotvlm_msgs.msg import HistoryTurn as HistoryTurnMsg, Region as RegionMsg

from spotvlm_ros.core.composition import FusedContext
from spotvlm_ros.core.types import CloudAnswer, HistoryTurn, Region

_STATUS_TO_MSG = {'ok': CloudContext.STATUS_OK, 'timeout': CloudContext.STATUS_TIMEOUT,
                  'error': CloudContext.STATUS_ERROR}
_STATUS_FROM_MSG = {v: k for k, v in _STATUS_TO_MSG.items()}


def message_class(type_name: str):
    """The message class for 'pkg/msg/Name' (or 'pkg/action/Name_Part')."""
    package, kind, name = type_name.split('/')
    module = importlib.import_module(f'{package}.{kind}')
    if kind == 'action' and not hasattr(module, name):
        action, part = name.rsplit('_', 1)  # Ask_Feedback is Ask.Feedback
        return getattr(getattr(module, action), part)
    return getattr(module, name)


def to_sec(stamp: Time) -> float:
    """Seconds of a builtin_interfaces/Time."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_key(header) -> tuple:
    """A frame's identity across nodes: its header's stamp, exactly, as (sec, nanosec)."""
    return header.stamp.sec, header.stamp.nanosec


def to_stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time from seconds (negative clamps to zero)."""
    nanos = max(0, round(seconds * 1e9))
    return Time(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def region_to_msg(region: Region) -> RegionMsg:
    return RegionMsg(label=region.label, score=float(region.score), x1=float(region.x1),
                     y1=float(region.y1), x2=float(region.x2), y2=float(region.y2),
                     source=region.source)


def region_from_msg(msg: RegionMsg) -> Region:
    return Region(msg.label, msg.x1, msg.y1, msg.x2, msg.y2, msg.score, msg.source)


def regions_to_msgs(regions: Iterable[Region]) -> list:
    return [region_to_msg(r) for r in regions]


def cloud_answer_to_msg(answer: CloudAnswer, header) -> CloudContext:
    """A CloudContext whose header is the keyframe's own, as it came (its stamp exact to the
    nanosecond, not made again from the float keyframe_stamp, so it matches the frame's)."""
    width, height = answer.image_size or (0, 0)
    msg = CloudContext(
        keyframe_seq=answer.keyframe_seq, query=answer.query, answer=answer.text,
        regions=regions_to_msgs(answer.regions), image_width=width, image_height=height,
        model=answer.model, request_stamp=to_stamp(answer.request_time),
        response_stamp=to_stamp(answer.response_time),
        round_trip_s=max(0.0, answer.response_time - answer.request_time),
        status=_STATUS_TO_MSG.get(answer.status, CloudContext.STATUS_ERROR),
        error_message=answer.error)
    msg.header = header
    return msg


def cloud_answer_from_msg(msg: CloudContext) -> CloudAnswer:
    size: Optional[tuple] = (msg.image_width, msg.image_height) if msg.image_width else None
    return CloudAnswer(
        keyframe_stamp=to_sec(msg.header.stamp), keyframe_seq=msg.keyframe_seq,
        query=msg.query, text=msg.answer, regions=tuple(region_from_msg(r) for r in msg.regions),
        model=msg.model, status=_STATUS_FROM_MSG.get(msg.status, 'error'),
        error=msg.error_message, request_time=to_sec(msg.request_stamp),
        response_time=to_sec(msg.response_stamp), image_size=size)


def turn_to_msg(turn: HistoryTurn, keyframe_seq: int = 0) -> HistoryTurnMsg:
    return HistoryTurnMsg(query=turn.query, answer=turn.answer,
                          source_stamp=to_stamp(turn.source_stamp), keyframe_seq=keyframe_seq,
                          age_s=float(turn.age_s), source=turn.source)


def turn_from_msg(msg: HistoryTurnMsg, frame_stamp: float) -> HistoryTurn:
    """A history turn aged for the frame at `frame_stamp`."""
    source_stamp = to_sec(msg.source_stamp)
    return HistoryTurn(msg.query, msg.answer, source_stamp, frame_stamp - source_stamp,
                       msg.source)


def fused_to_msg(fused: FusedContext, header) -> FusedContextMsg:
    """The FusedContext message of a fused context; `header` is the fused frame's."""
    width, height = fused.frame_size
    msg = FusedContextMsg(header=header, image_width=width, image_height=height,
                          turns=[turn_to_msg(t) for t in fused.turns],
                          focus_regions=regions_to_msgs(fused.regions),
                          has_context=fused.has_context, newest_age_s=-1.0)
    if fused.newest_cloud_stamp is not None:
        msg.newest_age_s = fused.stamp - fused.newest_cloud_stamp
        msg.newest_source_stamp = to_stamp(fused.newest_cloud_stamp)
    return msg


def fused_from_msg(msg: FusedContextMsg) -> FusedContext:
    """A fused context from its message; turns keep their source stamps (aged per frame)."""
    stamp = to_sec(msg.header.stamp)
    newest = to_sec(msg.newest_source_stamp) if msg.newest_age_s >= 0 else None
    return FusedContext(stamp, (msg.image_width, msg.image_height),
                        [turn_from_msg(t, stamp) for t in msg.turns],
                        [region_from_msg(r) for r in msg.focus_regions], newest)
