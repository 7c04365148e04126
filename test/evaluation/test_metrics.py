"""Scoring answer records and summarising them per (trace, strategy)."""

import dataclasses

import numpy as np
import pytest

from spotvlm_ros.evaluation.metrics import (
    SUMMARY_COLUMNS, agreement, score_record, summarise)
from spotvlm_ros.evaluation.records import (
    CLOUD_WAIT, CONTEXT_TRANSFER, EDGE_ONLY, AnswerRecord)
from spotvlm_ros.scenes.truth import DESCRIPTION, GROUNDING, VQA

SIZE = (448, 336)
TRUTH_BOX = '[{"bbox_2d": [100, 100, 200, 200], "label": "traffic light"}]'


def box_reply(x1, y1, x2, y2, text='the traffic light'):
    return f'{text}\n```json\n[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "light"}}]\n```'


def record(strategy=EDGE_ONLY, trace='t', family=VQA, truth='red', answer='red',
           answered=True, latency=0.1, score=None, age=None, delay=0.5, tokens=(10, 2)):
    return AnswerRecord(
        strategy=strategy, trace=trace, mean_delay_s=delay, frame_index=0, frame_stamp=1.0,
        question='q', family=family, truth=truth, width=SIZE[0], height=SIZE[1],
        answered=answered, answer=answer if answered else '',
        answered_at=1.0 + latency if answered else None,
        latency_s=latency if answered else None, context_age_s=age,
        prompt_tokens=tokens[0], new_tokens=tokens[1], score=score)


# --- score_record --------------------------------------------------------------------------------

def test_score_record_sets_score_on_a_copy():
    right = record(answer='Red.')
    scored = score_record(right)
    assert scored.score == 1.0 and right.score is None
    assert dataclasses.replace(scored, score=None) == right
    assert score_record(record(answer='green')).score == 0.0
    grounded = record(family=GROUNDING, truth=TRUTH_BOX, answer=box_reply(100, 100, 200, 200))
    assert score_record(grounded).score == 1.0


def test_unanswered_record_scores_zero():
    # Even with a right answer in the text, an unanswered question counts as wrong.
    unanswered = dataclasses.replace(record(), answered=False, latency_s=None)
    assert score_record(unanswered).score == 0.0


# --- summarise -----------------------------------------------------------------------------------

def test_summarise_one_group_by_hand():
    deadline = 0.5
    group = [
        record(family=VQA, score=1.0, latency=0.1, age=1.0),
        record(family=VQA, score=0.0, latency=0.3, age=3.0),
        record(family=DESCRIPTION, score=0.6, latency=0.4, tokens=(20, 8)),
        record(family=DESCRIPTION, score=1.0, latency=0.9),  # late
        record(family=VQA, score=0.0, answered=False, age=2.0),
    ]
    (row,) = summarise(group, deadline)
    assert list(row) == list(SUMMARY_COLUMNS)
    assert row['trace'] == 't' and row['strategy'] == EDGE_ONLY and row['mean_delay_s'] == 0.5
    assert row['n'] == 5
    assert row['answered_rate'] == pytest.approx(4 / 5)
    assert row['acc_vqa'] == pytest.approx(1 / 3)  # unanswered counts as 0
    assert row['acc_description'] == pytest.approx(0.8)
    assert row['acc_grounding'] is None
    assert row['acc_mean'] == pytest.approx((1 / 3 + 0.8) / 2)  # over the families present
    # On time, per family like acc_mean (the late 1.0 and the unanswered count 0):
    # vqa (1.0 + 0.0 + 0.0) / 3, description (0.6 + 0.0) / 2.
    assert row['on_time_acc'] == pytest.approx((1 / 3 + 0.3) / 2)
    assert row['deadline_miss_rate'] == pytest.approx(2 / 5)
    latencies = [0.1, 0.3, 0.4, 0.9]
    assert row['latency_p50_s'] == pytest.approx(0.35)
    assert row['latency_p95_s'] == pytest.approx(float(np.percentile(latencies, 95)))
    assert row['latency_p95_s'] == pytest.approx(0.4 + 0.85 * 0.5)  # linear, by hand
    assert row['latency_p99_s'] == pytest.approx(0.4 + 0.97 * 0.5)
    assert row['context_age_mean_s'] == pytest.approx(2.0)
    assert row['context_age_p50_s'] == pytest.approx(2.0)
    assert row['tokens_per_answer'] == pytest.approx((12 + 12 + 28 + 12) / 4)
    assert all(type(v) in (str, int, float) for v in row.values() if v is not None)


def test_summarise_deadline_is_inclusive():
    (row,) = summarise([record(score=1.0, latency=0.5)], 0.5)
    assert row['on_time_acc'] == 1.0 and row['deadline_miss_rate'] == 0.0
    (row,) = summarise([record(score=1.0, latency=0.5)], 0.49)
    assert row['on_time_acc'] == 0.0 and row['deadline_miss_rate'] == 1.0


def test_summarise_nones_when_nothing_answered_or_no_context():
    (row,) = summarise([record(score=0.0, answered=False)], 1.0)
    assert row['answered_rate'] == 0.0 and row['acc_vqa'] == 0.0
    for column in ('latency_p50_s', 'latency_p95_s', 'latency_p99_s', 'context_age_mean_s',
                   'context_age_p50_s', 'tokens_per_answer', 'acc_description',
                   'acc_grounding'):
        assert row[column] is None, column
    assert row['deadline_miss_rate'] == 1.0


def test_summarise_orders_traces_by_appearance_and_strategies_by_table_order():
    records = [
        record(trace='slow', strategy='zz_custom', score=1.0, delay=2.0),
        record(trace='slow', strategy=CONTEXT_TRANSFER, score=1.0, delay=2.0),
        record(trace='fast', strategy=CLOUD_WAIT, score=0.0, delay=0.1),
        record(trace='slow', strategy='aa_custom', score=1.0, delay=2.0),
        record(trace='slow', strategy=EDGE_ONLY, score=0.0, delay=2.0),
        record(trace='fast', strategy=EDGE_ONLY, score=1.0, delay=0.1),
    ]
    rows = summarise(records, 1.0)
    assert [(r['trace'], r['strategy']) for r in rows] == [
        ('slow', EDGE_ONLY), ('slow', CONTEXT_TRANSFER), ('slow', 'aa_custom'),
        ('slow', 'zz_custom'), ('fast', EDGE_ONLY), ('fast', CLOUD_WAIT)]
    assert [r['acc_mean'] for r in rows] == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert [r['mean_delay_s'] for r in rows] == [2.0] * 4 + [0.1] * 2


def test_summarise_rejects_unscored_records():
    with pytest.raises(ValueError, match='unscored'):
        summarise([record(score=1.0), record(score=None)], 1.0)


def test_summarise_rejects_answered_records_without_latency():
    with pytest.raises(ValueError, match='latency'):
        summarise([dataclasses.replace(record(score=1.0), latency_s=None)], 1.0)


# --- agreement -----------------------------------------------------------------------------------

def test_agreement_pairs_common_rows():
    offline = [{'trace': 'a', 'strategy': EDGE_ONLY, 'acc_mean': 0.5},
               {'trace': 'a', 'strategy': CONTEXT_TRANSFER, 'acc_mean': 0.8},
               {'trace': 'b', 'strategy': EDGE_ONLY, 'acc_mean': 0.4},
               {'trace': 'c', 'strategy': EDGE_ONLY, 'acc_mean': None}]
    live = [{'trace': 'a', 'strategy': CONTEXT_TRANSFER, 'acc_mean': 0.6},
            {'trace': 'a', 'strategy': EDGE_ONLY, 'acc_mean': 0.55},
            {'trace': 'c', 'strategy': EDGE_ONLY, 'acc_mean': 0.5},
            {'trace': 'z', 'strategy': EDGE_ONLY, 'acc_mean': 0.5}]
    rows = agreement(offline, live, tolerance=0.1)
    assert [(r['trace'], r['strategy']) for r in rows] == [
        ('a', EDGE_ONLY), ('a', CONTEXT_TRANSFER), ('c', EDGE_ONLY)]
    first, second, third = rows
    assert first['offline_acc_mean'] == 0.5 and first['live_acc_mean'] == 0.55
    assert first['difference'] == pytest.approx(0.05) and first['within'] is True
    assert second['difference'] == pytest.approx(-0.2) and second['within'] is False
    assert third['difference'] is None and third['within'] is False
    assert first['offline_answered'] is None and first['answered_within'] is None


def test_agreement_compares_answered_rates_within_five_points():
    rows = [{'trace': 'a', 'strategy': s, 'acc_mean': 0.5} for s in (EDGE_ONLY, CONTEXT_TRANSFER)]
    offline = [{'trace': 'a', 'strategy': EDGE_ONLY, 'answered_rate': 1.0},
               {'trace': 'a', 'strategy': CONTEXT_TRANSFER, 'answered_rate': 1.0}]
    live = [{'trace': 'a', 'strategy': EDGE_ONLY, 'answered_rate': 0.91},
            {'trace': 'a', 'strategy': CONTEXT_TRANSFER, 'answered_rate': 0.95}]
    edge, ct = agreement(rows, rows, tolerance=0.1, answered=(offline, live))
    assert (edge['offline_answered'], edge['live_answered']) == (1.0, 0.91)
    assert edge['within'] is True and edge['answered_within'] is False
    assert ct['answered_within'] is True
