"""Grounding parsers: the regions a cloud model wrote, in the keyframe's own pixels."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional

from spotvlm_ros.cloud.prompts import (
    FORMAT_GRID_1000, FORMAT_NORMALIZED, FORMAT_PIXELS, GROUNDING_FORMATS)
from spotvlm_ros.core.compression import sanitize_label
from spotvlm_ros.core.types import SOURCE_CLOUD, Region

DEFAULT_MAX_CHARS = 65536
# Boxes kept per reply, in the order written: the fuser merges them pairwise on every frame,
# so a reply of thousands must cost no more than one of a few dozen.
DEFAULT_MAX_REGIONS = 32
# Bare JSON is searched by trying each '[' or '{'; bounded so prose full of brackets stays cheap.
_MAX_JSON_STARTS = 64

_FENCE = re.compile(r'```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```', re.DOTALL)
_OPEN_FENCE = re.compile(r'```[ \t]*(?:json|JSON)?')
_JSON_START = re.compile(r'[\[{]')
_JSON_LIKE = re.compile(r'[\[{]\s*[{"]')  # a list of objects or an object, not prose
# Qwen2-VL's native spelling, on the 0-1000 grid:
# <|object_ref_start|>car<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>
_BOX_TOKENS = re.compile(
    r'(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>\s*)?'
    r'<\|box_start\|>\s*\(\s*(?P<x1>-?[\d.]+)\s*,\s*(?P<y1>-?[\d.]+)\s*\)\s*,\s*'
    r'\(\s*(?P<x2>-?[\d.]+)\s*,\s*(?P<y2>-?[\d.]+)\s*\)\s*<\|box_end\|>', re.DOTALL)
_BOX_KEYS = ('bbox_2d', 'bbox', 'box_2d', 'box')
_BOX_KEY_IN_TEXT = re.compile(r'["\'](?:%s)["\']\s*:' % '|'.join(_BOX_KEYS))
_LABEL_KEYS = ('label', 'name', 'object', 'category')
_SCORE_KEYS = ('score', 'confidence')
_SPACES = re.compile(r'[ \t]+')
_BLANK_LINES = re.compile(r'\n\s*\n+')


class GroundingError(ValueError):
    """The one error parse_regions raises: bad arguments, or a reply it cannot read at all."""


def parse_regions(text: str, fmt: str, sent_size: tuple[int, int],
                  keyframe_size: tuple[int, int], max_chars: int = DEFAULT_MAX_CHARS,
                  max_regions: int = DEFAULT_MAX_REGIONS,
                  ) -> tuple[str, tuple[Region, ...], str]:
    """Split a reply into (answer text, regions in keyframe pixels, warning or '').

    Any reply gives a result; only GroundingError is raised, for bad arguments or a bug.
    """
    if fmt not in GROUNDING_FORMATS:
        raise GroundingError(f'grounding_format: unknown {fmt!r}; one of {GROUNDING_FORMATS}')
    for name, size in (('sent_size', sent_size), ('keyframe_size', keyframe_size)):
        if not (isinstance(size, (tuple, list)) and len(size) == 2
                and all(isinstance(v, int) and v > 0 for v in size)):
            raise GroundingError(f'{name} must be a (width, height) of positive ints, '
                                 f'got {size!r}')
    if not isinstance(text, str):
        raise GroundingError(f'the reply must be text, got {type(text).__name__}')
    try:
        return _parse(text, fmt, sent_size, keyframe_size, max_chars, max_regions)
    except Exception as e:  # noqa: BLE001 - the contract: one error type, whatever the reply
        raise GroundingError(f'unreadable reply ({type(e).__name__})') from None


def _parse(text: str, fmt: str, sent_size, keyframe_size, max_chars: int,
           max_regions: int) -> tuple[str, tuple[Region, ...], str]:
    warnings = []
    if len(text) > max_chars:
        text = text[:max_chars]
        warnings.append(f'reply cut to {max_chars} characters')
    scale = _scale(fmt, sent_size, keyframe_size)

    found = _find_json(text) or _find_box_tokens(text)
    if found is None:
        if _looks_grounded(text):
            warnings.append('regions present but unparseable; answer kept without regions')
        return text.strip(), (), '; '.join(warnings)

    items, answer = found
    regions = []
    skipped = 0
    for item in items:
        if len(regions) == max_regions:  # cut here, before any merge sees them
            warnings.append(f'kept {max_regions} of {len(items)} regions (max_regions)')
            break
        region = _to_region(item, scale, keyframe_size)
        if region is None:
            skipped += 1
        else:
            regions.append(region)
    if skipped:
        warnings.append(f'skipped {skipped} malformed or out-of-image region(s)')
    return answer, tuple(regions), '; '.join(warnings)


def _scale(fmt: str, sent_size, keyframe_size) -> tuple[float, float]:
    """Factors from the model's coordinates to keyframe pixels, per axis."""
    kw, kh = keyframe_size
    if fmt == FORMAT_PIXELS:
        sw, sh = sent_size
        return kw / sw, kh / sh
    if fmt == FORMAT_GRID_1000:
        return kw / 1000.0, kh / 1000.0
    assert fmt == FORMAT_NORMALIZED
    return float(kw), float(kh)


def _find_json(text: str) -> Optional[tuple[list, str]]:
    """Region items from the first fenced JSON, or bare JSON if unfenced; and the rest."""
    fences = list(_FENCE.finditer(text))
    for match in fences:
        items = _as_items(_loads(match.group(1).strip()))
        if items is not None:
            return items, _without(text, match.start(), match.end())
    if fences or _OPEN_FENCE.search(text):
        return None  # fenced but broken or truncated: no guessing inside it
    decoder = json.JSONDecoder()
    searched_to = 0
    attempts = 0
    for match in _JSON_START.finditer(text):
        if match.start() < searched_to:
            continue  # inside a value already decoded
        attempts += 1
        if attempts > _MAX_JSON_STARTS:
            break
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):  # nesting deeper than the decoder goes
            if _JSON_LIKE.match(text, match.start()):
                return None  # broken JSON: a fragment of it must not pass for the whole
            continue
        items = _as_items(value)
        if items is not None:
            return items, _without(text, match.start(), end)
        searched_to = end
    return None


def _find_box_tokens(text: str) -> Optional[tuple[list, str]]:
    """Region items from Qwen2-VL box tokens; the answer keeps each object's label."""
    items = [{'bbox_2d': [m['x1'], m['y1'], m['x2'], m['y2']], 'label': m['label'] or ''}
             for m in _BOX_TOKENS.finditer(text)]
    if not items:
        return None
    answer = _BOX_TOKENS.sub(lambda m: m['label'] or '', text)
    return items, _tidy(answer)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _as_items(value: Any) -> Optional[list]:
    """The value as a list of box-like dicts, or None when it holds no boxes at all."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    if value and not any(isinstance(v, dict) and _box_of(v) is not None for v in value):
        return None
    return value


def _box_of(item: dict) -> Any:
    return next((item[k] for k in _BOX_KEYS if k in item), None)


def _to_region(item: Any, scale: tuple[float, float], keyframe_size) -> Optional[Region]:
    """One item as a Region clipped to the keyframe; None when malformed or outside it."""
    if not isinstance(item, dict):
        return None
    box = _box_of(item)
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
        score = float(next((item[k] for k in _SCORE_KEYS if k in item), 1.0))
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float range
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2, score)):
        return None
    sx, sy = scale
    kw, kh = keyframe_size
    # Models sometimes swap corners; the box they meant is the same.
    left, right = sorted((_clip(x1 * sx, kw), _clip(x2 * sx, kw)))
    top, bottom = sorted((_clip(y1 * sy, kh), _clip(y2 * sy, kh)))
    if right <= left or bottom <= top:
        return None
    label = next((item[k] for k in _LABEL_KEYS if k in item), '')
    return Region(sanitize_label(label), left, top, right, bottom, score=score,
                  source=SOURCE_CLOUD)


def _clip(value: float, upper: float) -> float:
    return min(max(value, 0.0), float(upper))


def _looks_grounded(text: str) -> bool:
    """Whether the reply tried to give regions (a fence, a box key, box tokens)."""
    return bool(_OPEN_FENCE.search(text) or _BOX_KEY_IN_TEXT.search(text)) \
        or '<|box_start|>' in text


def _without(text: str, start: int, end: int) -> str:
    return _tidy(text[:start] + text[end:])


def _tidy(text: str) -> str:
    """Whitespace left by a removed block, collapsed."""
    lines = (_SPACES.sub(' ', line).strip() for line in text.splitlines())
    return _BLANK_LINES.sub('\n', '\n'.join(lines)).strip()
