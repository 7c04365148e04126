"""ONNX export and the ONNX Runtime backends: numerics, greedy-token parity, loading."""

import json

import numpy as np
import pytest

from spotvlm_ros.models.base import ModelLoadError
from spotvlm_ros.models.onnx_export import (DECODER_FILE, MANIFEST_FILE, VISION_FILE,
                                            VISION_INPUTS, vision_encoder_inputs)

from .helpers import QUERY, make_focus, make_frame, make_history


@pytest.fixture(scope='module')
def torch_model(transformers_backend):
    return transformers_backend.model


@pytest.fixture(scope='module')
def vision_session(onnx_dir):
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_dir / VISION_FILE), providers=['CPUExecutionProvider'])


def image_batch(processor, sizes):
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    out = processor.image_processor(images=images, return_tensors='pt')
    return out['pixel_values'], out['image_grid_thw']


# Sizes other than the export sample: square, wide, tall, several images at once, and
# large enough for several attention windows.
@pytest.mark.parametrize('sizes', [[(224, 224)], [(336, 672)], [(448, 112)], [(504, 504)],
                                   [(224, 224), (56, 168), (112, 112)]])
def test_vision_encoder_matches_torch(torch_model, transformers_backend, vision_session, sizes):
    import torch

    pixel_values, grid = image_batch(transformers_backend.processor, sizes)
    with torch.no_grad():
        expected = torch_model.model.visual(pixel_values, grid_thw=grid).pooler_output.numpy()
    inputs = vision_encoder_inputs(pixel_values, grid, torch_model.config.vision_config)
    got = vision_session.run(None, {name: inputs[name].numpy() for name in VISION_INPUTS})[0]
    tokens = sum(h * w // 28 ** 2 for h, w in sizes)
    assert got.shape == expected.shape == (tokens, torch_model.config.text_config.hidden_size)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)


def test_decoder_logits_match_torch_at_prefill_and_decode(torch_model, onnx_backend,
                                                          transformers_backend):
    import torch

    from spotvlm_ros.models.onnx_backend import mrope_positions

    inputs = transformers_backend.prepare(make_frame(112, 224), QUERY, history=make_history(1))
    with torch.no_grad():
        full = torch_model(**inputs).logits[0].numpy()  # next-token logits at every position
    ids, grid = inputs['input_ids'][0].numpy(), inputs['image_grid_thw'].numpy()
    positions, _ = mrope_positions(ids, grid, torch_model.config.image_token_id, 2)
    embeds = onnx_backend.prompt_embeddings(ids, onnx_backend.vision(inputs['pixel_values'], grid))
    session = onnx_backend.decoder
    cache = {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
             for i in session.get_inputs()[2:]}
    split = len(ids) - 3  # prefill all but three tokens, then feed those one at a time
    for start, stop in [(0, split), (split, split + 1), (split + 1, split + 2),
                        (split + 2, len(ids))]:
        feed = {'inputs_embeds': embeds[:, start:stop],
                'position_ids': positions[:, None, start:stop], **cache}
        outputs = session.run(None, feed)
        np.testing.assert_allclose(outputs[0][0, -1], full[stop - 1], atol=2e-5, rtol=1e-4)
        cache = dict(zip(cache, outputs[1:]))
        assert all(value.shape[2] == stop for value in cache.values())


def test_mrope_positions_match_transformers(torch_model, transformers_backend):
    from spotvlm_ros.models.onnx_backend import mrope_positions

    frame = make_frame(336, 448)
    inputs = transformers_backend.prepare(frame, QUERY, history=make_history(1),
                                          focus=make_focus(frame, crops=[(0, 0, 112, 56, 'car')]))
    expected, delta = torch_model.model.get_rope_index(
        inputs['input_ids'], inputs['mm_token_type_ids'], image_grid_thw=inputs['image_grid_thw'])
    got, got_delta = mrope_positions(inputs['input_ids'][0].numpy(),
                                     inputs['image_grid_thw'].numpy(),
                                     torch_model.config.image_token_id, 2)
    np.testing.assert_array_equal(got, expected[:, 0].numpy())
    assert got_delta == int(delta)


def parity_cases():
    frame = make_frame(224, 336, seed=1)
    focus = make_focus(frame, global_size=(112, 168),
                       crops=[(0, 0, 112, 56, 'car'), (100, 100, 300, 200, 'bus')])
    return frame, [dict(), dict(history=make_history(2)), dict(focus=focus),
                   dict(history=make_history(1), focus=focus, system_prompt='Be brief.')]


def test_onnx_backend_gives_the_same_greedy_tokens(transformers_backend, onnx_backend):
    frame, cases = parity_cases()
    for kwargs in cases:
        expected = transformers_backend.answer(frame, QUERY, **kwargs)
        got = onnx_backend.answer(frame, QUERY, **kwargs)
        assert got.token_ids == expected.token_ids, kwargs
        assert (got.text, got.visual_tokens, got.prompt_tokens) == \
            (expected.text, expected.visual_tokens, expected.prompt_tokens)
        t = got.timings
        assert 0 < t.prefill_s and t.preprocess_s + t.prefill_s + t.decode_s <= t.total_s
    # The random model must not be degenerate, or equal tokens would prove little.
    tokens = set()
    for kwargs in cases:
        tokens.update(transformers_backend.answer(frame, QUERY, **kwargs).token_ids)
    assert len(tokens) > 3


def test_onnx_backend_says_which_provider_it_got(onnx_backend):
    import onnxruntime as ort

    has_cuda = 'CUDAExecutionProvider' in ort.get_available_providers()
    expected = 'CUDAExecutionProvider' if has_cuda else 'CPUExecutionProvider'
    assert onnx_backend.provider == expected == onnx_backend.decoder.get_providers()[0]


def test_onnx_backend_streams_text(onnx_backend):
    parts = []
    result = onnx_backend.answer(make_frame(112, 112), QUERY, on_text=parts.append)
    assert parts and parts[-1] == result.text


def test_vision_only_dynamo_export_runs_inside_transformers(tiny_ckpt, transformers_backend,
                                                            tmp_path, capsys):
    from spotvlm_ros.models.factory import make_backend
    from spotvlm_ros.models.onnx_backend import OnnxBackend, OnnxVisionTransformersBackend
    from spotvlm_ros.models.onnx_export import main

    out = tmp_path / 'vision-only'
    assert main([str(tiny_ckpt), str(out), '--vision-only', '--exporter', 'dynamo']) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert (manifest['parts'], manifest['exporter']) == (['vision_encoder'], 'dynamo')
    assert (out / VISION_FILE).is_file() and not (out / DECODER_FILE).exists()
    with pytest.raises(ModelLoadError, match='only the vision encoder'):
        OnnxBackend(out)
    backend = make_backend('onnx', model=out, device='cpu', max_new_tokens=16, threads=1)
    assert isinstance(backend, OnnxVisionTransformersBackend)
    assert backend.provider == 'CPUExecutionProvider'
    frame, cases = parity_cases()
    for kwargs in cases[::2]:
        assert backend.answer(frame, QUERY, **kwargs).token_ids == \
            transformers_backend.answer(frame, QUERY, **kwargs).token_ids
    backend.close()


def test_factory_picks_the_backend(tiny_ckpt, onnx_dir):
    from spotvlm_ros.models.factory import make_backend
    from spotvlm_ros.models.onnx_backend import OnnxBackend
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    backend = make_backend('transformers', model=tiny_ckpt, warmup=False)
    assert isinstance(backend, TransformersBackend)
    assert isinstance(make_backend('onnx', model=onnx_dir, warmup=False, threads=1), OnnxBackend)
    with pytest.raises(ModelLoadError, match='exported as float32'):
        make_backend('onnx', model=onnx_dir, dtype='float16')
    with pytest.raises(ValueError, match="unknown backend kind 'tensorrt'"):
        make_backend('tensorrt', model=tiny_ckpt)


def test_missing_or_broken_exports_name_the_path(onnx_dir, tmp_path):
    import shutil

    from spotvlm_ros.models.onnx_backend import OnnxBackend

    with pytest.raises(ModelLoadError, match='not an ONNX export folder') as err:
        OnnxBackend(tmp_path / 'nothing')
    assert str(tmp_path / 'nothing') in str(err.value)
    broken = tmp_path / 'broken'
    shutil.copytree(onnx_dir, broken)
    (broken / DECODER_FILE).write_bytes(b'not a model')
    with pytest.raises(ModelLoadError, match='cannot load ONNX model') as err:
        OnnxBackend(broken, warmup=False)
    assert str(broken / DECODER_FILE) in str(err.value)


def test_export_refuses_other_architectures(tmp_path):
    from spotvlm_ros.models.onnx_export import export_model

    with pytest.raises(ModelLoadError, match='does not exist'):
        export_model(tmp_path / 'missing', tmp_path / 'out')
