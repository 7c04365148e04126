"""Sparse optical flow: regions carried from the keyframe to the current frame."""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.images import gray_at, thumbnail_size
from spotvlm_ros.core.types import SOURCE_PROPAGATED, Region


def propagate_regions(regions: Sequence[Region], key_image: np.ndarray, cur_image: np.ndarray,
                      corners: int = 12, min_points: int = 2, max_fb_px: float = 1.0,
                      max_side: int = 320, frame_size: Optional[tuple] = None,
                      min_patch_px: float = 24.0, own_margin_px: float = 3.0) -> list:
    """Regions carried from the keyframe to the current frame by sparse optical flow.

    Regions are in the current frame's pixels: `frame_size` (width, height), by default
    `cur_image`'s, which may also be the frame already shrunk (the keyframe is resized to it
    if needed). Tracking runs on images shrunk to `max_side`, where `max_fb_px` is measured.
    A box narrower or shorter than `min_patch_px` (at that size) is followed by its own corners,
    sought `own_margin_px` around it, and failing those by the corners of a patch that wide
    around it: a far traffic light has too few of its own, but a crossing pedestrian moves
    unlike the road behind it.
    A region with enough good tracks moves and scales with them (source 'propagated'); the
    others come back unchanged, for the caller to widen.
    """
    import cv2  # lazy: only this step needs OpenCV's tracker

    width, height = frame_size or (cur_image.shape[1], cur_image.shape[0])
    scale = min(1.0, max_side / max(height, width))
    size = thumbnail_size(width, height, max_side)
    cur = gray_at(cur_image, size)
    key = gray_at(key_image, size)
    small = [(r.x1 * scale, r.y1 * scale, r.x2 * scale, r.y2 * scale) for r in regions]
    # Tier 0: each box's own corners; tier 1: the patch around a small box.
    boxes = [_grown(b, own_margin_px) if _is_small(b, min_patch_px) else b for b in small]
    boxes += [_at_least(b, min_patch_px) if _is_small(b, min_patch_px) else None for b in small]
    p0, owners = _corners_per_region(cv2, key, boxes, corners)
    if len(p0) == 0:
        return list(regions)
    # 3 pyramid levels of an 11 px window follow ~40 px of motion at max_side (~80 at 640).
    lk = {'winSize': (11, 11), 'maxLevel': 3,
          'criteria': (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)}
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(key, cur, p0, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, key, p1, None, **lk)
    fb = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1)
    good = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1) & (fb <= max_fb_px)
    src = p0.reshape(-1, 2).astype(np.float64) / scale
    dst = p1.reshape(-1, 2).astype(np.float64) / scale
    carried = []
    for index, region in enumerate(regions):
        for tier in (index, index + len(regions)):
            mine = good & (owners == tier)
            if int(mine.sum()) >= min_points:
                carried.append(_follow(region, src[mine], dst[mine]))
                break
        else:
            carried.append(region)
    return carried


class FlowMemo:
    """propagate_along's state at each frame a reply's regions stepped through, kept for the
    next frames: their paths share those steps (track_path), so each is tracked once.

    Keyed by the regions, the flow settings and the stamps walked so far; a stamp must name
    one image (the fuser's ring, the evaluator's frames), so clear it when time jumps back.
    At most `size` states, the least recently used go first; thread-safe.
    """

    def __init__(self, size: int = 256):
        self.size = size
        self.hits = 0  # steps a lookup saved, for tests and benchmarks
        self._states: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def resume(self, base: tuple, stamps: Sequence[float], last: int) -> tuple:
        """(position, state) of the longest walk of `stamps[:last + 1]` held; (0, None)."""
        with self._lock:
            for position in range(last, 0, -1):
                key = (base, tuple(stamps[:position + 1]))
                if key in self._states:
                    self._states.move_to_end(key)
                    self.hits += position
                    return position, self._states[key]
        return 0, None

    def keep(self, base: tuple, stamps: Sequence[float], state: tuple) -> None:
        """Hold `state`, reached at the last of `stamps`."""
        with self._lock:
            self._states[(base, tuple(stamps))] = state
            self._states.move_to_end((base, tuple(stamps)))
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def clear(self) -> None:
        """Forget every state (time went back: its stamps will name other frames)."""
        with self._lock:
            self._states.clear()


def propagate_along(regions: Sequence[Region], images: Sequence[np.ndarray],
                    stamps: Sequence[float] = (), memo: Optional[FlowMemo] = None,
                    **flow) -> list:
    """Regions carried from `images[0]` (the keyframe) to `images[-1]` through the frames
    between, one propagate_regions step per pair: short steps keep motion within the tracker's
    reach. A region lost on a step coasts at the velocity of its last tracked step, given
    `stamps` (one per image; without them steps count as equally long). A region stays
    'propagated' only if every step tracked it; one lost on the way keeps its best guess (the
    source it came with), for the caller to widen. With `memo` and `stamps`, the steps up to
    the last frame between are looked up there, or tracked and kept.
    """
    if stamps and len(stamps) != len(images):
        raise ValueError(f'{len(stamps)} stamps for {len(images)} images')
    steps = np.diff(stamps) if stamps else np.ones(max(len(images) - 1, 0))
    carried, lost = list(regions), [False] * len(regions)
    velocity = [None] * len(regions)  # pixels per second of the last tracked step
    # The last image is not kept: it may be the frame itself, not the ring's copy of it.
    memo = memo if stamps else None
    base = (tuple(regions), tuple(sorted(flow.items())))
    start = 0
    if memo is not None:
        start, state = memo.resume(base, stamps, len(images) - 2)
        if state is not None:
            carried, lost, velocity = (list(part) for part in state)
    for step in range(start, len(images) - 1):
        stepped = propagate_regions(carried, images[step], images[step + 1], **flow)
        dt = max(float(steps[step]), 1e-6)
        for index, (new, old) in enumerate(zip(stepped, carried)):
            if new is old:  # propagate_regions hands back an untracked region itself
                lost[index] = True
                if velocity[index] is not None:
                    stepped[index] = _shifted(old, *(v * dt for v in velocity[index]))
            else:
                velocity[index] = tuple(d / dt for d in _centre_shift(old, new))
        carried = stepped
        if memo is not None and step + 1 < len(images) - 1:
            memo.keep(base, stamps[:step + 2], (tuple(carried), tuple(lost), tuple(velocity)))
    return [dataclasses.replace(r, source=region.source) if was else r
            for region, r, was in zip(regions, carried, lost)]


def track_path(stamps: Sequence[float], hop_s: float) -> list:
    """Positions in `stamps` (ascending; the keyframe's first, the current frame's last) of the
    frames flow steps through: the first at least `hop_s` after the previous one, and the
    last. `hop_s` 0 goes in one step."""
    path = [0]
    for position in range(1, len(stamps) - 1):
        if hop_s > 0 and stamps[position] - stamps[path[-1]] >= hop_s - 1e-6:
            path.append(position)
    if len(stamps) > 1:
        path.append(len(stamps) - 1)
    return path


def _is_small(box: tuple, side: float) -> bool:
    """Whether `box` is narrower or shorter than `side`."""
    return min(box[2] - box[0], box[3] - box[1]) < side


def _grown(box: tuple, margin: float) -> tuple:
    """`box` with `margin` more on every side."""
    return box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin


def _at_least(box: tuple, side: float) -> tuple:
    """`box` grown about its centre to at least `side` wide and tall."""
    x1, y1, x2, y2 = box
    half_w, half_h = max(x2 - x1, side) / 2, max(y2 - y1, side) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _corners_per_region(cv2, key: np.ndarray, boxes: list, corners: int) -> tuple:
    """Good features inside each box of the keyframe (Nx1x2 float32), and each one's box
    (a None box has none)."""
    height, width = key.shape
    points, owners = [], []
    for index, box in enumerate(boxes):
        if box is None:
            continue
        bx1, by1, bx2, by2 = box
        x1, y1 = max(0, int(bx1)), max(0, int(by1))
        x2, y2 = min(width, int(math.ceil(bx2))), min(height, int(math.ceil(by2)))
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        found = cv2.goodFeaturesToTrack(key[y1:y2, x1:x2], corners, 0.01, 3)
        if found is not None:
            points.append(found.reshape(-1, 2) + np.float32([x1, y1]))
            owners.append(np.full(len(found), index))
    if not points:
        return np.empty((0, 1, 2), np.float32), np.empty(0, int)
    return np.concatenate(points).reshape(-1, 1, 2), np.concatenate(owners)


def _follow(region: Region, src: np.ndarray, dst: np.ndarray) -> Region:
    """The region moved and scaled like its tracked points (medians: robust to outliers)."""
    c0, c1 = _median(src), _median(dst)
    spread0 = _median(np.hypot(*(src - c0).T))
    spread1 = _median(np.hypot(*(dst - c1).T))
    scale = float(min(max(spread1 / spread0, 0.5), 2.0)) if spread0 > 1.0 else 1.0
    cx, cy, nx, ny = float(c0[0]), float(c0[1]), float(c1[0]), float(c1[1])
    return Region(region.label, nx + (region.x1 - cx) * scale, ny + (region.y1 - cy) * scale,
                  nx + (region.x2 - cx) * scale, ny + (region.y2 - cy) * scale, region.score,
                  SOURCE_PROPAGATED)


def _centre_shift(old: Region, new: Region) -> tuple:
    """How far the box's centre moved from `old` to `new` (dx, dy)."""
    return ((new.x1 + new.x2 - old.x1 - old.x2) / 2, (new.y1 + new.y2 - old.y1 - old.y2) / 2)


def _shifted(region: Region, dx: float, dy: float) -> Region:
    """`region` moved by (dx, dy), its source kept."""
    return dataclasses.replace(region, x1=region.x1 + dx, y1=region.y1 + dy,
                               x2=region.x2 + dx, y2=region.y2 + dy)


def _median(values: np.ndarray):
    """Median along the first axis; np.median costs ~20x more on a dozen points."""
    ordered = np.sort(values, axis=0)
    n = len(ordered)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
