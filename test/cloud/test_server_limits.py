"""The local cloud server refuses images past its pixel cap with a clear 413, before decoding."""

import asyncio
import base64
import io
import json

import aiohttp
from PIL import Image

from spotvlm_ros.cloud.responders import ScriptedResponder
from spotvlm_ros.cloud.server import DEFAULT_MAX_IMAGE_PIXELS, make_app

MODEL = 'large-test-model'


def _body(width: int, height: int) -> bytes:
    """A chat request with one PNG of this size (one colour: a few KB however large)."""
    buffer = io.BytesIO()
    Image.new('L', (width, height), 90).save(buffer, format='PNG')
    url = 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')
    return json.dumps({'model': MODEL, 'messages': [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': url}},
        {'type': 'text', 'text': 'What is this?'}]}]}).encode()


def _post(serve, app, body: bytes):
    async def main():
        async with serve(app) as server, aiohttp.ClientSession() as session:
            async with session.post(f'{server.base_url}/chat/completions', data=body) as resp:
                return resp.status, await resp.json()
    return asyncio.run(main())


def test_an_image_past_the_default_pixel_cap_is_refused_with_413(serve):
    # 6000x4000 = 24 Mpx: under PIL's own bomb limit (89 Mpx), over the server's cap.
    assert 6000 * 4000 > DEFAULT_MAX_IMAGE_PIXELS
    status, reply = _post(serve, make_app(ScriptedResponder(), served_model=MODEL),
                          _body(6000, 4000))
    assert status == 413
    message = reply['error']['message']
    assert '6000x4000' in message and f'{DEFAULT_MAX_IMAGE_PIXELS}' in message


def test_the_pixel_cap_is_a_setting_and_images_within_it_are_answered(serve):
    app = make_app(ScriptedResponder(), served_model=MODEL, max_image_pixels=320 * 240)
    assert _post(serve, app, _body(320, 240))[0] == 200
    app = make_app(ScriptedResponder(), served_model=MODEL, max_image_pixels=320 * 240)
    status, reply = _post(serve, app, _body(321, 240))
    assert status == 413 and 'image 1 is 321x240' in reply['error']['message']
