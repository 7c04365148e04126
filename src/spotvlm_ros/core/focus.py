"""Visual focus: cloud regions carried to the current frame, then a token-budgeted view plan."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.checks import (
    between, boolean, fraction, non_negative, positive, positive_int, require)
from spotvlm_ros.core.compression import sanitize_label
from spotvlm_ros.core.flow import FlowMemo, propagate_along, propagate_regions, track_path
from spotvlm_ros.core.images import resize_image
from spotvlm_ros.core.settings import check_settings, setting
from spotvlm_ros.core.regions import (
    Size, clip_regions, merge_regions, region_rank, scale_regions, widen_margin)
from spotvlm_ros.core.types import (
    SOURCE_PROPAGATED, SOURCE_WIDENED, CloudAnswer, FocusCrop, FocusPlan, Region)
from spotvlm_ros.core.visual_tokens import (
    QWEN2_5_VL_MAX_PIXELS, QWEN2_5_VL_MIN_PIXELS, VisualTokenCounter)

# Boxes considered per region kept: enough for merging to matter, few enough to stay cheap.
_MERGE_INPUT_PER_REGION = 4

# The whole mapping lives here; its steps are importable from here too.
__all__ = [
    'FocusConfig', 'VisualTokenCounter', 'clip_regions', 'crop_label', 'focus_for_answer',
    'focus_regions',
    'flow_options', 'merge_regions', 'plan_focus', 'plan_focus_from_config', 'propagate_along',
    'propagate_regions', 'scale_regions', 'track_path', 'widen_margin']


@dataclass(frozen=True)
class FocusConfig:
    """How cloud regions are mapped to the current frame and turned into a view plan."""

    token_budget: int = setting(
        256, 'visual tokens for the global view and all crops together', positive_int)
    patch_px: int = setting(
        28, 'pixels per visual token side (Qwen2.5-VL: 14 px patches, 2x2 merge)', positive_int)
    min_pixels: int = setting(QWEN2_5_VL_MIN_PIXELS, "the model's smallest image, in pixels",
                              positive_int)
    max_pixels: int = setting(QWEN2_5_VL_MAX_PIXELS, "the model's largest image, in pixels",
                              positive_int)
    global_share: float = setting(
        0.5, 'share of the budget for the global view when there are regions', fraction)
    max_crops: int = setting(3, 'crops (regions seen closer) at most', positive_int)
    crop_pad_frac: float = setting(
        0.1, 'context around each region, per side, as a share of its size', non_negative)
    min_zoom: float = setting(
        1.25, 'a crop must show its region at least this much sharper than the global view',
        non_negative)
    max_upscale: float = setting(
        2.0, 'a crop may be enlarged up to this much past its own pixels', between(1.0, 8.0))
    max_regions: int = setting(20, 'regions kept at most, best score first', positive_int)
    min_box_px: float = setting(
        2.0, 'pixels; boxes narrower or shorter than this are dropped (a far traffic light is '
        '4 px wide at 448x336: its crop is still at least one patch)', non_negative)
    merge_overlap: float = setting(
        0.5, 'intersection over the smaller box at which two boxes merge',
        between(0.0, 1.0, low_open=True))
    widen_frac_per_s: float = setting(
        0.03, "margin the crop of a region not carried by optical flow grows per second of "
        "age, as a share of the frame's short side (its box and caption stay as they are)",
        non_negative)
    widen_max_frac: float = setting(
        0.25, "the margin never grows past this share of the frame's short side", fraction)
    use_flow: bool = setting(
        True, 'carry regions from the keyframe by optical flow when both images are at hand',
        boolean)
    flow_corners: int = setting(12, 'corners tracked per region', positive_int)
    flow_max_side: int = setting(
        320, 'pixels; tracking runs on frames shrunk to this long side', positive_int)
    flow_hop_s: float = setting(
        0.5, 'seconds; flow steps from the keyframe to the current frame through frames at '
        'least this far apart (it follows ~80 px of motion per step at 640 px); 0: one step',
        non_negative)
    flow_min_patch_px: float = setting(
        24.0, 'pixels at flow size; a smaller box is followed by its own corners, and failing '
        'those by the corners of a patch this wide around it (a far traffic light has too '
        'few of its own)', non_negative)
    flow_own_margin_px: float = setting(
        3.0, "pixels at flow size; a small box's own corners are sought this far around it",
        non_negative)
    flow_min_points: int = setting(
        2, 'a region with fewer good tracks is lost on that step: it coasts at its last '
        'tracked velocity, and its crop is widened', positive_int)
    flow_max_fb_px: float = setting(
        1.0, 'pixels; forward-backward error above which a track is dropped', positive)

    def __post_init__(self):
        check_settings(self)
        require(self.max_pixels >= self.min_pixels, 'max_pixels', 'must be >= min_pixels')


def flow_options(config: FocusConfig) -> dict:
    """propagate_regions' keywords from the focus settings."""
    return dict(corners=config.flow_corners, min_points=config.flow_min_points,
                max_fb_px=config.flow_max_fb_px, max_side=config.flow_max_side,
                min_patch_px=config.flow_min_patch_px, own_margin_px=config.flow_own_margin_px)


def focus_regions(regions: Sequence[Region], src_size: Optional[Size], frame_size: Size,
                  config: FocusConfig = FocusConfig(),
                  key_image: Optional[np.ndarray] = None,
                  cur_image: Optional[np.ndarray] = None,
                  via_images: Sequence[np.ndarray] = (),
                  stamps: Sequence[float] = (),
                  memo: Optional[FlowMemo] = None) -> list:
    """Cloud regions mapped to the current frame: scaled, carried by flow, clipped, merged.

    `src_size` is the (width, height) the cloud saw (None: already in frame pixels). Ranked
    by score, at most `max_regions`, all inside the frame; labels cleaned as cloud text.
    `via_images` are frames between the keyframe and this one, oldest first, that flow steps
    through (see track_path); `stamps` the times of the keyframe, those and this frame;
    `memo` keeps the steps through them for the next frames (FlowMemo).
    Each box is the best guess of where its object is now: moved by flow where it could be
    tracked, else where the cloud saw it (source 'widened': plan_focus widens its view by
    the context's age). A box grown by its age would be a worse guess: the model is told it.
    """
    # Regions may come from any publisher: the best few only (the merge is quadratic), and
    # their labels made inert before they reach a prompt.
    regions = sorted(regions, key=region_rank)[: _MERGE_INPUT_PER_REGION * config.max_regions]
    regions = [dataclasses.replace(r, label=sanitize_label(r.label)) for r in regions]
    mapped = scale_regions(regions, src_size, frame_size) if src_size else list(regions)
    mapped = clip_regions(mapped, frame_size, 0.0)  # tracking needs boxes inside the frame
    if config.use_flow and key_image is not None and cur_image is not None and mapped:
        carried = propagate_along(mapped, [key_image, *via_images, cur_image], stamps=stamps,
                                  memo=memo, frame_size=frame_size, **flow_options(config))
    else:
        carried = mapped
    carried = [r if r.source == SOURCE_PROPAGATED else dataclasses.replace(
        r, source=SOURCE_WIDENED) for r in carried]
    kept = clip_regions(carried, frame_size, config.min_box_px)
    return merge_regions(kept, config.merge_overlap)[: config.max_regions]


def plan_focus(frame: np.ndarray, regions: Sequence[Region], token_budget: int,
               patch_px: int = 28, *, global_share: float = 0.5, max_crops: int = 3,
               crop_pad_frac: float = 0.1, min_zoom: float = 1.25, max_upscale: float = 2.0,
               counter: Optional[VisualTokenCounter] = None,
               untracked_margin_px: float = 0.0) -> FocusPlan:
    """A low-resolution global view plus sharper crops of the top regions, within budget.

    `regions` are in the frame's pixels (see focus_regions). Tokens are counted by
    `counter` (default: Qwen2.5-VL units for `patch_px`); the total never exceeds the budget.
    Crops of regions flow did not carry take `untracked_margin_px` more per side, since
    their object may have moved; their captions still give the box itself.
    """
    require(isinstance(frame, np.ndarray) and frame.ndim in (2, 3) and frame.size > 0,
            'frame', 'must be a non-empty HxW or HxWxC array')
    counter = counter or VisualTokenCounter(patch_px)
    require(token_budget >= counter.min_tokens, 'token_budget',
            f'{token_budget} is below one image ({counter.min_tokens} tokens)')
    height, width = frame.shape[:2]
    ranked = sorted(clip_regions(regions, (width, height), 1.0), key=region_rank)[:max_crops]
    share = max(counter.min_tokens, int(token_budget * global_share)) if ranked else token_budget
    plan = _global_plan(frame, min(share, token_budget), token_budget, counter)
    global_scale = plan.global_view.shape[1] / width
    # Only as many crops as the rest of the budget can pay for, best first.
    ranked = ranked[: (token_budget - plan.visual_tokens) // counter.min_tokens]
    for rank, region in enumerate(ranked):
        left = token_budget - plan.visual_tokens
        margin = 0.0 if region.source == SOURCE_PROPAGATED else untracked_margin_px
        crop = _crop_for(frame, region, left // (len(ranked) - rank), counter, crop_pad_frac,
                         global_scale * min_zoom, max_upscale, margin)
        if crop is not None:
            plan.crops.append(crop)
            plan.visual_tokens += counter(*crop.image.shape[:2])
    if not plan.crops and share < token_budget:
        return _global_plan(frame, token_budget, token_budget, counter)  # no crop earned it
    return plan


def plan_focus_from_config(frame: np.ndarray, regions: Sequence[Region],
                           config: FocusConfig = FocusConfig(), age_s: float = 0.0) -> FocusPlan:
    """plan_focus with every knob taken from a FocusConfig, for regions `age_s` old."""
    counter = VisualTokenCounter(config.patch_px, config.min_pixels, config.max_pixels)
    margin = widen_margin(age_s, (frame.shape[1], frame.shape[0]), config.widen_frac_per_s,
                          config.widen_max_frac)
    return plan_focus(frame, regions, config.token_budget, config.patch_px,
                      global_share=config.global_share, max_crops=config.max_crops,
                      crop_pad_frac=config.crop_pad_frac, min_zoom=config.min_zoom,
                      max_upscale=config.max_upscale, counter=counter,
                      untracked_margin_px=margin)


def focus_for_answer(answer: Optional[CloudAnswer], frame: np.ndarray, frame_stamp: float,
                     config: FocusConfig = FocusConfig(),
                     key_image: Optional[np.ndarray] = None) -> tuple:
    """Everything per frame: (regions in this frame, focus plan) from the newest cloud answer.

    With no answer (or no regions) the plan is the global view alone. `key_image` is the
    keyframe the answer is about, if still at hand, for optical flow.
    """
    if answer is None or not answer.regions:
        return [], plan_focus_from_config(frame, [], config)
    height, width = frame.shape[:2]
    regions = focus_regions(answer.regions, answer.image_size, (width, height), config,
                            key_image, frame)
    return regions, plan_focus_from_config(frame, regions, config,
                                           frame_stamp - answer.keyframe_stamp)


def crop_label(region: Region, frame_size: Size) -> str:
    """The region's label and its box in frame pixels, e.g. 'car at [12, 40, 96, 88]'.

    The box is where the region was carried to in this frame: the model can answer a
    "where is" question from it, which a word such as 'top left' would not allow.
    """
    box = caption_box(region, frame_size)
    where = f'at [{round(box.x1)}, {round(box.y1)}, {round(box.x2)}, {round(box.y2)}]'
    return f'{region.label} {where}' if region.label else where


def caption_box(region: Region, frame_size: Size) -> Region:
    """The region in whole pixels inside the frame: the box its crop's caption says."""
    width, height = frame_size
    x1, y1, x2, y2 = (round(min(max(v, 0.0), limit)) for v, limit in
                      ((region.x1, width), (region.y1, height), (region.x2, width),
                       (region.y2, height)))
    return Region(region.label, float(x1), float(y1), float(x2), float(y2), region.score,
                  region.source)


def _crop_box(region: Region, frame_size: Size, pad_frac: float, min_side: float,
              margin: float = 0.0) -> tuple:
    """Integer crop box: the region padded (and `margin` px more per side), at least
    `min_side` and not too thin, in frame."""
    width, height = frame_size
    pad_x, pad_y = region.width * pad_frac + margin, region.height * pad_frac + margin
    x1, y1 = region.x1 - pad_x, region.y1 - pad_y
    x2, y2 = region.x2 + pad_x, region.y2 + pad_y
    long_side = max(x2 - x1, y2 - y1)
    x1, x2 = _at_least(x1, x2, max(min_side, long_side / 4), width)
    y1, y2 = _at_least(y1, y2, max(min_side, long_side / 4), height)
    return (int(math.floor(x1)), int(math.floor(y1)),
            int(math.ceil(x2)), int(math.ceil(y2)))


def _at_least(lo: float, hi: float, size: float, limit: float) -> tuple:
    """The span [lo, hi] grown about its centre to `size` (capped by limit), kept in [0, limit]."""
    size = min(max(hi - lo, size), limit)
    centre = (lo + hi) / 2
    lo = min(max(centre - size / 2, 0.0), limit - size)
    return lo, lo + size


def _global_plan(frame: np.ndarray, tokens: int, token_budget: int,
                 counter: VisualTokenCounter) -> FocusPlan:
    """A plan holding only the whole frame, resized to cost at most `tokens`."""
    gh, gw = counter.fit(frame.shape[0], frame.shape[1], tokens)
    return FocusPlan(global_view=resize_image(frame, gw, gh), visual_tokens=counter(gh, gw),
                     token_budget=token_budget)


def _crop_for(frame: np.ndarray, region: Region, max_tokens: int,
              counter: VisualTokenCounter, pad_frac: float, min_scale: float,
              max_upscale: float, margin: float = 0.0):
    """A FocusCrop of the region within `max_tokens`, or None if not sharper than needed."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = _crop_box(region, (width, height), pad_frac, counter.patch_px, margin)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    size = counter.fit(max(1, round((y2 - y1) * max_upscale)),
                       max(1, round((x2 - x1) * max_upscale)), max_tokens)
    if size is None or size[1] / (x2 - x1) < min_scale:
        return None
    box = Region(region.label, float(x1), float(y1), float(x2), float(y2), region.score,
                 region.source)
    image = resize_image(frame[y1:y2, x1:x2], size[1], size[0])
    return FocusCrop(image=image, label=crop_label(region, (width, height)), region=box,
                     shown=caption_box(region, (width, height)))
