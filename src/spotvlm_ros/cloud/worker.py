"""A CloudClient on its own event-loop thread, for callers that must never block."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Callable, Optional

import numpy as np

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig
from spotvlm_ros.core.types import CloudAnswer


class CloudWorker:
    """Runs a CloudClient in a background thread; submit() returns at once with a Future."""

    def __init__(self, config: CloudClientConfig, *, clock: Callable[[], float] = time.time,
                 **client_options):
        self.client = CloudClient(config, clock=clock, **client_options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name='cloud-client',
                                        daemon=True)
        self._outstanding: set[concurrent.futures.Future] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread.start()

    def submit(self, frame: np.ndarray, stamp: float, seq: int, query: str,
               callback: Optional[Callable[[CloudAnswer], None]] = None,
               ) -> 'concurrent.futures.Future[CloudAnswer]':
        """Ask about `frame` without blocking; `callback` gets the answer on the worker thread."""
        # A copy: the caller may reuse its image buffer before the request is encoded.
        frame = np.array(frame, copy=True)
        with self._lock:
            if self._closed:
                raise RuntimeError('CloudWorker is closed')
            future = asyncio.run_coroutine_threadsafe(
                self.client.request(frame, stamp, seq, query), self._loop)
            self._outstanding.add(future)
        future.add_done_callback(self._forget)
        if callback is not None:
            future.add_done_callback(lambda f: f.cancelled() or callback(f.result()))
        return future

    def cancel_older_than(self, stamp: float, query: Optional[str] = None) -> None:
        """Give up requests for keyframes before `stamp`; returns at once."""
        self._loop.call_soon_threadsafe(self.client.cancel_older_than, stamp, query)

    def close(self, timeout_s: float = 5.0) -> None:
        """Answer pending requests as cancelled, close the client, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            outstanding = list(self._outstanding)
        asyncio.run_coroutine_threadsafe(self.client.close(), self._loop).result(timeout_s)
        concurrent.futures.wait(outstanding, timeout=timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> 'CloudWorker':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _forget(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._outstanding.discard(future)
