"""The edge node's `edge_own_history`: its own answers, heard back through the fuser, are its
history; cloud turns are not read, and being handed them is logged (real processes)."""

import time

import pytest
from spotvlm_msgs.msg import CloudContext

from harness import edge_and_fuser

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = 'What now?'
WARNING = 'edge_own_history: the fused context holds cloud answers'


def test_own_history_reads_its_own_turns_and_never_the_clouds(tmp_path):
    params = {'strategy': 'edge_own_history', 'query': QUERY}
    with edge_and_fuser(tmp_path, edge_params=params) as (probe, _):
        probe.stream(2.0, 5.0)
        time.sleep(1.0)
        own = list(probe.answers)
        assert own and all(a.strategy == 'edge_own_history' for a in own)
        # The first answer had no history; later prompts carry its own turns.
        assert max(a.prompt_tokens for a in own) > own[0].prompt_tokens
        assert not any(a.used_context for a in own)  # no cloud turn among them

        frame = probe.publish_frame()
        probe.cloud_pub.publish(CloudContext(
            header=frame.header, keyframe_seq=1, query=QUERY, answer='A red light is ahead.',
            status=CloudContext.STATUS_OK, model='m', image_width=320, image_height=240))
        start = len(probe.answers)
        probe.stream(1.5, 5.0)
        time.sleep(1.0)
        later = probe.answers[start:]
        assert later and not any(a.used_context or a.context_age_s >= 0 for a in later)
    logs = ''.join(p.read_text() for p in tmp_path.glob('edge_node-*.log'))
    assert logs.count(WARNING) == 1
