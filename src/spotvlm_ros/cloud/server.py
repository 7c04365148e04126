"""The embedded cloud: an OpenAI-compatible chat-completions server over a local responder."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import dataclasses
import hmac
import io
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np
from aiohttp import web
from PIL import Image

from spotvlm_ros.cloud import DEFAULT_CLOUD_MODEL, DEFAULT_PORT, LOOPBACK_HOSTS
from spotvlm_ros.cloud.embeds import PART_TYPE, payload_bytes, tokens_of_part
from spotvlm_ros.cloud.responders import (
    Responder, UnsupportedInput, simulated_responder, transformers_responder)
from spotvlm_ros.cloud.structured import structured_from_prose
from spotvlm_ros.models.base import EdgeResult, ModelLoadError
from spotvlm_ros.scenes.large_model import is_simulated
from spotvlm_ros.share import DEFAULT_CLOUD_CHECKPOINT

log = logging.getLogger(__name__)

DEFAULT_HOST = '127.0.0.1'
DEFAULT_MAX_TOKENS = 256
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
# Pixels per image, checked from the header before decoding: 16 Mpx is 4096x4096, past any
# VLM's own input limit (Qwen2.5-VL resizes to at most 12.8 Mpx) and 48 MB decoded.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
# An outage holds a request this long (or until the client gives up), then drops it.
DEFAULT_OUTAGE_HOLD_S = 120.0
_WORDS = re.compile(r'\s*\S+|\s+$')  # stream pieces that join back to the exact text


class DelayTrace(Protocol):
    """Anything that says the delay (s) of a request sent at t, or None for an outage."""

    def delay_at(self, t: float) -> Optional[float]:
        ...


@dataclass
class _State:
    """What every handler of one app shares."""

    responder: Responder
    served_model: str
    api_key: str
    trace: Optional[DelayTrace]
    outage_hold_s: float
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    uplink_mbps: Optional[float] = None  # the emulated uplink's rate; None: no upload time
    started: float = 0.0  # loop time at start-up; trace time is measured from it
    created: int = field(default_factory=lambda: int(time.time()))
    lock: Optional[asyncio.Lock] = None
    executor: Optional[ThreadPoolExecutor] = None


STATE = web.AppKey('spotvlm_state', _State)


@dataclass
class _Chat:
    """The parts of a chat request the responder needs."""

    prompt: str
    system_prompt: Optional[str]
    images: list
    max_tokens: int
    stream: bool
    json_reply: bool = False  # response_format json_object / json_schema: answer in that form
    visual: list = field(default_factory=list)  # VisualTokens of image_embeds parts
    payload_bytes: int = 0  # the frame as sent: image bytes, or visual-token values and scales

    @property
    def image_size(self) -> tuple:
        """(width, height) of the frame asked about, sent as pixels or as visual tokens."""
        if self.images:
            return self.images[0].shape[1], self.images[0].shape[0]
        return tuple(self.visual[0].image_size)


class _BadRequest(Exception):
    """A request the server refuses, with the HTTP status and OpenAI error code to send."""

    def __init__(self, message: str, status: int = 400, code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code


def make_app(responder: Responder, *, served_model: Optional[str] = None, api_key: str = '',
             trace: Optional[DelayTrace] = None, outage_hold_s: float = DEFAULT_OUTAGE_HOLD_S,
             max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
             max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
             uplink_mbps: Optional[float] = None) -> web.Application:
    """An aiohttp app serving `responder` as /v1/chat/completions and /v1/models.

    Images over `max_image_pixels` are refused with 413 before they are decoded. With
    `uplink_mbps`, a request's frame payload first takes its time up that link, then the
    trace's delay (read when the upload ends) follows.
    """
    if not isinstance(max_image_pixels, int) or max_image_pixels < 1:
        raise ValueError(f'max_image_pixels must be a positive int, got {max_image_pixels!r}')
    if uplink_mbps is not None and not (isinstance(uplink_mbps, (int, float))
                                        and 0 < uplink_mbps < float('inf')):
        raise ValueError(f'uplink_mbps must be a positive number, got {uplink_mbps!r}')
    app = web.Application(client_max_size=max_body_bytes)
    app[STATE] = _State(responder, served_model or responder.name or 'spotvlm-cloud',
                        api_key, trace, outage_hold_s, max_image_pixels, uplink_mbps)
    app.router.add_post('/v1/chat/completions', _chat_completions)
    app.router.add_get('/v1/models', _models)
    app.router.add_get('/health', _health)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    state = app[STATE]
    state.started = asyncio.get_running_loop().time()
    state.lock = asyncio.Lock()
    # One model, one worker: requests queue on the lock, where a client that gives up
    # leaves the queue before the model ever sees its request.
    state.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='responder')


async def _stop(app: web.Application) -> None:
    app[STATE].executor.shutdown(wait=False, cancel_futures=True)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text='ok')


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    denied = _check_key(request, state)
    if denied is not None:
        return denied
    model = {'id': state.served_model, 'object': 'model', 'created': state.created,
             'owned_by': 'spotvlm'}
    return web.json_response({'object': 'list', 'data': [model]})


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    state = request.app[STATE]
    denied = _check_key(request, state)
    if denied is not None:
        return denied
    request_id = request.headers.get('X-Request-Id', '')[:64] or uuid.uuid4().hex[:12]
    try:
        # Image decoding runs off the loop, so one big image does not stall other requests.
        chat = await asyncio.to_thread(_parse_chat, await _json_body(request), state.served_model,
                                       state.max_image_pixels)
    except _BadRequest as e:
        log.info('%s: refused (%d): %s', request_id, e.status, e)
        return _error(e.status, str(e), code=e.code)

    upload = 0.0
    if state.uplink_mbps is not None:
        upload = chat.payload_bytes * 8 / (state.uplink_mbps * 1e6)
        await asyncio.sleep(upload)
    delay = 0.0
    if state.trace is not None:
        delay = state.trace.delay_at(asyncio.get_running_loop().time() - state.started)
        if delay is None:
            log.info('%s: outage; holding for %.0f s, then dropping', request_id,
                     state.outage_hold_s)
            await asyncio.sleep(state.outage_hold_s)
            return _drop_connection(request)
        await asyncio.sleep(delay)

    queued = time.perf_counter()
    try:
        async with state.lock:
            model_started = time.perf_counter()
            respond, about = (state.responder.respond, chat.images) if chat.images else \
                (state.responder.respond_visual, chat.visual[0])
            result = await asyncio.get_running_loop().run_in_executor(
                state.executor, respond, about, chat.prompt, chat.system_prompt, chat.max_tokens)
    except UnsupportedInput as e:
        log.info('%s: refused (400): %s', request_id, e)
        return _error(400, str(e), code='unsupported_input')
    except Exception:
        log.exception('%s: the model failed', request_id)
        return _error(500, 'the model failed to answer', error_type='server_error')
    done = time.perf_counter()

    width, height = chat.image_size
    sent_as = 'image' if chat.images else 'visual tokens'
    log.info('%s: %dx%d %s (%d bytes), upload %.3f s, delay %.3f s, queue %.3f s, '
             'model %.3f s', request_id, width, height, sent_as, chat.payload_bytes, upload,
             delay, model_started - queued, done - model_started)
    headers = {'Server-Timing': ', '.join(
        f'{name};dur={seconds * 1000:.2f}' for name, seconds in (
            ('upload', upload), ('delay', delay), ('queue', model_started - queued),
            ('model', done - model_started), ('total', done - started)))}
    if chat.json_reply:
        # Honoured the way a constrained decoder would: the model's prose and fenced boxes
        # become {answer, regions}, the one schema this server knows.
        result = dataclasses.replace(result, text=json.dumps(structured_from_prose(result.text)))
    completion_id = f'chatcmpl-{uuid.uuid4().hex}'
    if chat.stream:
        return await _stream(request, headers, completion_id, state, result.text)
    body = _completion(completion_id, state, result)
    return web.json_response(body, headers=headers)


def _check_key(request: web.Request, state: _State) -> Optional[web.Response]:
    """A 401 response unless no key is set or the bearer token matches it."""
    if not state.api_key:
        return None
    given = request.headers.get('Authorization', '')
    if hmac.compare_digest(given.encode(), f'Bearer {state.api_key}'.encode()):
        return None
    return _error(401, 'invalid or missing API key', code='invalid_api_key')


async def _json_body(request: web.Request):
    try:
        return await request.json()
    except ValueError:
        raise _BadRequest('the body is not valid JSON') from None


def _parse_chat(body, served_model: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> _Chat:
    """The prompt, system prompt and images of the last user message, validated."""
    if not isinstance(body, dict):
        raise _BadRequest('the body must be a JSON object')
    model = body.get('model', served_model)
    if model != served_model:
        raise _BadRequest(f'The model {str(model)[:100]!r} does not exist.', 404,
                          'model_not_found')
    messages = body.get('messages')
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list")
    system = [_text_of(m.get('content')) for m in messages
              if isinstance(m, dict) and m.get('role') == 'system']
    users = [m for m in messages if isinstance(m, dict) and m.get('role') == 'user']
    if not users:
        raise _BadRequest('no user message')
    prompt, images, visual, payload = _user_parts(users[-1].get('content'), max_pixels)
    if len(images) + len(visual) == 0:
        raise _BadRequest('the last user message needs an image_url part (a data: URL) '
                          'or an image_embeds part')
    if images and visual:
        raise _BadRequest('send a frame as an image_url or as image_embeds, not both')
    max_tokens = body.get('max_completion_tokens', body.get('max_tokens', DEFAULT_MAX_TOKENS))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _BadRequest("'max_tokens' must be a positive integer")
    stream = body.get('stream', False)
    if not isinstance(stream, bool):
        raise _BadRequest("'stream' must be true or false")
    return _Chat(prompt, '\n'.join(system) or None, images, max_tokens, stream,
                 _wants_json(body.get('response_format')), visual, payload)


def _wants_json(fmt) -> bool:
    """Whether a request's response_format asks for a JSON reply; _BadRequest if malformed."""
    if fmt is None:
        return False
    kind = fmt.get('type') if isinstance(fmt, dict) else None
    if kind == 'json_schema' and not isinstance(fmt.get('json_schema'), dict):
        raise _BadRequest("response_format json_schema needs a 'json_schema' object")
    if kind not in ('text', 'json_object', 'json_schema'):
        raise _BadRequest("'response_format' type must be text, json_object or json_schema")
    return kind != 'text'



def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return '\n'.join(p.get('text', '') for p in content
                         if isinstance(p, dict) and p.get('type') == 'text')
    return ''


def _user_parts(content, max_pixels: int) -> tuple[str, list, list, int]:
    """The text, the decoded images, the visual tokens of one user message's content, and
    the bytes its images or tokens took."""
    if isinstance(content, str):
        return content, [], [], 0
    if not isinstance(content, list):
        raise _BadRequest('message content must be a string or a list of parts')
    texts, images, visual, payload = [], [], [], 0
    for part in content:
        if not isinstance(part, dict):
            raise _BadRequest('each content part must be an object')
        if part.get('type') == 'text':
            texts.append(str(part.get('text', '')))
        elif part.get('type') == 'image_url':
            url = part.get('image_url')
            url = url.get('url') if isinstance(url, dict) else url
            image, size = _decode_data_url(url, len(images) + 1, max_pixels)
            images.append(image)
            payload += size
        elif part.get('type') == PART_TYPE:
            try:
                visual.append(tokens_of_part(part))
                payload += payload_bytes(part)
            except ValueError as e:
                raise _BadRequest(str(e)) from None
        else:
            raise _BadRequest(f'unsupported content part type {str(part.get("type"))[:40]!r}')
    return '\n'.join(texts), images, visual, payload


def _decode_data_url(url, number: int, max_pixels: int) -> tuple[np.ndarray, int]:
    """An image_url's data: URL as an HxWx3 uint8 RGB array (at most `max_pixels` pixels),
    and the bytes of the encoded image."""
    if not isinstance(url, str) or not url.startswith('data:image/'):
        raise _BadRequest(f'image {number}: only data:image/... URLs are served offline')
    header, _, payload = url.partition(',')
    if not header.endswith(';base64'):
        raise _BadRequest(f'image {number}: the data URL must be base64')
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            # The size is in the header: refuse before a single pixel is decoded.
            width, height = image.size
            if width * height > max_pixels:
                raise _BadRequest(f'image {number} is {width}x{height} = {width * height} '
                                  f'pixels; this server accepts at most {max_pixels}', 413,
                                  'image_too_large')
            return np.asarray(image.convert('RGB')), len(data)
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as e:
        raise _BadRequest(f'image {number} could not be decoded: {type(e).__name__}') from None


def _completion(completion_id: str, state: _State, result: EdgeResult) -> dict:
    return {
        'id': completion_id, 'object': 'chat.completion', 'created': int(time.time()),
        'model': state.served_model,
        'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': result.text},
                     'finish_reason': 'stop'}],
        'usage': {'prompt_tokens': result.prompt_tokens, 'completion_tokens': result.new_tokens,
                  'total_tokens': result.prompt_tokens + result.new_tokens},
    }


async def _stream(request: web.Request, headers: dict, completion_id: str, state: _State,
                  text: str) -> web.StreamResponse:
    """The answer as server-sent chat.completion.chunk events, a word at a time."""
    response = web.StreamResponse(headers={
        **headers, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache'})
    await response.prepare(request)
    created = int(time.time())

    async def send(delta: dict, finish_reason: Optional[str] = None) -> None:
        chunk = {'id': completion_id, 'object': 'chat.completion.chunk', 'created': created,
                 'model': state.served_model,
                 'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish_reason}]}
        await response.write(f'data: {json.dumps(chunk)}\n\n'.encode())

    await send({'role': 'assistant', 'content': ''})
    for piece in _WORDS.findall(text):
        await send({'content': piece})
    await send({}, 'stop')
    await response.write(b'data: [DONE]\n\n')
    await response.write_eof()
    return response


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection without a reply, as a dead network path would."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=503)  # never reaches the client: the connection is gone


def _error(status: int, message: str, error_type: str = 'invalid_request_error',
           code: Optional[str] = None) -> web.Response:
    """An error in the OpenAI shape: {"error": {"message", "type", "param", "code"}}."""
    body = {'error': {'message': message, 'type': error_type, 'param': None, 'code': code}}
    return web.json_response(body, status=status)


@dataclass
class RunningServer:
    """A started server: its bound address, and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}/v1'

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str = DEFAULT_HOST,
                       port: int = 0) -> RunningServer:
    """Serve `app` in the running loop; port 0 picks a free one."""
    # Cancelling a handler when its client disconnects is what makes an abandoned request
    # leave the model's queue.
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return RunningServer(runner, host, runner.addresses[0][1])


def run_server(responder: Responder, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               served_model: Optional[str] = None, api_key: str = '',
               trace: Optional[DelayTrace] = None,
               outage_hold_s: float = DEFAULT_OUTAGE_HOLD_S,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               uplink_mbps: Optional[float] = None) -> None:
    """Serve `responder` until SIGINT or SIGTERM (blocking)."""
    if host not in LOOPBACK_HOSTS and not api_key:
        log.warning('serving on %s without an API key: anyone who reaches it can use it', host)
    app = make_app(responder, served_model=served_model, api_key=api_key, trace=trace,
                   outage_hold_s=outage_hold_s, max_image_pixels=max_image_pixels,
                   uplink_mbps=uplink_mbps)
    asyncio.run(_serve_until_stopped(app, host, port))


async def _serve_until_stopped(app: web.Application, host: str, port: int) -> None:
    server = await start_server(app, host, port)
    log.info('serving %r on %s', app[STATE].served_model, server.base_url)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        log.info('stopping')
        await server.close()


def trace_columns(text: Optional[str]) -> Optional[tuple]:
    """('time', 'delay') header names of a --trace-columns TIME,DELAY value; None if not given."""
    if not text:
        return None
    names = tuple(c.strip() for c in text.split(','))
    if len(names) != 2 or not all(names):
        raise ValueError(f'--trace-columns: expected TIME,DELAY header names, got {text!r}')
    return names


def load_trace(spec: str, seed: int, duration_s: float, params: Sequence[str] = (),
               columns: Optional[str] = None):
    """A LatencyTrace from a CSV path (its columns by name if given), or generated from a
    kind name and key=value params."""
    from spotvlm_ros.core.traces import LatencyTrace
    if spec.lower().endswith('.csv') or os.path.isfile(spec):
        if params:
            raise ValueError('--trace-param: only generated traces take parameters')
        return LatencyTrace.from_csv(spec, trace_columns(columns))
    values = {}
    for item in params:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--trace-param: expected key=value, got {item!r}')
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f'--trace-param: {key.strip()} must be a number, got {value!r}') \
                from None
    return LatencyTrace.generate(spec, seed, duration_s, **values)


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='spotvlm cloud-server',
        description='Serve a local VLM checkpoint as an OpenAI-compatible chat-completions '
                    'endpoint, optionally behind an emulated network latency trace.')
    parser.add_argument('--model', default=DEFAULT_CLOUD_CHECKPOINT,
                        help='checkpoint folder, package://PKG/path or hub id '
                             '(default: the trained %(default)s)')
    parser.add_argument('--truth-bag', default=None,
                        help="with --model simulated: the synthetic drive's bag, whose ground "
                             'truth the simulated large model answers from')
    parser.add_argument('--served-model-name', default=None,
                        help=f'model name clients ask for (default: {DEFAULT_CLOUD_MODEL} for '
                             'the default model, else the --model value)')
    parser.add_argument('--host', default=DEFAULT_HOST, help='bind address (default: %(default)s)')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT)
    parser.add_argument('--api-key-env', default='',
                        help='environment variable holding the key clients must send; '
                             'none checked if omitted')
    parser.add_argument('--trace', default=None,
                        help='latency trace: a kind (constant, lognormal, outages, ...) or a CSV')
    parser.add_argument('--trace-param', action='append', default=[], metavar='KEY=VALUE',
                        help='parameter of a generated trace; repeatable')
    parser.add_argument('--trace-columns', default=None, metavar='TIME,DELAY',
                        help='header names of a CSV trace\'s columns (_ms: milliseconds)')
    parser.add_argument('--trace-duration-s', type=float, default=600.0,
                        help='length of a generated trace before it repeats')
    parser.add_argument('--seed', type=int, default=0, help='seed of a generated trace')
    parser.add_argument('--outage-hold-s', type=float, default=DEFAULT_OUTAGE_HOLD_S,
                        help='how long a request sent during an outage is held before dropping')
    parser.add_argument('--uplink-mbps', type=float, default=None,
                        help="emulate the client's uplink: a request's image or visual-token "
                             'bytes take this rate (Mbit/s) before the trace delay starts '
                             '(default: no upload time)')
    parser.add_argument('--max-image-pixels', type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                        help='larger images are refused with 413 (default: %(default)s)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--max-new-tokens', type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument('--log-level', default='INFO')
    return parser.parse_args(argv)


def _responder(args) -> Responder:
    """The model to serve: a checkpoint, or the simulated large model over a drive's bag."""
    if is_simulated(args.model):
        if not args.truth_bag:
            raise ValueError('--model simulated answers from ground truth: give --truth-bag')
        return simulated_responder(args.truth_bag)
    if args.truth_bag:
        raise ValueError('--truth-bag goes with --model simulated only')
    return transformers_responder(args.model, device=args.device, dtype=args.dtype,
                                  max_new_tokens=args.max_new_tokens)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`spotvlm cloud-server`: load the model, then serve until interrupted."""
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    api_key = ''
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, '')
        if not api_key:
            print(f'cloud-server: environment variable {args.api_key_env} is empty or unset',
                  file=sys.stderr)
            return 2
    try:
        trace = None if args.trace is None else load_trace(
            args.trace, args.seed, args.trace_duration_s, args.trace_param, args.trace_columns)
    except (ValueError, OSError) as e:
        print(f'cloud-server: {e}', file=sys.stderr)
        return 2
    if trace is not None:
        log.info('latency trace %r: %s', trace.name, trace.summary())
    if args.uplink_mbps is not None and not 0 < args.uplink_mbps < float('inf'):
        print(f'cloud-server: --uplink-mbps must be a positive number, got {args.uplink_mbps:g}',
              file=sys.stderr)
        return 2

    try:
        responder = _responder(args)
    except (ModelLoadError, ValueError) as e:
        print(f'cloud-server: {e}', file=sys.stderr)
        return 2
    try:
        run_server(responder, host=args.host, port=args.port,
                   served_model=args.served_model_name or (
                       DEFAULT_CLOUD_MODEL if args.model == DEFAULT_CLOUD_CHECKPOINT else args.model),
                   api_key=api_key, trace=trace, outage_hold_s=args.outage_hold_s,
                   max_image_pixels=args.max_image_pixels, uplink_mbps=args.uplink_mbps)
    finally:
        responder.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
