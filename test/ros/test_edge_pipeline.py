"""The edge node and the fuser as real processes: headers, bad frames, a 100 Hz flood."""

import time

import numpy as np
import pytest
from sensor_msgs.msg import Image

from harness import edge_and_fuser, rss_mb, send_goal

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    with edge_and_fuser(tmp_path_factory.mktemp('logs'),
                        edge_params={'diagnostics.stage_times': True}) as (probe, procs):
        yield probe, procs['edge'], procs['fuser']


def answers_after(probe, start: int, count: int, timeout_s: float = 60):
    assert probe.wait_for(lambda: len(probe.answers) >= start + count, timeout_s), \
        f'{len(probe.answers) - start} of {count} answers'
    return probe.answers[start:]


def test_each_answer_carries_its_frames_header(pipeline):
    probe, edge, _ = pipeline
    start = len(probe.answers)
    probe.stream(4.0, 5.0)
    answers = answers_after(probe, start, 3)
    sent = {(h.stamp.sec, h.stamp.nanosec): h for h in probe.sent}
    for answer in answers:
        key = (answer.header.stamp.sec, answer.header.stamp.nanosec)
        assert key in sent, 'an answer names a frame that was never sent'
        assert answer.header == sent[key]
        assert answer.header.frame_id == 'test_camera'
        assert 0 < answer.inference_time_s < answer.latency_s < 30
        assert answer.model == 'tiny' and answer.strategy == 'context_transfer'
        # No cloud here: the history is the edge's own answers, which the fuser hears on
        # `answer` and hands back; no cloud turn, no focus, no context age.
        assert answer.context_age_s == -1.0 and not answer.used_context
        assert not answer.used_focus
    assert edge.poll() is None


def test_stage_times_follow_each_answered_frame_in_order(pipeline):
    from diagnostic_msgs.msg import DiagnosticArray

    from spotvlm_ros.nodes.qos import ANSWER_QOS

    probe, _, _ = pipeline
    stages = []
    subscription = probe.node.create_subscription(DiagnosticArray, 'edge_node/stage_times',
                                                  stages.append, ANSWER_QOS)
    try:
        assert probe.wait_for(lambda: probe.node.count_publishers('edge_node/stage_times'), 10)
        probe.stream(3.0, 5.0)
        assert probe.wait_for(lambda: len(stages) >= 3, 30), f'{len(stages)} stage messages'
    finally:
        probe.node.destroy_subscription(subscription)
    sent = {(h.stamp.sec, h.stamp.nanosec): h for h in probe.sent}
    order = ('callback', 'converted', 'taken', 'planned', 'inferred', 'publish')
    for msg in stages:
        assert msg.header == sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
        marks = {v.key: float(v.value) for v in msg.status[0].values}
        times = [msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9] + \
            [marks[name] for name in order]
        assert times == sorted(times), f'stages out of order: {marks}'
        assert 0 < marks['preprocess_s'] <= marks['inferred'] - marks['planned']


def test_malformed_images_are_skipped_and_the_node_keeps_answering(pipeline):
    probe, edge, fuser = pipeline
    good = probe.pool[0]
    wrong_encoding = Image(height=good.height, width=good.width, encoding='yuv422',
                           step=good.step, data=good.data)
    short = Image(height=good.height, width=good.width, encoding='rgb8', step=good.step,
                  data=bytes(good.step * (good.height - 1)))
    start = len(probe.answers)
    # Sent three times each between good frames: a large best-effort image may be lost in
    # fragments on a busy machine, and the point is what happens to the ones that arrive.
    for _ in range(3):
        for bad in (wrong_encoding, short):
            bad.header.stamp = probe.node.get_clock().now().to_msg()
            probe.image_pub.publish(bad)
        probe.stream(0.7, 5.0)
    answers_after(probe, start, 1)
    assert edge.poll() is None and fuser.poll() is None
    assert probe.wait_for(lambda: _value(probe, 'edge_node', 'bad_frames') >= 2, 5)
    assert probe.wait_for(lambda: _value(probe, 'context_fuser', 'bad_frames') >= 2, 5)


def test_a_100_hz_flood_keeps_memory_bounded_and_answers_the_latest_frame(pipeline):
    probe, edge, _ = pipeline
    warm = probe.stream(1.0, 100.0)  # warm the buffers before measuring
    before = rss_mb(edge.pid)
    start = len(probe.answers)
    sent = probe.stream(5.0, 100.0)
    answers_after(probe, start, 2)
    time.sleep(2.0)  # the answer to the last frame
    grown = rss_mb(edge.pid) - before
    answers = probe.answers[start:]
    dropped = sum(a.frames_dropped for a in answers)
    assert grown < 60, f'edge node grew {grown:.0f} MB during the flood'
    assert sent > 300, f'the probe published only {sent} frames in 5 s'
    # A backlog answered in order would lag further with every frame (by seconds after 5 s at
    # twice the edge's rate); the latest-frame policy drops the waiting frames instead. How
    # many it drops depends on how fast the edge is here, so only that it drops is asserted.
    assert dropped > 0, 'no frame was dropped under a 100 Hz flood'
    assert max(a.latency_s for a in answers) < 1.0, 'a backlog was answered, not the latest'
    # The first answer's drop count may include the warm-up's last frames.
    assert len(answers) + dropped <= sent + warm
    last_sent = _sec(probe.sent[-1].stamp)
    assert last_sent - _sec(answers[-1].header.stamp) < 1.0, 'the answers lag behind the camera'
    print(f'flood: {sent} frames at 100 Hz, {len(answers)} answered, {dropped} dropped, '
          f'edge RSS {before:.0f} -> {before + grown:.0f} MB')


def _sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _value(probe, node: str, key: str) -> float:
    return float(probe.status_values(node).get(key, 'nan'))


def test_latency_is_numeric(pipeline):
    probe, _, _ = pipeline
    assert all(np.isfinite(a.latency_s) for a in probe.answers)


def test_the_ask_action_answers_on_the_latest_frame_with_streamed_feedback(pipeline):
    from rclpy.action import ActionClient
    from spotvlm_msgs.action import Ask

    probe, edge, _ = pipeline
    frame = probe.publish_frame()
    time.sleep(0.5)  # the edge node has it as its latest frame
    client = ActionClient(probe.node, Ask, 'ask')
    try:
        assert client.wait_for_server(timeout_sec=30)
        feedback = []
        handle = send_goal(client, Ask.Goal(question='Is a pedestrian ahead?'), probe.wait_for,
                           lambda f: feedback.append(f.feedback.partial_text))
        result = handle.get_result_async()
        assert probe.wait_for(result.done, 60)
        answer = result.result().result.answer
    finally:
        client.destroy()
    assert answer.query == 'Is a pedestrian ahead?'
    assert answer.header.stamp == frame.header.stamp
    assert answer.new_tokens >= 1 and answer.model == 'tiny'
    # Feedback is the answer so far; its last piece is the whole answer (it may trail the result).
    assert probe.wait_for(lambda: feedback and feedback[-1] == answer.answer, 5), feedback
    assert edge.poll() is None


def test_the_standing_query_changes_on_the_query_topic(pipeline):
    from std_msgs.msg import String

    probe, _, _ = pipeline
    pub = probe.node.create_publisher(String, 'query', 10)
    assert probe.wait_for(lambda: pub.get_subscription_count() >= 1, 30)
    pub.publish(String(data='How many cars are ahead?'))
    start = len(probe.answers)
    assert probe.wait_for(lambda: (probe.publish_frame() and False) or any(
        a.query == 'How many cars are ahead?' for a in probe.answers[start:]), 30)
    pub.publish(String(data='What should the ego vehicle do now?'))  # leave it as it was
