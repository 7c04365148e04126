"""edge_node: answers the latest camera frame with the edge SVLM, using the fused context.

A lifecycle node: the model loads on configure, answers flow while active. Inference runs on
a worker thread of its own, never on the executor (see docs/architecture.md, executor note).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.task import Future
from sensor_msgs.msg import Image
from spotvlm_msgs.action import Ask
from spotvlm_msgs.msg import CloudContext, CloudRequest, EdgeAnswer, FusedContext
from std_msgs.msg import String

from spotvlm_ros.core.calibration import CalibrationTable, choose_source
from spotvlm_ros.core.composition import (
    AUTO, CLOUD_LATEST, CLOUD_WAIT, EDGE_ONLY, EDGE_OWN_HISTORY, OFFLOAD, cloud_reply,
    edge_inputs, newest_cloud_turn)
from spotvlm_ros.core.types import SOURCE_CLOUD
from spotvlm_ros.models.base import EdgeBackend, ModelLoadError
from spotvlm_ros.models.factory import make_backend
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.cloud_waits import CloudWaits
from spotvlm_ros.nodes.diagnostics import (
    DiagnosticsPublisher, RollingStats, make_status, threshold_level, worst)
from spotvlm_ros.nodes.images import frame_or_skip, subscribe_images
from spotvlm_ros.nodes.params import declare_node
from spotvlm_ros.nodes.qos import (
    ANSWER_QOS, CLOUD_CONTEXT_QOS, CLOUD_REQUEST_QOS, FUSED_CONTEXT_QOS, image_qos)
from spotvlm_ros.nodes.runner import run_node
from spotvlm_ros.share import resolve as resolve_share_path

TINY_MODEL = 'tiny'  # model.path value: the project's offline tiny checkpoint, built on demand
# A frame this much older than the newest one is a clock that went back (a looping bag), not
# a late frame from a second publisher: it starts the timeline again instead of being dropped.
CLOCK_JUMP_S = 2.0


@dataclass
class Job:
    """One answer to produce: a frame, the question, and where the answer goes."""

    frame: np.ndarray
    header: object
    query: str
    use_context: bool = True
    on_text: Optional[Callable[[str], None]] = None
    done: Optional[Callable[[EdgeAnswer], None]] = None
    dropped_before: int = 0
    held: bool = False  # auto waits for the cloud: the answer is a hedge, given by CloudWaits
    source: Optional[str] = None  # the source that must answer (offload's edge fallback)
    # Wall-clock seconds at each stage, in order: callback, converted, taken, planned,
    # inferred, publish; on ~/stage_times when diagnostics.stage_times is set (benchmarks).
    marks: dict = field(default_factory=dict)
    preprocess_s: float = 0.0  # the model's share spent on the chat template and pixels


class EdgeNode(LifecycleNode):
    """Answers every frame it can, latest first, and the Ask action's ad-hoc questions."""

    def __init__(self, **kwargs):
        super().__init__('edge_node', **kwargs)
        self.params = declare_node(self, 'edge_node')
        self.strategy = self.params.node.strategy
        self.query = self.params.node.query  # the query topic changes it at run time

        self.backend: Optional[EdgeBackend] = None
        self.calibration: Optional[CalibrationTable] = None
        self._active = False
        self._cond = threading.Condition()
        self._pending: Optional[Job] = None  # the latest frame's job; a newer one replaces it
        self._asks: list[Job] = []
        self._fallbacks: list[Job] = []  # offload's frames the cloud did not answer in time
        self._context: Optional[FusedContext] = None
        self._latest: Optional[tuple] = None  # (header, frame) for Ask
        self._newest_stamp: Optional[float] = None  # of the newest frame accepted
        self._stale_since: Optional[float] = None  # frame stamp when the context went stale
        self._stop = False
        self._worker: Optional[threading.Thread] = None
        self.inference = RollingStats()
        self.counts = {'received': 0, 'answered': 0, 'dropped': 0, 'bad_frames': 0, 'asks': 0,
                       'no_cloud_answer': 0}
        self._dropped_since_answer = 0
        self._answers = None
        self._stages = None
        self._group = ReentrantCallbackGroup()
        subscribe_images(self, self.params.node.image_transport, self._on_image,
                         image_qos(self.params.node.image_reliable), callback_group=self._group)
        self.create_subscription(FusedContext, 'fused_context', self._on_context,
                                 FUSED_CONTEXT_QOS, callback_group=self._group)
        self.create_subscription(String, 'query', self._on_query, 10, callback_group=self._group)
        self.waits: Optional[CloudWaits] = None
        self._requests = None
        self._warned_cloud_turns = False
        deadline = {AUTO: self.params.auto.deadline_s if self.params.auto.wait else None,
                    OFFLOAD: self.params.offload.deadline_s}.get(self.strategy)
        if deadline is not None:
            self.waits = CloudWaits(deadline, self._give, self._now)
            self._requests = self.create_publisher(CloudRequest, 'cloud_request',
                                                   CLOUD_REQUEST_QOS)
            self.create_subscription(CloudContext, 'cloud_context', self.waits.on_reply,
                                     CLOUD_CONTEXT_QOS, callback_group=self._group)
        self._ask_server = ActionServer(
            self, Ask, 'ask', self._execute_ask, goal_callback=self._accept_ask,
            cancel_callback=lambda _: CancelResponse.REJECT, callback_group=self._group)
        self._diag = DiagnosticsPublisher(self, 1.0, self._status)

    # lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        model = str(self._resolve_model())
        wanted = self.params.model
        self.get_logger().info(f'loading {wanted.kind} model {model} '
                               f'(device {wanted.device}, dtype {wanted.dtype})')
        try:
            if self.strategy == AUTO:
                self.calibration = CalibrationTable.load(
                    resolve_share_path(self.params.auto.calibration))
            self.backend = make_backend(self.params.model.kind, **self._backend_params(model))
        except (ModelLoadError, ValueError, OSError) as err:
            self.get_logger().error(f'model did not load: {err}')
            return TransitionCallbackReturn.FAILURE
        self._answers = self.create_publisher(EdgeAnswer, 'answer', ANSWER_QOS)
        if self.params.diagnostics.stage_times:
            self._stages = self.create_publisher(DiagnosticArray, '~/stage_times', ANSWER_QOS)
        self._stop = False
        self._worker = threading.Thread(target=self._work, name='edge-inference', daemon=True)
        self._worker.start()
        self.get_logger().info(f"model loaded; strategy '{self.strategy}', query '{self.query}'")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info('active: answering frames')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the worker and release the model; safe to call twice."""
        self._active = False
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None
        if self.waits is not None:
            self.waits.close()
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    # inputs ---------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        # May run on two executor threads at once (a reentrant group, where the runner falls
        # back to the MultiThreadedExecutor): every count and the waiting frame change under
        # the one lock, and only a newer frame replaces it.
        called = time.time()
        bad: dict = {'bad_frames': 0}
        frame = frame_or_skip(self, msg, bad)
        marks = {'callback': called, 'converted': time.time()}
        stamp = convert.to_sec(msg.header.stamp)
        with self._cond:
            if frame is None:
                self.counts['bad_frames'] += bad['bad_frames']
                return
            self.counts['received'] += 1
            newest = self._newest_stamp
            if newest is not None and newest - CLOCK_JUMP_S <= stamp < newest:
                self.counts['dropped'] += 1  # older than a frame already taken: late
                self._dropped_since_answer += 1
                return
            self._newest_stamp = stamp
            self._latest = (msg.header, frame)
            if not self._active:
                return
            if self._pending is not None:  # no backlog: the newer frame wins
                self.counts['dropped'] += 1
                self._dropped_since_answer += 1
            self._pending = Job(frame, msg.header, self.query, marks=marks)
            self._cond.notify()

    def _on_context(self, msg: FusedContext) -> None:
        self._context = msg
        if self.strategy == EDGE_OWN_HISTORY and not self._warned_cloud_turns and any(
                t.source == SOURCE_CLOUD for t in msg.turns):
            self._warned_cloud_turns = True
            self.get_logger().warning(
                'edge_own_history: the fused context holds cloud answers, which replaced some '
                'of the own turns this strategy reads; run it without a cloud bridge')

    def _on_query(self, msg: String) -> None:
        if msg.data.strip():
            self.query = msg.data.strip()
            self.get_logger().info(f"standing query is now '{self.query}'")

    # Ask action -----------------------------------------------------------------------
    def _accept_ask(self, goal) -> GoalResponse:
        if not self._active or self._latest is None or not goal.question.strip():
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute_ask(self, goal_handle):
        """Queue the question for the worker and wait for it without blocking the executor."""
        finished: Future = Future()
        header, frame = self._latest

        def done(answer: EdgeAnswer) -> None:
            finished.set_result(answer)

        job = Job(frame, header, goal_handle.request.question, not goal_handle.request.no_context,
                  on_text=lambda text: goal_handle.publish_feedback(Ask.Feedback(partial_text=text)),
                  done=done)
        with self._cond:
            self._asks.append(job)
            self._cond.notify()
        self.counts['asks'] += 1
        answer = await finished
        if answer.answer == '' and answer.model == '':
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return Ask.Result(answer=answer)

    # worker ---------------------------------------------------------------------------
    def _next_job(self) -> Optional[Job]:
        with self._cond:
            while not self._stop and not self._asks and not self._fallbacks and \
                    self._pending is None:
                self._cond.wait()
            if self._stop:
                return None
            if self._asks:
                return self._asks.pop(0)
            if self._fallbacks:
                return self._fallbacks.pop(0)
            job, self._pending = self._pending, None
            job.dropped_before, self._dropped_since_answer = self._dropped_since_answer, 0
            job.marks['taken'] = time.time()
            return job

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                answer = self.answer(job)
            except Exception as err:  # noqa: BLE001 - one bad frame must not stop answering
                self.get_logger().error(f'inference failed: {type(err).__name__}: {err}')
                answer = EdgeAnswer(header=job.header, query=job.query)
            if job.done is not None:
                job.done(answer)
            elif answer.model and job.held:
                self.waits.hold(answer)
            elif answer.model:
                job.marks['publish'] = time.time()
                self._answers.publish(answer)
                if self._stages is not None:
                    self._stages.publish(stage_times(job, answer))
        self._fail_pending_asks()

    def _give(self, answer: EdgeAnswer) -> None:
        """Publish an answer auto held while it waited for the cloud, its latency as given."""
        answer.latency_s = self._now() - convert.to_sec(answer.header.stamp)
        if self._answers is not None and self._active:  # none once stopping
            self._answers.publish(answer)

    def _now(self) -> float:
        return convert.to_sec(self.get_clock().now().to_msg())

    def _fail_pending_asks(self) -> None:
        with self._cond:
            asks, self._asks = self._asks, []
        for job in asks:
            job.done(EdgeAnswer(header=job.header, query=job.query))

    def answer(self, job: Job) -> EdgeAnswer:
        """Run the model on one job (or, for auto, take the source it chose) as an EdgeAnswer."""
        stamp = convert.to_sec(job.header.stamp)
        context = self._fresh_context(stamp) if job.use_context else None
        fused = convert.fused_from_msg(context) if context is not None else None
        source, cloud_turn = (job.source, None) if job.source is not None else \
            self._source(job.query, fused, stamp, self._can_wait(job))
        if source == CLOUD_WAIT:
            self._requests.publish(CloudRequest(header=job.header, query=job.query))
            if self.strategy == OFFLOAD:  # the wait answers: the reply, or the edge at the end
                self.waits.hold(EdgeAnswer(header=job.header, query=job.query,
                                           strategy=self.strategy, source=EDGE_ONLY,
                                           frames_dropped=job.dropped_before),
                                lambda _: self._answer_on_edge(job))
                return EdgeAnswer(header=job.header, query=job.query)  # nothing to publish
            job.held = True  # auto: make the hedge meanwhile
            source, cloud_turn = self._source(job.query, fused, stamp)
        if source == CLOUD_LATEST and cloud_turn is None:
            self.counts['no_cloud_answer'] += 1
            return EdgeAnswer(header=job.header, query=job.query)  # nothing yet: not published
        if source == CLOUD_LATEST:
            text, regions = cloud_reply(cloud_turn, fused)
            msg = EdgeAnswer(header=job.header, query=job.query, answer=text,
                             model=self.backend.name, strategy=self.strategy, source=source,
                             has_context=True, context_age_s=stamp - cloud_turn.source_stamp,
                             used_context=True, focus_regions=convert.regions_to_msgs(regions),
                             frames_dropped=job.dropped_before)
            if job.on_text is not None:
                job.on_text(text)
        else:
            msg = self._model_answer(job, source, fused, stamp)
            msg.has_context = context is not None and context.has_context
        self.counts['answered'] += 1
        msg.latency_s = self._now() - stamp
        return msg

    def _can_wait(self, job: Job) -> bool:
        """Whether this frame may wait for the cloud: never for an Ask, and a bridge must
        serve requests (none with --no-cloud); auto tries before a round trip is known."""
        return self.waits is not None and job.done is None \
            and self.waits.can_wait(unknown=self.strategy == AUTO) \
            and self._requests.get_subscription_count() > 0

    def _answer_on_edge(self, job: Job) -> None:
        """offload's fallback: the edge model answers the frame the cloud did not in time."""
        late = Job(job.frame, job.header, job.query, use_context=False, source=EDGE_ONLY,
                   dropped_before=job.dropped_before)
        with self._cond:
            self._fallbacks.append(late)
            self._cond.notify()

    def _source(self, query: str, fused, stamp: float, can_wait: bool = False) -> tuple:
        """(the source answering this frame, the newest cloud turn about `query`, for
        cloud_latest and auto); auto and offload may choose the cloud waited for when
        `can_wait`."""
        if self.strategy == OFFLOAD:
            return CLOUD_WAIT if can_wait else EDGE_ONLY, None
        if self.strategy not in (AUTO, CLOUD_LATEST):
            return self.strategy, None
        newest = newest_cloud_turn(fused, query, stamp, self.params.context.max_age_s)
        if self.strategy == CLOUD_LATEST:
            return CLOUD_LATEST, newest
        return choose_source(self.calibration, query, stamp,
                             None if newest is None else newest.source_stamp, can_wait), newest

    def _model_answer(self, job: Job, source: str, fused, stamp: float) -> EdgeAnswer:
        """The edge model's answer under `source`'s inputs."""
        inputs = edge_inputs(source, fused, job.frame, stamp, self.params.focus,
                             self.params.context.max_age_s)
        job.marks['planned'] = time.time()
        result = self.backend.answer(job.frame, job.query, inputs.turns, inputs.focus,
                                     self.params.model.system_prompt or None, job.on_text)
        job.marks['inferred'] = time.time()
        job.preprocess_s = result.timings.preprocess_s
        self.inference.add(result.timings.total_s)
        age = inputs.context_age_s
        return EdgeAnswer(
            header=job.header, query=job.query, answer=result.text, model=self.backend.name,
            strategy=self.strategy, source=source, inference_time_s=result.timings.total_s,
            context_age_s=-1.0 if age is None else age,
            used_context=inputs.used_cloud_turns, used_focus=inputs.crops > 0,
            focus_regions=convert.regions_to_msgs(
                c.region for c in inputs.focus.crops) if inputs.focus else [],
            visual_tokens=result.visual_tokens, prompt_tokens=result.prompt_tokens,
            new_tokens=result.new_tokens, frames_dropped=job.dropped_before)

    def _fresh_context(self, stamp: float) -> Optional[FusedContext]:
        """The held context unless it is stale for the frame at `stamp` (then None, noted)."""
        context = self._context
        if context is None:
            return None
        age = stamp - convert.to_sec(context.header.stamp)
        stale = age > self.params.context.max_age_s
        with self._cond:
            was_stale = self._stale_since
            if not stale:
                self._stale_since = None
            elif was_stale is None:
                self._stale_since = stamp
        if stale and was_stale is None:
            self.get_logger().warning(
                f'fused context is {age:.1f} s old (context.max_age_s '
                f'{self.params.context.max_age_s:g}): answering without it until a new one comes')
        return None if stale else context

    # misc -----------------------------------------------------------------------------
    def _resolve_model(self):
        if self.params.model.path != TINY_MODEL:
            return resolve_share_path(self.params.model.path)  # package://... -> its share file
        from spotvlm_ros.models.tiny import tiny_checkpoint

        return tiny_checkpoint()

    def _backend_params(self, model: str) -> dict:
        wanted = self.params.model
        params = {'model': model, 'device': wanted.device, 'dtype': wanted.dtype,
                  'max_new_tokens': wanted.max_new_tokens, 'threads': wanted.threads or None}
        if self.params.model.kind == 'transformers':
            params['name'] = self.params.model.path
        return params

    def _status(self):
        loaded = self.backend is not None
        p50, p95 = self.inference.percentile(50), self.inference.percentile(95)
        received = max(1, self.counts['received'])
        drop_ratio = self.counts['dropped'] / received
        diag = self.params.diagnostics
        level = worst(threshold_level(p95, diag.inference_warn_s, diag.inference_error_s),
                      threshold_level(drop_ratio, diag.drop_ratio_warn, 2.0))
        context = self._context
        age = context.newest_age_s if context is not None and context.newest_age_s >= 0 else None
        with self._cond:
            stale_since = self._stale_since
        if not loaded:
            level, message = DiagnosticStatus.ERROR, 'model not loaded'
        elif stale_since is not None:
            level = worst(level, DiagnosticStatus.WARN)
            message = (f'context stale: no fused context within '
                       f'{self.params.context.max_age_s:g} s (fuser down?); answering without '
                       'context')
        else:
            message = f'answering, inference p50 {p50 or 0:.3f} s'
        return make_status(self, level, message, {
            'model_loaded': loaded, 'model': self.params.model.path, 'strategy': self.strategy,
            'inference_p50_s': p50, 'inference_p95_s': p95, 'drop_ratio': drop_ratio,
            'context_age_s': age, 'context_stale': stale_since is not None, **self.counts,
            **(self.waits.counts if self.waits is not None else {})})


def stage_times(job: Job, answer: EdgeAnswer) -> DiagnosticArray:
    """The job's stage marks (wall-clock seconds) keyed by stage, under the frame's header."""
    values = [KeyValue(key=name, value=repr(value)) for name, value in job.marks.items()]
    values.append(KeyValue(key='preprocess_s', value=repr(job.preprocess_s)))
    status = DiagnosticStatus(name='edge_node stage times', message=answer.model, values=values)
    return DiagnosticArray(header=job.header, status=[status])


def _auto_activate(node: EdgeNode) -> None:
    if not node.params.node.auto_activate:
        return
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise SystemExit(1)
    node.trigger_activate()


def main(argv=None) -> int:
    return run_node(EdgeNode, argv, after_start=_auto_activate)


if __name__ == '__main__':
    raise SystemExit(main())
