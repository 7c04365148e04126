"""Box geometry for focus regions: scale, margins by age, clip to the frame, merge overlaps."""

from __future__ import annotations

import json
import math
from typing import Sequence

from spotvlm_ros.core.types import SOURCE_MERGED, Region

Size = tuple  # (width, height) in pixels, the order CloudAnswer.image_size uses

_MAX_MERGED_LABELS = 3


def region_items(regions: Sequence[Region]) -> list:
    """The regions as Qwen2.5-VL grounding items: {'bbox_2d': [x1, y1, x2, y2], 'label'},
    whole pixels."""
    return [{'bbox_2d': [round(r.x1), round(r.y1), round(r.x2), round(r.y2)], 'label': r.label}
            for r in regions]


def regions_json(regions: Sequence[Region]) -> str:
    """The regions as a grounding answer is written: the items' JSON."""
    return json.dumps(region_items(regions))


def fenced_reply(answer: str, items: list) -> str:
    """A reply as Qwen2.5-VL writes one: the short answer, then the items in a ```json fence."""
    return f'{answer}\n```json\n{json.dumps(items)}\n```'


def scale_regions(regions: Sequence[Region], src_size: Size, dst_size: Size) -> list:
    """Regions in pixels of an image of `src_size` mapped to one of `dst_size` (width, height)."""
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    if sx == 1.0 and sy == 1.0:
        return list(regions)
    return [Region(r.label, r.x1 * sx, r.y1 * sy, r.x2 * sx, r.y2 * sy, r.score, r.source)
            for r in regions]


def widen_margin(age_s: float, frame_size: Size, frac_per_s: float, max_frac: float) -> float:
    """Pixels added per side to a region `age_s` old: grows with age, capped."""
    short_side = min(frame_size)
    return min(max_frac, max(0.0, age_s) * frac_per_s) * short_side


def clip_regions(regions: Sequence[Region], frame_size: Size, min_box_px: float = 1.0) -> list:
    """Regions clipped to the frame; non-finite, inverted or thinner than min_box_px dropped."""
    width, height = float(frame_size[0]), float(frame_size[1])
    min_side = max(min_box_px, 1e-6)
    isfinite = math.isfinite
    kept = []
    for r in regions:
        x1, y1, x2, y2 = r.x1, r.y1, r.x2, r.y2
        if not (isfinite(x1) and isfinite(y1) and isfinite(x2) and isfinite(y2)):
            continue
        x1 = 0.0 if x1 < 0.0 else (width if x1 > width else x1)
        x2 = 0.0 if x2 < 0.0 else (width if x2 > width else x2)
        y1 = 0.0 if y1 < 0.0 else (height if y1 > height else y1)
        y2 = 0.0 if y2 < 0.0 else (height if y2 > height else y2)
        if x2 - x1 >= min_side and y2 - y1 >= min_side:
            kept.append(Region(r.label, x1, y1, x2, y2, r.score, r.source))
    return kept


def merge_regions(regions: Sequence[Region], min_overlap: float = 0.5) -> list:
    """Boxes overlapping by `min_overlap` of the smaller one replaced by their union.

    A union may reach a box its parts did not, so each grown box is checked again; no two
    boxes left overlap that much. Labels (a few) are kept best first, with the best score.
    """
    ranked = sorted(regions, key=region_rank)
    kept: list = []  # [x1, y1, x2, y2, area, member indices]; pairwise below min_overlap
    for index, r in enumerate(ranked):
        box = [r.x1, r.y1, r.x2, r.y2, r.area, [index]]
        k = 0
        while k < len(kept):
            # Inlined overlap test: this loop is the hot path of a focus update.
            other = kept[k]
            iw = min(other[2], box[2]) - max(other[0], box[0])
            ih = min(other[3], box[3]) - max(other[1], box[1])
            if iw > 0 and ih > 0 and iw * ih >= min_overlap * min(other[4], box[4]):
                box = _union(kept.pop(k), box)
                k = 0  # it grew: check the others again
            else:
                k += 1
        kept.append(box)
    merged = [ranked[m[0]] if len(m) == 1 else _merged(box, [ranked[i] for i in sorted(m)])
              for *box, m in kept]
    return sorted(merged, key=region_rank)


def _union(a: list, b: list) -> list:
    """The box around both, with both members."""
    x1, y1 = min(a[0], b[0]), min(a[1], b[1])
    x2, y2 = max(a[2], b[2]), max(a[3], b[3])
    return [x1, y1, x2, y2, (x2 - x1) * (y2 - y1), a[5] + b[5]]


def _merged(box: list, parts: list) -> Region:
    """One region for a union box, from its parts ranked best first."""
    labels = list(dict.fromkeys(p.label for p in parts if p.label))[:_MAX_MERGED_LABELS]
    return Region(', '.join(labels), box[0], box[1], box[2], box[3],
                  max(p.score for p in parts), SOURCE_MERGED)


def region_rank(region: Region) -> tuple:
    """Sort key: best score, then biggest, then top-left first; total and deterministic."""
    return (-region.score, -region.area, region.y1, region.x1, region.label)
