"""Model inputs of a chat for Qwen2-VL-family processors, the processor's tensors made faster.

`models.prompt.chat_inputs` tries `fast_chat_inputs` first and falls back to the processor.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np

# The Qwen2-VL / Qwen2.5-VL processors spend most of a frame's preparation (7-15 ms at 640x480
# on a loaded 2-core CPU, against a ~190 ms generate) on work that is not the arithmetic: the
# frame is copied channels-first, which the uint8 bicubic kernel converts back to channels-last
# and out again (the resize takes about twice as long); normalising takes three float passes;
# the prompt is tokenised after each image placeholder became hundreds of tokens; kwargs are
# validated on every call. The route below does the same arithmetic (the same resize kernel,
# the processor's own normalisation tabulated per byte value, the same patch order) in fewer
# passes, in about half the time. It serves only the settings it implements, is checked against
# the processor once per processor, and hands everything else to the processor.

_BICUBIC = 3  # PIL's resample code, the Qwen2-VL default
_SIZE_KEYS = ('shortest_edge', 'longest_edge')
_fast_plans = weakref.WeakKeyDictionary()  # processor -> (settings, plan or None)


@dataclass(frozen=True)
class _QwenPlan:
    """What the fast route needs of a Qwen2-VL-family image processor's settings."""

    patch: int
    merge: int
    temporal: int
    min_pixels: int
    max_pixels: int
    table: np.ndarray  # (3, 256) float32: the normalised value of each channel's byte values


def fast_chat_inputs(processor, chats: list, processor_kwargs: Optional[dict] = None):
    """`chat_inputs` for one chat without the processor's overheads; None where not covered."""
    plan = _qwen_plan(processor)
    if plan is None or (limits := _size_limits(plan, processor_kwargs)) is None:
        return None
    images = _chat_images(chats)
    return _qwen_inputs(processor, plan, chats, images, limits) if images else None


def _qwen_plan(processor) -> Optional[_QwenPlan]:
    """The processor's fast-route plan, made and checked on first use; None if not covered."""
    settings = _image_settings(getattr(processor, 'image_processor', None))
    try:
        cached = _fast_plans.get(processor)
    except TypeError:  # not weakly referenceable, or unhashable: not a processor we know
        return None
    if cached is not None and cached[0] == settings:
        return cached[1]
    plan = _make_plan(processor.image_processor) if settings is not None else None
    if plan is not None and not _agrees_with_processor(processor, plan):
        plan = None
    _fast_plans[processor] = (settings, plan)
    return plan


def _image_settings(image_processor) -> Optional[tuple]:
    """The image processor's settings the fast route depends on; None for other kinds."""
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    except ImportError:
        return None
    # Exact class: subclasses (other model families) may change any step.
    if type(image_processor) is not Qwen2VLImageProcessor:
        return None
    ip = image_processor
    size = tuple(_size_value(ip.size, key) for key in _SIZE_KEYS)
    settings = (ip.do_resize, ip.resample, ip.do_rescale, ip.rescale_factor, ip.do_normalize,
                _as_tuple(ip.image_mean), _as_tuple(ip.image_std), ip.patch_size, ip.merge_size,
                ip.temporal_patch_size, size)
    supported = (ip.do_resize is True and _is_int(ip.resample) and ip.resample == _BICUBIC
                 and all(_is_int(v) and v > 0 for v in (*size, ip.patch_size, ip.merge_size,
                                                        ip.temporal_patch_size)))
    return settings if supported else None


def _make_plan(image_processor) -> Optional[_QwenPlan]:
    """The plan for a supported image processor; None if its normalisation is not per byte."""
    table = _normalisation_table(image_processor)
    if table is None:
        return None
    ip = image_processor
    min_pixels, max_pixels = (_size_value(ip.size, key) for key in _SIZE_KEYS)
    return _QwenPlan(ip.patch_size, ip.merge_size, ip.temporal_patch_size, min_pixels,
                     max_pixels, table)


def _normalisation_table(image_processor) -> Optional[np.ndarray]:
    """The processor's own rescale + normalise applied to every byte value of each channel."""
    import torch

    ip = image_processor
    ramp = torch.arange(256, dtype=torch.uint8).expand(1, 3, 1, 256).contiguous()
    try:
        # Tuples, as the processor passes them after checking its kwargs (its cache hashes them).
        table = ip.rescale_and_normalize(ramp, ip.do_rescale, ip.rescale_factor, ip.do_normalize,
                                         _as_tuple(ip.image_mean), _as_tuple(ip.image_std))
    except Exception:  # noqa: BLE001 - an API this route does not know: use the processor
        return None
    if not isinstance(table, torch.Tensor) or table.dtype != torch.float32 \
            or table.shape != ramp.shape:
        return None
    return np.ascontiguousarray(table[0, :, 0].numpy())


def _size_limits(plan: _QwenPlan, processor_kwargs: Optional[dict]) -> Optional[tuple]:
    """(min_pixels, max_pixels) for these processor kwargs; None for kwargs not covered."""
    if not processor_kwargs:
        return plan.min_pixels, plan.max_pixels
    # Only the documented pixel cap: {'images_kwargs': {'size': {both edges}}}.
    images_kwargs = processor_kwargs.get('images_kwargs')
    if set(processor_kwargs) != {'images_kwargs'} or not isinstance(images_kwargs, dict) \
            or set(images_kwargs) != {'size'} or not isinstance(images_kwargs['size'], dict) \
            or set(images_kwargs['size']) != set(_SIZE_KEYS):
        return None
    limits = tuple(images_kwargs['size'][key] for key in _SIZE_KEYS)
    return limits if all(_is_int(v) and v > 0 for v in limits) else None


def _chat_images(chats) -> Optional[list]:
    """The images of one chat in order, if it holds only text and HxWx3 uint8 image parts."""
    if not isinstance(chats, list) or not all(isinstance(m, dict) for m in chats):
        return None  # a batch, or not a chat
    images = []
    for message in chats:
        content = message.get('content')
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return None
        for part in content:
            if not isinstance(part, dict):
                return None
            kind = part.get('type')
            if kind == 'text' and set(part) == {'type', 'text'} and isinstance(part['text'], str):
                continue
            if kind != 'image' or set(part) != {'type', 'image'} \
                    or not _is_plain_frame(part['image']):
                return None
            images.append(part['image'])
    return images


def _is_plain_frame(image) -> bool:
    """Whether the processor reads `image` as an HxWx3 uint8 frame the fast route can take."""
    # A height of 1, 3 or 4 makes the processor guess channels-first; other memory layouts are
    # rare here and only cost the slow route.
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] not in (1, 3, 4)
            and image.flags.c_contiguous)


def _qwen_inputs(processor, plan: _QwenPlan, chat: list, images: list, limits: tuple):
    """The fast route proper; None when the rendered prompt does not fit the images."""
    import torch
    from transformers import BatchFeature

    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    if not _placeholders_match(processor, prompt, len(images)):
        return None
    sizes = [_resized_size(image, plan, *limits) for image in images]
    grids = [(height // plan.patch, width // plan.patch) for height, width in sizes]
    ids = _prompt_token_ids(processor, prompt, [h * w // plan.merge ** 2 for h, w in grids])
    if ids is None:
        return None
    data = {'input_ids': torch.from_numpy(ids)[None],
            'attention_mask': torch.ones((1, len(ids)), dtype=torch.long)}
    if getattr(processor, 'return_mm_token_type_ids', False):
        data['mm_token_type_ids'] = torch.from_numpy(_modality_types(processor, ids))[None]
    patches = [_image_patches(image, plan, size) for image, size in zip(images, sizes)]
    data['pixel_values'] = patches[0] if len(patches) == 1 else torch.cat(patches)
    data['image_grid_thw'] = torch.tensor([[1, h, w] for h, w in grids], dtype=torch.long)
    return BatchFeature(data)


def _placeholders_match(processor, prompt: str, n_images: int) -> bool:
    """Whether the prompt holds one image placeholder per image and no other media's."""
    image_token = getattr(processor, 'image_token', None)
    if not isinstance(image_token, str) or prompt.count(image_token) != n_images:
        return False  # the processor raises its own error for this, or expands differently
    others = (getattr(processor, name, None) for name in ('video_token', 'audio_token'))
    return not any(isinstance(token, str) and token in prompt for token in others)


def _prompt_token_ids(processor, prompt: str, tokens_per_image: list) -> Optional[np.ndarray]:
    """The prompt's ids with each image placeholder repeated once per visual token."""
    tokenizer = processor.tokenizer
    kwargs = {}
    # As the processor: a template that writes BOS itself gets no second one.
    if tokenizer.bos_token is not None and prompt.startswith(tokenizer.bos_token):
        kwargs['add_special_tokens'] = False
    # Tokenising one placeholder per image, not hundreds, gives the same ids: it is an added
    # token, matched whole before the text around it is split.
    ids = np.asarray(tokenizer(prompt, **kwargs)['input_ids'], dtype=np.int64)
    at_image = ids == processor.image_token_id
    if int(at_image.sum()) != len(tokens_per_image):
        return None
    repeats = np.ones(len(ids), dtype=np.int64)
    repeats[at_image] = tokens_per_image
    return np.repeat(ids, repeats)


def _modality_types(processor, ids: np.ndarray) -> np.ndarray:
    """Per token: 1 for an image token, 2 video, 3 audio, 0 text (the processor's code)."""
    types = np.zeros_like(ids)
    for code, attr in ((1, 'image_token_ids'), (2, 'video_token_ids'), (3, 'audio_token_ids')):
        known = [i for i in getattr(processor, attr, None) or () if isinstance(i, int)]
        if known:
            types[np.isin(ids, known)] = code
    return types


def _resized_size(image: np.ndarray, plan: _QwenPlan, min_pixels: int, max_pixels: int):
    """(height, width) the processor resizes `image` to: on the merge grid, within the limits."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    return smart_resize(image.shape[0], image.shape[1], factor=plan.patch * plan.merge,
                        min_pixels=min_pixels, max_pixels=max_pixels)


def _image_patches(image: np.ndarray, plan: _QwenPlan, size: tuple):
    """One frame's rows of pixel_values, resized to `size` (height, width)."""
    import cv2
    import torch
    from torchvision.transforms.v2 import functional as tvF

    height, width = size
    # A channels-last view of the frame: the uint8 bicubic kernel works in that layout, so the
    # processor's channels-first copy only made it convert twice (same values, tested).
    frame = torch.from_numpy(image).permute(2, 0, 1)[None]
    resized = tvF.resize(frame, [height, width], interpolation=tvF.InterpolationMode.BICUBIC,
                         antialias=True)
    hwc = np.ascontiguousarray(resized[0].permute(1, 2, 0).numpy())
    planes = np.empty((3, height, width), np.float32)
    for channel, byte_plane in enumerate(cv2.split(hwc)):
        # The table holds exactly what the processor's float arithmetic gives each byte value;
        # one lookup replaces its three float passes.
        written = cv2.LUT(byte_plane, plan.table[channel], dst=planes[channel])
        if not np.shares_memory(written, planes):
            planes[channel] = written
    return _merge_ordered_patches(torch.from_numpy(planes), plan)


def _merge_ordered_patches(planes, plan: _QwenPlan):
    """(3, H, W) floats as the vision encoder's rows of flattened patches."""
    import torch

    # Rows: merge windows in raster order, then the window's patches in raster order; each row
    # is channel by channel, the patch repeated `temporal` times (a still image is a clip of
    # identical frames).
    p, m, t = plan.patch, plan.merge, plan.temporal
    channels, height, width = planes.shape
    rows, cols = height // (p * m), width // (p * m)
    # (window row, window col, row in window, col in window, channel, y in patch, x in patch)
    windows = planes.view(channels, rows, m, p, cols, m, p).permute(1, 4, 2, 5, 0, 3, 6)
    out = torch.empty(rows, cols, m, m, channels, t, p, p, dtype=planes.dtype)
    out.copy_(windows.unsqueeze(5).expand(-1, -1, -1, -1, -1, t, -1, -1))
    return out.view(rows * cols * m * m, channels * t * p * p)


def _agrees_with_processor(processor, plan: _QwenPlan) -> bool:
    """Whether the fast route gives the processor's exact tensors on a probe chat."""
    import torch

    from spotvlm_ros.models.prompt import image_part, text_part  # it imports this module

    rng = np.random.default_rng(0)
    # Odd sizes (up- and down-scaled), one at the exact grid, and two of one shape (the
    # processor resizes same-shape images as one batch).
    images = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in ((61, 83, 3), (56, 56, 3), (90, 47, 3), (90, 47, 3))]
    chat = [{'role': 'system', 'content': [text_part('Probe.')]},
            {'role': 'user', 'content': [text_part('What is ahead?')]},
            {'role': 'assistant', 'content': [text_part('A car, 2.4 m away.')]},
            {'role': 'user', 'content': [image_part(images[0], 'probe'), text_part('Close-up:'),
                                         *(image_part(i, 'probe') for i in images[1:]),
                                         text_part('Go?')]}]
    try:
        fast = _qwen_inputs(processor, plan, chat, images, (plan.min_pixels, plan.max_pixels))
        slow = processor.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors='pt')
    except Exception:  # noqa: BLE001 - any failure means: leave it to the processor
        return False
    return (fast is not None and list(fast.keys()) == list(slow.keys())
            and all(torch.equal(fast[k], slow[k]) for k in slow))


def _size_value(size, key: str):
    """One entry of an image processor's `size` (a dict or a SizeDict)."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _as_tuple(value):
    """Lists (unhashable) as tuples, for the settings key."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _is_int(value) -> bool:
    """Whether `value` is an int (an IntEnum counts, a bool does not)."""
    return isinstance(value, int) and not isinstance(value, bool)

