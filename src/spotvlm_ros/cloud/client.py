"""Asyncio client for OpenAI-compatible chat-completions servers: keyframe in, CloudAnswer out."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from spotvlm_ros.cloud import DEFAULT_CLOUD_MODEL, DEFAULT_PORT, LOOPBACK_HOSTS
from spotvlm_ros.cloud.embeds import EMBED_DTYPES
from spotvlm_ros.cloud.encoding import check_frame, encode_keyframe, sent_size
from spotvlm_ros.cloud.grounding import GroundingError
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, GROUNDING_FORMATS
from spotvlm_ros.cloud.replies import answer_from_reply, keyframe_prompt
from spotvlm_ros.cloud.structured import RESPONSE_FORMATS, response_format
from spotvlm_ros.core.checks import (
    boolean, non_negative, non_negative_int, one_of, positive, positive_int, require)
from spotvlm_ros.core.settings import check_settings, setting
from spotvlm_ros.core.types import CloudAnswer

log = logging.getLogger(__name__)

SEND_IMAGE = 'image'
SEND_VISUAL_TOKENS = 'visual_tokens'
SEND_CHOICES = (SEND_IMAGE, SEND_VISUAL_TOKENS)


class _Redactor(logging.Filter):
    """Scrubs every API key a client of this process holds from each record of this logger.

    One place for every path (HTTP errors, connection errors, tracebacks): a failure message
    may quote a URL or header a hostile server built from the key.
    """

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, '[redacted]')
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = self.scrub(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


_REDACTOR = _Redactor()
log.addFilter(_REDACTOR)

STATUS_OK = 'ok'
STATUS_TIMEOUT = 'timeout'
STATUS_ERROR = 'error'
# How the error of an answer cancelled because a newer one made it useless begins.
SUPERSEDED = 'superseded'

# Statuses a server may answer differently a moment later (overload, restarts).
_RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})
_MAX_ERROR_CHARS = 200
_MAX_BACKOFF_S = 8.0
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def _http_url(name: str, value) -> None:
    scheme = urlsplit(value).scheme if isinstance(value, str) else ''
    require(scheme in ('http', 'https') and bool(urlsplit(value).netloc), name,
            f'must be an http(s) URL, got {value!r}')


def _served_model(name: str, value) -> None:
    require(isinstance(value, str) and bool(value.strip()), name, 'must name the served model')


def _env_name(name: str, value) -> None:
    require(isinstance(value, str) and (value == '' or bool(_ENV_NAME.fullmatch(value))), name,
            f'must be an environment variable name, got {value!r}')


def _jpeg_quality(name: str, value) -> None:
    require(isinstance(value, int) and 1 <= value <= 100, name,
            f'must be an int in [1, 100], got {value!r}')


@dataclass(frozen=True)
class CloudClientConfig:
    """Where the cloud model is and how to talk to it; validated on construction."""

    base_url: str = setting(
        f'http://127.0.0.1:{DEFAULT_PORT}/v1', 'any OpenAI-compatible endpoint (vLLM, SGLang, '
        'Ollama, the local `spotvlm cloud-server`)', _http_url)
    model: str = setting(
        DEFAULT_CLOUD_MODEL, 'model name to ask for; the local cloud server serves the trained '
        'default cloud model under this name', _served_model)
    api_key_env: str = setting(
        'SPOTVLM_CLOUD_API_KEY', 'name of the environment variable holding the API key (the '
        'key is never logged); empty: no key is sent', _env_name)
    timeout_s: float = setting(
        10.0, "seconds; a request's whole life: queueing, attempts, backoff", positive)
    max_in_flight: int = setting(4, 'requests to the endpoint at once', positive_int)
    jpeg_quality: int = setting(85, 'JPEG quality (1-100) of the keyframe sent', _jpeg_quality)
    max_image_side: int = setting(
        1024, 'pixels; the keyframe is shrunk to this long side before it is sent (at least 32 '
        'and image_multiple)', positive_int)
    # Qwen2.5-VL resizes inputs to multiples of 28 px; sending that size already keeps its
    # pixel boxes in the frame of the image sent.
    image_multiple: int = setting(
        28, 'the keyframe is sent with sides that are multiples of this many pixels',
        positive_int)
    retries: int = setting(2, 'attempts after the first, for failures worth retrying',
                           non_negative_int)
    backoff_s: float = setting(0.25, 'seconds before the first retry; doubles per retry',
                               non_negative)
    verify_tls: bool = setting(True, "check the endpoint's TLS certificate", boolean)
    grounding_format: str = setting(
        FORMAT_PIXELS, 'how the model writes boxes: pixels (Qwen2.5-VL), grid1000 (Qwen2-VL, '
        'Qwen3-VL) or normalized (0-1)', one_of(GROUNDING_FORMATS))
    max_reply_bytes: int = setting(256 * 1024, 'a longer reply is refused (at least 1024)',
                                   positive_int)
    max_tokens: int = setting(256, 'max_tokens asked of the model per reply', positive_int)
    response_format: str = setting(
        'json_schema', 'the OpenAI response_format sent: json_schema (a strict schema for '
        '{answer, regions: [{bbox_2d, label}]}), json_object, or none; the reply is read in '
        'that form first, then as prose plus a ```json fence; only the short answer becomes '
        'the history turn', one_of(RESPONSE_FORMATS))
    # The partitioned baseline ("Distributed VLM"): the cloud's vision encoder runs here.
    send: str = setting(
        SEND_IMAGE, 'how a keyframe travels: image (a JPEG) or visual_tokens (the partitioned '
        'baseline: encoder_model\'s vision encoder runs here and its tokens go as an '
        'image_embeds part, which the local cloud server takes)', one_of(SEND_CHOICES))
    encoder_model: str = setting(
        '', 'send: visual_tokens: the served cloud checkpoint (folder, package://PKG/path or '
        'cached hub id) whose vision encoder runs on this computer')
    embeds_dtype: str = setting(
        'float16', 'send: visual_tokens: how the tokens travel: float16, or int8 with one '
        'float32 scale per token', one_of(EMBED_DTYPES))

    def __post_init__(self):
        check_settings(self)
        require(self.send != SEND_VISUAL_TOKENS or self.encoder_model, 'encoder_model',
                'send: visual_tokens needs the cloud checkpoint whose encoder runs here')
        require(self.max_image_side >= max(32, self.image_multiple), 'max_image_side',
                f'must be >= 32 and >= image_multiple, got {self.max_image_side}')
        require(self.max_reply_bytes >= 1024, 'max_reply_bytes',
                f'must be >= 1024, got {self.max_reply_bytes}')


class _Failure(Exception):
    """One attempt's failure: the answer status it maps to, and whether to try again."""

    def __init__(self, status: str, message: str, retryable: bool,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(eq=False)
class _Ticket:
    """One request in flight: what it is about, and how to stop it."""

    stamp: float
    seq: int
    query: str
    stop: asyncio.Event
    reason: str = ''
    attempts: int = 0
    last_error: str = ''


class CloudClient:
    """Sends keyframes to an OpenAI-compatible server; every call returns a CloudAnswer.

    Use from one event loop. Answers never raise: timeouts, refusals, HTTP errors and
    malformed replies come back as answers with status 'timeout' or 'error'.
    """

    def __init__(self, config: CloudClientConfig, *, clock: Callable[[], float] = time.time,
                 trace_configs: Sequence[aiohttp.TraceConfig] = (), encoder=None):
        """encoder: with send: visual_tokens, what makes a keyframe's image_embeds part (a
        VisualTokenEncoder, or anything with its `part(frame, size)`)."""
        if (config.send == SEND_VISUAL_TOKENS) != (encoder is not None):
            raise ValueError('send: visual_tokens goes with an encoder, and only it')
        self.config = config
        self._encoder = encoder
        self._api_key = os.environ.get(config.api_key_env, '') if config.api_key_env else ''
        if self._api_key:
            _REDACTOR.secrets.add(self._api_key)
        self._clock = clock
        self._trace_configs = list(trace_configs)
        self._url = config.base_url.rstrip('/') + '/chat/completions'
        self._session: Optional[aiohttp.ClientSession] = None
        self._slots: Optional[asyncio.Semaphore] = None
        self._pending: set[_Ticket] = set()
        self._newest: dict[str, float] = {}  # per query: stamp of the newest answer given
        self._floor = -math.inf  # stamps below it are useless for every query
        self._random = random.Random()
        self._closed = False
        self._warn_about_transport()

    def __repr__(self) -> str:
        return f'CloudClient({self.config.base_url!r}, model={self.config.model!r})'

    async def __aenter__(self) -> 'CloudClient':
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def in_flight(self) -> int:
        """Requests started and not yet answered."""
        return len(self._pending)

    async def request(self, frame: np.ndarray, stamp: float, seq: int,
                      query: str) -> CloudAnswer:
        """Ask the cloud model `query` about `frame` (HxWx3 uint8 RGB) taken at `stamp`."""
        requested = self._clock()
        ticket = _Ticket(stamp, seq, query, asyncio.Event())
        size = _size_of(frame)
        if self._closed:
            return self._failure(ticket, requested, size, 'cancelled: client closed')
        if stamp < self._floor_for(query):
            return self._failure(ticket, requested, size,
                                 f'{SUPERSEDED}: a newer answer was already given')

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_s
        self._pending.add(ticket)
        work = asyncio.ensure_future(self._exchange(frame, ticket, deadline))
        stopped = asyncio.ensure_future(ticket.stop.wait())
        try:
            done, _ = await asyncio.wait({work, stopped}, timeout=deadline - loop.time(),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pending.discard(ticket)
            _abandon(work)
            _abandon(stopped)

        if work.done() and not work.cancelled():  # a reply at the deadline still counts
            return self._finish(work, ticket, requested, size)
        if stopped in done:
            log.debug('keyframe %d: %s', seq, ticket.reason)
            return self._failure(ticket, requested, size, ticket.reason)
        error = f'no reply within {self.config.timeout_s:g} s ({ticket.attempts} attempt(s)'
        error += f'; last error: {ticket.last_error})' if ticket.last_error else ')'
        log.warning('keyframe %d: %s', seq, error)
        return self._failure(ticket, requested, size, error, STATUS_TIMEOUT)

    def cancel_older_than(self, stamp: float, query: Optional[str] = None) -> int:
        """Give up requests for keyframes before `stamp` (of `query`, or all); how many."""
        if query is None:
            self._floor = max(self._floor, stamp)
        else:
            self._newest[query] = max(self._newest.get(query, -math.inf), stamp)
        return self._stop_pending(
            lambda t: t.stamp < stamp and (query is None or t.query == query),
            f'{SUPERSEDED}: an answer for a keyframe at {stamp:.3f} s made it useless')

    async def close(self) -> None:
        """Answer every pending request as cancelled, then close the HTTP session."""
        self._closed = True
        self._stop_pending(lambda t: True, 'cancelled: client closed')
        for _ in range(1000):  # each stopped request needs a few loop turns to answer
            if not self._pending:
                break
            await asyncio.sleep(0.001)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _stop_pending(self, which: Callable[[_Ticket], bool], reason: str) -> int:
        stopped = 0
        for ticket in list(self._pending):
            if which(ticket) and not ticket.stop.is_set():
                ticket.reason = reason
                ticket.stop.set()
                stopped += 1
        return stopped

    def _floor_for(self, query: str) -> float:
        return max(self._floor, self._newest.get(query, -math.inf))

    def _finish(self, work: asyncio.Future, ticket: _Ticket, requested: float,
                size) -> CloudAnswer:
        """The answer of a finished exchange; an old one arriving late counts as superseded."""
        try:
            answer = work.result()
        except _Failure as failure:
            log.warning('keyframe %d: %s', ticket.seq, failure.message)
            return self._failure(ticket, requested, size, failure.message, failure.status)
        except Exception as e:  # a bug must still end as an answer the node can publish
            log.exception('keyframe %d: request failed', ticket.seq)
            return self._failure(ticket, requested, size, self._redact(f'{type(e).__name__}: {e}'))
        if ticket.stamp < self._floor_for(ticket.query):
            log.debug('keyframe %d: reply arrived after a newer answer', ticket.seq)
            return self._failure(ticket, requested, size,
                                 f'{SUPERSEDED}: the reply arrived after a newer answer')
        self.cancel_older_than(ticket.stamp, ticket.query)
        answer = dataclasses.replace(answer, status=STATUS_OK, request_time=requested,
                                     response_time=self._clock())
        log.debug('keyframe %d: answered in %.3f s with %d region(s)', ticket.seq,
                  answer.response_time - requested, len(answer.regions))
        return answer

    def _failure(self, ticket: _Ticket, requested: float, size, error: str,
                 status: str = STATUS_ERROR) -> CloudAnswer:
        return CloudAnswer(
            keyframe_stamp=ticket.stamp, keyframe_seq=ticket.seq, query=ticket.query, text='',
            model=self.config.model, status=status, error=self._redact(error),
            request_time=requested, response_time=self._clock(), image_size=size)

    async def _exchange(self, frame: np.ndarray, ticket: _Ticket,
                        deadline: float) -> CloudAnswer:
        """Encode, send with retries while time is left, parse; raises _Failure."""
        cfg = self.config
        try:
            part, size_sent = await asyncio.to_thread(self._frame_part, frame)
        except ValueError as e:
            raise _Failure(STATUS_ERROR, str(e), retryable=False) from None
        prompt, _ = keyframe_prompt(cfg, _size_of(frame))  # names size_sent, as encoded
        body = self._body(part, prompt, ticket.query)
        loop = asyncio.get_running_loop()
        for attempt in range(cfg.retries + 1):
            ticket.attempts = attempt + 1
            try:
                content, model = await self._attempt(body, ticket, deadline)
                break
            except _Failure as failure:
                ticket.last_error = failure.message
                wait = self._backoff(attempt, failure.retry_after)
                if (not failure.retryable or attempt == cfg.retries
                        or loop.time() + wait >= deadline):
                    if attempt:
                        failure.message += f' (after {attempt + 1} attempts)'
                    raise
                log.info('keyframe %d: %s; retrying in %.2f s', ticket.seq, failure.message, wait)
                await asyncio.sleep(wait)
        try:
            answer, warning = answer_from_reply(content, cfg, size_sent, _size_of(frame),
                                                ticket.stamp, ticket.seq, ticket.query,
                                                model or cfg.model)
        except GroundingError as e:  # a clear failure, no traceback: the reply was the problem
            raise _Failure(STATUS_ERROR, str(e), retryable=False) from None
        if warning:
            log.warning('keyframe %d: %s', ticket.seq, warning)
        return answer

    def _frame_part(self, frame: np.ndarray) -> tuple[dict, tuple[int, int]]:
        """(the content part that carries the keyframe, the (width, height) it was sent at)."""
        cfg = self.config
        if self._encoder is None:
            jpeg, size = encode_keyframe(frame, cfg.jpeg_quality, cfg.max_image_side,
                                         cfg.image_multiple)
            url = 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii')
            return {'type': 'image_url', 'image_url': {'url': url}}, size
        check_frame(frame)
        size = sent_size(frame.shape[1], frame.shape[0], cfg.max_image_side, cfg.image_multiple)
        return self._encoder.part(frame, size), size

    def _body(self, part: dict, prompt: str, query: str) -> bytes:
        """The chat-completions request: system prompt, then the frame's part and the query."""
        messages = [
            {'role': 'system', 'content': prompt},
            {'role': 'user', 'content': [part, {'type': 'text', 'text': query}]},
        ]
        body = {'model': self.config.model, 'messages': messages,
                'max_tokens': self.config.max_tokens, 'temperature': 0.0, 'stream': False}
        wanted = response_format(self.config.response_format)
        if wanted is not None:
            body['response_format'] = wanted
        return json.dumps(body).encode()

    async def _attempt(self, body: bytes, ticket: _Ticket, deadline: float) -> tuple[str, str]:
        """One POST within a concurrency slot; (content, model) or a _Failure."""
        session = self._ensure_session()
        async with self._slots:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise _Failure(STATUS_TIMEOUT, 'no slot free before the deadline', False)
            headers = {'Content-Type': 'application/json',
                       'X-Request-Id': f'kf{ticket.seq}-{ticket.attempts}'}
            if self._api_key:
                headers['Authorization'] = f'Bearer {self._api_key}'
            try:
                async with session.post(self._url, data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=remaining)) as resp:
                    if resp.status != 200:
                        raise await self._http_failure(resp)
                    data = await _read_capped(resp, self.config.max_reply_bytes)
            except asyncio.TimeoutError:
                raise _Failure(STATUS_TIMEOUT, 'the server did not reply in time', False) from None
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as e:
                raise _Failure(STATUS_ERROR, f'TLS failed: {e}', False) from None
            except aiohttp.ClientConnectorError as e:
                raise _Failure(STATUS_ERROR, f'cannot connect to {e.host}:{e.port}: '
                                             f'{e.os_error.strerror or e.os_error}', True) from None
            except aiohttp.ClientPayloadError:
                raise _Failure(STATUS_ERROR, 'reply truncated: the connection closed mid-body',
                               True) from None
            except aiohttp.ServerDisconnectedError:
                raise _Failure(STATUS_ERROR, 'the server closed the connection without a reply',
                               True) from None
            except aiohttp.ClientError as e:
                raise _Failure(STATUS_ERROR, f'{type(e).__name__}: {e}', True) from None
        return _content_of(data)

    async def _http_failure(self, resp: aiohttp.ClientResponse) -> _Failure:
        """A non-200 reply as a failure, with the server's own message when it gave one."""
        try:
            prefix = await resp.content.read(4096)
        except aiohttp.ClientError:
            prefix = b''
        message = f'HTTP {resp.status}'
        detail = _error_message(prefix)
        if detail:
            message += f': {detail}'
        retry_after = _seconds(resp.headers.get('Retry-After'))
        return _Failure(STATUS_ERROR, self._redact(message), resp.status in _RETRYABLE_HTTP,
                        retry_after)

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> float:
        """Exponential backoff with jitter; never shorter than the server's Retry-After."""
        wait = min(self.config.backoff_s * 2 ** attempt, _MAX_BACKOFF_S)
        wait *= 0.5 + 0.5 * self._random.random()
        return max(wait, retry_after or 0.0)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.max_in_flight,
                                             ssl=self.config.verify_tls)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  trace_configs=self._trace_configs or None)
            self._slots = asyncio.Semaphore(self.config.max_in_flight)
        return self._session

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, '[redacted]') if self._api_key else text

    def _warn_about_transport(self) -> None:
        parts = urlsplit(self.config.base_url)
        if not self.config.verify_tls and parts.scheme == 'https':
            log.warning('TLS certificate verification is disabled for %s', parts.netloc)
        if self._api_key and parts.scheme == 'http' and parts.hostname not in LOOPBACK_HOSTS:
            log.warning('the API key will cross the network unencrypted to %s', parts.hostname)
        if self.config.api_key_env and not self._api_key:
            log.info('no API key in $%s; requests carry none', self.config.api_key_env)


def _abandon(task: asyncio.Future) -> None:
    """Cancel a task whose outcome is no longer wanted, and swallow what it still raises."""
    # A task can finish with its own error in the same loop turn as it is cancelled
    # (aiohttp's timeout racing the deadline); unread, asyncio would log it as lost.
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _size_of(frame) -> Optional[tuple[int, int]]:
    """(width, height) of an image array, or None when it is not one."""
    if isinstance(frame, np.ndarray) and frame.ndim >= 2:
        return int(frame.shape[1]), int(frame.shape[0])
    return None


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed `limit` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        raise _Failure(STATUS_ERROR, f'reply of {resp.content_length} bytes exceeds '
                                     f'max_reply_bytes={limit}', False)
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise _Failure(STATUS_ERROR, f'reply exceeds max_reply_bytes={limit}', False)
    return bytes(data)


def _content_of(data: bytes) -> tuple[str, str]:
    """(assistant text, model name) of a chat.completion body; a _Failure if malformed."""
    try:
        body = json.loads(data)
        choice = body['choices'][0]
        content = choice['message'].get('content') or ''
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _Failure(STATUS_ERROR, f'malformed reply: not a chat completion '
                                     f'({len(data)} bytes)', False) from None
    if isinstance(content, list):  # some servers return content parts
        content = ''.join(p.get('text', '') for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise _Failure(STATUS_ERROR, 'malformed reply: content is not text', False)
    if choice.get('finish_reason') == 'length':
        log.info('reply stopped at max_tokens; its regions may be cut short')
    model = body.get('model')
    return content, model if isinstance(model, str) else ''


def _error_message(prefix: bytes) -> str:
    """The message of an error body in the OpenAI, vLLM or FastAPI shape, else its text."""
    text = prefix.decode('utf-8', errors='replace')
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get('error')
        for candidate in (error.get('message') if isinstance(error, dict) else error,
                          body.get('message'), body.get('detail')):
            if isinstance(candidate, str) and candidate:
                text = candidate
                break
    text = ' '.join(text.split())
    return text[:_MAX_ERROR_CHARS]


def _seconds(value: Optional[str]) -> Optional[float]:
    """A Retry-After header in seconds; dates and junk are ignored."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None
