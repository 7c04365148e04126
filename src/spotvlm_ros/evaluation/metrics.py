"""Scoring answer records (by scenes.scoring) and summarising them per (trace, strategy)."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np

from spotvlm_ros.evaluation.records import STRATEGIES, AnswerRecord
from spotvlm_ros.scenes.scoring import score_answer
from spotvlm_ros.scenes.truth import DESCRIPTION, FAMILIES, GROUNDING, VQA

# The columns of a summary row, in the order tables and CSV list them.
SUMMARY_COLUMNS = (
    'trace', 'mean_delay_s', 'strategy', 'n', 'answered_rate',
    'acc_description', 'acc_vqa', 'acc_grounding', 'acc_mean', 'on_time_acc',
    'latency_p50_s', 'latency_p95_s', 'latency_p99_s', 'deadline_miss_rate',
    'context_age_mean_s', 'context_age_p50_s', 'tokens_per_answer')
AGREEMENT_COLUMNS = ('trace', 'strategy', 'offline_acc_mean', 'live_acc_mean', 'difference',
                     'within', 'offline_answered', 'live_answered', 'answered_within')
ANSWERED_TOLERANCE = 0.05  # |live - offline| answered rate, per strategy, that still agrees
_ACC_COLUMN = {DESCRIPTION: 'acc_description', VQA: 'acc_vqa', GROUNDING: 'acc_grounding'}


def score_record(record: AnswerRecord) -> AnswerRecord:
    """A copy of the record with its score set; an unanswered question scores 0."""
    if not record.answered:
        return dataclasses.replace(record, score=0.0)
    value = score_answer(record.family, record.truth, record.answer,
                         (record.width, record.height))
    return dataclasses.replace(record, score=value)


def ordered_strategies(names: Iterable[str]) -> list:
    """Strategy names in table order: the known ones as in STRATEGIES, then the others sorted."""
    present = set(names)
    return [s for s in STRATEGIES if s in present] + sorted(present - set(STRATEGIES))


def summarise(records: Iterable[AnswerRecord], deadline_s: float) -> list:
    """One row (a dict of SUMMARY_COLUMNS) per (trace, strategy); records must be scored."""
    groups: dict = {}
    traces: list = []
    for record in records:
        if record.score is None:
            raise ValueError(f'unscored record: {record.strategy} {record.trace} '
                             f'frame {record.frame_index} {record.question!r}')
        if record.answered and record.latency_s is None:
            raise ValueError(f'answered record without latency_s: {record.strategy} '
                             f'{record.trace} frame {record.frame_index}')
        if record.trace not in traces:
            traces.append(record.trace)
        groups.setdefault((record.trace, record.strategy), []).append(record)
    rows = []
    for trace in traces:
        names = ordered_strategies(s for t, s in groups if t == trace)
        rows.extend(_row(groups[(trace, s)], deadline_s) for s in names)
    return rows


def _row(group: list, deadline_s: float) -> dict:
    """The summary row of one (trace, strategy) group."""
    first = group[0]
    answered = [r for r in group if r.answered]
    latencies = [r.latency_s for r in answered]
    ages = [r.context_age_s for r in group if r.context_age_s is not None]
    row = {'trace': first.trace, 'mean_delay_s': first.mean_delay_s,
           'strategy': first.strategy, 'n': len(group),
           'answered_rate': len(answered) / len(group)}
    on_time = [r.answered and r.latency_s <= deadline_s for r in group]
    accuracies, on_time_accuracies = [], []
    for family in FAMILIES:
        scores = [r.score for r in group if r.family == family]
        accuracy = row[_ACC_COLUMN[family]] = _mean(scores)
        if scores:
            accuracies.append(accuracy)
            # Averaged like acc_mean (per family, then over families), so the two compare.
            on_time_accuracies.append(_mean([r.score if ok else 0.0 for r, ok
                                             in zip(group, on_time) if r.family == family]))
    row['acc_mean'] = _mean(accuracies)
    row['on_time_acc'] = _mean(on_time_accuracies)
    p50, p95, p99 = _percentiles(latencies, (50, 95, 99))
    row.update(latency_p50_s=p50, latency_p95_s=p95, latency_p99_s=p99)
    row['deadline_miss_rate'] = _mean([0.0 if ok else 1.0 for ok in on_time])
    row['context_age_mean_s'] = _mean(ages)
    row['context_age_p50_s'] = _percentiles(ages, (50,))[0]
    row['tokens_per_answer'] = _mean([r.prompt_tokens + r.new_tokens for r in answered])
    return {column: row[column] for column in SUMMARY_COLUMNS}


def _mean(values: list) -> Optional[float]:
    return float(np.mean(values)) if values else None


def _percentiles(values: list, qs: tuple) -> tuple:
    """Percentiles as plain floats (numpy's default method), or Nones when there are no values."""
    if not values:
        return (None,) * len(qs)
    return tuple(float(v) for v in np.percentile(np.asarray(values, dtype=float), qs))


def agreement(offline_rows: list, live_rows: list, tolerance: float,
              answered: Optional[tuple] = None) -> list:
    """Offline vs live acc_mean for each (trace, strategy) in both, in the offline rows' order;
    `answered` (offline rows, live rows over every frame each side was given) adds their
    answered rates, which agree within ANSWERED_TOLERANCE."""
    live = {(r['trace'], r['strategy']): r for r in live_rows}
    rates = [{(r['trace'], r['strategy']): r['answered_rate'] for r in side}
             for side in answered or ((), ())]
    result = []
    for row in offline_rows:
        key = (row['trace'], row['strategy'])
        if key not in live:
            continue
        offline_acc, live_acc = row['acc_mean'], live[key]['acc_mean']
        # A side without any accuracy cannot agree with the other.
        difference = None if offline_acc is None or live_acc is None else live_acc - offline_acc
        offline_rate, live_rate = (side.get(key) for side in rates)
        result.append({'trace': key[0], 'strategy': key[1], 'offline_acc_mean': offline_acc,
                       'live_acc_mean': live_acc, 'difference': difference,
                       'within': difference is not None and abs(difference) <= tolerance,
                       'offline_answered': offline_rate, 'live_answered': live_rate,
                       'answered_within': None if offline_rate is None or live_rate is None
                       else abs(live_rate - offline_rate) <= ANSWERED_TOLERANCE + 1e-9})
    return result
