"""The training command is deterministic: the same seed gives the same weights, bit for bit."""

import pytest

from spotvlm_ros.training.pool import build_pool
from spotvlm_ros.training.train import train


@pytest.fixture(scope='module')
def pool():
    return build_pool([0, 1], frame_step=50)


def weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / 'model.safetensors')


def run(tmp_path, name, role, seed, pool, **options):
    out = tmp_path / name
    train(role, out, steps=3, batch_size=2, lr=1e-3, seed=seed, pool=pool, log=lambda m: None,
          **options)
    return weights(out)


@pytest.mark.parametrize('role,options', [('edge', {}), ('edge', {'loss_per': 'sample'}),
                                          ('cloud', {'key_weight': 5.0, 'zoom_curriculum': 0.7})])
def test_same_seed_same_weights_other_seed_other_weights(tmp_path, pool, role, options):
    import torch

    first = run(tmp_path, 'a', role, 0, pool, **options)
    again = run(tmp_path, 'b', role, 0, pool, **options)
    other = run(tmp_path, 'c', role, 1, pool, **options)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_stop_after_keeps_the_planned_schedule(tmp_path, pool):
    summary = train('edge', tmp_path / 'e', steps=3, batch_size=1, lr=1e-3, seed=0, pool=pool,
                    log=lambda m: None, stop_after=2)
    assert (summary['steps_planned'], summary['steps']) == (3, 2)


def test_whole_words_get_one_id_each_starting_from_their_pieces(tmp_path, pool):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from spotvlm_ros.training.checkpoint import add_whole_words

    summary = train('edge', tmp_path / 'w', steps=1, batch_size=1, lr=1e-3, seed=0, pool=pool,
                    log=lambda m: None, whole_words=['green', 'yellow', 'red'])
    assert summary['whole_words_added'] == ['green', 'yellow']  # 'red' was already whole
    processor = AutoProcessor.from_pretrained(tmp_path / 'w', local_files_only=True)
    tokenizer = processor.tokenizer
    assert len(tokenizer('green light', add_special_tokens=False)['input_ids']) == 2
    assert tokenizer.decode(tokenizer('yellow, go.')['input_ids']) == 'yellow, go.'
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / 'w', local_files_only=True)
    assert model.get_input_embeddings().num_embeddings > max(
        tokenizer.convert_tokens_to_ids(['green', 'yellow']))

    # A fresh id starts as the mean of its pieces, in and out; other rows are untouched.
    pieces = processor.tokenizer('amber', add_special_tokens=False)['input_ids']
    before = model.get_output_embeddings().weight.detach().clone()
    assert add_whole_words(processor, model, ['amber']) == ['amber']
    (index,) = processor.tokenizer.convert_tokens_to_ids(['amber'])
    for table in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert torch.allclose(table[index], table[pieces].mean(0))
    assert torch.equal(model.get_output_embeddings().weight[:len(before)], before)
