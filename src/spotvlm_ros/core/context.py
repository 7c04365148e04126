"""Context replacement: late cloud answers become the edge model's history turns."""

from __future__ import annotations

import bisect
import json
import math
import threading
from dataclasses import dataclass
from typing import Optional

from spotvlm_ros.core.checks import boolean, non_negative, positive, positive_int
from spotvlm_ros.core.compression import (
    DEFAULT_MAX_CHARS, TokenCounter, compress_answer, sanitize_cloud_text, word_count)
from spotvlm_ros.core.regions import regions_json
from spotvlm_ros.core.settings import check_settings, setting
from spotvlm_ros.core.types import SOURCE_CLOUD, CloudAnswer, HistoryTurn, Region

SOURCE_EDGE = 'edge'


@dataclass(frozen=True)
class ContextConfig:
    """How much history the edge model sees, and how old it may be."""

    max_age_s: float = setting(
        10.0, 'seconds; an answer about a frame older than this (at the answered frame) is '
        'dropped from the history', positive)
    max_turns: int = setting(3, 'history turns per prompt; cloud turns are chosen first',
                             positive_int)
    own_history: bool = setting(
        True, "the edge model's own answers (heard on answer) are its history until cloud "
        'answers about their keyframe or a later one replace them', boolean)
    budget_tokens: int = setting(
        48, "tokens per history answer, counted with the edge model's tokenizer (the fuser's "
        '`tokenizer`)', positive_int)
    max_answer_chars: int = setting(
        DEFAULT_MAX_CHARS, 'cloud text is cut at this many characters before compression',
        positive_int)
    match_tolerance_s: float = setting(
        0.005, "seconds; an edge answer this close to a keyframe is that keyframe's answer",
        non_negative)
    capacity: int = setting(64, 'answers kept per source (cloud, edge); the oldest go first',
                            positive_int)
    where_boxes: bool = setting(
        False, 'a "where" question\'s turn is its boxes, written as the answer (bbox_2d JSON), '
        'instead of the words of the reply; for an edge model that copies boxes from its '
        'history (the default one does not: off, chosen on validation)', boolean)

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class _Entry:
    """One stored answer: the frame it is about, when it became known, and its text."""

    stamp: float  # the frame (keyframe) the answer is about
    available_at: float  # no frame before this may see it (its arrival, in replay)
    arrival: int  # insertion counter, a tie-breaker that keeps order deterministic
    query: str
    answer: str  # already sanitised and compressed
    source: str
    cloud: Optional[CloudAnswer] = None


class ContextStore:
    """History of cloud (and optionally edge) answers, ordered by the stamp they are about.

    Thread-safe: a subscription callback may add while the answering thread reads.
    """

    def __init__(self, config: ContextConfig = ContextConfig(),
                 count_tokens: TokenCounter = word_count):
        self.config = config
        self.count_tokens = count_tokens
        self._cloud: list = []  # sorted by (stamp, arrival)
        self._edge: list = []
        self._arrivals = 0
        self._lock = threading.RLock()  # re-entrant: counting happens inside and outside
        self.counts = {'cloud': 0, 'edge': 0, 'duplicate': 0, 'failed': 0, 'invalid': 0,
                       'disabled': 0, 'evicted': 0}

    def __len__(self) -> int:
        return len(self._cloud) + len(self._edge)

    def add_cloud(self, answer: CloudAnswer, available_at: Optional[float] = None) -> bool:
        """Store a cloud answer, however late; False if failed, invalid or a duplicate.

        `available_at` (its arrival, same clock as frame stamps) hides it from earlier frames;
        replay passes it so no frame sees an answer before it would have arrived.
        """
        stamp = answer.keyframe_stamp
        if answer.status != 'ok':
            return self._count('failed')
        if not _is_stamp(stamp) or (available_at is not None and not _is_stamp(available_at)):
            return self._count('invalid')
        query = sanitize_cloud_text(answer.query, self.config.max_answer_chars)
        if self.config.where_boxes and is_where_question(query) and answer.regions:
            text = self._boxes(answer.regions)
        else:
            text = compress_answer(sanitize_cloud_text(answer.text, self.config.max_answer_chars),
                                   self.config.budget_tokens, self.count_tokens)
        with self._lock:
            if any(e.query == query for e in _at_stamp(self._cloud, stamp, 0.0)):
                return self._count('duplicate')
            self._insert(self._cloud, _Entry(
                stamp, max(stamp, available_at if available_at is not None else stamp),
                self._next_arrival(), query, text, SOURCE_CLOUD, answer))
        return self._count('cloud')

    def add_edge(self, stamp: float, query: str, answer: str,
                 available_at: Optional[float] = None) -> bool:
        """Store the edge model's own answer (when own_history); False if not kept."""
        if not self.config.own_history:
            return self._count('disabled')
        if not _is_stamp(stamp) or (available_at is not None and not _is_stamp(available_at)):
            return self._count('invalid')
        text = sanitize_cloud_text(answer, self.config.max_answer_chars)
        boxes = _answer_boxes(text) if self.config.where_boxes and is_where_question(query) \
            else None
        text = self._boxes(boxes) if boxes else \
            compress_answer(text, self.config.budget_tokens, self.count_tokens)
        with self._lock:
            if _at_stamp(self._edge, stamp, 0.0):
                return self._count('duplicate')
            self._insert(self._edge, _Entry(
                stamp, max(stamp, available_at if available_at is not None else stamp),
                self._next_arrival(), query, text, SOURCE_EDGE))
        return self._count('edge')

    def turns_for(self, frame_stamp: float, max_turns: Optional[int] = None) -> list:
        """History turns for the frame at `frame_stamp`, oldest first, each with its age.

        Only answers about frames at or before it, known by then and younger than max_age_s.
        Context replacement: the newest cloud answer takes the place of the edge's own turns
        for its keyframe and every older frame; own turns newer than it stay. The newest cloud
        turn is always kept, the other places go to the most recent remaining turns.
        """
        limit = self.config.max_turns if max_turns is None else max_turns
        if limit <= 0 or not _is_stamp(frame_stamp):
            return []
        with self._lock:
            cloud = [e for e in self._visible(self._cloud, frame_stamp) if e.answer]
            edge = self._visible(self._edge, frame_stamp) if self.config.own_history else []
        # An empty cloud answer replaces nothing, so only answered keyframes cover frames.
        covered = cloud[-1].stamp + self.config.match_tolerance_s if cloud else -math.inf
        own = [e for e in edge if e.answer and e.stamp > covered]
        rest = sorted(cloud[:-1] + own, key=lambda e: (e.stamp, e.arrival))
        chosen = cloud[-1:] + rest[::-1]
        chosen = sorted(chosen[:limit], key=lambda e: (e.stamp, e.arrival))
        return [HistoryTurn(e.query, e.answer, e.stamp, frame_stamp - e.stamp, e.source)
                for e in chosen]

    def newest_cloud(self, frame_stamp: float) -> Optional[CloudAnswer]:
        """The newest cloud answer the frame at `frame_stamp` may use (for its regions)."""
        if not _is_stamp(frame_stamp):
            return None
        with self._lock:
            cloud = self._visible(self._cloud, frame_stamp)
        return cloud[-1].cloud if cloud else None

    def newest_age(self, frame_stamp: float) -> Optional[float]:
        """Age (s) of the newest cloud context usable at `frame_stamp`; None if there is none."""
        newest = self.newest_cloud(frame_stamp)
        return None if newest is None else frame_stamp - newest.keyframe_stamp

    def prune(self, now_stamp: float) -> int:
        """Forget answers too old for any frame at or after `now_stamp`; how many went."""
        horizon = now_stamp - self.config.max_age_s
        with self._lock:
            before = len(self)
            self._cloud = [e for e in self._cloud if e.stamp >= horizon]
            self._edge = [e for e in self._edge if e.stamp >= horizon]
            return before - len(self)

    def clear(self) -> None:
        """Forget everything (a new episode or a jump back in time)."""
        with self._lock:
            self._cloud, self._edge = [], []

    def _boxes(self, regions) -> str:
        """As many of the regions as fit the budget, written as the answer; the first one
        always stays, since it is the answer, as compress_answer keeps a direct answer."""
        for count in range(len(regions), 1, -1):
            text = sanitize_cloud_text(regions_json(regions[:count]), self.config.max_answer_chars)
            if self.count_tokens(text) <= self.config.budget_tokens:
                return text
        return sanitize_cloud_text(regions_json(regions[:1]), self.config.max_answer_chars)

    def _visible(self, entries: list, frame_stamp: float) -> list:
        """Entries about frames in [frame - max_age, frame], known by `frame_stamp`."""
        oldest = frame_stamp - self.config.max_age_s
        lo = bisect.bisect_left(entries, oldest, key=lambda e: e.stamp)
        hi = bisect.bisect_right(entries, frame_stamp, key=lambda e: e.stamp)
        return [e for e in entries[lo:hi] if e.available_at <= frame_stamp]

    def _insert(self, entries: list, entry: _Entry) -> None:
        """Insert by stamp (not by arrival) and keep at most `capacity` of this source."""
        bisect.insort(entries, entry, key=lambda e: (e.stamp, e.arrival))
        while len(entries) > self.config.capacity:
            entries.pop(0)
            self.counts['evicted'] += 1

    def _next_arrival(self) -> int:
        self._arrivals += 1
        return self._arrivals

    def _count(self, what: str) -> bool:
        """Tally an outcome; True for the ones that stored something."""
        with self._lock:
            self.counts[what] += 1
        return what in ('cloud', 'edge')


def is_where_question(query: str) -> bool:
    """Whether `query` asks where something is: its answer is boxes, not words.

    With `where_boxes`, its turn is then the boxes in the answer's own format (the reply's
    words only name what was asked), so that a cloud turn is what the edge would have answered.
    """
    return query.lstrip().lower().startswith('where ')


def _answer_boxes(text: str) -> list:
    """The boxes of an answer written as grounding JSON, as Regions; [] if it is not one."""
    try:
        regions = [Region(str(item.get('label', '')), *map(float, item['bbox_2d']))
                   for item in json.loads(text)]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    return regions if all(math.isfinite(r.x1 + r.y1 + r.x2 + r.y2) for r in regions) else []


def _is_stamp(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at_stamp(entries: list, stamp: float, tolerance: float) -> list:
    """Entries whose stamp is within `tolerance` of `stamp`."""
    lo = bisect.bisect_left(entries, stamp - tolerance, key=lambda e: e.stamp)
    hi = bisect.bisect_right(entries, stamp + tolerance, key=lambda e: e.stamp)
    return entries[lo:hi]
