"""Visual tokens on the wire: the `image_embeds` content part of a chat request.

A documented extension of the OpenAI chat request, for the partitioned baseline. A user
message may carry, in place of an `image_url` part::

    {"type": "image_embeds",
     "image_embeds": {"data": "<base64>",          # row-major little-endian values
                      "dtype": "float16" | "int8",
                      "shape": [tokens, hidden],
                      "grid_thw": [t, h, w],         # the encoder's patch grid
                      "image_size": [width, height], # of the frame encoded
                      "scales": "<base64>"}}         # int8 only: one float32 per token

An int8 row is its float values divided by the row's scale (max |value| / 127), rounded.
Only numbers travel: no pickled objects, so a hostile body can do no more than fail to parse.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from spotvlm_ros.models.split import VisualTokens

EMBED_DTYPES = ('float16', 'int8')
PART_TYPE = 'image_embeds'


def embeds_part(tokens: VisualTokens, dtype: str = 'float16') -> dict:
    """The content part that carries `tokens` as `dtype`."""
    if dtype not in EMBED_DTYPES:
        raise ValueError(f'dtype: unknown {dtype!r}; one of {EMBED_DTYPES}')
    values = tokens.embeddings.astype(np.float32)
    body = {'dtype': dtype, 'shape': list(values.shape),
            'grid_thw': [int(n) for n in tokens.grid_thw],
            'image_size': [int(n) for n in tokens.image_size]}
    if dtype == 'int8':
        scales = np.maximum(np.abs(values).max(axis=1), 1e-12) / 127.0
        quantised = np.clip(np.rint(values / scales[:, None]), -127, 127).astype('<i1')
        body['data'] = _b64(quantised)
        body['scales'] = _b64(scales.astype('<f4'))
    else:
        body['data'] = _b64(values.astype('<f2'))
    return {'type': PART_TYPE, PART_TYPE: body}


def tokens_of_part(part: dict) -> VisualTokens:
    """The visual tokens an `image_embeds` part carries; ValueError says what is wrong."""
    body = part.get(PART_TYPE)
    if not isinstance(body, dict):
        raise ValueError(f"an {PART_TYPE} part needs an '{PART_TYPE}' object")
    dtype = body.get('dtype')
    if dtype not in EMBED_DTYPES:
        raise ValueError(f"{PART_TYPE}.dtype must be one of {EMBED_DTYPES}, got {dtype!r}")
    shape = _ints(body, 'shape', 2)
    grid = _ints(body, 'grid_thw', 3)
    size = _ints(body, 'image_size', 2)
    values = _array(body, 'data', '<f2' if dtype == 'float16' else '<i1', shape[0] * shape[1])
    values = values.reshape(shape).astype(np.float32)
    if dtype == 'int8':
        values *= _array(body, 'scales', '<f4', shape[0])[:, None]
    if not np.isfinite(values).all():
        raise ValueError(f'{PART_TYPE}.data holds values that are not finite')
    return VisualTokens(values, tuple(grid), tuple(size))


def payload_bytes(part: dict) -> int:
    """Bytes of the values a part sends (before base64), scales included."""
    body = part[PART_TYPE]
    return sum(len(base64.b64decode(body[k])) for k in ('data', 'scales') if k in body)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode('ascii')


def _ints(body: dict, key: str, count: int) -> list:
    value = body.get(key)
    if not (isinstance(value, list) and len(value) == count and
            all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)):
        raise ValueError(f'{PART_TYPE}.{key} must be {count} positive integers, got {value!r}'[:200])
    return value


def _array(body: dict, key: str, dtype: str, count: int) -> np.ndarray:
    try:
        raw = base64.b64decode(body.get(key, ''), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError(f'{PART_TYPE}.{key} is not valid base64') from None
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise ValueError(f'{PART_TYPE}.{key} holds {len(raw)} bytes; its shape needs '
                         f'{count * np.dtype(dtype).itemsize}')
    return np.frombuffer(raw, dtype=dtype)
