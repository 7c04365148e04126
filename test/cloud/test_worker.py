"""The client from a background thread: submit never blocks, answers come back as futures."""

import threading
import time

from spotvlm_ros.cloud.client import SUPERSEDED, CloudClientConfig
from spotvlm_ros.cloud.responders import ScriptedResponder
from spotvlm_ros.cloud.server import make_app
from spotvlm_ros.cloud.worker import CloudWorker
from spotvlm_ros.core.traces import LatencyTrace

MODEL = 'large-test-model'


def slow_app(delay_s: float):
    trace = LatencyTrace.generate('constant', seed=0, duration_s=60.0, delay_s=delay_s)
    return make_app(ScriptedResponder(), served_model=MODEL, trace=trace)


def worker_for(server, **overrides) -> CloudWorker:
    values = dict(base_url=server.base_url, model=MODEL, api_key_env='', timeout_s=5.0,
                  max_image_side=640)
    values.update(overrides)
    return CloudWorker(CloudClientConfig(**values))


def test_submit_returns_at_once_and_calls_back_on_the_worker_thread(serve_in_thread, keyframe):
    frame, boxes = keyframe
    called = []
    done = threading.Event()

    def on_answer(answer):
        called.append((answer, threading.current_thread().name))
        done.set()

    with serve_in_thread(slow_app(0.3)) as server, worker_for(server) as worker:
        started = time.perf_counter()
        future = worker.submit(frame, 3.0, 4, 'What is ahead?', callback=on_answer)
        returned_after = time.perf_counter() - started
        answer = future.result(timeout=5)
        assert done.wait(5)

    assert returned_after < 0.1
    assert answer.status == 'ok' and answer.keyframe_seq == 4
    assert sorted(r.label for r in answer.regions) == sorted(boxes)
    assert called == [(answer, 'cloud-client')]


def test_submitted_frame_is_copied(serve_in_thread, keyframe):
    frame, boxes = keyframe
    with serve_in_thread(slow_app(0.0)) as server, worker_for(server) as worker:
        future = worker.submit(frame, 1.0, 1, 'q')
        frame[:] = 90  # the caller reuses its buffer at once
        answer = future.result(timeout=5)
    assert sorted(r.label for r in answer.regions) == sorted(boxes)


def test_cancel_older_than_from_another_thread(serve_in_thread, keyframe):
    with serve_in_thread(slow_app(1.0)) as server, worker_for(server) as worker:
        future = worker.submit(keyframe[0], 1.0, 1, 'q')
        time.sleep(0.1)
        started = time.perf_counter()
        worker.cancel_older_than(2.0)
        answer = future.result(timeout=5)
        elapsed = time.perf_counter() - started
    assert answer.error.startswith(SUPERSEDED)
    assert elapsed < 0.5


def test_close_answers_pending_requests_as_cancelled(serve_in_thread, keyframe):
    with serve_in_thread(slow_app(2.0)) as server:
        worker = worker_for(server)
        future = worker.submit(keyframe[0], 1.0, 1, 'q')
        time.sleep(0.1)
        started = time.perf_counter()
        worker.close()
        elapsed = time.perf_counter() - started
        answer = future.result(timeout=0)
    assert answer.status == 'error' and answer.error == 'cancelled: client closed'
    assert elapsed < 1.0
