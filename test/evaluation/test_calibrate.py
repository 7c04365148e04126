"""`spotvlm calibrate`'s samples: what each source is worth to `auto`."""

import dataclasses

from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.calibrate import samples_from

LIGHT = 'What colour is the traffic light?'
BASE = R.AnswerRecord(R.CLOUD_LATEST, 'constant:delay_s=1', 1.0, 7, 0.7, LIGHT, 'vqa', 'red',
                      448, 336, answered=True, answer='red', answered_at=0.7, latency_s=0.0,
                      context_age_s=1.5, score=1.0, drive='d')


def record(strategy: str, **changes) -> R.AnswerRecord:
    return dataclasses.replace(BASE, strategy=strategy, **changes)


def test_a_wait_counts_only_where_its_reply_met_the_deadline():
    records = [record(R.CLOUD_LATEST),
               record(R.EDGE_ONLY, latency_s=0.1, score=0.0),
               record(R.CLOUD_WAIT, latency_s=1.0, score=1.0),
               record(R.CLOUD_WAIT, latency_s=1.2, score=1.0, trace='late'),
               record(R.CLOUD_WAIT, answered=False, latency_s=None, score=0.0, trace='lost')]
    samples = samples_from(records, deadline_s=1.0)
    # A late or lost reply is the hedge's to answer: it says nothing of what waiting is worth.
    assert [(s.source, s.score) for s in samples] == [
        (R.CLOUD_LATEST, 1.0), (R.EDGE_ONLY, 0.0), (R.CLOUD_WAIT, 1.0)]
    assert {s.age_s for s in samples if s.source != R.CLOUD_WAIT} == {1.5}
