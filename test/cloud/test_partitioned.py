"""The partitioned baseline's split execution: encoder here, decoder behind the server's HTTP."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from spotvlm_ros.cloud.embeds import embeds_part, payload_bytes, tokens_of_part
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, system_prompt
from spotvlm_ros.cloud.responders import ScriptedResponder, transformers_responder
from spotvlm_ros.cloud.server import make_app
from spotvlm_ros.io.replay import load_bag
from spotvlm_ros.models.split import VisualTokens, encode_frame
from spotvlm_ros.share import DEFAULT_CLOUD_CHECKPOINT, SAMPLE_BAG, resolve

MODEL = 'spotvlm-cloud'
QUESTIONS = ('Describe the scene.', 'What colour is the traffic light?',
             'Where is the nearest vehicle?')


@pytest.fixture(scope='module')
def cloud():
    """The committed cloud checkpoint behind a responder (its backend is the encoder too)."""
    responder = transformers_responder(resolve(DEFAULT_CLOUD_CHECKPOINT), max_new_tokens=64)
    yield responder
    responder.close()


@pytest.fixture(scope='module')
def frames():
    return [f.image for f in load_bag(resolve(SAMPLE_BAG), max_frames=61)[::30]]


def _png_part(frame: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format='PNG')  # lossless: the very pixels encoded here
    url = 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')
    return {'type': 'image_url', 'image_url': {'url': url}}


def _body(part: dict, question: str, size) -> dict:
    return {'model': MODEL, 'max_tokens': 64, 'messages': [
        {'role': 'system', 'content': system_prompt(FORMAT_PIXELS, size)},
        {'role': 'user', 'content': [part, {'type': 'text', 'text': question}]}]}


def _text(reply) -> str:
    status, body = reply
    assert status == 200, body
    return body['choices'][0]['message']['content']


def test_the_split_answer_is_the_unsplit_answer_over_http(post_all, cloud, frames):
    bodies, split = [], []
    for frame in frames:
        size = (frame.shape[1], frame.shape[0])
        tokens = encode_frame(cloud._backend, frame)
        assert tokens.image_size == size and tokens.embeddings.shape[1] == 128
        for question in QUESTIONS:
            bodies.append(_body(_png_part(frame), question, size))
            split.append(_body(embeds_part(tokens, 'float16'), question, size))
    replies = post_all(make_app(cloud, served_model=MODEL), bodies + split)
    whole, parted = replies[:len(bodies)], replies[len(bodies):]
    assert [_text(r) for r in parted] == [_text(r) for r in whole]
    assert len({_text(r) for r in whole}) > 1  # the answers depend on the question asked


def test_int8_tokens_stay_within_half_a_step_and_are_half_the_payload(cloud, frames):
    tokens = encode_frame(cloud._backend, frames[0])
    half, quarter = embeds_part(tokens, 'float16'), embeds_part(tokens, 'int8')
    back = tokens_of_part(quarter).embeddings
    step = np.abs(tokens.embeddings).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(back - tokens.embeddings) <= step / 2 + 1e-6)
    rows, hidden = tokens.embeddings.shape
    assert payload_bytes(half) == rows * hidden * 2
    assert payload_bytes(quarter) == rows * hidden + rows * 4


def _broken(mutate) -> dict:
    part = embeds_part(VisualTokens(np.ones((4, 128), np.float32), (1, 4, 4), (56, 56)))
    mutate(part['image_embeds'])
    return part


@pytest.mark.parametrize('mutate, says', [
    (lambda b: b.update(data='not base64!'), 'not valid base64'),
    (lambda b: b.update(shape=[5, 128]), 'holds 1024 bytes; its shape needs 1280'),
    (lambda b: b.update(dtype='float64'), 'dtype must be one of'),
    (lambda b: b.update(grid_thw=[1, 4]), 'grid_thw must be 3 positive integers'),
    (lambda b: b.update(data=base64.b64encode(np.full(512, np.inf, '<f2').tobytes()).decode()),
     'not finite'),
])
def test_a_malformed_embeds_part_is_refused_with_400_saying_why(post_all, mutate, says):
    app = make_app(ScriptedResponder(), served_model=MODEL)
    [(status, reply)] = post_all(app, [_body(_broken(mutate), 'What?', (56, 56))])
    assert status == 400 and says in reply['error']['message']


def test_tokens_of_another_width_or_a_model_without_a_decoder_path_get_a_clear_400(
        post_all, cloud):
    narrow = embeds_part(VisualTokens(np.ones((4, 64), np.float32), (1, 4, 4), (56, 56)))
    scripted = embeds_part(VisualTokens(np.ones((4, 128), np.float32), (1, 4, 4), (56, 56)))
    [(status, reply)] = post_all(make_app(cloud, served_model=MODEL),
                                 [_body(narrow, 'What?', (56, 56))])
    assert status == 400 and 'takes 128' in reply['error']['message']
    assert reply['error']['code'] == 'unsupported_input'
    [(status, reply)] = post_all(make_app(ScriptedResponder(), served_model=MODEL),
                                 [_body(scripted, 'What?', (56, 56))])
    assert status == 400 and 'does not take visual tokens' in reply['error']['message']


def test_an_image_and_embeds_in_one_message_are_refused(post_all, frames):
    tokens = VisualTokens(np.ones((4, 128), np.float32), (1, 4, 4), (56, 56))
    body = _body(embeds_part(tokens), 'What?', (56, 56))
    body['messages'][1]['content'].insert(0, _png_part(frames[0]))
    [(status, reply)] = post_all(make_app(ScriptedResponder(), served_model=MODEL),
                                 [body])
    assert status == 400 and 'not both' in reply['error']['message']
    assert json.dumps(reply)  # a JSON error body, as for every refusal


# the bridge's client sending visual tokens -------------------------------------------------
def _client_config(server, **overrides):
    from spotvlm_ros.cloud.client import CloudClientConfig

    values = dict(base_url=server.base_url, model=MODEL, api_key_env='', timeout_s=30.0,
                  max_image_side=448, send='visual_tokens',
                  encoder_model=resolve(DEFAULT_CLOUD_CHECKPOINT))
    return CloudClientConfig(**{**values, **overrides})


def test_the_client_sends_visual_tokens_and_gets_the_unsplit_answer(serve, cloud, frames):
    import asyncio

    from spotvlm_ros.cloud.client import CloudClient
    from spotvlm_ros.cloud.encoding import sent_image
    from spotvlm_ros.cloud.replies import answer_from_reply, keyframe_prompt
    from spotvlm_ros.cloud.visual_encoder import VisualTokenEncoder

    encoder = VisualTokenEncoder(resolve(DEFAULT_CLOUD_CHECKPOINT))
    big = np.repeat(np.repeat(frames[1], 2, axis=0), 2, axis=1)  # 896x672: sent at 448x336

    async def main():
        async with serve(make_app(cloud, served_model=MODEL)) as server:
            config = _client_config(server, response_format='none')  # the model's own prose
            async with CloudClient(config, encoder=encoder) as client:
                got = [await client.request(big, 1.0, 1 + i, q) for i, q in enumerate(QUESTIONS)]
        return config, got

    config, got = asyncio.run(main())
    encoder.close()
    prompt, size = keyframe_prompt(config, (896, 672))
    assert size == (448, 336)
    for question, answer in zip(QUESTIONS, got):
        assert answer.status == 'ok', answer.error
        whole = cloud.respond([sent_image(big, size)], question, prompt, 64).text
        expected, _ = answer_from_reply(whole, config, size, (896, 672), 1.0, 0, question, MODEL)
        assert answer.text == expected.text
        assert answer.regions == expected.regions  # boxes scaled back to the 896x672 frame
        assert answer.image_size == (896, 672)


def test_visual_tokens_need_an_encoder_and_only_they_take_one():
    from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig

    with pytest.raises(ValueError, match='encoder_model'):
        CloudClientConfig(send='visual_tokens')
    with pytest.raises(ValueError, match='send'):
        CloudClientConfig(send='pixels')
    with pytest.raises(ValueError, match='embeds_dtype'):
        CloudClientConfig(send='visual_tokens', encoder_model='x', embeds_dtype='float32')
    with pytest.raises(ValueError, match='goes with an encoder'):
        CloudClient(CloudClientConfig(send='visual_tokens', encoder_model='x'))
    with pytest.raises(ValueError, match='goes with an encoder'):
        CloudClient(CloudClientConfig(), encoder=object())


def test_the_emulated_uplink_delays_a_request_by_its_payload(post_all, frames):
    import time

    tokens = VisualTokens(np.ones((192, 128), np.float32), (1, 24, 32), (448, 336))
    part = embeds_part(tokens, 'float16')
    body = _body(part, 'What?', (448, 336))
    app = make_app(ScriptedResponder(), served_model=MODEL, uplink_mbps=2.0)
    started = time.perf_counter()
    [(status, reply)] = post_all(app, [body])
    elapsed = time.perf_counter() - started
    assert status == 400  # the scripted model takes no tokens: refused after the upload
    upload_s = payload_bytes(part) * 8 / 2e6
    assert payload_bytes(part) == 192 * 128 * 2 and upload_s == pytest.approx(0.196608)
    assert elapsed >= upload_s
    with pytest.raises(ValueError, match='uplink_mbps'):
        make_app(ScriptedResponder(), uplink_mbps=0.0)
