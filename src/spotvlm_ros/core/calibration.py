"""Expected accuracy per answer source, question and context age: the `auto` strategy's table.

Fitted on validation drives (`spotvlm calibrate`) and shipped beside the models. For each frame
`auto` asks the table which source to trust: the edge alone, Context Transfer, the newest
cloud answer as is, or (when its reply is predicted back within the deadline) the cloud waited
for. A cell with too few samples falls back to the question's family, then to the edge alone.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from spotvlm_ros.core.composition import CLOUD_LATEST, CLOUD_WAIT, CONTEXT_TRANSFER, EDGE_ONLY

SOURCES = (EDGE_ONLY, CONTEXT_TRANSFER, CLOUD_LATEST, CLOUD_WAIT)  # ties go to the first
AGE_EDGES_S = (1.0, 2.0, 4.0, 8.0)  # bins: [0, 1), [1, 2), [2, 4), [4, 8), [8, inf)
NO_CONTEXT = 'none'  # the bin of a frame no cloud reply has reached yet
FRESH = 'fresh'  # the bin of the cloud waited for: its reply is about this very frame
MIN_SAMPLES = 8
# Standard errors by which another source must beat the cloud waited for: its reply is about
# this very frame, so a near tie in the table is noise, and the fresh reply the better bet.
SURE_Z = 2.0
FORMAT_VERSION = 1


def age_bin(age_s: Optional[float]) -> str:
    """The label of the age bin `age_s` falls in ('none' without context)."""
    if age_s is None:
        return NO_CONTEXT
    i = bisect.bisect_right(AGE_EDGES_S, age_s)
    low = 0.0 if i == 0 else AGE_EDGES_S[i - 1]
    return f'{low:g}-{AGE_EDGES_S[i]:g}s' if i < len(AGE_EDGES_S) else f'{low:g}s+'


@dataclass(frozen=True)
class Sample:
    """One scored answer: which source gave it, to what, with context how old."""

    source: str
    question: str
    family: str
    age_s: Optional[float]  # the newest cloud reply's age at the frame (None: none yet)
    score: float


@dataclass
class CalibrationTable:
    """Mean score and count per (key, age bin, source); keys are questions and families."""

    cells: dict = field(default_factory=dict)  # {key: {bin: {source: [mean, count]}}}
    families: dict = field(default_factory=dict)  # {question: family}
    fitted_on: str = ''  # what it was fitted on, for the reader

    def expected(self, question: str, age_s: Optional[float], source: str) -> Optional[float]:
        """Expected score of `source` for this question and context age; None: unknown."""
        cell = self._cell(question, age_s, source)
        return None if cell is None else cell[0]

    def choose(self, question: str, age_s: Optional[float],
               sources: Sequence[str] = SOURCES) -> str:
        """The source with the highest expected score (the edge alone when none is known);
        the cloud waited for gives way only to a source sure (SURE_Z) to beat it."""
        best, best_score = EDGE_ONLY, self.expected(question, age_s, EDGE_ONLY)
        for source in (s for s in SOURCES if s in sources and s not in (EDGE_ONLY, CLOUD_WAIT)):
            score = self.expected(question, age_s, source)
            if score is not None and (best_score is None or score > best_score):
                best, best_score = source, score
        fresh = self._cell(question, age_s, CLOUD_WAIT) if CLOUD_WAIT in sources else None
        if fresh is not None and (best_score is None or not self._surely_better(
                self._cell(question, age_s, best), fresh)):
            return CLOUD_WAIT
        return best

    def _cell(self, question: str, age_s: Optional[float], source: str) -> Optional[tuple]:
        """(mean, count) of `source` for this question and age, or of its family; None."""
        bin_ = FRESH if source == CLOUD_WAIT else age_bin(age_s)
        for key in (question, self.families.get(question)):
            mean, count = self.cells.get(key, {}).get(bin_, {}).get(source, (None, 0))
            if count >= MIN_SAMPLES:
                return mean, count
        return None

    @staticmethod
    def _surely_better(cell: tuple, than: tuple) -> bool:
        """Whether `cell`'s mean beats `than`'s by SURE_Z standard errors of the difference;
        scores lie in [0, 1], so m (1 - m) bounds each one's variance."""
        (m1, n1), (m2, n2) = cell, than
        error = math.sqrt(m1 * (1 - m1) / n1 + m2 * (1 - m2) / n2)
        return m1 - m2 > SURE_Z * error

    def save(self, path: Union[str, Path]) -> None:
        document = {'format': FORMAT_VERSION, 'fitted_on': self.fitted_on,
                    'age_edges_s': list(AGE_EDGES_S), 'min_samples': MIN_SAMPLES,
                    'families': self.families, 'cells': self.cells}
        Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + '\n',
                              encoding='utf-8')

    @classmethod
    def load(cls, path: Union[str, Path]) -> 'CalibrationTable':
        """A saved table; ValueError names the file when it is not one."""
        try:
            document = json.loads(Path(path).read_text(encoding='utf-8'))
            if document.get('format') != FORMAT_VERSION or \
                    list(document.get('age_edges_s', ())) != list(AGE_EDGES_S):
                raise ValueError(f'format {document.get("format")} with age edges '
                                 f'{document.get("age_edges_s")}; expected {FORMAT_VERSION} '
                                 f'with {list(AGE_EDGES_S)}')
            return cls(document['cells'], document['families'], document.get('fitted_on', ''))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError, ValueError) as err:
            raise ValueError(f'{path} is not a calibration table: {err}') from None


def choose_source(table: CalibrationTable, question: str, stamp: float,
                  newest_cloud_stamp: Optional[float], can_wait: bool = False) -> str:
    """auto's source for the frame at `stamp`: the newest cloud answer is a candidate once
    one is back (its keyframe at `newest_cloud_stamp`), the cloud waited for when `can_wait`."""
    age = None if newest_cloud_stamp is None else stamp - newest_cloud_stamp
    sources = [EDGE_ONLY, CONTEXT_TRANSFER] + ([CLOUD_LATEST] if age is not None else []) + \
        ([CLOUD_WAIT] if can_wait else [])
    return table.choose(question, age, sources)


def fit(samples: Iterable[Sample], fitted_on: str = '') -> CalibrationTable:
    """The table of mean scores of `samples`, per question and per family."""
    sums: dict = defaultdict(lambda: [0.0, 0])
    families = {}
    for s in samples:
        families[s.question] = s.family
        bin_ = FRESH if s.source == CLOUD_WAIT else age_bin(s.age_s)
        for key in (s.question, s.family):
            cell = sums[(key, bin_, s.source)]
            cell[0] += s.score
            cell[1] += 1
    cells: dict = {}
    for (key, bin_, source), (total, count) in sorted(sums.items()):
        cells.setdefault(key, {}).setdefault(bin_, {})[source] = [round(total / count, 6), count]
    return CalibrationTable(cells, families, fitted_on)
