"""Offline replay: causal, deterministic, and each strategy does what its name says."""

import dataclasses
import filecmp
import math
from pathlib import Path

import pytest

from spotvlm_ros.core.keyframes import KeyframeConfig
from spotvlm_ros.core.traces import LatencyTrace
from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.answering import Answerer
from spotvlm_ros.evaluation.cloud_sim import keyframe_requests, last_round_trip, mean_delay
from spotvlm_ros.evaluation.main import answered_in_both, main as eval_main, trace_from_spec
from spotvlm_ros.evaluation.offline import OfflineSettings, latest_first, simulate
from spotvlm_ros.io.replay import load_bag

ROOT = Path(__file__).resolve().parents[2]
BAG = ROOT / 'bags' / 'sample_scene'
LIGHT = 'What colour is the traffic light?'
WHERE_VEHICLE = 'Where is the nearest vehicle?'


@pytest.fixture(scope='module')
def frames():
    return load_bag(BAG, max_frames=40)


@pytest.fixture(scope='module')
def answerer():
    import torch

    from spotvlm_ros.core.focus import FocusConfig
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    torch.set_num_threads(1)
    edge = TransformersBackend(ROOT / 'models' / 'spotvlm-edge', max_new_tokens=64, warmup=False)
    cloud = TransformersBackend(ROOT / 'models' / 'spotvlm-cloud', max_new_tokens=128,
                                warmup=False)
    return Answerer(edge, cloud)


def constant(delay_s: float) -> LatencyTrace:
    trace = LatencyTrace.generate('constant', 0, 60.0, delay_s=delay_s)
    trace.name = f'constant {delay_s} s'
    return trace


def by(records, strategy):
    return [r for r in records if r.strategy == strategy]


def test_bag_frames_carry_their_ground_truth(frames):
    assert [f.index for f in frames] == list(range(40))
    assert frames[0].stamp == 0.0 and frames[10].stamp == pytest.approx(1.0, abs=1e-6)
    assert all(f.question(LIGHT) is not None for f in frames)
    assert frames[0].size == (448, 336)


def test_keyframes_follow_the_bridge_policy_and_the_trace(frames):
    config = KeyframeConfig(max_in_flight=1, min_interval_s=0.5, max_interval_s=3.0,
                            change_threshold=0.0)  # every frame counts as changed
    requests = keyframe_requests(frames, constant(1.0), config, timeout_s=12.0)
    # One in flight at a time: the next keyframe goes once the last reply is back.
    assert [r.sent_at for r in requests[:3]] == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
    assert all(r.ok and r.done_at == pytest.approx(r.sent_at + 1.0) for r in requests)
    assert last_round_trip(requests, 0.99) is None
    assert last_round_trip(requests, 1.0) == pytest.approx(1.0)
    # Exactly the trace's delay, as the client timed it: a 1 s round trip meets a 1 s
    # deadline whatever float done_at - sent_at gives (1.0000000000000002 from 1.2 s).
    later = [dataclasses.replace(f, stamp=f.stamp + 0.2) for f in frames]
    requests = keyframe_requests(later, constant(1.0), config, timeout_s=12.0)
    assert any(r.done_at - r.sent_at > 1.0 for r in requests)
    assert all(last_round_trip(requests, r.done_at) == 1.0 for r in requests)


def test_a_reply_cancels_older_requests_still_in_flight_as_the_client_does(frames):
    # The first request meets an outage (12 s timeout), the second a 0.5 s link.
    link = LatencyTrace([0.0, 0.45, 100.0], [math.nan, 0.5, 0.5])
    config = KeyframeConfig(max_in_flight=2, min_interval_s=0.5, max_interval_s=3.0,
                            change_threshold=0.0)
    requests = keyframe_requests(frames, link, config, timeout_s=12.0)
    first, second = requests[:2]
    assert second.ok and second.done_at == pytest.approx(second.sent_at + 0.5)
    # Cancelled when the newer reply came, not 12 s later: superseded, no round trip measured.
    assert not first.ok and first.superseded and first.done_at == second.done_at
    assert last_round_trip(requests, second.done_at) == pytest.approx(0.5)
    # Its slot is free again at once: a third keyframe goes out before the old timeout.
    assert requests[2].sent_at < first.sent_at + 12.0


def test_an_outage_times_out_and_opens_the_breaker(frames):
    down = LatencyTrace([0.0, 100.0], [math.nan, math.nan])
    config = KeyframeConfig(max_in_flight=4, min_interval_s=0.1, max_interval_s=0.2,
                            change_threshold=0.0, breaker_failures=2, breaker_cooldown_s=10.0)
    requests = keyframe_requests(frames, down, config, timeout_s=0.5)
    assert requests and not any(r.ok for r in requests)
    assert all(r.done_at == pytest.approx(r.sent_at + 0.5) for r in requests)
    # Two failures open the circuit: nothing more is sent within its 10 s cooldown.
    assert len(requests) <= 6
    assert last_round_trip(requests, 3.9) == math.inf
    assert mean_delay(down, [0.0, 1.0], timeout_s=0.5) == 0.5


def test_latest_first_drops_what_a_busy_worker_cannot_reach():
    done = []

    def run(item, start):
        done.append((item, start))
        return start + 0.25  # slower than the 0.1 s between items

    dropped = latest_first([0.0, 0.1, 0.2, 0.3, 0.4], lambda t: t, run)
    assert done == [(0.0, 0.0), (0.2, 0.25), (0.4, 0.5)]
    assert dropped == [0.1, 0.3]


def test_no_strategy_sees_the_future(frames, answerer):
    """Cutting the bag after a frame changes nothing up to that frame."""
    settings = OfflineSettings(every=2, edge_cost_s=0.3)
    traces = [constant(1.0), LatencyTrace.generate('pareto_outages', 4, 60.0)]
    full = simulate(frames, traces, answerer, settings, questions=[LIGHT])
    cut = simulate(frames[:25], traces, answerer, settings, questions=[LIGHT])
    # (The trace's mean delay is over the whole bag: the one field allowed to differ.)
    full_early = [dataclasses.replace(r, mean_delay_s=0) for r in full if r.frame_index < 24]
    cut_early = [dataclasses.replace(r, mean_delay_s=0) for r in cut if r.frame_index < 24]
    assert cut_early == full_early
    for r in full:
        assert not r.answered or r.answered_at >= r.frame_stamp
        if r.context_age_s is not None:
            assert r.context_age_s >= 0
    # A constant 1 s delay: no cloud information younger than 1 s is ever used.
    ages = [r.context_age_s for r in full if r.trace == traces[0].name
            and r.context_age_s is not None]
    assert ages and min(ages) >= 1.0 - 1e-9


def test_strategies_differ_as_their_names_say(frames, answerer):
    settings = OfflineSettings(every=5, edge_cost_s=0.1, deadline_s=1.0)
    fast, slow = constant(0.5), constant(3.0)
    records = simulate(frames, [fast, slow], answerer, settings, questions=[WHERE_VEHICLE])
    fast_records = [r for r in records if r.trace == fast.name]
    slow_records = [r for r in records if r.trace == slow.name]
    # The edge alone ignores the cloud: the same answers under any delay.
    assert [r.answer for r in by(fast_records, R.EDGE_ONLY)] == \
        [r.answer for r in by(slow_records, R.EDGE_ONLY)]
    assert all(not r.used_context and not r.used_focus for r in by(records, R.EDGE_ONLY))
    # Waiting for the cloud costs exactly the delay.
    assert {round(r.latency_s, 6) for r in by(slow_records, R.CLOUD_WAIT)} == {3.0}
    # Offloading goes to the cloud only when the last round trip met the deadline.
    assert {round(r.latency_s, 6) for r in by(slow_records, R.OFFLOAD)} == {0.1}
    assert {r.answer_source for r in by(slow_records, R.OFFLOAD)} == {R.EDGE_ONLY}
    fast_offload = by(fast_records, R.OFFLOAD)
    assert 0.5 in {round(r.latency_s, 6) for r in fast_offload}
    assert all((r.answer_source == R.CLOUD_WAIT) == (round(r.latency_s, 6) == 0.5)
               for r in fast_offload)
    # The ablations use what their names say, once a reply is back.
    late = [r for r in by(slow_records, R.REPLACEMENT_ONLY) if r.frame_stamp >= 3.0]
    assert late and all(r.used_context and not r.used_focus for r in late)
    assert all(not r.used_context for r in by(records, R.FOCUS_ONLY))
    # Nothing from the cloud before the first reply is back.
    assert all(not r.answered for r in by(slow_records, R.CLOUD_LATEST) if r.frame_stamp < 3.0)


def test_cloud_latest_gives_the_reply_with_its_box_carried_to_the_frame(frames, answerer):
    from spotvlm_ros.scenes.scoring import split_reply

    settings = OfflineSettings(every=5, edge_cost_s=0.1, deadline_s=1.0)
    records = simulate(frames, [constant(1.5)], answerer, settings,
                       strategies=[R.CLOUD_LATEST], questions=[WHERE_VEHICLE])
    answered = [r for r in records if r.answered]
    assert answered and all(r.context_age_s >= 1.5 for r in answered)
    moved = 0
    for record in answered:
        keyframe = frames[round(record.source_stamp * 10)]
        sent = split_reply(answerer.cloud(keyframe, WHERE_VEHICLE)[1].text, frames[0].size)
        given = split_reply(record.answer, frames[0].size)
        assert given[0] == sent[0] and len(given[1]) == len(sent[1])  # its words, its boxes
        moved += given[1] != sent[1]
    assert moved, 'no box was carried from its keyframe'


def test_a_worker_given_every_frame_drops_and_remembers_as_the_node_does(frames, answerer):
    def run(strategy, cost, every_frame):
        charged = Answerer(answerer.edge_backend, answerer.cloud_backend, edge_cost_s=cost)
        settings = OfflineSettings(every=5, edge_cost_s=cost, worker_every_frame=every_frame)
        return simulate(frames, [constant(1.0)], charged, settings, [strategy], [LIGHT])

    # An edge slower than the frames (0.25 s a frame, 10 frames a second): given every frame,
    # the worker is busy when some scored ones come and takes a newer frame instead.
    scored, every = run(R.EDGE_ONLY, 0.25, False), run(R.EDGE_ONLY, 0.25, True)
    assert [r.frame_index for r in every] == [r.frame_index for r in scored] == \
        list(range(0, 40, 5))
    assert all(r.answered for r in scored)
    assert 0 < sum(r.answered for r in every) < len(every)
    # Its own history: the unscored frames' answers are turns too, three by frame 5.
    scored, every = run(R.EDGE_OWN_HISTORY, 0.05, False), run(R.EDGE_OWN_HISTORY, 0.05, True)
    assert all(r.answered for r in scored + every)
    assert every[1].prompt_tokens > scored[1].prompt_tokens  # frame 5: 3 turns against 1


def test_partitioned_pays_encoding_upload_and_delay_and_answers_as_the_cloud(frames, answerer):
    settings = OfflineSettings(every=10, encoder_cost_s=0.2, uplink_mbps=8.0)
    records = simulate(frames, [constant(1.0)], answerer, settings,
                       [R.CLOUD_WAIT, R.PARTITIONED], [LIGHT, WHERE_VEHICLE])
    split, whole = by(records, R.PARTITIONED), by(records, R.CLOUD_WAIT)
    # 192 visual tokens x 128 wide x 2 bytes = 49152 bytes: 49 ms at 8 Mbit/s.
    assert {round(r.latency_s, 6) for r in split} == {round(0.2 + 0.049152 + 1.0, 6)}
    # fp16 tokens: the cloud's own answers (scored the same), only later.
    assert [r.answer for r in split] == [r.answer for r in whole]
    thin = simulate(frames, [constant(1.0)], answerer,
                    dataclasses.replace(settings, embeds_dtype='int8'), [R.PARTITIONED], [LIGHT])
    assert {round(r.latency_s, 6) for r in thin} == {round(0.2 + (24576 + 768) * 8 / 8e6 + 1.0,
                                                           6)}
    with pytest.raises(ValueError, match='embeds_dtype'):
        OfflineSettings(embeds_dtype='bf16')


def _table_preferring(source: str, question: str):
    from spotvlm_ros.core.calibration import AGE_EDGES_S, MIN_SAMPLES, SOURCES, Sample, fit

    ages = [None, 0.5] + [edge + 0.5 for edge in AGE_EDGES_S]
    return fit(Sample(s, question, 'vqa', age, 1.0 if s == source else 0.5)
               for s in SOURCES for age in ages for _ in range(MIN_SAMPLES))


def test_auto_answers_from_the_source_its_table_expects_to_score_best(frames, answerer):
    slow = constant(3.0)
    fixed = simulate(frames, [slow], answerer, OfflineSettings(every=5),
                     [R.EDGE_ONLY, R.CLOUD_LATEST], [LIGHT])
    for source in (R.CLOUD_LATEST, R.EDGE_ONLY):
        settings = OfflineSettings(every=5, calibration=_table_preferring(source, LIGHT))
        auto = simulate(frames, [slow], answerer, settings, [R.AUTO], [LIGHT])
        latest = {r.frame_index: r for r in by(fixed, R.CLOUD_LATEST)}
        edge = {r.frame_index: r for r in by(fixed, R.EDGE_ONLY)}
        for r in auto:
            # Before the first reply is back there is no newest cloud answer to take.
            expected = source if latest[r.frame_index].answered else R.EDGE_ONLY
            assert r.answer_source == expected
            assert r.answer == (latest if expected == R.CLOUD_LATEST else edge)[r.frame_index].answer
    # A 0.5 s link meets the 1 s deadline: a table that trusts the fresh cloud waits for it.
    settings = OfflineSettings(every=5, calibration=_table_preferring(R.CLOUD_WAIT, LIGHT))
    auto = simulate(frames, [constant(0.5)], answerer, settings, [R.AUTO], [LIGHT])
    waited = [r for r in auto if r.answer_source == R.CLOUD_WAIT]
    assert waited and {round(r.latency_s, 6) for r in waited} == {0.5}
    with pytest.raises(ValueError, match='auto needs a calibration table'):
        simulate(frames, [slow], answerer, OfflineSettings(), [R.AUTO], [LIGHT])


def test_auto_hedges_a_wait_with_an_edge_answer_given_at_the_deadline(frames, answerer):
    slow = constant(3.0)
    edge = {r.frame_index: r for r in simulate(frames, [slow], answerer,
                                               OfflineSettings(every=5), [R.EDGE_ONLY], [LIGHT])}
    settings = OfflineSettings(every=5, calibration=_table_preferring(R.CLOUD_WAIT, LIGHT))
    auto = simulate(frames, [slow], answerer, settings, [R.AUTO], [LIGHT])
    # Before the first round trip is back the link is unknown: auto waits, and when the cloud
    # is not back by the 1 s deadline it gives the edge's answer then, on time.
    early = [r for r in auto if r.frame_stamp < 2.0]
    assert early and all(r.answer_source == R.EDGE_ONLY and r.latency_s == pytest.approx(1.0)
                         and r.answer == edge[r.frame_index].answer for r in early)
    # Once a 3 s round trip is measured it no longer waits: the edge answers at once.
    known = [r for r in auto if r.frame_stamp >= 3.0]
    assert known and all(r.answer_source == R.EDGE_ONLY and r.latency_s < 1.0 for r in known)


def test_auto_told_not_to_wait_answers_at_once_as_the_edge_node_would(frames, answerer):
    fast = constant(0.3)
    table = _table_preferring(R.CLOUD_WAIT, LIGHT)
    waiting = simulate(frames, [fast], answerer, OfflineSettings(every=5, calibration=table),
                       [R.AUTO], [LIGHT])
    assert {r.answer_source for r in waiting} == {R.CLOUD_WAIT}
    settings = OfflineSettings(every=5, calibration=table, auto_wait=False)
    auto = simulate(frames, [fast], answerer, settings, [R.AUTO], [LIGHT])
    assert auto and all(r.answer_source != R.CLOUD_WAIT and r.latency_s < 0.3 for r in auto)


def test_a_cost_model_charges_each_answer_by_its_tokens_and_images(frames, answerer):
    from spotvlm_ros.evaluation.edge_cost import EdgeCostModel

    model = EdgeCostModel(0.02, 1e-4, 2e-3, 5e-3)
    charged = Answerer(answerer.edge_backend, answerer.cloud_backend, edge_cost_model=model)
    settings = OfflineSettings(every=10, edge_cost_model=model)
    records = simulate(frames, [constant(1.0)], charged, settings,
                       [R.EDGE_ONLY, R.FOCUS_ONLY], [WHERE_VEHICLE])
    for r in by(records, R.EDGE_ONLY):
        assert r.latency_s == pytest.approx(model.cost(r.prompt_tokens, r.new_tokens, 1))
    cropped = [r for r in by(records, R.FOCUS_ONLY) if r.used_focus]
    assert cropped and all(r.latency_s > model.cost(r.prompt_tokens, r.new_tokens, 1)
                           for r in cropped)


def test_measured_time_replaces_the_fixed_cost(frames, answerer):
    measured = Answerer(answerer.edge_backend, answerer.cloud_backend,
                        edge_cost_s=None)
    settings = OfflineSettings(every=10, edge_cost_s=None)
    records = simulate(frames, [constant(1.0)], measured, settings, [R.EDGE_ONLY], [LIGHT])
    latencies = {r.latency_s for r in records}
    assert all(0 < t < 5 for t in latencies) and 0.1 not in latencies


def test_trace_specs_are_named_by_their_spec(tmp_path):
    trace = trace_from_spec('constant:delay_s=2.5', 0, 30.0)
    assert trace.name == 'constant:delay_s=2.5' and trace.delay_at(7.0) == 2.5
    path = tmp_path / 'link.csv'
    path.write_text('time_s,delay_s\n0,1.5\n1,nan\n')
    recorded = trace_from_spec(str(path), 0, 30.0)
    assert recorded.delay_at(0.5) == 1.5 and recorded.delay_at(1.5) is None
    with pytest.raises(ValueError, match='unknown trace kind'):
        trace_from_spec('wobbly:delay_s=1', 0, 30.0)


@pytest.mark.slow
def test_two_offline_runs_write_identical_files(tmp_path):
    argv = ['--bag', str(BAG), '--max-frames', '20', '--every', '4', '--no-progress',
            '--trace', 'constant:delay_s=1', '--trace', 'pareto_outages:mean_gap_s=3',
            '--question', LIGHT, '--question', WHERE_VEHICLE, '--question', 'Describe the scene.']
    assert eval_main(argv + ['--out', str(tmp_path / 'a')]) == 0
    assert eval_main(argv + ['--out', str(tmp_path / 'b')]) == 0
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert {'records.jsonl', 'metrics.csv', 'metrics.json', 'report.md', 'report.html',
            'accuracy_vs_delay.png', 'latency_cdf.png', 'context_age_hist.png'} <= set(names)
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'b', names,
                                               shallow=False)
    assert mismatch == [] and errors == [] and sorted(match) == names
    records = R.read_jsonl(tmp_path / 'a' / 'records.jsonl')
    assert len(records) == 2 * 3 * len(R.STRATEGIES) * 5  # traces x questions x strategies x frames
    assert all(r.score is not None for r in records)


def test_a_bag_without_ground_truth_is_refused(tmp_path, capsys):
    from spotvlm_ros.io.bags import write_image_bag
    from spotvlm_ros.io.frame_sources import moving_box_frames

    bag = tmp_path / 'plain'
    write_image_bag(bag, moving_box_frames(3, 64, 48), 0.1)
    assert eval_main(['--bag', str(bag), '--out', str(tmp_path / 'out'), '--no-progress']) == 2
    assert 'no ground truth' in capsys.readouterr().err


def test_live_and_offline_are_compared_on_what_both_answered():
    def record(index, answered):
        return R.AnswerRecord(R.EDGE_ONLY, 't', 1.0, index, index / 10, 'q', 'vqa', 'red',
                              448, 336, answered=answered, latency_s=0.1 if answered else None)

    offline = [record(0, True), record(1, True), record(2, True)]
    live = [record(0, True), record(1, False), record(2, True)]  # live dropped frame 1
    both_offline, both_live = answered_in_both(offline, live)
    assert [r.frame_index for r in both_offline] == [0, 2]
    assert [r.frame_index for r in both_live] == [0, 2]


def test_replies_past_the_stores_capacity_still_reach_the_frames_they_arrive_for(frames,
                                                                                 answerer):
    # The whole drive's replies wait in the store before they arrive; its capacity is what
    # the live store holds at once, so it must not evict the early ones before their frames.
    every_frame = KeyframeConfig(max_in_flight=64, min_interval_s=0.0, max_interval_s=0.1)
    roomy = OfflineSettings(every=5, keyframe=every_frame)
    small = dataclasses.replace(roomy, context=dataclasses.replace(roomy.context, capacity=4))
    got = {name: simulate(frames, [constant(0.0)], answerer, settings, [R.CLOUD_LATEST],
                          [LIGHT])
           for name, settings in (('roomy', roomy), ('small', small))}
    assert len(keyframe_requests(frames, constant(0.0), every_frame, 12.0)) > 4 * 4
    assert all(r.answered for r in got['small'])
    assert [r.answer for r in got['small']] == [r.answer for r in got['roomy']]
