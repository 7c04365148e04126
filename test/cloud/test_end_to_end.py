"""The client against the local server over real HTTP on loopback."""

import asyncio
import base64
import json
import math
import time

import aiohttp
import numpy as np
import pytest

from spotvlm_ros.cloud.client import SUPERSEDED, CloudClient, CloudClientConfig
from spotvlm_ros.cloud.encoding import encode_keyframe
from spotvlm_ros.cloud.prompts import FORMAT_GRID_1000, FORMAT_NORMALIZED, FORMAT_PIXELS
from spotvlm_ros.cloud.responders import Responder, ScriptedResponder
from spotvlm_ros.cloud.server import make_app
from spotvlm_ros.core.traces import LatencyTrace

MODEL = 'large-test-model'


def config(server, **overrides) -> CloudClientConfig:
    values = dict(base_url=server.base_url, model=MODEL, api_key_env='', timeout_s=5.0,
                  max_image_side=640, backoff_s=0.02)
    values.update(overrides)
    return CloudClientConfig(**values)


def assert_boxes_match(answer, boxes, tolerance_px):
    """Each expected object comes back once, within `tolerance_px` in keyframe pixels."""
    assert sorted(r.label for r in answer.regions) == sorted(boxes)
    for region in answer.regions:
        got = (region.x1, region.y1, region.x2, region.y2)
        assert got == pytest.approx(boxes[region.label], abs=tolerance_px)


@pytest.mark.parametrize('fmt', [FORMAT_PIXELS, FORMAT_GRID_1000, FORMAT_NORMALIZED])
def test_regions_come_back_in_keyframe_pixels(serve, keyframe, fmt):
    frame, boxes = keyframe

    async def main():
        app = make_app(ScriptedResponder(fmt), served_model=MODEL)
        async with serve(app) as server, \
                CloudClient(config(server, grounding_format=fmt)) as client:
            return await client.request(frame, stamp=12.5, seq=7, query='What is ahead?')

    answer = asyncio.run(main())
    assert answer.status == 'ok', answer.error
    assert (answer.keyframe_stamp, answer.keyframe_seq, answer.query) == (12.5, 7, 'What is ahead?')
    assert answer.text == 'I see a blue object and a red object.'
    assert answer.image_size == (1280, 720)
    assert answer.model == MODEL
    assert answer.request_time <= answer.response_time
    # The server saw a 616x364 JPEG; one sent pixel is about 2 keyframe pixels, and the
    # grid formats round to 1/1000 of the side.
    assert_boxes_match(answer, boxes, tolerance_px=4)


def test_server_sees_the_resized_keyframe_and_the_system_prompt(serve, keyframe):
    seen = {}

    class Recording(ScriptedResponder):
        def respond(self, images, prompt, system_prompt, max_tokens):
            seen.update(size=images[0].shape, prompt=prompt, system=system_prompt,
                        max_tokens=max_tokens)
            return super().respond(images, prompt, system_prompt, max_tokens)

    async def main():
        async with serve(make_app(Recording(), served_model=MODEL)) as server, \
                CloudClient(config(server, max_tokens=64)) as client:
            return await client.request(keyframe[0], 1.0, 1, 'Any hazard?')

    assert asyncio.run(main()).status == 'ok'
    assert seen['size'] == (364, 616, 3)
    assert seen['prompt'] == 'Any hazard?'
    assert 'bbox_2d' in seen['system'] and '616x364' in seen['system']
    assert seen['max_tokens'] == 64


def test_api_key_is_required_when_set(serve, keyframe, api_key):
    name, key = api_key

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL, api_key=key)
        async with serve(app) as server:
            async with CloudClient(config(server, api_key_env=name)) as good, \
                    CloudClient(config(server, api_key_env='')) as keyless:
                return (await good.request(keyframe[0], 1.0, 1, 'q'),
                        await keyless.request(keyframe[0], 1.0, 1, 'q'))

    with_key, without_key = asyncio.run(main())
    assert with_key.status == 'ok'
    assert without_key.status == 'error'
    assert 'HTTP 401' in without_key.error and 'API key' in without_key.error


def test_models_endpoint_lists_the_served_model(serve, api_key):
    _, key = api_key

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL, api_key=key)
        async with serve(app) as server, aiohttp.ClientSession() as session:
            url = f'{server.base_url}/models'
            async with session.get(url) as refused:
                refused_status = refused.status
            async with session.get(url, headers={'Authorization': f'Bearer {key}'}) as ok:
                return refused_status, await ok.json()

    refused_status, listing = asyncio.run(main())
    assert refused_status == 401
    assert [m['id'] for m in listing['data']] == [MODEL]
    assert listing['object'] == 'list'


def test_latency_trace_delays_each_reply(serve, keyframe):
    trace = LatencyTrace.generate('constant', seed=0, duration_s=10.0, delay_s=0.4)

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL, trace=trace)
        async with serve(app) as server, CloudClient(config(server)) as client:
            started = time.perf_counter()
            answer = await client.request(keyframe[0], 1.0, 1, 'q')
            return answer, time.perf_counter() - started

    answer, elapsed = asyncio.run(main())
    assert answer.status == 'ok'
    assert 0.4 <= elapsed < 2.0


def test_outage_times_out_then_service_resumes(serve, keyframe):
    # Nothing answers during the first second after start-up, then replies are immediate.
    trace = LatencyTrace([0.0, 1.0, 100.0], [math.nan, 0.0, 0.0], name='outage-then-up')

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL, trace=trace)
        async with serve(app) as server, CloudClient(config(server, timeout_s=0.5)) as client:
            started = time.perf_counter()
            during = await client.request(keyframe[0], 1.0, 1, 'q')
            waited = time.perf_counter() - started
            await asyncio.sleep(max(0.0, 1.2 - (time.perf_counter() - started)))
            after = await client.request(keyframe[0], 2.0, 2, 'q')
            return during, waited, after

    during, waited, after = asyncio.run(main())
    assert during.status == 'timeout'
    assert 'no reply within 0.5 s' in during.error
    assert 0.45 <= waited < 1.5  # at the client's deadline, not the server's long hold
    assert after.status == 'ok'


def test_outage_hold_ends_by_dropping_the_connection(serve, keyframe):
    trace = LatencyTrace([0.0, 60.0], [math.nan, 0.0])

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL, trace=trace, outage_hold_s=0.1)
        async with serve(app) as server, \
                CloudClient(config(server, timeout_s=2.0, retries=0)) as client:
            return await client.request(keyframe[0], 1.0, 1, 'q')

    answer = asyncio.run(main())
    assert answer.status == 'error'
    assert 'closed the connection' in answer.error


class _Recording(Responder):
    """Answers like ScriptedResponder, slowly for some prompts, and records every prompt."""

    name = 'recording'

    def __init__(self, seconds_by_prompt):
        self.prompts = []
        self._seconds = seconds_by_prompt

    def respond(self, images, prompt, system_prompt, max_tokens):
        self.prompts.append(prompt)
        time.sleep(self._seconds.get(prompt, 0.0))
        return ScriptedResponder().respond(images, prompt, system_prompt, max_tokens)


def test_superseded_request_leaves_the_server_queue_unanswered(serve, keyframe):
    responder = _Recording({'slow': 0.5})

    async def main():
        async with serve(make_app(responder, served_model=MODEL)) as server, \
                CloudClient(config(server)) as client:
            # In the model's queue, in this order: slow, newer, slow, older. The newer
            # answer reaches the client while the second slow request holds the model.
            order = [(9.0, 1, 'slow'), (2.0, 2, 'q'), (9.0, 3, 'slow'), (1.0, 4, 'q')]
            tasks = []
            for stamp, seq, query in order:
                tasks.append(asyncio.ensure_future(client.request(keyframe[0], stamp, seq, query)))
                await asyncio.sleep(0.05)
            answers = await asyncio.gather(*tasks)
            await asyncio.sleep(0.3)  # time for a wrongly kept request to reach the model
            return answers

    answers = asyncio.run(main())
    assert [a.status for a in answers] == ['ok', 'ok', 'ok', 'error']
    # Cancelled in flight (not refused before sending): the server had it queued.
    assert answers[3].error.startswith(f'{SUPERSEDED}: an answer for a keyframe at 2.000 s')
    assert responder.prompts == ['slow', 'q', 'slow']


def chat_body(frame, stream: bool) -> bytes:
    """A chat-completions request about `frame`, as any OpenAI client would send it."""
    jpeg, _ = encode_keyframe(frame, 85, 640, 28)
    url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode()
    content = [{'type': 'image_url', 'image_url': {'url': url}}, {'type': 'text', 'text': 'q'}]
    return json.dumps({'model': MODEL, 'stream': stream,
                       'messages': [{'role': 'user', 'content': content}]}).encode()


def test_streaming_reply_joins_to_the_plain_reply(serve, keyframe):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server, \
                aiohttp.ClientSession() as session:
            url = f'{server.base_url}/chat/completions'
            async with session.post(url, data=chat_body(keyframe[0], False)) as plain:
                text = (await plain.json())['choices'][0]['message']['content']
                timing = plain.headers['Server-Timing']
            async with session.post(url, data=chat_body(keyframe[0], True)) as stream:
                kind = stream.headers['Content-Type']
                events = [line[6:] for line in (await stream.text()).splitlines()
                          if line.startswith('data: ')]
            return text, timing, kind, events

    text, timing, kind, events = asyncio.run(main())
    assert 'total;dur=' in timing and 'model;dur=' in timing
    assert kind.startswith('text/event-stream')
    assert events[-1] == '[DONE]'
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) > 3
    assert ''.join(c['choices'][0]['delta'].get('content', '') for c in chunks) == text
    assert chunks[-1]['choices'][0]['finish_reason'] == 'stop'
    assert {c['object'] for c in chunks} == {'chat.completion.chunk'}


@pytest.mark.parametrize('body, status, words', [
    (b'{not json', 400, 'not valid JSON'),
    (b'{"model": "other", "messages": [{"role": "user", "content": "hi"}]}', 404,
     'does not exist'),
    (b'{"model": "large-test-model", "messages": [{"role": "user", "content": "hi"}]}', 400,
     'needs an image_url'),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", '
     b'"image_url": {"url": "https://example.invalid/a.jpg"}}]}]}', 400, 'data:image'),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", '
     b'"image_url": {"url": "data:image/jpeg;base64,!!!"}}]}]}', 400, 'could not be decoded'),
    (b'{"messages": []}', 400, 'non-empty list'),
])
def test_server_refuses_bad_requests_in_openai_error_shape(serve, body, status, words):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server, \
                aiohttp.ClientSession() as session:
            async with session.post(f'{server.base_url}/chat/completions', data=body) as resp:
                return resp.status, await resp.json()

    got_status, reply = asyncio.run(main())
    assert got_status == status
    assert words in reply['error']['message']
    assert set(reply['error']) == {'message', 'type', 'param', 'code'}


def test_frame_that_is_not_an_image_becomes_an_error_answer(serve):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server, \
                CloudClient(config(server)) as client:
            return await client.request(np.zeros((10, 10), np.float32), 1.0, 1, 'q')

    answer = asyncio.run(main())
    assert answer.status == 'error'
    assert 'HxWx3 uint8' in answer.error
