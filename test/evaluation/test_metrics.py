"""Scoring answer records and summarising them per (trace, strategy)."""

import dataclasses

import numpy as np
import pytest

from spotvlm_ros.evaluation.metrics import (
    SUMMARY_COLUMNS, agreement, lcs_length, score_answer, score_record, summarise, words)
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


# --- score_answer -------------------------------------------------------------------------------

def test_vqa_exact_match_after_normalising():
    assert score_answer(VQA, 'red', 'red', SIZE) == 1.0
    assert score_answer(VQA, 'red', '  Red. ', SIZE) == 1.0
    assert score_answer(VQA, 'Slow down.', 'slow down', SIZE) == 1.0
    # The short answer before the JSON fence is what counts.
    assert score_answer(VQA, 'red', 'Red.\n```json\n[]\n```', SIZE) == 1.0
    assert score_answer(VQA, 'red', 'green', SIZE) == 0.0
    assert score_answer(VQA, 'red', 'red light', SIZE) == 0.0
    assert score_answer(VQA, '2', '3', SIZE) == 0.0


def test_empty_answer_scores_zero_in_every_family():
    assert score_answer(VQA, '', '', SIZE) == 0.0  # even where the truth is empty
    assert score_answer(DESCRIPTION, 'red light', '   ', SIZE) == 0.0
    assert score_answer(GROUNDING, TRUTH_BOX, '', SIZE) == 0.0


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError):
        score_answer('poetry', 'a', 'a', SIZE)


def test_description_words_drop_commas_and_dots():
    assert words('Red light, 2 vehicles,limit 50.') == [
        'red', 'light', '2', 'vehicles', 'limit', '50']


def test_lcs_length_by_hand():
    assert lcs_length(list('abcbdab'), list('bdcaba')) == 4  # the textbook example
    assert lcs_length([], ['a']) == 0
    assert lcs_length(['a', 'b'], ['b', 'a']) == 1


def test_description_rouge_l_by_hand():
    # truth: red light 2 vehicles limit 50 (6 words); answer: red light 3 vehicles (4 words).
    # LCS = red light vehicles = 3; P = 3/4, R = 3/6; F1 = 2 * 0.75 * 0.5 / 1.25 = 0.6.
    value = score_answer(DESCRIPTION, 'red light, 2 vehicles, limit 50', 'red light, 3 vehicles',
                         SIZE)
    assert value == pytest.approx(0.6)
    assert score_answer(DESCRIPTION, 'red light, 2 vehicles.', 'Red light, 2 vehicles',
                        SIZE) == pytest.approx(1.0)
    # Order matters: LCS of (a b c) and (c b a) is 1; P = R = 1/3.
    assert score_answer(DESCRIPTION, 'a b c', 'c b a', SIZE) == pytest.approx(1 / 3)
    assert score_answer(DESCRIPTION, 'red light', 'green', SIZE) == 0.0
    # A JSON fence after a description is not part of its words.
    assert score_answer(DESCRIPTION, 'red light', 'red light\n```json\n[]\n```',
                        SIZE) == pytest.approx(1.0)


def test_grounding_hit_needs_iou_half_with_the_first_boxes():
    # Against 100x100 at (100, 100): [100, 100, 200, 150] has IoU 5000/10000 = 0.5 exactly.
    assert score_answer(GROUNDING, TRUTH_BOX, box_reply(100, 100, 200, 150), SIZE) == 1.0
    # [100, 100, 200, 149]: IoU 4900/10000 = 0.49, just below.
    assert score_answer(GROUNDING, TRUTH_BOX, box_reply(100, 100, 200, 149), SIZE) == 0.0
    # [110, 100, 210, 200]: IoU 9000/11000 = 0.818, a hit; bare JSON works too.
    bare = '[{"bbox_2d": [110, 100, 210, 200], "label": "traffic light"}]'
    assert score_answer(GROUNDING, TRUTH_BOX, bare, SIZE) == 1.0
    # Only the first answer region counts, even if a later one would hit.
    two = ('```json\n[{"bbox_2d": [300, 250, 400, 330]}, '
           '{"bbox_2d": [100, 100, 200, 200]}]\n```')
    assert score_answer(GROUNDING, TRUTH_BOX, two, SIZE) == 0.0
    # Only the first truth box counts.
    truth_two = ('[{"bbox_2d": [300, 250, 400, 330], "label": "vehicle"}, '
                 '{"bbox_2d": [100, 100, 200, 200], "label": "vehicle"}]')
    assert score_answer(GROUNDING, truth_two, box_reply(100, 100, 200, 200), SIZE) == 0.0
    assert score_answer(GROUNDING, truth_two, box_reply(300, 250, 400, 330), SIZE) == 1.0


def test_grounding_without_regions_scores_zero():
    assert score_answer(GROUNDING, TRUTH_BOX, 'the traffic light is on the left', SIZE) == 0.0
    assert score_answer(GROUNDING, '[]', box_reply(100, 100, 200, 200), SIZE) == 0.0


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
