"""Offline mode: every strategy replayed on a simulated clock, events in exact time order.

Deterministic: the bag, the traces, the settings and the models decide every number (with
the fixed edge cost model; measured inference times vary from run to run).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from spotvlm_ros.cloud.embeds import EMBED_DTYPES
from spotvlm_ros.core.calibration import CalibrationTable, choose_source
from spotvlm_ros.core.checks import boolean, non_negative, positive, positive_int, require
from spotvlm_ros.core.composition import (
    cloud_reply, edge_inputs, fuse, newest_cloud_turn, strategy as strategy_named)
from spotvlm_ros.core.compression import tokenizer_counter, word_count
from spotvlm_ros.core.context import ContextConfig, ContextStore
from spotvlm_ros.core.flow import FlowMemo
from spotvlm_ros.core.focus import FocusConfig, track_path
from spotvlm_ros.core.images import shrink
from spotvlm_ros.core.keyframes import KeyframeConfig
from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.cloud_sim import (
    keyframe_requests, last_round_trip, mean_delay, round_trip)
from spotvlm_ros.evaluation.edge_cost import EdgeCostModel
from spotvlm_ros.evaluation.records import AnswerRecord
from spotvlm_ros.io.replay import questions_of


@dataclass(frozen=True)
class OfflineSettings:
    """How the replay is simulated; the node parts come from the nodes' own configs."""

    deadline_s: float = 1.0  # an answer later than this after its frame misses the deadline
    every: int = 5  # score every Nth frame (all frames still feed the keyframe policy)
    # The edge worker gets every frame, as the node's does (its backlog, drops and own turns),
    # and only the scored ones are recorded; False: only the scored frames (every times fewer
    # edge answers, and none dropped while the edge is faster than `every` frames).
    worker_every_frame: bool = False
    edge_cost_s: Optional[float] = 0.1  # fixed edge inference time; None: measured
    edge_cost_model: Optional[EdgeCostModel] = None  # instead: its prediction per answer
    cloud_cost_s: float = 0.0  # the cloud model's own time, added to the trace's delay
    cloud_timeout_s: float = 12.0  # cloud.timeout_s of the bridge
    # partitioned: the cloud's vision encoder on the edge (62-190 ms measured for the committed
    # cloud at 448x336 on a busy 2-core CPU), its tokens up a link of this rate, as this dtype
    encoder_cost_s: float = 0.1
    uplink_mbps: float = 10.0
    embeds_dtype: str = 'float16'
    calibration: Optional[CalibrationTable] = None  # auto's table (spotvlm calibrate)
    auto_wait: bool = True  # auto may wait for the cloud (the edge node's auto.wait)
    frame_ring_size: int = 100  # the fuser's ring: older keyframes are not at hand for flow
    context: ContextConfig = ContextConfig()
    focus: FocusConfig = FocusConfig()
    keyframe: KeyframeConfig = KeyframeConfig()

    def __post_init__(self):
        positive('deadline_s', self.deadline_s)
        positive_int('every', self.every)
        if self.edge_cost_s is not None:
            non_negative('edge_cost_s', self.edge_cost_s)
        non_negative('cloud_cost_s', self.cloud_cost_s)
        positive('cloud_timeout_s', self.cloud_timeout_s)
        non_negative('encoder_cost_s', self.encoder_cost_s)
        positive('uplink_mbps', self.uplink_mbps)
        boolean('auto_wait', self.auto_wait)
        boolean('worker_every_frame', self.worker_every_frame)
        require(self.embeds_dtype in EMBED_DTYPES, 'embeds_dtype',
                f'one of {", ".join(EMBED_DTYPES)}, got {self.embeds_dtype!r}')
        positive_int('frame_ring_size', self.frame_ring_size)


def simulate(frames: Sequence, traces: Sequence, answerer, settings: OfflineSettings,
             strategies: Sequence[str] = (), questions: Sequence[str] = (),
             progress: Callable[[], None] = lambda: None) -> list:
    """Records of every strategy (default: all, auto when the settings hold its table), trace
    and question (default: every question the frames ask) on every `every`-th frame."""
    strategies = list(strategies) or [s for s in R.STRATEGIES
                                      if s != R.AUTO or settings.calibration is not None]
    unknown = [s for s in strategies if s not in R.STRATEGIES]
    require(not unknown, 'strategies', f'unknown {unknown}; known: {", ".join(R.STRATEGIES)}')
    require(bool(frames), 'frames', 'the bag has no frames')
    require(R.AUTO not in strategies or settings.calibration is not None, 'strategies',
            'auto needs a calibration table (spotvlm calibrate; eval --calibration)')
    scored = frames[::settings.every]
    questions = list(questions) or questions_of(frames)
    stamps = [f.stamp for f in scored]
    requests = [keyframe_requests(frames, trace, settings.keyframe, settings.cloud_timeout_s,
                                  settings.cloud_cost_s) for trace in traces]
    # Every cloud reply any strategy will read, computed up front in batches: each keyframe
    # is asked the question of the moment, whatever its own ground truth holds.
    rows = [strategy_named(s) for s in strategies]
    keyframes = sorted({r.frame_index for rs in requests for r in rs if r.ok})
    asks = [(frames[i], q) for i in keyframes for q in questions
            if any(r.cloud_turns or r.focus or not r.on_edge for r in rows)]
    scored_asks = [(f, q) for f in scored for q in questions if f.question(q)]
    if any(not r.on_edge for r in rows):
        asks += scored_asks
    answerer.prefetch_cloud(asks)
    answerer.prefetch_edge(scored_asks)  # the frame alone: every edge strategy's start
    slots, streams = [], []
    for trace, trace_requests in zip(traces, requests):
        replay = _Replay(frames, trace, trace_requests, answerer, settings,
                         mean_delay(trace, stamps, settings.cloud_timeout_s))
        for question in questions:
            items = [(f, f.question(question)) for f in scored if f.question(question)]
            worked = items if not settings.worker_every_frame else \
                [(f, f.question(question)) for f in frames if f.question(question)]
            for strategy in strategies:
                slots.append(replay.run(strategy, question, items, worked))
                if not isinstance(slots[-1], list):  # an edge worker, run with the others
                    streams.append((len(slots) - 1, slots[-1]))
            progress()
    for slot, records in run_edge_workers(streams, answerer):
        slots[slot] = records
    return [r for records in slots for r in records]


def run_edge_workers(workers: list, answerer) -> list:
    """Run (slot, worker) generators side by side; [(slot, records)] when all are done.

    Each worker yields the edge inputs it needs next and gets the answer back. The workers'
    pending questions are answered together in one batch per round; a worker's own order of
    events is untouched, so every record is what running it alone would give.
    """
    done, pending = [], {}
    for slot, worker in workers:
        _advance(worker, slot, None, pending, done)
    while pending:
        answerer.prefetch_edge_inputs(list(pending.values()))
        for (slot, worker), request in list(pending.items()):
            del pending[(slot, worker)]
            _advance(worker, slot, answerer.edge(*request), pending, done)
    return done


def _advance(worker, slot: int, answer, pending: dict, done: list) -> None:
    try:
        pending[(slot, worker)] = worker.send(answer)
    except StopIteration as finished:
        done.append((slot, finished.value))


class _Replay:
    """One trace: the keyframe requests, and every strategy's answers to one question."""

    def __init__(self, frames, trace, requests, answerer, settings: OfflineSettings,
                 mean_delay_s: float):
        self.frames = frames
        self.trace = trace
        self.requests = requests
        self.answerer = answerer
        self.settings = settings
        self.mean_delay_s = mean_delay_s
        self._by_seq = {r.seq: r for r in requests}
        # As the fuser does: budgets in the edge model's own tokens.
        tokenizer = getattr(answerer.edge_backend, 'tokenizer', None)
        self.count_tokens = tokenizer_counter(tokenizer) if tokenizer is not None else word_count
        # The fuser's memo, big enough for every question's workers side by side.
        self.flow_memo = FlowMemo(size=4096)

    def record(self, strategy: str, frame, truth) -> AnswerRecord:
        return AnswerRecord(strategy, self.trace.name, self.mean_delay_s, frame.index,
                            frame.stamp, truth.question, truth.family, truth.answer,
                            frame.size[0], frame.size[1])

    def cloud_store(self, question: str, with_cloud: bool = True) -> ContextStore:
        """The fuser's store, holding every good reply, each hidden until it arrives."""
        # Every reply of the drive is stored up front, each hidden until it arrives: its
        # capacity must not evict replies that the live store would not hold yet.
        config = dataclasses.replace(self.settings.context, capacity=max(
            self.settings.context.capacity, len(self.requests)))
        store = ContextStore(config, self.count_tokens)
        for request in self.requests if with_cloud else ():
            if request.ok:
                answer, _ = self.answerer.cloud(self.frames[request.frame_index], question,
                                                request.seq)
                store.add_cloud(answer, available_at=request.done_at)
        return store

    def run(self, strategy: str, question: str, items: list, worked: Optional[list] = None):
        """The strategy's records of `items`, or for an edge strategy the worker that will make
        them, given `worked` (default: `items`), the frames its worker answers."""
        chosen = strategy_named(strategy)
        store = self.cloud_store(question, with_cloud=chosen.cloud_turns or chosen.focus or
                                 not chosen.on_edge)
        scored = {frame.index for frame, _ in items}
        if strategy == R.AUTO:
            return self.auto_worker(worked or items, store, scored)
        if chosen.on_edge:
            return self.edge_worker(strategy, worked or items, store, scored)
        make = {R.CLOUD_LATEST: self.cloud_latest, R.CLOUD_WAIT: self.cloud_wait,
                R.OFFLOAD: self.offload, R.PARTITIONED: self.partitioned}[strategy]
        return [make(self.record(strategy, frame, truth), frame, store)
                for frame, truth in items]

    # edge strategies ----------------------------------------------------------------------
    def edge_worker(self, strategy: str, items: list, store: ContextStore,
                    scored: Optional[set] = None):
        """The edge node's worker: one answer at a time, the newest waiting frame next; each
        answer goes back to the store as the edge's own turn, as the fuser hears it.

        A generator: it yields (frame, question, EdgeInputs) and is sent the answer; it
        returns the records of the `scored` frame indices (default: all; see
        run_edge_workers).
        """
        records = {frame.index: self.record(strategy, frame, truth) for frame, truth in items}

        def run(item, start: float):
            frame, truth = item
            return (yield from self.edge_step(strategy, frame, records[frame.index], store,
                                              start))

        yield from latest_first_steps(items, lambda item: item[0].stamp, run)
        return _scored(records, scored)

    def edge_step(self, strategy: str, frame, record: AnswerRecord, store: ContextStore,
                  start: float):
        """One edge answer under `strategy`, begun at `start`; returns when it is done."""
        done = yield from self.edge_answer(strategy, frame, record, store, start)
        store.add_edge(frame.stamp, record.question, record.answer, available_at=done)
        return done

    def edge_answer(self, strategy: str, frame, record: AnswerRecord, store: ContextStore,
                    start: float):
        """edge_step without telling the store (the fuser hears only answers given)."""
        focus = self.settings.focus
        fused = self.fused(frame, store)
        inputs = edge_inputs(strategy, fused, frame.image, frame.stamp, focus)
        answer = yield frame, record.question, inputs
        done = start + answer.cost_s
        _answered(record, answer, done, frame.stamp, context_age_s=inputs.context_age_s,
                  used_context=inputs.used_cloud_turns, used_focus=answer.crops > 0)
        return done

    def auto_worker(self, items: list, store: ContextStore, scored: Optional[set] = None):
        """auto: for each frame, the source the calibration table expects to score best.

        The cloud waited for is a candidate unless the last round trip missed the deadline
        (before the first one is back the link is unknown). A wait is hedged: the edge worker
        answers meanwhile from the best source but the cloud, and that answer is given at the
        deadline if the cloud's is not back by then. The newest cloud answer is a candidate
        once one is back. Whatever answers goes back to the store as the edge's own turn.
        """
        table = self.settings.calibration
        records = {frame.index: self.record(R.AUTO, frame, truth) for frame, truth in items}
        deadline = self.settings.deadline_s

        def run(item, start: float):
            frame, truth = item
            record = records[frame.index]
            newest = store.newest_cloud(frame.stamp)
            newest_stamp = None if newest is None else newest.keyframe_stamp
            predicted = last_round_trip(self.requests, frame.stamp)
            record.answer_source = choose_source(
                table, truth.question, frame.stamp, newest_stamp,
                can_wait=self.settings.auto_wait and (predicted is None or predicted <= deadline))
            if record.answer_source == R.CLOUD_WAIT:
                hedge = self.record(R.AUTO, frame, truth)
                hedge.answer_source = choose_source(table, truth.question, frame.stamp,
                                                    newest_stamp)
                done = yield from self.hedge_step(hedge, frame, store, start)
                self.cloud_wait(record, frame, store)
                if not (record.answered and record.latency_s <= deadline):
                    record = records[frame.index] = hedge
                    _held_until(record, frame.stamp + deadline)
                store.add_edge(frame.stamp, record.question, record.answer,
                               available_at=record.answered_at)
                return done
            if record.answer_source == R.CLOUD_LATEST:
                self.cloud_latest(record, frame, store)
                store.add_edge(frame.stamp, record.question, record.answer,
                               available_at=record.answered_at)
                return start
            return (yield from self.edge_step(record.answer_source, frame, record, store,
                                              start))

        yield from latest_first_steps(items, lambda item: item[0].stamp, run)
        return _scored(records, scored)

    def hedge_step(self, hedge: AnswerRecord, frame, store: ContextStore, start: float):
        """The answer a wait for the cloud falls back on, made by the edge worker from `start`
        (the newest cloud answer, or the edge model under `hedge.answer_source`); returns
        when the worker is free. It goes to the store only if it is given."""
        if hedge.answer_source == R.CLOUD_LATEST:
            self.cloud_latest(hedge, frame, store)
            return start
        return (yield from self.edge_answer(hedge.answer_source, frame, hedge, store, start))

    def fused(self, frame, store: ContextStore):
        """The fuser's context for `frame`, from what the store holds now."""
        key_image, via_images, via_stamps = self.track_images(frame, store)
        return fuse(store, frame.stamp, frame.size, self.settings.focus, key_image, frame.image,
                    via_images, via_stamps, memo=self.flow_memo)

    def track_images(self, frame, store: ContextStore) -> tuple:
        """(keyframe, frames between, their stamps) of the newest reply as the fuser holds
        them: in its ring, at flow size; (None, (), ()) when the keyframe has left the ring."""
        newest = store.newest_cloud(frame.stamp)
        if newest is None or not newest.regions:
            return None, (), ()
        key = self.frames[self._by_seq[newest.keyframe_seq].frame_index]
        if frame.index - key.index >= self.settings.frame_ring_size:
            return None, (), ()
        held = self.frames[key.index:frame.index + 1]
        via = track_path([f.stamp for f in held], self.settings.focus.flow_hop_s)[1:-1]
        side = self.settings.focus.flow_max_side
        return (shrink(key.image, side), [shrink(held[i].image, side) for i in via],
                [held[i].stamp for i in via])

    # cloud strategies ---------------------------------------------------------------------
    def cloud_latest(self, record: AnswerRecord, frame, store: ContextStore) -> AnswerRecord:
        """The newest reply already back, whatever frame it was about, as the edge node gives
        it: the fuser's turn, its regions carried to this frame."""
        newest = store.newest_cloud(frame.stamp)
        if newest is None:
            return record
        fused = self.fused(frame, store)
        turn = newest_cloud_turn(fused, record.question, frame.stamp)
        if turn is None:
            return record
        key = self.frames[self._by_seq[newest.keyframe_seq].frame_index]
        _, raw = self.answerer.cloud(key, record.question, newest.keyframe_seq)
        answer = dataclasses.replace(raw, text=cloud_reply(turn, fused)[0])
        return _answered(record, answer, frame.stamp, turn.source_stamp,
                         context_age_s=frame.stamp - turn.source_stamp)

    def cloud_wait(self, record: AnswerRecord, frame, store: ContextStore) -> AnswerRecord:
        """This very frame sent to the cloud; its reply when it comes back, if it does."""
        rtt = round_trip(self.trace, frame.stamp, self.settings.cloud_timeout_s,
                         self.settings.cloud_cost_s)
        if rtt is None:
            return record
        _, raw = self.answerer.cloud(frame, record.question)
        return _answered(record, raw, frame.stamp + rtt, frame.stamp)

    def partitioned(self, record: AnswerRecord, frame, store: ContextStore) -> AnswerRecord:
        """This frame's visual tokens, encoded here, uploaded at the uplink's rate, then the
        trace's delay and the cloud decoder's own time; its reply when it comes back."""
        answer, payload = self.answerer.partitioned(frame, record.question,
                                                    self.settings.embeds_dtype)
        upload_s = payload * 8 / (self.settings.uplink_mbps * 1e6)
        sent_at = frame.stamp + self.settings.encoder_cost_s + upload_s
        rtt = round_trip(self.trace, sent_at, self.settings.cloud_timeout_s,
                         self.settings.cloud_cost_s)
        if rtt is None:
            return record
        return _answered(record, answer, sent_at + rtt, frame.stamp)

    def offload(self, record: AnswerRecord, frame, store: ContextStore) -> AnswerRecord:
        """The cloud when the last measured round trip meets the deadline, else the edge;
        an offloaded frame whose reply misses the deadline falls back to the edge then."""
        deadline = self.settings.deadline_s
        predicted = last_round_trip(self.requests, frame.stamp)
        start = frame.stamp
        if predicted is not None and predicted <= deadline:
            rtt = round_trip(self.trace, frame.stamp, self.settings.cloud_timeout_s,
                             self.settings.cloud_cost_s)
            if rtt is not None and rtt <= deadline:
                _, raw = self.answerer.cloud(frame, record.question)
                record.answer_source = R.CLOUD_WAIT
                return _answered(record, raw, frame.stamp + rtt, frame.stamp)
            start = frame.stamp + deadline
        record.answer_source = R.EDGE_ONLY
        answer = self.answerer.edge(frame, record.question)
        return _answered(record, answer, start + answer.cost_s, frame.stamp)


def _scored(records: dict, scored: Optional[set]) -> list:
    """The records (by frame index) of the scored frames, in order; all when `scored` is None."""
    return [r for index, r in records.items() if scored is None or index in scored]


def _held_until(record: AnswerRecord, at: float) -> AnswerRecord:
    """`record`'s answer given no sooner than `at` (a hedge kept back while the cloud might
    still answer); unchanged if it was not answered."""
    if record.answered and record.answered_at < at:
        record.answered_at = at
        record.latency_s = at - record.frame_stamp
    return record


def _answered(record: AnswerRecord, answer, answered_at: float, source_stamp: float,
              context_age_s: Optional[float] = None, used_context: bool = False,
              used_focus: bool = False) -> AnswerRecord:
    """Fill `record` in place with an answer available at `answered_at`; returns it."""
    record.answered = True
    record.answer = answer.text
    record.answered_at = answered_at
    record.latency_s = answered_at - record.frame_stamp
    record.source_stamp = source_stamp
    record.context_age_s = context_age_s
    record.used_context = used_context
    record.used_focus = used_focus
    record.prompt_tokens = answer.prompt_tokens
    record.new_tokens = answer.new_tokens
    return record


def latest_first(items: Sequence, stamp_of: Callable, run: Callable) -> list:
    """One worker, the newest waiting item next (older waiting ones are dropped).

    `run(item, start)` does the work and returns when it is done; returns the dropped items.
    """
    def steps(item, start):
        return run(item, start)
        yield  # a generator that never yields: latest_first_steps runs it like any step

    worker = latest_first_steps(items, stamp_of, steps)
    try:
        next(worker)
    except StopIteration as finished:
        return finished.value
    raise RuntimeError('a synchronous run yielded')


def latest_first_steps(items: Sequence, stamp_of: Callable, run: Callable):
    """latest_first with `run(item, start)` a generator returning when it is done (what it
    yields is passed through); returns the dropped items."""
    free_at, waiting, dropped = -math.inf, None, []
    for item in items:
        if waiting is not None and free_at <= stamp_of(item):
            free_at, waiting = (yield from run(waiting, free_at)), None
        if waiting is None and free_at <= stamp_of(item):
            free_at = yield from run(item, stamp_of(item))
        else:
            if waiting is not None:
                dropped.append(waiting)
            waiting = item
    if waiting is not None:
        yield from run(waiting, max(free_at, stamp_of(waiting)))
    return dropped
