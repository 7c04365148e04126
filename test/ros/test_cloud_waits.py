"""auto's hedged waits: a held answer ends as the cloud's reply in time, else as the hedge."""

import math
import threading
import time

import pytest
from spotvlm_msgs.msg import CloudContext, EdgeAnswer, Region

from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.cloud_waits import CloudWaits
from spotvlm_ros.scenes.scoring import split_reply

pytestmark = pytest.mark.ros
QUERY = 'Where is the nearest vehicle?'
STAMP = 1000.0


class Clock:
    """Seconds on the frames' clock, moved by hand."""

    def __init__(self, now: float = STAMP):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig():
    given, clock = [], Clock()
    arrived = threading.Event()

    def give(answer):
        given.append(answer)
        arrived.set()

    waits = CloudWaits(1.0, give, clock)
    yield waits, given, clock, arrived
    waits.close()


def hedge(stamp: float = STAMP) -> EdgeAnswer:
    msg = EdgeAnswer(query=QUERY, answer='[]', model='edge', strategy='auto',
                     source='context_transfer', frames_dropped=2)
    msg.header.stamp = convert.to_stamp(stamp)
    return msg


def reply(stamp: float = STAMP, status=CloudContext.STATUS_OK, round_trip_s: float = 0.4,
          query: str = QUERY) -> CloudContext:
    msg = CloudContext(query=query, answer='a car ahead', model='cloud-72b', status=status,
                       round_trip_s=round_trip_s, image_width=448, image_height=336,
                       regions=[Region(label='car', x1=10.0, y1=20.0, x2=50.0, y2=60.0)])
    msg.header.stamp = convert.to_stamp(stamp)
    return msg


def test_a_reply_in_time_is_given_in_place_of_the_hedge(rig):
    waits, given, clock, _ = rig
    waits.hold(hedge())
    assert given == []
    clock.now = STAMP + 0.4
    waits.on_reply(reply())
    [answer] = given
    assert answer.source == 'cloud_wait' and answer.model == 'cloud-72b'
    assert answer.frames_dropped == 2 and answer.strategy == 'auto'
    words, regions = split_reply(answer.answer, (448, 336))
    assert words == 'a car ahead' and [(r.x1, r.y1, r.x2, r.y2) for r in regions] == [
        (10, 20, 50, 60)]
    assert waits.counts == {'waits': 1, 'cloud_in_time': 1, 'hedges_given': 0}
    assert waits.last_round_trip == 0.4 and waits.can_wait()


def test_no_reply_by_the_deadline_gives_the_hedge_then(rig):
    waits, given, clock, arrived = rig
    clock.now = STAMP + 0.8  # the hedge is ready 0.8 s after its frame: 0.2 s left to wait
    started = time.monotonic()
    waits.hold(hedge())
    assert arrived.wait(5.0)
    assert 0.15 <= time.monotonic() - started < 2.0
    assert [a.source for a in given] == ['context_transfer']
    clock.now = STAMP + 1.5
    waits.on_reply(reply(round_trip_s=1.5))  # too late: nothing more is given
    assert len(given) == 1
    assert not waits.can_wait()  # the last round trip missed the deadline


@pytest.mark.parametrize('status', [CloudContext.STATUS_TIMEOUT, CloudContext.STATUS_ERROR])
def test_a_failed_request_gives_the_hedge_at_once(rig, status):
    waits, given, clock, _ = rig
    waits.hold(hedge())
    waits.on_reply(reply(status=status))
    assert [a.source for a in given] == ['context_transfer']
    assert waits.last_round_trip == math.inf and not waits.can_wait()


def test_a_reply_before_the_hedge_settles_it_when_held(rig):
    waits, given, clock, _ = rig
    assert waits.can_wait()  # no round trip known yet
    clock.now = STAMP + 0.05
    waits.on_reply(reply(round_trip_s=0.05))
    waits.on_reply(reply(STAMP, query='another question'))
    assert given == []
    waits.hold(hedge())
    assert [a.source for a in given] == ['cloud_wait']


def test_replies_about_other_frames_leave_a_wait_alone(rig):
    waits, given, clock, arrived = rig
    clock.now = STAMP + 0.9
    waits.hold(hedge())
    waits.on_reply(reply(STAMP - 0.1))
    assert arrived.wait(5.0)
    assert [a.source for a in given] == ['context_transfer']


def test_offload_calls_its_fallback_instead_of_giving_the_empty_hedge(rig):
    waits, given, clock, _ = rig
    assert not waits.can_wait(unknown=False)  # offload waits only on a known round trip
    fell_back = []
    empty = EdgeAnswer(query=QUERY, strategy='offload', source='edge_only')
    empty.header.stamp = convert.to_stamp(STAMP)
    waits.hold(empty, fell_back.append)
    waits.on_reply(reply(status=CloudContext.STATUS_TIMEOUT))  # a failure: the edge, at once
    assert fell_back == [empty] and given == []

    later = EdgeAnswer(query=QUERY, strategy='offload', source='edge_only')
    later.header.stamp = convert.to_stamp(STAMP + 1.0)
    clock.now = STAMP + 1.3
    waits.hold(later, fell_back.append)
    waits.on_reply(reply(STAMP + 1.0, round_trip_s=0.3))  # in time: the cloud's, no fallback
    assert len(fell_back) == 1 and [a.source for a in given] == ['cloud_wait']
    assert given[0].strategy == 'offload' and waits.can_wait(unknown=False)
    assert waits.counts == {'waits': 2, 'cloud_in_time': 1, 'hedges_given': 1}
