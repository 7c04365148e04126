"""The edge node's waits for the cloud (auto, offload): an answer held until the cloud's reply
about its frame comes, or its deadline passes.

The edge node asks the bridge for the frame (cloud_request) and hands its hedge here: for auto
the answer from the best other source, made meanwhile; for offload an empty answer with a
fallback that has the edge model answer the frame. The cloud's reply, if it is back by the
frame's stamp plus the deadline, is given in its place; otherwise the hedge is given (or its
fallback called) at the deadline, or at once when the cloud reports a failure. No thread waits:
one timer per held answer.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable, Optional

from spotvlm_msgs.msg import CloudContext, EdgeAnswer

from spotvlm_ros.core.composition import CLOUD_WAIT
from spotvlm_ros.core.regions import fenced_reply, region_items
from spotvlm_ros.nodes import convert

REPLY_MEMORY = 64  # replies kept for answers not yet held (a cloud faster than the hedge)


class CloudWaits:
    """Held answers by frame, the replies that release them, and the last round trip."""

    def __init__(self, deadline_s: float, give: Callable[[EdgeAnswer], None],
                 now: Callable[[], float]):
        self.deadline_s = deadline_s
        self._give = give  # publishes an answer; called without the lock held
        self._now = now  # seconds on the frames' clock
        self._lock = threading.Lock()
        self._held: dict = {}  # (stamp key, query) -> (hedge EdgeAnswer, fallback, timer)
        self._replies: OrderedDict = OrderedDict()  # (stamp key, query) -> (reply, when)
        self._round_trip: Optional[float] = None
        self.counts = {'waits': 0, 'cloud_in_time': 0, 'hedges_given': 0}

    @property
    def last_round_trip(self) -> Optional[float]:
        """The newest reply's round trip (inf for a failure); None before the first."""
        return self._round_trip

    def can_wait(self, unknown: bool = True) -> bool:
        """Whether a wait may pay: the last round trip met the deadline, or none is known yet
        and `unknown` says that will do."""
        if self._round_trip is None:
            return unknown
        return self._round_trip <= self.deadline_s

    def hold(self, hedge: EdgeAnswer,
             fallback: Optional[Callable[[EdgeAnswer], None]] = None) -> None:
        """Hold `hedge` (an answer about a frame sent to the cloud) until the cloud's reply or
        the deadline, whichever is first; without a reply in time, `fallback(hedge)` is called
        instead of giving the hedge, when there is one."""
        key = _key(hedge)
        stamp = convert.to_sec(hedge.header.stamp)
        with self._lock:
            self.counts['waits'] += 1
            early = self._replies.pop(key, None)
            if early is None:
                timer = threading.Timer(max(0.0, stamp + self.deadline_s - self._now()),
                                        self._expire, (key,))
                timer.daemon = True
                self._held[key] = (hedge, fallback, timer)
                timer.start()
                return
        self._settle(hedge, fallback, *early)

    def on_reply(self, reply: CloudContext) -> None:
        """A cloud reply (or failure): the round trip to predict from; a held answer's end."""
        ok = reply.status == CloudContext.STATUS_OK
        key = (convert.stamp_key(reply.header), reply.query)
        arrived = self._now()
        with self._lock:
            self._round_trip = float(reply.round_trip_s) if ok else math.inf
            held = self._held.pop(key, None)
            if held is None:
                self._replies[key] = (reply, arrived)
                while len(self._replies) > REPLY_MEMORY:
                    self._replies.popitem(last=False)
                return
            held[2].cancel()
        self._settle(held[0], held[1], reply, arrived)

    def close(self) -> None:
        """Drop every held answer (the node is stopping)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for _, _, timer in held:
            timer.cancel()

    def _settle(self, hedge: EdgeAnswer, fallback, reply: CloudContext, arrived: float) -> None:
        """Give the cloud's reply if it is good and came in time, else the hedge."""
        in_time = arrived - convert.to_sec(hedge.header.stamp) <= self.deadline_s
        if reply.status == CloudContext.STATUS_OK and in_time:
            self._count('cloud_in_time')
            self._give(cloud_answer(reply, hedge))
        else:
            self._fall_back(hedge, fallback)

    def _expire(self, key) -> None:
        with self._lock:
            held = self._held.pop(key, None)
        if held is not None:
            self._fall_back(*held[:2])

    def _fall_back(self, hedge: EdgeAnswer, fallback) -> None:
        self._count('hedges_given')
        (fallback or self._give)(hedge)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1


def cloud_answer(reply: CloudContext, hedge: EdgeAnswer) -> EdgeAnswer:
    """The cloud's reply about the hedge's frame as that frame's answer: its words, then its
    regions in a ```json fence, as the cloud wrote it."""
    items = region_items([convert.region_from_msg(r) for r in reply.regions])
    return EdgeAnswer(
        header=hedge.header, query=hedge.query,
        answer=fenced_reply(reply.answer, items) if items else reply.answer, model=reply.model,
        strategy=hedge.strategy, source=CLOUD_WAIT, has_context=hedge.has_context,
        context_age_s=-1.0, focus_regions=list(reply.regions),
        frames_dropped=hedge.frames_dropped)


def _key(answer: EdgeAnswer) -> tuple:
    return convert.stamp_key(answer.header), answer.query
