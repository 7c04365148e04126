"""Live mode: the real nodes on a bag in real time, as processes, their recorded answers turned
into records."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Iterable, Mapping, Optional, Sequence, Union

from spotvlm_ros.core.regions import fenced_reply, region_items
from spotvlm_ros.core.types import Region
from spotvlm_ros.evaluation.records import (
    AUTO, CLOUD_WAIT, EDGE_ONLY, EDGE_OWN_HISTORY, LIVE_STRATEGIES, OFFLOAD, PARTITIONED,
    AnswerRecord)
from spotvlm_ros.io.bags import (
    ANSWER_TYPE, CLOUD_CONTEXT_TYPE, GROUND_TRUTH_TYPE, spotvlm_typestore)
from spotvlm_ros.io.replay import IMAGE_TOPIC
from spotvlm_ros.scenes.large_model import is_simulated

log = logging.getLogger(__name__)

SERVER_TRACE_DURATION_S = 600.0  # the cloud server's --trace-duration-s default
DEFAULT_TIMEOUT_S = 600.0
# cloud_wait: the bridge sends every frame, as many in flight as the trace keeps out (offline
# assumes a cloud that serves requests in parallel), and so does its client: at its default of
# 4 at once, 10 frames a second queue behind a 1 s link (4 replies a second), and the run ended
# with 48 of the sample bag's 100 still waiting. The edge node's own answers are not read.
CLOUD_WAIT_PARAMS = ('cloud_bridge:keyframe.min_interval_s=0.0',
                     'cloud_bridge:keyframe.max_interval_s=0.001',
                     'cloud_bridge:keyframe.max_in_flight=64',
                     'cloud_bridge:cloud.max_in_flight=64')
# partitioned: the same, each frame sent as its visual tokens (the encoder: the served
# checkpoint's own, which `spotvlm run` sets) up an emulated uplink, as offline counts it.
PARTITIONED_PARAMS = CLOUD_WAIT_PARAMS + ('cloud_bridge:cloud.send=visual_tokens',)
# auto and offload: the edge node asks the bridge for the frames it waits on; the client
# sends them all at once, as offline assumes.
WAIT_PARAMS = ('cloud_bridge:cloud.max_in_flight=64',)
# The strategies whose answers are the bridge's replies; the edge node answers edge_only.
BRIDGE_STRATEGIES = (CLOUD_WAIT, PARTITIONED)
_STATUS_OK = 0  # CloudContext.STATUS_OK


class LiveRunError(RuntimeError):
    """`spotvlm run` failed or hung; carries its exit code and the tail of its stderr."""

    def __init__(self, strategy: str, returncode: Optional[int], stderr_tail: str, why: str = ''):
        self.strategy = strategy
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(f'spotvlm run for strategy {strategy!r} {why or "failed"} '
                         f'(exit code {returncode}); stderr tail:\n{stderr_tail}')


# reading a recorded bag ---------------------------------------------------------------------
def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _read(path: Union[str, pathlib.Path], msgtypes: Sequence[str]) -> dict:
    """{msgtype: [(log time ns, message)]} of a recorded bag, each list in log-time order."""
    from rosbags.rosbag2 import Reader

    store = spotvlm_typestore()
    found = {msgtype: [] for msgtype in msgtypes}
    with Reader(pathlib.Path(path)) as reader:
        for conn, logged_ns, raw in reader.messages():
            if conn.msgtype in found:
                found[conn.msgtype].append((logged_ns, store.deserialize_cdr(raw, conn.msgtype)))
    return found


def read_answer_bag(path: Union[str, pathlib.Path]) -> tuple:
    """(ground truths, answers) of a recorded bag, each a list in log-time order."""
    found = _read(path, (GROUND_TRUTH_TYPE, ANSWER_TYPE))
    return tuple([m for _, m in found[t]] for t in (GROUND_TRUTH_TYPE, ANSWER_TYPE))


def bridge_answers(replies: Sequence[tuple], strategy: str = CLOUD_WAIT) -> list:
    """The bridge's good replies, (log time ns, CloudContext) as a recorded bag holds them, as
    `strategy`'s answers to the frames they are about.

    The text is the reply as the cloud wrote it (short answer, regions in a ```json fence), as
    offline scores it; the latency is when the recorder heard the reply (its log time, on the
    clock image_source stamps frames with) minus the frame's stamp.
    """
    answers = []
    for logged_ns, reply in replies:
        if reply.status != _STATUS_OK:
            continue
        items = region_items([Region(r.label, r.x1, r.y1, r.x2, r.y2) for r in reply.regions])
        answers.append(SimpleNamespace(
            header=reply.header, query=reply.query,
            answer=fenced_reply(reply.answer, items) if items else reply.answer,
            latency_s=(logged_ns - _stamp_ns(reply.header)) / 1e9, context_age_s=-1.0,
            used_context=False, used_focus=False, prompt_tokens=0, new_tokens=0,
            source=strategy))
    return answers


def match_answers(truth_stamps, answers: Sequence) -> dict:
    """{ground-truth stamp ns: the EdgeAnswer for that frame}; stamps match exactly."""
    wanted = set(truth_stamps)
    matched = {}
    for answer in answers:
        stamp = _stamp_ns(answer.header)
        if stamp in wanted:
            matched[stamp] = answer
        else:
            log.warning('answer stamped %.3f matches no recorded ground truth', stamp * 1e-9)
    return matched


def _question_of(answers: Iterable, question: Optional[str], path) -> str:
    if question is not None:
        return question
    queries = sorted({a.query for a in answers})
    if len(queries) != 1:
        raise ValueError(f'{path}: cannot tell the evaluated question from the answers '
                         f'(queries {queries}); pass question=')
    return queries[0]


def live_records(answer_bag: Union[str, pathlib.Path], trace_name: str, mean_delay_s: float,
                 strategy: str, question: Optional[str] = None) -> list:
    """One AnswerRecord per recorded ground-truth frame that has the evaluated question.

    The question is the answers' query unless given. Frame stamps are seconds from the first
    frame's stamp; an answered frame gets its answer, answered_at = frame_stamp + latency_s;
    frames the edge dropped stay unanswered. Scores stay None: the metrics module scores.
    """
    found = _read(answer_bag, (GROUND_TRUTH_TYPE, ANSWER_TYPE, CLOUD_CONTEXT_TYPE))
    truths = [m for _, m in found[GROUND_TRUTH_TYPE]]
    answers = bridge_answers(found[CLOUD_CONTEXT_TYPE], strategy) \
        if strategy in BRIDGE_STRATEGIES else [m for _, m in found[ANSWER_TYPE]]
    question = _question_of(answers, question, answer_bag)
    frames = {}
    for truth in truths:
        frames.setdefault(_stamp_ns(truth.header), truth)
    if not frames:
        return []
    matched = match_answers(frames, [a for a in answers if a.query == question])
    first = min(frames)
    records = []
    for stamp in sorted(frames):
        truth = frames[stamp]
        qa = next((q for q in truth.qa if q.question == question), None)
        if qa is None:
            continue
        frame_stamp = (stamp - first) / 1e9
        record = AnswerRecord(
            strategy=strategy, trace=trace_name, mean_delay_s=float(mean_delay_s),
            frame_index=int(truth.frame_index), frame_stamp=frame_stamp, question=question,
            family=qa.family, truth=qa.answer, width=int(truth.image_width),
            height=int(truth.image_height))
        answer = matched.get(stamp)
        if answer is not None:
            record.answered = True
            record.answer = answer.answer
            record.latency_s = float(answer.latency_s)
            record.answered_at = frame_stamp + record.latency_s
            record.source_stamp = frame_stamp
            age = float(answer.context_age_s)
            record.context_age_s = None if age < 0 else age
            record.used_context = bool(answer.used_context)
            record.used_focus = bool(answer.used_focus)
            record.prompt_tokens = int(answer.prompt_tokens)
            record.new_tokens = int(answer.new_tokens)
            record.answer_source = answer.source if strategy in (AUTO, OFFLOAD) else ''
        records.append(record)
    return records


# the trace --------------------------------------------------------------------------------
def _trace_param_list(trace_params) -> list:
    if not trace_params:
        return []
    if isinstance(trace_params, Mapping):
        return [f'{k}={v}' for k, v in trace_params.items()]
    return [str(p) for p in trace_params]


def bag_duration_s(truths: Sequence, bag) -> float:
    """Seconds the bag's ground-truth frames span, one frame period included."""
    stamps = sorted(_stamp_ns(t.header) for t in truths)
    if not stamps:
        raise ValueError(f'{bag} holds no ground truth')
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    period = statistics.median(steps) if steps else 100_000_000
    return (stamps[-1] - stamps[0] + period) * 1e-9


def trace_mean_delay_s(trace: str, trace_params=(), duration_s: float = 10.0,
                       seed: int = 0, timeout_s: float = 12.0) -> float:
    """Mean delay over [0, duration_s) of the trace the local cloud server plays (same kind,
    params, seed and length; its clock starts with the server), as offline mode counts it."""
    import numpy as np

    from spotvlm_ros.cloud.server import load_trace
    from spotvlm_ros.evaluation.cloud_sim import mean_delay

    played = load_trace(trace, seed, SERVER_TRACE_DURATION_S, _trace_param_list(trace_params))
    return mean_delay(played, np.arange(0.0, duration_s, 0.1).tolist(), timeout_s)


# running ----------------------------------------------------------------------------------
def check_partitioned(cloud_model) -> None:
    """ValueError unless live partitioned can run with `cloud_model`."""
    if is_simulated(cloud_model):
        raise ValueError('live partitioned needs a cloud checkpoint: the simulated model '
                         'answers from the frame it is sent, not from visual tokens')


def run_arguments(bag, question: str, strategy: str, trace: str, trace_params, edge_model,
                  cloud_model, record, extra_params: Sequence[str] = (), seed: int = 0,
                  grace_s: float = 3.0, link: Optional[Mapping] = None) -> list:
    """`spotvlm run` arguments for one run recorded into the bag `record` (extra_params:
    'NODE:NAME=VALUE', after ours, so they win; link: partitioned's {'uplink_mbps': ...,
    'embeds_dtype': ...}, default 10 Mbit/s and float16, as offline)."""
    args = ['--bag', str(pathlib.Path(bag).resolve()), '--seed', str(seed),
            '--grace', str(grace_s), '--cloud-model',
            str(cloud_model if is_simulated(cloud_model) else pathlib.Path(cloud_model).resolve()),
            '--trace', trace, '--record', str(record)]
    for param in _trace_param_list(trace_params):
        args += ['--trace-param', param]
    bridge = {CLOUD_WAIT: CLOUD_WAIT_PARAMS, PARTITIONED: PARTITIONED_PARAMS,
              AUTO: WAIT_PARAMS, OFFLOAD: WAIT_PARAMS}.get(strategy, ())
    if strategy == EDGE_OWN_HISTORY:  # its own turns only, none replaced: no cloud, as offline
        args.append('--no-cloud')
    if strategy == PARTITIONED:
        check_partitioned(cloud_model)
        link = {'uplink_mbps': 10.0, 'embeds_dtype': 'float16', **(link or {})}
        args += ['--uplink-mbps', str(link['uplink_mbps'])]
        bridge += (f'cloud_bridge:cloud.embeds_dtype={link["embeds_dtype"]}',)
    on_edge = EDGE_ONLY if strategy in BRIDGE_STRATEGIES else strategy
    params = [f'edge_node:strategy={on_edge}', *bridge,
              f'edge_node:query={question}',
              f'cloud_bridge:query={question}',
              f'edge_node:model.path={pathlib.Path(edge_model).resolve()}',
              f'image_source:source.image_topic={IMAGE_TOPIC}',
              *extra_params]
    for param in params:
        args += ['-p', param]
    return args


def run_grace_s(strategy: str, grace_s: float, reply_grace_s: float) -> float:
    """Seconds a run of `strategy` waits after the last frame: a queued cloud may answer the
    last frames of cloud_wait or partitioned seconds later, an edge answers within grace_s."""
    return max(grace_s, reply_grace_s) if strategy in BRIDGE_STRATEGIES else grace_s


def run_command(*args, **kwargs) -> list:
    """The quiet `spotvlm run` command line of one live run (see run_arguments)."""
    return [sys.executable, '-m', 'spotvlm_ros.cli', 'run', '--quiet',
            *run_arguments(*args, **kwargs)]


def _tail(path: pathlib.Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors='replace')[-chars:]
    except OSError:
        return ''


def _run_one(cmd: list, strategy: str, log_dir: pathlib.Path, timeout_s: float) -> None:
    """Run `spotvlm run` to its end; LiveRunError when it fails or outlives timeout_s."""
    import signal

    out_log, err_log = log_dir / f'{strategy}.out.log', log_dir / f'{strategy}.err.log'
    with open(out_log, 'w') as out, open(err_log, 'w') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=dict(os.environ))
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # spotvlm run stops its nodes on Ctrl-C
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise LiveRunError(strategy, proc.returncode, _tail(err_log),
                               f'did not finish within {timeout_s:g} s') from None
        except BaseException:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if code != 0:
        raise LiveRunError(strategy, code, _tail(err_log))


def run_live(bag: Union[str, pathlib.Path], out_dir: Union[str, pathlib.Path], question: str,
             strategies: Sequence[str], trace: str, trace_params, edge_model, cloud_model,
             extra_params: Sequence[str] = (), timeout_s: float = DEFAULT_TIMEOUT_S, *,
             trace_name: Optional[str] = None, seed: int = 0, grace_s: float = 3.0,
             link: Optional[Mapping] = None, reply_grace_s: float = 0.0) -> list:
    """Run the nodes live on `bag` once per strategy; every strategy's records, in order.

    Each run (``spotvlm run --record``, a subprocess) records its answers and ground truth
    into ``out_dir/live/<strategy>`` (an existing bag there is replaced), its output into
    ``out_dir/live/<strategy>.{out,err}.log``. trace_params: {'delay_s': 1.0} or
    ['delay_s=1.0']; trace_name (default: `trace`) names the trace in the records; timeout_s
    bounds each strategy's run; link: partitioned's uplink (see run_arguments);
    reply_grace_s: how long after the last frame a run whose answers are the bridge's replies
    waits for them (the bridge's cloud.timeout_s: offline counts every reply within it).

    image_source stamps a frame's ground truth like the frame (restamped or not), and an
    EdgeAnswer carries its frame's header: answers and ground truth match by stamp, exactly.
    No extra wait for the recorder is needed: `spotvlm run` starts it before any node, starts
    the image_source only after the edge node has loaded its model and its answer publisher
    exists (long before the first answer, the recorder has matched it), and the image_source,
    told to wait for one more image subscriber than the run's own nodes, holds the first frame
    until the recorder's image subscription has matched too. The ground truth is transient
    local: a subscription that matches a moment late still gets it.
    """
    from spotvlm_ros.io.bags import read_ground_truth

    bag = pathlib.Path(bag)
    for strategy in strategies:
        if strategy not in LIVE_STRATEGIES:
            raise ValueError(f'live mode runs only {LIVE_STRATEGIES}, not {strategy!r}')
        if strategy == PARTITIONED:
            check_partitioned(cloud_model)
    live_dir = pathlib.Path(out_dir) / 'live'
    live_dir.mkdir(parents=True, exist_ok=True)
    truths = read_ground_truth(bag)
    frames = len(truths)
    mean_delay = trace_mean_delay_s(trace, trace_params, bag_duration_s(truths, bag), seed)
    name = trace_name or trace
    records = []
    for strategy in strategies:
        path = live_dir / strategy
        if path.exists():
            shutil.rmtree(path)
        cmd = run_command(bag, question, strategy, trace, trace_params, edge_model, cloud_model,
                          path, extra_params, seed, run_grace_s(strategy, grace_s, reply_grace_s),
                          link)
        started = time.monotonic()
        _run_one(cmd, strategy, live_dir, timeout_s)
        recorded_truths, recorded_answers = read_answer_bag(path)
        log.info('live %s: %.1f s, %d answers, %d of %d ground-truth frames recorded', strategy,
                 time.monotonic() - started, len(recorded_answers), len(recorded_truths),
                 frames)
        if len(recorded_truths) != frames:
            log.warning('live %s: recorded the ground truth of %d of the bag\'s %d frames',
                        strategy, len(recorded_truths), frames)
        records += live_records(path, name, mean_delay, strategy, question=question)
    return records
