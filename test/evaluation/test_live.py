"""Live mode: the real nodes on a bag, every answer recorded into MCAP and turned into records."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip('rclpy', reason='rclpy is installed by `make setup`')

from spotvlm_ros.evaluation.live import (LiveRunError, live_records, read_answer_bag,  # noqa: E402
                                         run_grace_s, run_live)
from spotvlm_ros.evaluation.records import (  # noqa: E402
    AUTO, CLOUD_WAIT, EDGE_ONLY, PARTITIONED, AnswerRecord)
from spotvlm_ros.io.bags import (ANSWER_TYPE, CLOUD_CONTEXT_TYPE, GROUND_TRUTH_TYPE,  # noqa: E402
                                 spotvlm_typestore)
from spotvlm_ros.scenes.scoring import split_reply  # noqa: E402

pytestmark = [pytest.mark.ros]

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUESTION = 'What colour is the traffic light?'
OTHER = 'How many vehicles are ahead?'
WALL_START_NS = 1_800_000_000 * 10**9  # when the live run played the first frame
PERIOD_NS = 100_000_000
# Publish-time stamps: the first frame went out 130 ms late, more than a period.
LATENESS_NS = [130_000_000, 35_000_000, 3_000_000, 5_000_000]
STAMPS_NS = [WALL_START_NS + i * PERIOD_NS + late for i, late in enumerate(LATENESS_NS)]


# a hand-written answer bag -----------------------------------------------------------------
def _header(store, ns):
    stamp = store.types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)
    return store.types['std_msgs/msg/Header'](stamp=stamp, frame_id='camera')


def _truth(store, index, questions):
    """Ground truth as image_source republishes it: stamped like its (restamped) frame."""
    qa_type = store.types['spotvlm_msgs/msg/QAPair']
    qa = [qa_type(family='vqa', question=q, answer=f'{q[:4]}-{index}', regions=[])
          for q in questions]
    return store.types['spotvlm_msgs/msg/GroundTruth'](
        header=_header(store, STAMPS_NS[index]), seed=7, frame_index=index,
        image_width=448, image_height=336, ego_speed_mps=10.0, light_state='red',
        speed_limit='50', vehicle_count=1, pedestrian_ahead=False, action='stop', objects=[],
        qa=qa)


def _answer(store, image_ns, text, latency, age, used_context=False, used_focus=False):
    return store.types['spotvlm_msgs/msg/EdgeAnswer'](
        header=_header(store, image_ns), query=QUESTION, answer=text, model='edge',
        strategy=EDGE_ONLY, source=EDGE_ONLY, inference_time_s=latency / 2, latency_s=latency,
        has_context=age >= 0, context_age_s=age, used_context=used_context, used_focus=used_focus, focus_regions=[],
        visual_tokens=64, prompt_tokens=100, new_tokens=3, frames_dropped=0)


def _reply(store, image_ns, text, regions=(), status=0):
    """A CloudContext as the bridge publishes it about the frame stamped `image_ns`."""
    region = store.types['spotvlm_msgs/msg/Region']
    return store.types['spotvlm_msgs/msg/CloudContext'](
        header=_header(store, image_ns), keyframe_seq=1, query=QUESTION, answer=text,
        regions=[region(label=label, score=1.0, x1=x1, y1=y1, x2=x2, y2=y2, source='cloud')
                 for label, (x1, y1, x2, y2) in regions],
        image_width=448, image_height=336, model='cloud', request_stamp=_header(store, 0).stamp,
        response_stamp=_header(store, 0).stamp, round_trip_s=0.0, status=status,
        error_message='' if status == 0 else 'timed out')


def write_answer_bag(path, replies=()):
    """Four frames (the fourth without the question); answers for frames 0 and 2 only, and one
    for a frame whose ground truth was never recorded; `replies`: (log ns, CloudContext)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = spotvlm_typestore()
    with Writer(pathlib.Path(path), version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(topic, t, typestore=store) for topic, t in (
            ('/answer', ANSWER_TYPE), ('/ground_truth', GROUND_TRUTH_TYPE),
            ('/cloud_context', CLOUD_CONTEXT_TYPE))}
        messages = [(STAMPS_NS[i] + 1_000_000, GROUND_TRUTH_TYPE,
                     _truth(store, i, [OTHER] if i == 3 else [OTHER, QUESTION]))
                    for i in range(4)]
        messages.append((STAMPS_NS[0] + 250_000_000, ANSWER_TYPE,
                         _answer(store, STAMPS_NS[0], 'red', 0.25, -1.0)))
        messages.append((STAMPS_NS[2] + 400_000_000, ANSWER_TYPE,
                         _answer(store, STAMPS_NS[2], 'green', 0.4, 1.5, True, True)))
        messages.append((STAMPS_NS[3] + 900_000_000, ANSWER_TYPE,
                         _answer(store, STAMPS_NS[3] + 7, 'stray', 0.4, -1.0)))
        messages += [(log_ns, CLOUD_CONTEXT_TYPE, make(store)) for log_ns, make in replies]
        for log_ns, msgtype, msg in sorted(messages, key=lambda m: m[0]):
            writer.write(conns[msgtype], log_ns, store.serialize_cdr(msg, msgtype))


def expected_records():
    def record(index, **answered):
        return AnswerRecord(
            strategy=EDGE_ONLY, trace='constant-1s', mean_delay_s=1.0, frame_index=index,
            frame_stamp=(STAMPS_NS[index] - STAMPS_NS[0]) / 1e9, question=QUESTION,
            family='vqa', truth=f'What-{index}', width=448, height=336, **answered)

    f0, f2 = 0.0, (STAMPS_NS[2] - STAMPS_NS[0]) / 1e9
    return [
        record(0, answered=True, answer='red', answered_at=f0 + 0.25, latency_s=0.25,
               source_stamp=f0, context_age_s=None, prompt_tokens=100, new_tokens=3),
        record(1),  # dropped by the edge: unanswered
        record(2, answered=True, answer='green', answered_at=f2 + 0.4, latency_s=0.4,
               source_stamp=f2, context_age_s=1.5, used_context=True, used_focus=True,
               prompt_tokens=100, new_tokens=3),
        # frame 3 has no such question: no record; the stray answer matches no frame
    ]


def test_live_records_match_answers_to_ground_truth_by_stamp(tmp_path):
    bag = tmp_path / 'answers'
    write_answer_bag(bag)
    assert live_records(bag, 'constant-1s', 1.0, EDGE_ONLY) == expected_records()


def test_live_records_takes_the_question_when_given(tmp_path):
    bag = tmp_path / 'answers'
    write_answer_bag(bag)
    records = live_records(bag, 'constant-1s', 1.0, EDGE_ONLY, question=OTHER)
    assert [r.frame_index for r in records] == [0, 1, 2, 3]
    assert not any(r.answered for r in records)  # the answers were to another question
    assert [r.truth for r in records] == [f'How -{i}' for i in range(4)]


def test_cloud_wait_records_are_the_bridge_replies_about_each_frame(tmp_path):
    bag = tmp_path / 'answers'
    box = ('traffic light', (270.0, 117.0, 284.0, 129.0))
    write_answer_bag(bag, [
        (STAMPS_NS[1] + 1_200_000_000, lambda s: _reply(s, STAMPS_NS[1], 'red', [box])),
        (STAMPS_NS[2] + 1_100_000_000, lambda s: _reply(s, STAMPS_NS[2], '', status=1)),
        (STAMPS_NS[0] + 1_300_000_000, lambda s: _reply(s, STAMPS_NS[0], 'green'))])
    records = live_records(bag, 'constant-1s', 1.0, CLOUD_WAIT)
    assert [r.answered for r in records] == [True, True, False]  # a timed-out reply: none
    first, second = records[0], records[1]
    assert first.answer == 'green' and first.latency_s == pytest.approx(1.3)
    assert second.latency_s == pytest.approx(1.2)
    assert second.answered_at == pytest.approx(second.frame_stamp + 1.2)
    # The reply as the cloud wrote it, regions fenced, as offline scores it.
    answer, regions = split_reply(second.answer, (448, 336))
    assert answer == 'red' and [(r.label, r.x1, r.y1, r.x2, r.y2) for r in regions] == [
        ('traffic light', 270, 117, 284, 129)]
    assert not any(r.used_context for r in records)


# a real live run ---------------------------------------------------------------------------
def three_second_bag(tmp_path) -> pathlib.Path:
    """A 3 s drive of a validation seed, made by `spotvlm make-bag`."""
    bag = tmp_path / 'scene'
    subprocess.run([sys.executable, '-m', 'spotvlm_ros.cli', 'make-bag', str(bag), '--seed',
                    '1000002', '--seconds', '3'], check=True, capture_output=True)
    return bag


@pytest.mark.slow
def test_run_live_records_answers_and_ground_truth(tmp_path):
    bag = three_second_bag(tmp_path)
    records = run_live(bag, tmp_path / 'eval', QUESTION, [EDGE_ONLY], 'constant',
                       {'delay_s': 0.5}, ROOT / 'models' / 'spotvlm-edge',
                       ROOT / 'models' / 'spotvlm-cloud', ['edge_node:model.device=cpu'],
                       timeout_s=240)

    recorded = tmp_path / 'eval' / 'live' / EDGE_ONLY
    assert (recorded / 'metadata.yaml').exists()
    truths, answers = read_answer_bag(recorded)
    assert len(truths) == 30 and all(t.seed == 1000002 for t in truths)
    assert answers and all(a.query == QUESTION for a in answers)

    assert len(records) == 30
    assert all(r.strategy == EDGE_ONLY and r.trace == 'constant' for r in records)
    assert all(r.mean_delay_s == pytest.approx(0.5) for r in records)
    assert all(r.question == QUESTION and r.family == 'vqa' for r in records)
    assert [r.frame_index for r in records] == list(range(30))
    stamps = [r.frame_stamp for r in records]  # publish times: never early, late under load
    assert stamps[0] == 0.0 and all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps[-1] >= 2.0  # paced at the recorded 10 Hz (a late first frame shortens it)
    answered = [r for r in records if r.answered]
    assert len(answered) == len(answers)  # every answer found its frame
    for r in answered:
        assert r.answer and r.latency_s > 0
        assert r.answered_at == pytest.approx(r.frame_stamp + r.latency_s)
        assert r.source_stamp == r.frame_stamp
        assert r.context_age_s is None and not r.used_context and not r.used_focus  # edge only
        assert r.prompt_tokens > 0 and r.new_tokens > 0
    assert all(r.score is None for r in records)


def test_runs_answered_by_the_bridge_wait_for_replies_as_long_as_the_cloud_may_take():
    # Offline counts every cloud_wait reply within the bridge's timeout; a run that stopped
    # 3 s after the last frame lost the replies a queued cloud still owed (8 of 100 frames).
    assert run_grace_s(CLOUD_WAIT, 3.0, 12.0) == run_grace_s(PARTITIONED, 3.0, 12.0) == 12.0
    assert run_grace_s(EDGE_ONLY, 3.0, 12.0) == run_grace_s(AUTO, 3.0, 12.0) == 3.0
    assert run_grace_s(CLOUD_WAIT, 3.0, 0.0) == 3.0


def test_run_live_refuses_strategies_it_cannot_run(tmp_path):
    with pytest.raises(ValueError, match='guess'):
        run_live(tmp_path / 'scene', tmp_path / 'eval', QUESTION, ['guess'], 'constant',
                 {'delay_s': 0.5}, 'edge', 'cloud')


def test_run_arguments_offload_asks_through_the_bridge_own_history_runs_without_a_cloud():
    from spotvlm_ros.evaluation.live import run_arguments

    def run(strategy):
        return run_arguments('bag', QUESTION, strategy, 'constant', {'delay_s': 0.5}, 'edge',
                             'simulated', 'record')

    offload = run('offload')
    assert 'edge_node:strategy=offload' in offload and '--no-cloud' not in offload
    assert 'cloud_bridge:cloud.max_in_flight=64' in offload  # every frame it asks, at once
    own = run('edge_own_history')
    assert 'edge_node:strategy=edge_own_history' in own and '--no-cloud' in own
    assert '--no-cloud' not in run('context_transfer')


@pytest.mark.slow
def test_run_live_says_why_spotvlm_run_failed(tmp_path):
    bag = tmp_path / 'scene'
    subprocess.run([sys.executable, '-m', 'spotvlm_ros.cli', 'make-bag', str(bag), '--seed',
                    '1000002', '--seconds', '1'], check=True, capture_output=True)
    with pytest.raises(LiveRunError) as failed:
        run_live(bag, tmp_path / 'eval', QUESTION, [EDGE_ONLY], 'constant', {'delay_s': 0.5},
                 tmp_path / 'no-such-model', ROOT / 'models' / 'spotvlm-cloud', timeout_s=120)
    assert failed.value.returncode == 1
    assert 'edge_node' in failed.value.stderr_tail  # the run's own report of what failed
    assert 'exit code 1' in str(failed.value)


@pytest.mark.slow
def test_run_live_waits_for_the_cloud_through_the_bridge(tmp_path):
    bag = three_second_bag(tmp_path)
    records = run_live(bag, tmp_path / 'eval', QUESTION, [CLOUD_WAIT], 'constant',
                       {'delay_s': 1.5}, ROOT / 'models' / 'spotvlm-edge', 'simulated',
                       ['edge_node:model.device=cpu'], timeout_s=240)

    assert len(records) == 30 and all(r.strategy == CLOUD_WAIT for r in records)
    answered = [r for r in records if r.answered]
    # Every frame is sent, as many in flight as the link holds (the client's default 4 would
    # answer about 16 in the 3 s of the bag and 3 s of grace): nearly all come back (the first
    # may go before the bridge is up), each no sooner than the trace's delay.
    assert len(answered) >= 26, f'{len(answered)} of 30 frames answered by the cloud'
    assert all(1.5 <= r.latency_s < 5.0 for r in answered)
    assert all(r.source_stamp == r.frame_stamp and r.context_age_s is None for r in answered)
    assert all(split_reply(r.answer, (r.width, r.height))[0] for r in answered)


@pytest.mark.slow
def test_run_live_partitioned_sends_visual_tokens_the_cloud_decoder_answers(tmp_path):
    from spotvlm_ros.cloud.client import CloudClientConfig
    from spotvlm_ros.cloud.encoding import sent_image
    from spotvlm_ros.cloud.replies import keyframe_prompt
    from spotvlm_ros.cloud.responders import transformers_responder
    from spotvlm_ros.io.replay import load_bag
    from spotvlm_ros.models.split import answer_from_tokens, encode_frame

    bag = three_second_bag(tmp_path)
    cloud = ROOT / 'models' / 'spotvlm-cloud'
    records = run_live(bag, tmp_path / 'eval', QUESTION, [PARTITIONED], 'constant',
                       {'delay_s': 0.5}, ROOT / 'models' / 'spotvlm-edge', cloud,
                       ['edge_node:model.device=cpu'], timeout_s=240,
                       link={'uplink_mbps': 2.0})

    answered = [r for r in records if r.answered]
    assert len(records) == 30 and len(answered) >= 20, f'{len(answered)} of 30 answered'
    # 192 tokens x 128 values x 2 bytes up a 2 Mbit/s link: 0.197 s before the 0.5 s delay.
    assert all(r.latency_s >= 0.5 + 0.196 for r in answered)
    # What the live decoder said is what it says offline on the same frame's tokens.
    responder = transformers_responder(str(cloud))
    frames = load_bag(bag)
    prompt, size = keyframe_prompt(CloudClientConfig(), frames[0].size)
    for record in answered[::5]:
        tokens = encode_frame(responder._backend, sent_image(frames[record.frame_index].image,
                                                             size))
        offline = answer_from_tokens(responder._backend, tokens, QUESTION, prompt).text
        assert split_reply(record.answer, (record.width, record.height))[0] == \
            split_reply(offline, (record.width, record.height))[0]
    responder.close()


def test_run_live_refuses_partitioned_with_the_simulated_cloud(tmp_path):
    with pytest.raises(ValueError, match='visual tokens'):
        run_live(tmp_path / 'scene', tmp_path / 'eval', QUESTION, ['partitioned'], 'constant',
                 {'delay_s': 0.5}, 'edge', 'simulated')


def test_live_mode_runs_the_asked_strategies_it_has(capsys):
    import argparse

    from spotvlm_ros.evaluation.main import live_strategies

    asked = 'edge_only,offload,partitioned,cloud_wait,auto'
    checkpoint = argparse.Namespace(strategies=asked, cloud=str(ROOT / 'models' / 'spotvlm-cloud'))
    assert live_strategies(checkpoint) == asked.split(',')
    assert capsys.readouterr().out == ''
    simulated = argparse.Namespace(strategies=asked, cloud='simulated')
    assert live_strategies(simulated) == ['edge_only', 'offload', 'cloud_wait', 'auto']
    assert 'does not run partitioned' in capsys.readouterr().out


def test_live_mode_times_the_offline_edge_with_the_cost_model_unless_told():
    from spotvlm_ros.evaluation.main import _arguments

    assert _arguments([]).edge_time == 'fixed'
    assert _arguments(['--live']).edge_time == 'model'
    assert _arguments(['--live', '--edge-time', 'fixed']).edge_time == 'fixed'
