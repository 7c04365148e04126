"""Visual tokens in a model's own units (Qwen2.5-VL by default), and sizes that fit a budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from spotvlm_ros.core.checks import positive_int, require
from spotvlm_ros.core.settings import check_settings, setting

QWEN2_5_VL_MIN_PIXELS = 56 * 56
QWEN2_5_VL_MAX_PIXELS = 14 * 14 * 4 * 16384
_MAX_DISTORTION = math.log(1.1)  # aspect change a fitted image may take to use its budget


@dataclass(frozen=True)
class VisualTokenCounter:
    """Visual tokens of an image in Qwen2.5-VL units: one per patch_px x patch_px after resize."""

    patch_px: int = setting(28, 'pixels per visual token side', positive_int)
    min_pixels: int = setting(QWEN2_5_VL_MIN_PIXELS, "the model's smallest image, in pixels",
                              positive_int)
    max_pixels: int = setting(QWEN2_5_VL_MAX_PIXELS, "the model's largest image, in pixels")

    def __post_init__(self):
        check_settings(self)
        require(self.max_pixels >= self.min_pixels, 'max_pixels', 'must be >= min_pixels')

    def __call__(self, height: int, width: int) -> int:
        """Tokens the model spends on an image of this size."""
        h, w = self.resized(height, width)
        return (h // self.patch_px) * (w // self.patch_px)

    @property
    def min_tokens(self) -> int:
        """Tokens of the smallest image the model accepts."""
        return max(1, math.ceil(self.min_pixels / self.patch_px ** 2))

    def resized(self, height: int, width: int, max_pixels: Optional[int] = None) -> tuple:
        """(height, width) the model resizes to: multiples of patch_px within the pixel limits."""
        require(height > 0 and width > 0, 'height', f'image is empty: {height}x{width}')
        p = self.patch_px
        limit = self.max_pixels if max_pixels is None else max_pixels
        h = max(p, round(height / p) * p)
        w = max(p, round(width / p) * p)
        if h * w > limit:
            beta = math.sqrt(height * width / limit)
            h = max(p, math.floor(height / beta / p) * p)
            w = max(p, math.floor(width / beta / p) * p)
        elif h * w < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h = math.ceil(height * beta / p) * p
            w = math.ceil(width * beta / p) * p
        return h, w

    def fit(self, height: int, width: int, max_tokens: int) -> Optional[tuple]:
        """Largest (height, width) near this aspect costing at most `max_tokens`; None if none.

        The result is a fixed point of `resized`, so the model spends exactly __call__ of it.
        """
        if max_tokens < self.min_tokens:
            return None
        p = self.patch_px
        h, w = self.resized(height, width, min(self.max_pixels, max_tokens * p * p))
        while (h // p) * (w // p) > max_tokens:  # rounding up to min_pixels can overshoot
            if max(h, w) <= p:
                return None
            h, w = (h - p, w) if h >= w else (h, w - p)
        shape = _Shape(height, width)
        while h * w < self.min_pixels:  # flooring under a small budget can undershoot
            options = self._grown(h, w, max_tokens, math.inf, math.inf)
            if not options:
                return None
            h, w = min(options, key=shape.distortion)
        # Flooring also leaves budget unused: grow a side while the shape stays true,
        # never past the model's own size for the image (no upscaling beyond native).
        native_h, native_w = self.resized(height, width)
        while True:
            allowed = max(_MAX_DISTORTION, shape.distortion((h, w)))
            options = [hw for hw in self._grown(h, w, max_tokens, native_h, native_w)
                       if shape.distortion(hw) <= allowed]
            if not options:
                return h, w
            h, w = min(options, key=shape.distortion)

    def _grown(self, h: int, w: int, max_tokens: int, cap_h: float, cap_w: float) -> list:
        """The sizes one patch taller or wider that stay within the caps and the budget."""
        p = self.patch_px
        return [(a, b) for a, b in ((h + p, w), (h, w + p))
                if a <= cap_h and b <= cap_w
                and (a // p) * (b // p) <= max_tokens and a * b <= self.max_pixels]


class _Shape:
    """The aspect ratio of an image, to measure how much a resize distorts it."""

    def __init__(self, height: int, width: int):
        self.aspect = height / width

    def distortion(self, hw: tuple) -> float:
        """|log| of the aspect change: 0 for none, symmetric in stretch and squeeze."""
        return abs(math.log(hw[0] / hw[1] / self.aspect))
