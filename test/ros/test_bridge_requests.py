"""cloud_bridge sends the frames the edge node asks for (cloud_request), outside its keyframe
policy: the bridge and the local cloud server as real processes, the probe as the edge node."""

import copy
import time

import pytest
from spotvlm_msgs.msg import CloudContext, CloudRequest

from harness import Probe, start_cloud_server, start_node, stop
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.qos import CLOUD_CONTEXT_QOS, CLOUD_REQUEST_QOS

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'What now?'


def test_the_bridge_sends_each_requested_frame_it_holds_once_even_before_it_arrives(tmp_path):
    server, port = start_cloud_server(tmp_path, 0.3)
    # The policy sends the first frame and then none for 100 s: every other reply is a request's.
    bridge = start_node('cloud_bridge', tmp_path, **{
        'cloud.base_url': f'http://127.0.0.1:{port}/v1', 'cloud.model': 'tiny',
        'cloud.api_key_env': '', 'keyframe.min_interval_s': 100.0,
        'keyframe.max_interval_s': 200.0, 'query': QUERY, 'request_ring_size': 3})
    probe = Probe()
    replies = []
    probe.node.create_subscription(CloudContext, 'cloud_context', replies.append,
                                   CLOUD_CONTEXT_QOS)
    requests = probe.node.create_publisher(CloudRequest, 'cloud_request', CLOUD_REQUEST_QOS)
    try:
        probe.wait_for_subscribers(1)
        assert probe.wait_for(lambda: requests.get_subscription_count() > 0, 60)
        frames = [probe.publish_frame() for _ in range(5)]
        # Every frame in before the requests: a slow bridge would still hold frame 0.
        assert probe.wait_for(
            lambda: probe.status_values('cloud_bridge').get('frames') == '5', 30)
        # Frame 3 is held and asked for twice; frame 0 (the keyframe) is no longer held.
        for index in (3, 0, 3):
            requests.publish(CloudRequest(header=frames[index].header, query=QUERY))
        # Asked before it comes: sent when it does.
        ahead = copy.deepcopy(probe.pool[0])
        ahead.header.stamp = convert.to_stamp(convert.to_sec(frames[-1].header.stamp) + 1.0)
        ahead.header.frame_id = 'test_camera'
        requests.publish(CloudRequest(header=ahead.header, query='Is it raining?'))
        time.sleep(0.3)
        probe.image_pub.publish(ahead)

        wanted = {convert.stamp_key(f.header) for f in (frames[0], frames[3], ahead)}
        assert probe.wait_for(lambda: wanted <= {convert.stamp_key(r.header) for r in replies},
                              60), [convert.stamp_key(r.header) for r in replies]
        time.sleep(1.0)  # any duplicate would be back by now
        def counted():
            values = probe.status_values('cloud_bridge')
            return {k: values.get(k) for k in ('sent', 'requested', 'requests_missed')}

        assert probe.wait_for(lambda: counted() == {'sent': '1', 'requested': '2',
                                                    'requests_missed': '1'}, 10), counted()
        assert bridge.poll() is None
    finally:
        probe.close()
        codes = stop(bridge, server)
    assert all(code == 0 for code in codes.values()), codes
    by_frame = {}
    for reply in replies:
        by_frame.setdefault(convert.stamp_key(reply.header), []).append(reply)
    assert sorted(len(v) for v in by_frame.values()) == [1, 1, 1]  # none sent twice
    assert all(r.status == CloudContext.STATUS_OK and r.round_trip_s >= 0.3 for r in replies)
    assert by_frame[convert.stamp_key(ahead.header)][0].query == 'Is it raining?'
    assert by_frame[convert.stamp_key(frames[3].header)][0].query == QUERY
