"""The transformers backend: prompts, token counts, timings, streaming, threads."""

import threading

import numpy as np
import pytest

from spotvlm_ros.models.prompt import crop_caption
from .helpers import QUERY, make_focus, make_frame, make_history


def turn_tokens(tokenizer, turn) -> int:
    """Tokens one history turn adds in the Qwen chat format."""
    text = (f'<|im_start|>user\n{turn.query}<|im_end|>\n'
            f'<|im_start|>assistant\n{turn.prompt_text()}<|im_end|>\n')
    return len(tokenizer(text)['input_ids'])


def prompt_text(backend, frame, **kwargs) -> str:
    inputs = backend.prepare(frame, QUERY, **kwargs)
    return backend.tokenizer.decode(inputs['input_ids'][0])


def test_answer_reports_text_timings_and_counts(transformers_backend):
    result = transformers_backend.answer(make_frame(224, 224), QUERY)
    t = result.timings
    assert isinstance(result.text, str)
    assert 0 < t.preprocess_s and 0 < t.prefill_s and 0 <= t.decode_s
    assert t.preprocess_s + t.prefill_s + t.decode_s <= t.total_s
    # 224x224 is 8x8 merged 28-pixel patches.
    assert result.visual_tokens == 64
    assert result.prompt_tokens > result.visual_tokens
    assert 1 <= result.new_tokens == len(result.token_ids) <= 16


@pytest.mark.parametrize('height, width, tokens', [(224, 224, 64), (336, 448, 192), (56, 56, 4)])
def test_visual_tokens_follow_frame_size(transformers_backend, height, width, tokens):
    assert transformers_backend.answer(make_frame(height, width), QUERY).visual_tokens == tokens


def test_history_turns_become_chat_turns(transformers_backend):
    frame = make_frame(224, 224)
    history = make_history(2)
    plain = transformers_backend.answer(frame, QUERY)
    with_history = transformers_backend.answer(frame, QUERY, history=history)
    added = sum(turn_tokens(transformers_backend.tokenizer, turn) for turn in history)
    assert with_history.prompt_tokens - plain.prompt_tokens == added
    assert with_history.visual_tokens == plain.visual_tokens  # history is text-only
    text = prompt_text(transformers_backend, frame, history=history)
    assert '<|im_start|>assistant\ncloud, 2.4 s ago:\nA car is crossing the left lane 0.<|im_end|>' in text
    assert text.index('(0)') < text.index('(1)') < text.index(QUERY)  # oldest first, query last


def test_focus_crops_are_extra_images_with_labels(transformers_backend):
    frame = make_frame(448, 672)
    focus = make_focus(frame, global_size=(224, 448),
                       crops=[(0, 0, 112, 112, 'car'), (200, 100, 424, 212, 'pedestrian')])
    full = transformers_backend.answer(frame, QUERY)
    focused = transformers_backend.answer(frame, QUERY, focus=focus)
    # 8x16 global view, 4x4 and 4x8 crops.
    assert focused.visual_tokens == 128 + 16 + 32
    assert full.visual_tokens == 16 * 24
    assert focused.visual_tokens < full.visual_tokens / 2
    text = prompt_text(transformers_backend, frame, focus=focus)
    assert text.count('<|vision_start|>') == 3
    car, pedestrian = text.index(crop_caption('car')), text.index(crop_caption('pedestrian'))
    assert text.index('<|vision_start|>') < car < pedestrian < text.index(QUERY)


def test_system_prompt_replaces_the_default(transformers_backend):
    text = prompt_text(transformers_backend, make_frame(56, 56),
                       system_prompt='Answer in five words.')
    assert text.startswith('<|im_start|>system\nAnswer in five words.<|im_end|>')
    assert 'You are a helpful assistant.' not in text


def test_decoding_is_greedy_and_repeatable(transformers_backend):
    frame = make_frame(224, 224, seed=5)
    first = transformers_backend.answer(frame, QUERY)
    assert transformers_backend.answer(frame, QUERY).token_ids == first.token_ids
    other = transformers_backend.answer(make_frame(224, 224, seed=6), 'Is it safe to go?')
    assert other.prompt_tokens != first.prompt_tokens


def test_on_text_streams_growing_prefixes(transformers_backend):
    parts = []
    result = transformers_backend.answer(make_frame(224, 224), QUERY, on_text=parts.append)
    assert parts and parts[-1] == result.text
    assert all(b.startswith(a.rstrip()) for a, b in zip(parts, parts[1:]))


def test_raising_in_on_text_cancels(transformers_backend):
    class Cancelled(Exception):
        pass

    def cancel(_text):
        raise Cancelled

    with pytest.raises(Cancelled):
        transformers_backend.answer(make_frame(224, 224), QUERY, on_text=cancel)
    assert transformers_backend.answer(make_frame(56, 56), QUERY).new_tokens > 0  # still usable


def test_concurrent_callers_get_their_own_answers(transformers_backend):
    frames = [make_frame(112, 112, seed=s) for s in range(4)]
    expected = [transformers_backend.answer(f, QUERY).token_ids for f in frames]
    got = [None] * len(frames)

    def run(i):
        got[i] = transformers_backend.answer(frames[i], QUERY).token_ids

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(frames))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert got == expected


def test_max_new_tokens_bounds_the_answer(tiny_ckpt):
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_ckpt, max_new_tokens=3, warmup=False)
    result = backend.answer(make_frame(224, 224), QUERY)
    assert result.new_tokens <= 3
    backend.close()


def test_dtype_is_applied(tiny_ckpt):
    import torch

    from spotvlm_ros.models.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_ckpt, dtype='bfloat16', max_new_tokens=4, warmup=False)
    assert backend.model.dtype == torch.bfloat16
    assert backend.answer(make_frame(224, 224), QUERY).visual_tokens == 64
    backend.close()
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        TransformersBackend(tiny_ckpt, dtype='float8', warmup=False)


def test_processor_kwargs_cap_the_image_size(tiny_ckpt):
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    cap = {'images_kwargs': {'size': {'shortest_edge': 56 * 56, 'longest_edge': 224 * 224}}}
    backend = TransformersBackend(tiny_ckpt, processor_kwargs=cap, warmup=False)
    assert backend.answer(make_frame(448, 448), QUERY).visual_tokens == 64  # not 256
    assert backend.answer(make_frame(448, 448), QUERY).visual_tokens == 64  # cap kept
    backend.close()


@pytest.mark.parametrize('bad', [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((10, 10, 4), np.uint8)])
def test_bad_frames_are_refused(transformers_backend, bad):
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        transformers_backend.answer(bad, QUERY)


@pytest.mark.parametrize('height, width', [(480, 640), (1080, 1920)])
def test_frames_go_to_the_processor_as_arrays_with_the_pixels_of_pil_images(
        transformers_backend, height, width):
    import torch
    from PIL import Image

    from spotvlm_ros.models.prompt import build_messages, chat_inputs

    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    messages = build_messages(frame, QUERY)
    assert messages[-1]['content'][0]['image'] is frame  # no copy on the way
    as_pil = build_messages(frame, QUERY)
    as_pil[-1]['content'][0]['image'] = Image.fromarray(frame)
    arrays = chat_inputs(transformers_backend.processor, messages)
    pils = chat_inputs(transformers_backend.processor, as_pil)
    assert arrays.keys() == pils.keys()
    assert all(torch.equal(arrays[k], pils[k]) for k in arrays)


def test_threads_sets_the_processes_torch_pool(tiny_ckpt):
    import torch

    from spotvlm_ros.models.transformers_backend import TransformersBackend

    before = torch.get_num_threads()
    try:
        TransformersBackend(tiny_ckpt, threads=2, warmup=False)
        assert torch.get_num_threads() == 2
        TransformersBackend(tiny_ckpt, warmup=False)  # None: leaves the pool as it is
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
