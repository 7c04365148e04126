"""The fast Qwen2-VL input route: the processor's exact tensors, or the processor itself."""

import numpy as np
import pytest

from spotvlm_ros.models import fast_inputs, prompt
from spotvlm_ros.models.fast_inputs import fast_chat_inputs
from spotvlm_ros.models.prompt import build_messages, chat_inputs
from .helpers import QUERY, make_focus, make_frame, make_history


@pytest.fixture
def processor(tiny_ckpt):
    """A processor of its own, free to be changed by the test (the route caches per processor)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_ckpt, local_files_only=True)


def processor_inputs(processor, messages, processor_kwargs=None):
    """What the processor itself makes of the chat."""
    return processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors='pt',
        processor_kwargs=dict(processor_kwargs or {}))


def assert_same_inputs(fast, slow):
    """Same keys in the same order; each tensor the same dtype, shape and values, bit for bit."""
    import torch

    assert fast is not None, 'the fast route was not taken'
    assert list(fast.keys()) == list(slow.keys())
    for key in slow:
        assert fast[key].dtype == slow[key].dtype, key
        assert torch.equal(fast[key], slow[key]), key


def assert_matches_processor(processor, make_messages, processor_kwargs=None):
    # The processor rewrites the chat's content lists, so each route gets a chat of its own.
    fast = fast_chat_inputs(processor, make_messages(), processor_kwargs)
    assert_same_inputs(fast, processor_inputs(processor, make_messages(), processor_kwargs))
    return fast


@pytest.mark.parametrize('height, width', [
    (480, 640), (250, 333), (1080, 1920), (56, 56), (224, 224), (20, 200), (30, 40), (47, 90),
    (700, 5)])
def test_a_frame_alone_gives_the_processors_tensors(processor, height, width):
    frame = make_frame(height, width, seed=height + width)
    fast = assert_matches_processor(processor, lambda: build_messages(frame, QUERY))
    grid = fast['image_grid_thw'][0].tolist()
    assert fast['pixel_values'].shape == (grid[1] * grid[2], 3 * 2 * 14 * 14)


def test_a_frame_with_history_and_a_system_prompt_gives_the_processors_tensors(processor):
    frame = make_frame(480, 640)
    assert_matches_processor(processor, lambda: build_messages(
        frame, QUERY, make_history(3), system_prompt='Answer in five words.'))


def test_a_focus_plan_gives_the_processors_tensors(processor):
    frame = make_frame(1080, 1920, seed=3)
    # Two crops of one shape (the processor resizes those as one batch) and two odd ones.
    focus = make_focus(frame, global_size=(252, 448), crops=[
        (300, 250, 524, 474, 'car'), (900, 350, 1124, 574, 'cyclist'),
        (10, 20, 343, 270, 'traffic light'), (1500, 800, 1517, 1000, 'pole')])
    fast = assert_matches_processor(
        processor, lambda: build_messages(frame, QUERY, make_history(1), focus))
    assert len(fast['image_grid_thw']) == 5


def test_the_documented_pixel_cap_gives_the_processors_tensors(processor):
    frame = make_frame(480, 640)
    cap = {'images_kwargs': {'size': {'shortest_edge': 56 * 56, 'longest_edge': 224 * 224}}}
    fast = assert_matches_processor(processor, lambda: build_messages(frame, QUERY), cap)
    assert fast['image_grid_thw'][0].prod() <= 256


def test_chat_inputs_takes_the_fast_route_for_backend_chats(processor, monkeypatch):
    frame = make_frame(250, 333)
    slow = processor_inputs(processor, build_messages(frame, QUERY, make_history(1)))
    assert fast_inputs._qwen_plan(processor) is not None  # made (and checked) on first use

    def refuse(*args, **kwargs):
        raise AssertionError('the processor was asked to tokenize')

    monkeypatch.setattr(processor, 'apply_chat_template', _render_only(processor, refuse))
    assert_same_inputs(chat_inputs(processor, build_messages(frame, QUERY, make_history(1))), slow)


def _render_only(processor, on_tokenize):
    """processor.apply_chat_template that renders text but calls `on_tokenize` to tokenize."""
    render = processor.apply_chat_template

    def apply_chat_template(*args, tokenize=False, **kwargs):
        if tokenize:
            return on_tokenize(*args, tokenize=tokenize, **kwargs)
        return render(*args, tokenize=False, **kwargs)

    return apply_chat_template


def _resample_bilinear(processor):
    processor.image_processor.resample = 2


def _no_resize(processor):
    processor.image_processor.do_resize = False


def _pil_image_processor(processor):
    from transformers import Qwen2VLImageProcessorPil

    ip = processor.image_processor
    processor.image_processor = Qwen2VLImageProcessorPil(
        size={'shortest_edge': ip.size.shortest_edge, 'longest_edge': ip.size.longest_edge},
        patch_size=ip.patch_size, merge_size=ip.merge_size,
        temporal_patch_size=ip.temporal_patch_size)


@pytest.mark.parametrize('change', [_resample_bilinear, _no_resize, _pil_image_processor])
def test_image_processor_settings_it_does_not_implement_go_to_the_processor(processor, change):
    change(processor)
    frame = make_frame(224, 336)  # on the patch grid: the processor needs that without resizing
    assert fast_chat_inputs(processor, build_messages(frame, QUERY)) is None
    assert_same_inputs(chat_inputs(processor, build_messages(frame, QUERY)),
                       processor_inputs(processor, build_messages(frame, QUERY)))


def _pil_frame(messages):
    from PIL import Image

    part = messages[-1]['content'][0]
    part['image'] = Image.fromarray(part['image'])
    return messages


def _strided_frame(messages):
    part = messages[-1]['content'][0]
    part['image'] = part['image'][:, ::2]  # a view, not C-contiguous
    return messages


@pytest.mark.parametrize('change', [_pil_frame, _strided_frame])
def test_frames_it_does_not_implement_go_to_the_processor(processor, change):
    frame = make_frame(250, 333)
    assert fast_chat_inputs(processor, change(build_messages(frame, QUERY))) is None
    assert_same_inputs(chat_inputs(processor, change(build_messages(frame, QUERY))),
                       processor_inputs(processor, change(build_messages(frame, QUERY))))


@pytest.mark.parametrize('processor_kwargs', [
    {'images_kwargs': {'size': {'longest_edge': 224 * 224}}},  # the processor refuses this
    {'images_kwargs': {'min_pixels': 56 * 56}},
    {'text_kwargs': {'padding': True}},
])
def test_processor_kwargs_it_does_not_implement_go_to_the_processor(processor, processor_kwargs):
    messages = build_messages(make_frame(250, 333), QUERY)
    assert fast_chat_inputs(processor, messages, processor_kwargs) is None


def test_a_batch_goes_to_the_processor(processor):
    chats = [build_messages(make_frame(250, 333, seed=i), QUERY) for i in range(2)]
    assert fast_chat_inputs(processor, chats) is None


def test_a_height_the_processor_reads_as_channels_goes_to_the_processor(processor):
    assert fast_chat_inputs(processor, build_messages(make_frame(3, 300), QUERY)) is None


def test_a_placeholder_typed_in_the_query_gets_the_processors_error(processor):
    messages = build_messages(make_frame(56, 56), f'What is {processor.image_token}?')
    assert fast_chat_inputs(processor, messages) is None
    with pytest.raises(ValueError, match=processor.image_token.replace('|', r'\|')):
        chat_inputs(processor, messages)


def test_a_route_that_disagrees_with_the_processor_is_switched_off(processor, monkeypatch):
    exact = fast_inputs._normalisation_table

    def off_by_one_ulp(image_processor):
        return np.nextafter(exact(image_processor), np.float32(np.inf))

    monkeypatch.setattr(fast_inputs, '_normalisation_table', off_by_one_ulp)
    frame = make_frame(250, 333)
    assert fast_chat_inputs(processor, build_messages(frame, QUERY)) is None
    assert_same_inputs(chat_inputs(processor, build_messages(frame, QUERY)),
                       processor_inputs(processor, build_messages(frame, QUERY)))


def test_a_changed_setting_is_seen_after_the_route_was_made(processor):
    frame = make_frame(250, 333)
    assert fast_chat_inputs(processor, build_messages(frame, QUERY)) is not None
    processor.image_processor.image_mean = [0.5, 0.5, 0.5]  # a new table, checked again
    processor.image_processor.size = {'shortest_edge': 56 * 56, 'longest_edge': 112 * 112}
    assert_matches_processor(processor, lambda: build_messages(frame, QUERY))


def test_the_backends_greedy_answer_is_unchanged(transformers_backend, monkeypatch):
    frame = make_frame(480, 640, seed=7)
    focus = make_focus(frame, global_size=(224, 448),
                       crops=[(0, 0, 112, 112, 'car'), (200, 100, 424, 212, 'pedestrian')])
    cases = [dict(), dict(history=make_history(2)), dict(history=make_history(1), focus=focus)]
    fast = [transformers_backend.answer(frame, QUERY, **case) for case in cases]
    monkeypatch.setattr(prompt, 'fast_chat_inputs', lambda *args, **kwargs: None)
    slow = [transformers_backend.answer(frame, QUERY, **case) for case in cases]
    for f, s in zip(fast, slow):
        assert (f.text, f.token_ids, f.prompt_tokens, f.visual_tokens) == \
            (s.text, s.token_ids, s.prompt_tokens, s.visual_tokens)


def test_the_backend_prepares_through_the_fast_route(transformers_backend, monkeypatch):
    taken = []

    def spy(*args, **kwargs):
        taken.append(result := fast_chat_inputs(*args, **kwargs))
        return result

    monkeypatch.setattr(prompt, 'fast_chat_inputs', spy)
    frame = make_frame(480, 640)
    inputs = transformers_backend.prepare(frame, QUERY, make_history(1))
    assert len(taken) == 1 and taken[0] is not None
    assert_same_inputs(inputs, processor_inputs(transformers_backend.processor,
                                                build_messages(frame, QUERY, make_history(1))))
