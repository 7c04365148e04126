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
