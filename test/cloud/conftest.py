"""Shared fixtures for the cloud tests: frames with known objects, servers on loopback."""

import asyncio
import contextlib
import logging
import secrets
import socket
import threading

import numpy as np
import pytest

from spotvlm_ros.cloud.server import start_server

# Objects painted into the test keyframe, in its own pixels (x1, y1, x2, y2).
OBJECTS = {'red object': ((200, 100, 500, 300), (220, 30, 30)),
           'blue object': ((900, 400, 1200, 600), (30, 30, 220))}


def paint(width: int = 1280, height: int = 720, objects=OBJECTS) -> np.ndarray:
    """A gray frame with solid rectangles, as HxWx3 uint8 RGB."""
    frame = np.full((height, width, 3), 90, np.uint8)
    for (x1, y1, x2, y2), colour in objects.values():
        frame[y1:y2, x1:x2] = colour
    return frame


@pytest.fixture
def keyframe():
    """A 1280x720 frame and the boxes of the objects in it, by label."""
    return paint(), {label: box for label, (box, _) in OBJECTS.items()}


@pytest.fixture
def serve():
    """An async context manager serving an aiohttp app on 127.0.0.1 at a free port."""
    @contextlib.asynccontextmanager
    async def serving(app):
        server = await start_server(app)
        try:
            yield server
        finally:
            await server.close()
    return serving


@pytest.fixture
def post_all(serve):
    """post_all(app, bodies): each body POSTed in turn to the app's chat completions, served
    on loopback; the (status, JSON body) replies."""
    import aiohttp

    def posting(app, bodies: list) -> list:
        async def main():
            replies = []
            async with serve(app) as server, aiohttp.ClientSession() as session:
                for body in bodies:
                    async with session.post(f'{server.base_url}/chat/completions',
                                            json=body) as resp:
                        replies.append((resp.status, await resp.json()))
            return replies
        return asyncio.run(main())
    return posting


@pytest.fixture
def serve_in_thread():
    """A context manager serving an app from its own loop thread, for synchronous callers."""
    @contextlib.contextmanager
    def serving(app):
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = asyncio.run_coroutine_threadsafe(start_server(app), loop).result(10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
    return serving


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def api_key(monkeypatch):
    """A fresh secret in the client's key variable: (variable name, key)."""
    name = 'SPOTVLM_TEST_CLOUD_KEY'
    key = 'sk-' + secrets.token_hex(16)
    monkeypatch.setenv(name, key)
    return name, key


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def all_logs():
    """Every log record of every logger, at DEBUG and above, while the test runs."""
    root = logging.getLogger()
    handler = _Records()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)
