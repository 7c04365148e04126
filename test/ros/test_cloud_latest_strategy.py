"""The edge node's `cloud_latest` strategy: the newest cloud answer, or none (real processes)."""

import time

import pytest
from spotvlm_msgs.msg import CloudContext, Region

from harness import edge_and_fuser
from spotvlm_ros.scenes.scoring import iou, split_reply

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'Where is the nearest vehicle?'
BOX = [40, 30, 90, 70]


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    logs = tmp_path_factory.mktemp('cloud-latest-logs')
    with edge_and_fuser(logs, edge_params={'strategy': 'cloud_latest', 'query': QUERY}) as rigged:
        yield rigged


def test_no_answer_is_published_before_a_cloud_answer_then_the_newest_one_is(rig):
    probe, _ = rig
    sent = probe.stream(1.5, 5.0)
    time.sleep(1.0)
    assert probe.answers == [], 'answered with no cloud answer to give'
    assert probe.wait_for(
        lambda: int(probe.status_values('edge_node').get('no_cloud_answer', 0)) > 0, 10)
    assert sent > 0

    frame = probe.publish_frame()
    probe.cloud_pub.publish(CloudContext(
        header=frame.header, keyframe_seq=1, query=QUERY, answer='nearest vehicle',
        regions=[Region(label='vehicle', score=1.0, x1=float(BOX[0]), y1=float(BOX[1]),
                        x2=float(BOX[2]), y2=float(BOX[3]), source=Region.SOURCE_CLOUD)],
        status=CloudContext.STATUS_OK, model='m', image_width=320, image_height=240))

    def answered_after_a_frame() -> bool:
        probe.publish_frame()
        time.sleep(0.2)
        return bool(probe.answers)

    assert probe.wait_for(answered_after_a_frame, 30), 'no answer after a cloud answer came'
    answer = probe.answers[0]
    # The reply as the cloud wrote it, as offline's cloud_latest answers: its words, then its
    # box (carried to this frame by the fuser: it may have moved a little) in a json fence.
    words, regions = split_reply(answer.answer, (320, 240))
    assert words == 'nearest vehicle' and len(regions) == 1 and len(answer.focus_regions) == 1
    assert iou((regions[0].x1, regions[0].y1, regions[0].x2, regions[0].y2), BOX) >= 0.5
    assert answer.source == answer.strategy == 'cloud_latest'
    assert answer.used_context and answer.context_age_s >= 0
    assert answer.inference_time_s == 0.0 and answer.new_tokens == 0
