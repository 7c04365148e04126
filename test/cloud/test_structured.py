"""response_format: the client asks for {answer, regions}, the local server answers in it,
and the parser reads that form first and prose with a ```json fence after."""

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig
from spotvlm_ros.cloud.encoding import encode_keyframe
from spotvlm_ros.cloud.responders import ScriptedResponder
from spotvlm_ros.cloud.server import make_app
from spotvlm_ros.cloud.structured import REPLY_SCHEMA, parse_structured, response_format

MODEL = 'large-test-model'


def config(server, **overrides) -> CloudClientConfig:
    values = dict(base_url=server.base_url, model=MODEL, api_key_env='', timeout_s=5.0,
                  max_image_side=640, backoff_s=0.02)
    return CloudClientConfig(**{**values, **overrides})


async def post(server, body: dict):
    async with aiohttp.ClientSession() as session:
        async with session.post(server.base_url + '/chat/completions', json=body) as resp:
            return resp.status, await resp.json()


def chat_body(frame, fmt) -> dict:
    import base64

    jpeg, _ = encode_keyframe(frame, 85, 640, 28)
    url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode()
    body = {'model': MODEL, 'messages': [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': url}}, {'type': 'text', 'text': 'What?'}]}]}
    if fmt is not None:
        body['response_format'] = fmt
    return body


@pytest.mark.parametrize('kind', ['json_schema', 'json_object'])
def test_the_local_server_answers_in_the_json_form_asked_for(serve, keyframe, kind):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server:
            return await post(server, chat_body(keyframe[0], response_format(kind)))

    status, body = asyncio.run(main())
    assert status == 200, body
    reply = json.loads(body['choices'][0]['message']['content'])
    assert set(reply) == set(REPLY_SCHEMA['required'])
    assert reply['answer'] == 'I see a blue object and a red object.'
    assert sorted(r['label'] for r in reply['regions']) == ['blue object', 'red object']
    assert all(len(r['bbox_2d']) == 4 for r in reply['regions'])


def test_without_response_format_the_server_answers_prose_and_a_fence(serve, keyframe):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server:
            return await post(server, chat_body(keyframe[0], None))

    status, body = asyncio.run(main())
    content = body['choices'][0]['message']['content']
    assert status == 200 and '```json' in content and parse_structured(content) is None


def test_a_malformed_response_format_is_refused(serve, keyframe):
    async def main():
        async with serve(make_app(ScriptedResponder(), served_model=MODEL)) as server:
            return await post(server, chat_body(keyframe[0], {'type': 'json_schema'}))

    status, body = asyncio.run(main())
    assert status == 400 and 'json_schema' in body['error']['message']


@pytest.mark.parametrize('kind', ['json_schema', 'json_object', 'none'])
def test_the_client_sends_the_format_and_keeps_the_short_answer(serve, keyframe, kind):
    frame, boxes = keyframe
    seen = []

    async def main():
        app = make_app(ScriptedResponder(), served_model=MODEL)

        @web.middleware
        async def record(request, handler):
            seen.append(await request.json())
            return await handler(request)

        app.middlewares.append(record)
        async with serve(app) as server, \
                CloudClient(config(server, response_format=kind)) as client:
            return await client.request(frame, stamp=1.0, seq=1, query='What is ahead?')

    answer = asyncio.run(main())
    assert answer.status == 'ok', answer.error
    assert seen[0].get('response_format') == response_format(kind)
    # The history turn is the short answer: never the JSON, never the fence.
    assert answer.text == 'I see a blue object and a red object.'
    assert '{' not in answer.text and '```' not in answer.text
    assert sorted(r.label for r in answer.regions) == sorted(boxes)
    for region in answer.regions:
        got = (region.x1, region.y1, region.x2, region.y2)
        assert got == pytest.approx(boxes[region.label], abs=4)


def test_the_parser_reads_the_json_form_and_refuses_other_json():
    assert parse_structured('{"answer": " red ", "regions": []}') == ('red', [])
    assert parse_structured('Red.\n```json\n[]\n```') is None
    assert parse_structured('{"regions": []}') is None
    assert parse_structured('{"answer": "red", "regions": [') is None
    with pytest.raises(ValueError):
        CloudClientConfig(response_format='yaml')


def test_a_broken_fence_never_reaches_the_answer():
    from spotvlm_ros.cloud.structured import structured_from_prose

    broken = '```json\n```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "car"}, {"bbox_2d": [{\n```'
    assert structured_from_prose(broken)['answer'] == ''
    reply = structured_from_prose('Stop.\n```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "car"}]')
    assert reply == {'answer': 'Stop.', 'regions': [{'bbox_2d': [1.0, 2.0, 3.0, 4.0],
                                                     'label': 'car'}]}
    assert parse_structured('{"answer": "Go.\\n```json\\n[]", "regions": []}') == ('Go.', [])
