"""The API key reaches the server and nowhere else: no log line, repr or answer holds it."""

import asyncio
import logging

from aiohttp import web

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig
from spotvlm_ros.cloud.responders import ScriptedResponder
from spotvlm_ros.cloud.server import make_app

MODEL = 'large-test-model'
FORMAT = logging.Formatter('%(asctime)s %(levelname)s %(name)s %(message)s')


def _echo_authorization_app():
    """A careless server that quotes the Authorization header back in its error."""
    async def handle(request):
        message = f'rejected credentials {request.headers.get("Authorization")}'
        return web.json_response({'error': {'message': message}}, status=500)
    app = web.Application()
    app.router.add_post('/v1/chat/completions', handle)
    return app


def test_api_key_is_in_no_log_line_repr_or_answer(serve, keyframe, api_key, all_logs,
                                                  closed_port, monkeypatch):
    name, key = api_key
    wrong_name, wrong_key = 'SPOTVLM_TEST_WRONG_KEY', 'sk-wrong-' + key[::-1]
    monkeypatch.setenv(wrong_name, wrong_key)
    frame = keyframe[0]

    def client(base_url, env=name, **overrides):
        values = dict(base_url=base_url, model=MODEL, api_key_env=env, timeout_s=2.0,
                      retries=1, backoff_s=0.01, max_image_side=320)
        values.update(overrides)
        return CloudClient(CloudClientConfig(**values))

    async def main():
        answers, texts = [], []
        app = make_app(ScriptedResponder(), served_model=MODEL, api_key=key)
        async with serve(app) as server, serve(_echo_authorization_app()) as echo:
            remote = server.base_url.replace('127.0.0.1', 'localhost')
            for c in (client(server.base_url), client(server.base_url, wrong_name),
                      client(echo.base_url), client(f'http://127.0.0.1:{closed_port}/v1'),
                      client(server.base_url, timeout_s=0.001),
                      client(remote.replace('http:', 'https:'), verify_tls=False)):
                async with c:
                    answers.append(await c.request(frame, 1.0, 1, 'q'))
                    texts += [repr(c), repr(c.config)]
        return answers, texts

    answers, texts = asyncio.run(main())
    statuses = [a.status for a in answers]
    assert statuses == ['ok', 'error', 'error', 'error', 'timeout', 'error']
    assert 'HTTP 401' in answers[1].error
    assert '[redacted]' in answers[2].error  # the echoed header was scrubbed
    texts += [repr(a) for a in answers]
    lines = [FORMAT.format(r) for r in all_logs] + [str(r.args) for r in all_logs]
    assert any('spotvlm_ros.cloud.server' in line for line in lines)
    assert any('aiohttp.access' in line for line in lines)
    for secret in (key, wrong_key):
        assert not [t for t in texts + lines if secret in t]


def _redirect_with_key_app():
    """A hostile server that redirects to a URL built from the key; the client's error quotes
    the URL (a connection-level failure, not an HTTP status)."""
    async def handle(request):
        token = request.headers.get('Authorization', '').replace('Bearer ', '')
        raise web.HTTPTemporaryRedirect(f'ftp://127.0.0.1/echo?{token}')
    app = web.Application()
    app.router.add_post('/v1/chat/completions', handle)
    return app


def test_a_non_http_failure_that_quotes_the_key_is_redacted_in_every_log_line(
        serve, keyframe, api_key, all_logs):
    name, key = api_key

    async def main():
        async with serve(_redirect_with_key_app()) as server:
            config = CloudClientConfig(base_url=server.base_url, model=MODEL, api_key_env=name,
                                       timeout_s=5.0, retries=1, backoff_s=0.01,
                                       max_image_side=320)
            async with CloudClient(config) as client:
                return await client.request(keyframe[0], 1.0, 1, 'q')

    answer = asyncio.run(main())
    assert answer.status == 'error' and 'RedirectClientError' in answer.error
    client_lines = [FORMAT.format(r) for r in all_logs if r.name == 'spotvlm_ros.cloud.client']
    # The failure was logged (the retry and the final warning), and never with the key.
    assert any('RedirectClientError' in line and '[redacted]' in line for line in client_lines)
    assert not [line for line in client_lines if key in line]
