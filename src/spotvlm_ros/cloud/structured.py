"""Structured cloud replies: the OpenAI `response_format` for {answer, regions}, and its parsing.

A server that honours it (vLLM, SGLang, hosted APIs, the local server) answers
{"answer": "...", "regions": [{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]}; a reply in
another form falls back to the prose-plus-```json-fence parser.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

RESPONSE_FORMATS = ('json_schema', 'json_object', 'none')
SCHEMA_NAME = 'spotvlm_grounded_answer'
REPLY_SCHEMA = {
    'type': 'object',
    'properties': {
        'answer': {'type': 'string', 'description': 'the short answer, one or two sentences'},
        'regions': {
            'type': 'array',
            'description': 'the objects the answer relies on; [] if none',
            'items': {
                'type': 'object',
                'properties': {
                    'bbox_2d': {'type': 'array', 'items': {'type': 'number'},
                                'description': 'x1, y1, x2, y2 as the system prompt says'},
                    'label': {'type': 'string'},
                },
                'required': ['bbox_2d', 'label'],
                'additionalProperties': False,
            },
        },
    },
    'required': ['answer', 'regions'],
    'additionalProperties': False,
}
_FENCE = re.compile(r'```[ \t]*(?:json)?[ \t]*\n?(.*?)(?:```|$)', re.DOTALL | re.IGNORECASE)


def response_format(kind: str) -> Optional[dict]:
    """The request's `response_format` for a `cloud.response_format` value; None for 'none'."""
    if kind == 'json_schema':
        return {'type': 'json_schema', 'json_schema': {
            'name': SCHEMA_NAME, 'schema': REPLY_SCHEMA, 'strict': True}}
    if kind == 'json_object':
        return {'type': 'json_object'}
    if kind == 'none':
        return None
    raise ValueError(f'response_format: unknown {kind!r}; one of {RESPONSE_FORMATS}')


def parse_structured(content: str) -> Optional[tuple[str, list]]:
    """(answer, region items) of a {answer, regions} reply; None when it is not one."""
    text = content.strip()
    if not text.startswith('{'):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get('answer'), str):
        return None
    regions = value.get('regions', [])
    # The short answer only: a fence a model wrote into it is not part of the answer.
    answer = value['answer'].split('```')[0].strip()
    return answer, regions if isinstance(regions, list) else []


def structured_from_prose(text: str) -> dict:
    """A {answer, regions} reply made from a model's prose and ```json fence (the local server
    honouring response_format): the first fence that holds boxes gives the regions; the answer
    is the prose before the first fence and after the last closed one, never a fence's inside
    (a broken or unclosed one included)."""
    regions: list = []
    for match in _FENCE.finditer(text):
        regions = [r for r in map(_region, _items(match.group(1))) if r is not None]
        if regions:
            break
    pieces = text.split('```')
    answer = pieces[0] + (pieces[-1] if len(pieces) > 1 and len(pieces) % 2 == 1 else '')
    return {'answer': ' '.join(answer.split()), 'regions': regions}


def _items(text: str) -> list:
    try:
        value = json.loads(text.strip())
    except ValueError:
        return []
    return [value] if isinstance(value, dict) else value if isinstance(value, list) else []


def _region(item: Any) -> Optional[dict]:
    if not isinstance(item, dict):
        return None
    box = item.get('bbox_2d', item.get('bbox'))
    if not isinstance(box, list) or len(box) != 4:
        return None
    try:
        coords = [float(v) for v in box]
    except (TypeError, ValueError):
        return None
    return {'bbox_2d': coords, 'label': str(item.get('label', ''))}
