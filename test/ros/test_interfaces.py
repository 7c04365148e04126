"""Every spotvlm_msgs type crosses two processes intact."""

import os

import pytest
from builtin_interfaces.msg import Time
from spotvlm_msgs.action import Ask
from spotvlm_msgs.msg import CloudContext, EdgeAnswer, FusedContext, HistoryTurn, Region

from spotvlm_ros.core import types
from spotvlm_ros.testing.relay import relay


def stamp(sec: int, nanosec: int = 0) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def region(i: int) -> Region:
    # float32 fields: values exactly representable, so equality is exact after the trip
    return Region(label=f'car {i}', score=0.5 + i / 8, x1=1.5 + i, y1=2.0, x2=30.25, y2=40.0,
                  source=Region.SOURCE_PROPAGATED)


def cloud_context() -> CloudContext:
    msg = CloudContext(keyframe_seq=7, query='what is ahead?', answer='a red light; 2 cars',
                       regions=[region(0), region(1)], image_width=640, image_height=480,
                       model='qwen2.5-vl-72b', request_stamp=stamp(100, 5),
                       response_stamp=stamp(103, 6), round_trip_s=3.000000001,
                       status=CloudContext.STATUS_TIMEOUT, error_message='no reply in 8 s')
    msg.header.stamp = stamp(99, 123)
    msg.header.frame_id = 'front_camera'
    return msg


def fused_context() -> FusedContext:
    turn = HistoryTurn(query='q', answer='2.4 s ago: red light', source_stamp=stamp(97),
                       keyframe_seq=3, age_s=2.4, source=HistoryTurn.SOURCE_CLOUD)
    msg = FusedContext(turns=[turn, turn], focus_regions=[region(2)], image_width=640,
                       image_height=480, has_context=True, newest_age_s=2.4,
                       newest_source_stamp=stamp(97))
    msg.header.stamp = stamp(99, 400_000_000)
    msg.header.frame_id = 'front_camera'
    return msg


def edge_answer() -> EdgeAnswer:
    msg = EdgeAnswer(query='light?', answer='red', model='tiny', strategy='context_transfer',
                     inference_time_s=0.031, latency_s=0.052, has_context=True,
                     context_age_s=4.9, used_context=True, used_focus=True,
                     focus_regions=[region(3)], visual_tokens=130, prompt_tokens=210,
                     new_tokens=4, frames_dropped=2)
    msg.header.stamp = stamp(1700000000, 999_999_999)
    msg.header.frame_id = 'front_camera'
    return msg


MESSAGES = {
    'Region': [region(0), Region()],
    'HistoryTurn': [HistoryTurn(query='é ü 漢字', answer='x' * 10_000, age_s=-0.0)],
    'CloudContext': [cloud_context(), CloudContext()],
    'FusedContext': [fused_context(), FusedContext(newest_age_s=-1.0)],
    'EdgeAnswer': [edge_answer(), EdgeAnswer(context_age_s=-1.0)],
    'Ask_Goal': [Ask.Goal(question='is the road clear?', no_context=True)],
    'Ask_Result': [Ask.Result(answer=edge_answer())],
    'Ask_Feedback': [Ask.Feedback(partial_text='the road')],
}


@pytest.mark.ros
@pytest.mark.parametrize('name', sorted(MESSAGES))
def test_message_crosses_two_processes_intact(node, name):
    sent = MESSAGES[name]
    received = relay(node, sent, f'interfaces_{name.lower()}_{os.getpid()}')
    assert received == sent


def test_region_sources_match_the_python_constants():
    assert Region.SOURCE_CLOUD == types.SOURCE_CLOUD
    assert Region.SOURCE_PROPAGATED == types.SOURCE_PROPAGATED
    assert Region.SOURCE_WIDENED == types.SOURCE_WIDENED
    assert Region.SOURCE_MERGED == types.SOURCE_MERGED
    assert Region.SOURCE_GROUND_TRUTH == types.SOURCE_GROUND_TRUTH


def test_cloud_status_constants_are_distinct():
    statuses = {CloudContext.STATUS_OK, CloudContext.STATUS_TIMEOUT, CloudContext.STATUS_ERROR}
    assert statuses == {0, 1, 2}
