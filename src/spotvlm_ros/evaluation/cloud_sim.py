"""The keyframe stream to a simulated cloud: which frames go, and when each reply is back."""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass
from typing import Optional, Sequence

from spotvlm_ros.core.keyframes import KeyframeConfig, KeyframePolicy
from spotvlm_ros.core.traces import LatencyTrace


@dataclass(frozen=True)
class CloudRequest:
    """One keyframe sent to the cloud and how it ended."""

    seq: int  # 1, 2, ... in sending order, as the bridge numbers keyframes
    frame_index: int
    sent_at: float
    done_at: float  # the reply's arrival, or when the client gave up or cancelled it
    ok: bool  # a reply came and was used
    superseded: bool = False  # cancelled when a newer keyframe's reply came first
    # The round trip as the client timed it. Kept, not recomputed as done_at - sent_at: that
    # difference is 1.0000000000000002 for a 1 s delay sent at 1.2 s, past a 1 s deadline.
    round_trip_s: float = math.inf


def round_trip(trace: LatencyTrace, sent_at: float, timeout_s: float,
               cloud_cost_s: float = 0.0) -> Optional[float]:
    """Seconds until the reply to a request sent at `sent_at`; None: none within the timeout."""
    delay = trace.delay_at(sent_at)
    if delay is None or delay + cloud_cost_s > timeout_s:
        return None
    return delay + cloud_cost_s


def keyframe_requests(frames: Sequence, trace: LatencyTrace, config: KeyframeConfig,
                      timeout_s: float, cloud_cost_s: float = 0.0) -> list:
    """Run the bridge's keyframe policy over every frame; the requests it makes, in order.

    As the bridge's client does, a reply cancels every request for an older keyframe still in
    flight (it ends then, unanswered, and counts as a success for the circuit breaker, as a
    superseded request does in the bridge).
    """
    policy = KeyframePolicy(config)
    pending: list = []  # heap of (done_at, seq, ok)
    requests: list = []

    def settle(now: float) -> None:
        while pending and pending[0][0] <= now:
            done_at, seq, ok = heapq.heappop(pending)
            policy.record_reply(done_at, ok)
            if not ok:
                continue
            older = [p for p in pending if requests[p[1] - 1].sent_at < requests[seq - 1].sent_at]
            for item in older:
                pending.remove(item)
                requests[item[1] - 1] = dataclasses.replace(
                    requests[item[1] - 1], done_at=done_at, ok=False, superseded=True)
                policy.record_reply(done_at, True)
            heapq.heapify(pending)

    for frame in frames:
        settle(frame.stamp)
        if not policy.should_send(frame.stamp, frame.image, len(pending)):
            continue
        rtt = round_trip(trace, frame.stamp, timeout_s, cloud_cost_s)
        done_at = frame.stamp + (timeout_s if rtt is None else rtt)
        request = CloudRequest(len(requests) + 1, frame.index, frame.stamp, done_at,
                               rtt is not None, round_trip_s=math.inf if rtt is None else rtt)
        heapq.heappush(pending, (done_at, request.seq, request.ok))
        requests.append(request)
    settle(math.inf)  # what is still in flight at the end ends as it would have
    return requests


def last_round_trip(requests: Sequence[CloudRequest], now: float) -> Optional[float]:
    """Round trip of the newest request finished by `now` (inf for a failure); None if none.

    A superseded request measured no round trip: it is skipped."""
    done = [r for r in requests if r.done_at <= now and not r.superseded]
    if not done:
        return None
    newest = max(done, key=lambda r: (r.done_at, r.seq))
    return newest.round_trip_s if newest.ok else math.inf


def mean_delay(trace: LatencyTrace, stamps: Sequence[float], timeout_s: float) -> float:
    """Mean delay of the trace at `stamps` as a client sees it: an outage costs the timeout."""
    delays = [min(timeout_s, d) if d is not None else timeout_s
              for d in (trace.delay_at(t) for t in stamps)]
    return sum(delays) / len(delays)
