"""The client against a misbehaving server: timeouts, refusals, HTTP errors, bad replies."""

import asyncio
import json
import logging
import time

import numpy as np
from aiohttp import web

from spotvlm_ros.cloud.client import SUPERSEDED, CloudClient, CloudClientConfig

FRAME_SHAPE = (240, 320, 3)


def frame():
    return np.full(FRAME_SHAPE, 100, np.uint8)


def completion(text: str) -> dict:
    return {'id': 'chatcmpl-1', 'object': 'chat.completion', 'model': 'fake',
            'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': text},
                         'finish_reason': 'stop'}]}


# Behaviours: each answers one request, as some real server might.

def reply(text='Fine.', delay=0.0):
    async def behave(request, cloud):
        await asyncio.sleep(delay)
        cloud.events.append(('replied', request.headers.get('X-Request-Id'), time.monotonic()))
        return web.json_response(completion(text))
    return behave


def status(code, message='', retry_after=None):
    async def behave(request, cloud):
        headers = {'Retry-After': str(retry_after)} if retry_after is not None else {}
        return web.json_response({'error': {'message': message, 'type': 'x', 'param': None,
                                            'code': code}}, status=code, headers=headers)
    return behave


def truncated():
    async def behave(request, cloud):
        response = web.StreamResponse(headers={'Content-Type': 'application/json'})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"choices": [{"mess')
        request.transport.close()
        return response
    return behave


def oversized(nbytes, declared):
    async def behave(request, cloud):
        text = 'x' * nbytes
        if declared:
            return web.json_response(completion(text))
        response = web.StreamResponse(headers={'Content-Type': 'application/json'})
        await response.prepare(request)  # chunked: the size is known only by reading
        body = json.dumps(completion(text)).encode()
        for start in range(0, len(body), 16384):
            await response.write(body[start:start + 16384])
        await response.write_eof()
        return response
    return behave


def raw(body: bytes):
    async def behave(request, cloud):
        return web.Response(body=body, content_type='application/json')
    return behave


class FakeCloud:
    """A chat-completions endpoint that plays scripted behaviours, one per request.

    Its handlers run to the end even when the client hangs up, like many real servers.
    """

    def __init__(self, *script, default=None):
        self.script = list(script)
        self.default = default or reply()
        self.request_ids = []
        self.events = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._runner = None
        self.base_url = ''

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post('/v1/chat/completions', self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, '127.0.0.1', 0).start()
        self.base_url = f'http://127.0.0.1:{self._runner.addresses[0][1]}/v1'
        return self

    async def __aexit__(self, *exc):
        await self._runner.cleanup()

    async def _handle(self, request):
        self.request_ids.append(request.headers.get('X-Request-Id'))
        behave = self.script.pop(0) if self.script else self.default
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await behave(request, self)
        finally:
            self.in_flight -= 1


def client_for(cloud_or_url, **overrides) -> CloudClient:
    url = cloud_or_url if isinstance(cloud_or_url, str) else cloud_or_url.base_url
    values = dict(base_url=url, model='fake', api_key_env='', timeout_s=3.0, retries=2,
                  backoff_s=0.02)
    values.update(overrides)
    return CloudClient(CloudClientConfig(**values))


def ask(*script, default=None, stamp=1.0, seq=1, **overrides):
    """One request against a FakeCloud: (answer, seconds taken, the cloud)."""
    async def main():
        async with FakeCloud(*script, default=default) as cloud, \
                client_for(cloud, **overrides) as client:
            started = time.perf_counter()
            answer = await client.request(frame(), stamp, seq, 'q')
            return answer, time.perf_counter() - started, cloud
    return asyncio.run(main())


def test_slow_server_gives_timeout_answer_at_the_deadline():
    answer, elapsed, _ = ask(default=reply(delay=5.0), timeout_s=0.3)
    assert answer.status == 'timeout'
    assert 'no reply within 0.3 s' in answer.error
    assert 0.3 <= elapsed < 1.0


def test_connection_refused_is_retried_then_reported(closed_port):
    async def main():
        async with client_for(f'http://127.0.0.1:{closed_port}/v1') as client:
            started = time.perf_counter()
            return await client.request(frame(), 1.0, 1, 'q'), time.perf_counter() - started

    answer, elapsed = asyncio.run(main())
    assert answer.status == 'error'
    assert f'cannot connect to 127.0.0.1:{closed_port}' in answer.error
    assert 'after 3 attempts' in answer.error
    assert elapsed < 1.0


def test_429_waits_for_retry_after_then_succeeds():
    answer, elapsed, cloud = ask(status(429, 'slow down', retry_after=0.3), reply('Fine.'))
    assert answer.status == 'ok' and answer.text == 'Fine.'
    assert cloud.request_ids == ['kf1-1', 'kf1-2']
    assert elapsed >= 0.3


def test_500_is_retried_until_retries_run_out():
    answer, _, cloud = ask(default=status(500, 'engine crashed'))
    assert answer.status == 'error'
    assert answer.error == 'HTTP 500: engine crashed (after 3 attempts)'
    assert len(cloud.request_ids) == 3


def test_client_errors_are_not_retried():
    answer, _, cloud = ask(default=status(400, 'image too large'))
    assert answer.error == 'HTTP 400: image too large'
    assert len(cloud.request_ids) == 1


def test_retry_that_would_end_past_the_deadline_is_not_attempted():
    answer, elapsed, cloud = ask(default=status(503, 'busy', retry_after=5), timeout_s=1.0)
    assert answer.status == 'error' and 'HTTP 503: busy' in answer.error
    assert len(cloud.request_ids) == 1
    assert elapsed < 0.5


def test_truncated_reply_is_retried():
    answer, _, cloud = ask(truncated(), reply('Whole.'))
    assert answer.status == 'ok' and answer.text == 'Whole.'
    assert len(cloud.request_ids) == 2


def test_truncated_reply_without_retries_is_an_error():
    answer, _, _ = ask(truncated(), retries=0)
    assert answer.status == 'error'
    assert 'truncated' in answer.error


def test_oversized_reply_is_refused_without_retry():
    for declared in (True, False):
        answer, _, cloud = ask(default=oversized(300_000, declared), max_reply_bytes=65536)
        assert answer.status == 'error', declared
        assert 'exceeds max_reply_bytes=65536' in answer.error
        assert len(cloud.request_ids) == 1


def test_malformed_replies_are_errors():
    for body in (b'<html>bad gateway</html>', b'{"choices": []}', b'{"object": "list"}'):
        answer, _, _ = ask(default=raw(body))
        assert answer.status == 'error'
        assert answer.error.startswith('malformed reply'), body


def test_unparseable_regions_keep_the_answer(caplog):
    text = 'A bus turns left.\n```json\n[{"bbox_2d": [1, 2,'
    with caplog.at_level(logging.WARNING, logger='spotvlm_ros.cloud.client'):
        answer, _, _ = ask(reply(text))
    assert answer.status == 'ok'
    assert answer.text == text and answer.regions == ()
    assert any('unparseable' in r.getMessage() for r in caplog.records)


def test_reply_for_a_request_already_cancelled_is_dropped(caplog):
    async def main():
        # The first request is answered late, after the client gave it up.
        async with FakeCloud(reply('Old.', delay=0.5), reply('New.')) as cloud, \
                client_for(cloud) as client:
            old = asyncio.ensure_future(client.request(frame(), 1.0, 1, 'q'))
            await asyncio.sleep(0.05)
            new = await client.request(frame(), 2.0, 2, 'q')
            old = await old
            gave_up_at = time.monotonic()
            await asyncio.sleep(0.7)
            later = await client.request(frame(), 3.0, 3, 'q')
            return old, new, later, gave_up_at, cloud

    with caplog.at_level(logging.DEBUG):
        old, new, later, gave_up_at, cloud = asyncio.run(main())
    assert new.status == 'ok' and new.text == 'New.'
    assert old.status == 'error' and old.error.startswith(SUPERSEDED)
    late = [e for e in cloud.events if e[1] == 'kf1-1']
    assert late and late[0][2] > gave_up_at  # the server did send it, to a closed line
    assert later.status == 'ok'  # and the connection pool still works
    assert not [r for r in caplog.records
                if r.name.startswith('spotvlm_ros') and r.levelno >= logging.WARNING]


def test_backoff_stops_when_a_newer_answer_arrives():
    async def main():
        async with FakeCloud(status(503, 'busy', retry_after=1.0), reply('New.')) as cloud, \
                client_for(cloud) as client:
            started = time.perf_counter()
            old = asyncio.ensure_future(client.request(frame(), 1.0, 1, 'q'))
            await asyncio.sleep(0.05)
            new = await client.request(frame(), 2.0, 2, 'q')
            old = await old
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.2)  # past the Retry-After: no retry may come
            return old, new, elapsed, cloud

    old, new, elapsed, cloud = asyncio.run(main())
    assert new.status == 'ok'
    assert old.error.startswith(SUPERSEDED)
    assert elapsed < 0.8
    assert cloud.request_ids == ['kf1-1', 'kf2-1']


def test_in_flight_requests_are_bounded():
    async def main():
        async with FakeCloud(default=reply(delay=0.2)) as cloud, \
                client_for(cloud, max_in_flight=2) as client:
            answers = await asyncio.gather(*(client.request(frame(), 1.0, i, f'q{i}')
                                             for i in range(6)))
            return answers, cloud

    answers, cloud = asyncio.run(main())
    assert [a.status for a in answers] == ['ok'] * 6
    assert cloud.most_in_flight == 2


def test_cancel_older_than_answers_pending_and_later_old_requests():
    async def main():
        async with FakeCloud(default=reply(delay=2.0)) as cloud, client_for(cloud) as client:
            pending = [asyncio.ensure_future(client.request(frame(), s, i, 'q'))
                       for i, s in enumerate((1.0, 2.0, 5.0))]
            await asyncio.sleep(0.1)
            cancelled = client.cancel_older_than(3.0)
            started = time.perf_counter()
            first, second = await asyncio.gather(*pending[:2])
            elapsed = time.perf_counter() - started
            stale = await client.request(frame(), 2.5, 9, 'other query')
            pending[2].cancel()
            return cancelled, first, second, elapsed, stale, cloud

    cancelled, first, second, elapsed, stale, cloud = asyncio.run(main())
    assert cancelled == 2
    assert first.error.startswith(SUPERSEDED) and second.error.startswith(SUPERSEDED)
    assert elapsed < 0.5
    assert stale.error.startswith(SUPERSEDED)
    assert 'kf9-1' not in cloud.request_ids
