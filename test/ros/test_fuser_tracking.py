"""context_fuser carries a late reply's regions through the frames it holds: the fuser as a real
process, the probe as camera and cloud bridge."""

import copy

import numpy as np
import pytest
from spotvlm_msgs.msg import CloudContext, Region

from harness import Probe, start_node, stop

pytestmark = [pytest.mark.ros, pytest.mark.slow]
KEY_BOX = (60.0, 80.0, 140.0, 160.0)


def test_the_fuser_follows_motion_too_fast_for_one_flow_step_through_its_ring(tmp_path):
    # Every held frame is a step (hop 0.01 s): 20 px per frame, 120 px in all, three times
    # what one step at 320 px follows.
    fuser = start_node('context_fuser', tmp_path, **{'focus.flow_hop_s': 0.01,
                                                     'image_reliable': True})
    probe = Probe()
    texture = np.random.default_rng(5).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 4, axis=0), 4, axis=1)  # 4 px blobs: trackable
    try:
        probe.wait_for_subscribers(1)
        key = probe.publish_frame(texture)
        probe.wait_for(lambda: False, 0.1)
        for i in range(1, 7):  # the scene moves on while the reply is on its way
            last = probe.publish_frame(np.roll(texture, 20 * i, axis=1))
            probe.wait_for(lambda: False, 0.1)
        assert probe.wait_for(
            lambda: probe.status_values('context_fuser').get('frames') == '7', 30)
        probe.cloud_pub.publish(CloudContext(
            header=copy.deepcopy(key.header), keyframe_seq=1, query='where?', answer='a car',
            model='cloud', status=CloudContext.STATUS_OK, image_width=320, image_height=240,
            regions=[Region(label='car', score=1.0, x1=KEY_BOX[0], y1=KEY_BOX[1],
                            x2=KEY_BOX[2], y2=KEY_BOX[3], source='cloud')]))

        def carried():
            fused = [f for f in probe.fused
                     if f.header.stamp == last.header.stamp and f.focus_regions]
            return fused[-1].focus_regions[0] if fused else None

        assert probe.wait_for(lambda: carried() is not None, 10), 'no fused context with regions'
        region = carried()
    finally:
        probe.close()
        codes = stop(fuser)
    assert all(code == 0 for code in codes.values()), codes
    assert region.source == Region.SOURCE_PROPAGATED
    assert abs(region.x1 - (KEY_BOX[0] + 120)) < 3 and abs(region.x2 - (KEY_BOX[2] + 120)) < 3
    assert abs(region.y1 - KEY_BOX[1]) < 3 and abs(region.y2 - KEY_BOX[3]) < 3
