"""context_fuser carries a late reply's regions through the frames it holds: the fuser as a real
process, the probe as camera and cloud bridge."""

import numpy as np
import pytest
from spotvlm_msgs.msg import Region

from harness import Probe, blob_texture, region_fused_for, reply_with_box, start_node, stop

pytestmark = [pytest.mark.ros, pytest.mark.slow]
KEY_BOX = (60.0, 80.0, 140.0, 160.0)


def test_the_fuser_follows_motion_too_fast_for_one_flow_step_through_its_ring(tmp_path):
    # Every held frame is a step (hop 0.01 s): 20 px per frame, 120 px in all, three times
    # what one step at 320 px follows.
    fuser = start_node('context_fuser', tmp_path, **{'focus.flow_hop_s': 0.01,
                                                     'image_reliable': True})
    probe = Probe()
    texture = blob_texture()
    try:
        probe.wait_for_subscribers(1)
        key = probe.publish_frame(texture)
        probe.wait_for(lambda: False, 0.1)
        for i in range(1, 7):  # the scene moves on while the reply is on its way
            last = probe.publish_frame(np.roll(texture, 20 * i, axis=1))
            probe.wait_for(lambda: False, 0.1)
        assert probe.wait_for(
            lambda: probe.status_values('context_fuser').get('frames') == '7', 30)
        probe.cloud_pub.publish(reply_with_box(key.header, KEY_BOX))
        assert probe.wait_for(lambda: region_fused_for(probe, last.header) is not None, 10), \
            'no fused context with regions'
        region = region_fused_for(probe, last.header)
    finally:
        probe.close()
        codes = stop(fuser)
    assert all(code == 0 for code in codes.values()), codes
    assert region.source == Region.SOURCE_PROPAGATED
    assert abs(region.x1 - (KEY_BOX[0] + 120)) < 3 and abs(region.x2 - (KEY_BOX[2] + 120)) < 3
    assert abs(region.y1 - KEY_BOX[1]) < 3 and abs(region.y2 - KEY_BOX[3]) < 3
