"""Scoring drives that have no ground truth: the cloud's answer at zero delay is the reference.

On a user's own recording every strategy is scored by its agreement with the cloud model's
reply to the same frame, sent with no delay: the same metrics, read as agreement, not accuracy.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from spotvlm_ros.io.replay import BagFrame, Question
from spotvlm_ros.scenes.scoring import split_reply
from spotvlm_ros.scenes.truth import (
    DESCRIPTION, GROUNDING, Q_ACTION, Q_COUNT, Q_DESCRIBE, Q_LIGHT, Q_LIMIT, Q_PEDESTRIAN, Q_WHERE,
    VQA)

REFERENCE_CLOUD = 'cloud'
REFERENCE_TRUTH = 'truth'
REFERENCES = (REFERENCE_TRUTH, REFERENCE_CLOUD)
NOTICE = ('Scored against the cloud model\'s own answer to the same frame at zero delay: '
          'every figure is agreement with the cloud, not accuracy.')

# The questions a recording is asked by default, and the family each is scored as; a question
# given on the command line that is not here is scored as VQA (the exact short answer).
FAMILY_OF = {Q_DESCRIBE: DESCRIPTION, Q_LIGHT: VQA, Q_COUNT: VQA, Q_LIMIT: VQA,
             Q_PEDESTRIAN: VQA, Q_ACTION: VQA,
             **{question: GROUNDING for question in Q_WHERE.values()}}


def reference_answer(family: str, reply: str, size: tuple) -> str:
    """The reply as a truth: its short answer, or for grounding the reply with its boxes."""
    return reply if family == GROUNDING else split_reply(reply, size)[0]


def with_cloud_reference(frames: Sequence[BagFrame], questions: Sequence[str], answerer,
                         every: int) -> list:
    """The frames, each scored one (every `every`-th) asking `questions` with the cloud's
    zero-delay replies as their answers."""
    scored = list(frames[::every])
    answerer.prefetch_cloud([(f, q) for f in scored for q in questions])
    out = list(frames)
    for frame in scored:
        asked = []
        for question in questions:
            family = FAMILY_OF.get(question, VQA)
            _, raw = answerer.cloud(frame, question)
            asked.append(Question(question, family,
                                  reference_answer(family, raw.text, frame.size)))
        out[frame.index] = dataclasses.replace(frame, questions=tuple(asked))
    return out
