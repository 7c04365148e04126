"""Loading fails fast, with a message that names what was asked for."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spotvlm_ros.models.base import ModelLoadError
from spotvlm_ros.models.checkpoint import looks_like_path, resolve_checkpoint


def broken_copy(tiny_ckpt: Path, tmp_path: Path, damage) -> Path:
    """A copy of the tiny checkpoint with one file damaged by `damage(folder)`."""
    folder = tmp_path / 'broken'
    shutil.copytree(tiny_ckpt, folder)
    damage(folder)
    return folder


def load(model, **kwargs):
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    return TransformersBackend(model, warmup=False, **kwargs)


@pytest.mark.parametrize('model, is_path', [
    ('Qwen/Qwen2.5-VL-3B-Instruct', False), ('gpt2', False), ('/opt/models/qwen', True),
    ('./qwen', True), ('a/b/c', True), ('~/qwen', True), ('bad id', True)])
def test_path_or_hub_id(model, is_path):
    assert looks_like_path(model) == is_path


def test_missing_folder_names_the_path(tmp_path):
    missing = tmp_path / 'no-such-model'
    with pytest.raises(ModelLoadError, match='does not exist') as err:
        load(str(missing))
    assert str(missing) in str(err.value)


def test_folder_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match='no config.json') as err:
        load(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize('damage, reason', [
    (lambda f: (f / 'config.json').write_text('{"model_type": "qwen2_5_vl", '),
     'JSON|json|Expecting'),
    (lambda f: (f / 'model.safetensors').write_bytes(b'\0' * 64), 'safetensors|header|deserializ'),
    (lambda f: (f / 'model.safetensors').unlink(), 'model.safetensors|no file named'),
    (lambda f: (f / 'tokenizer.json').unlink(), 'tokenizer has no vocabulary'),
])
def test_broken_checkpoint_names_the_path(tiny_ckpt, tmp_path, damage, reason):
    folder = broken_copy(tiny_ckpt, tmp_path, damage)
    with pytest.raises(ModelLoadError, match=reason) as err:
        load(folder)
    assert f"cannot load checkpoint '{folder}'" in str(err.value)


def test_unknown_hub_id_fails_fast_offline():
    start = time.monotonic()
    expected = "hub model 'nobody-here/no-such-vlm'.*downloads are off"
    with pytest.raises(ModelLoadError, match=expected):
        load('nobody-here/no-such-vlm')
    assert time.monotonic() - start < 5


def test_unknown_hub_id_fails_fast_when_download_is_allowed_but_unreachable(tmp_path):
    # A fresh interpreter: the hub library reads its endpoint and offline flag at import.
    env = {k: v for k, v in os.environ.items() if k != 'HF_HUB_OFFLINE'}
    env.update(HF_ENDPOINT='http://127.0.0.1:9', HF_HOME=str(tmp_path / 'hf'),
               PYTHONPATH=os.pathsep.join(sys.path))
    code = ('from spotvlm_ros.models.checkpoint import resolve_checkpoint\n'
            'from spotvlm_ros.models.base import ModelLoadError\n'
            'try:\n'
            "    resolve_checkpoint('nobody-here/no-such-vlm', allow_download=True)\n"
            'except ModelLoadError as exc:\n'
            '    print(exc)\n')
    start = time.monotonic()
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert time.monotonic() - start < 30
    expected = "cannot load hub model 'nobody-here/no-such-vlm': download failed"
    assert expected in done.stdout, done.stderr


def test_cached_hub_id_resolves_to_its_snapshot(tiny_ckpt, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # Lay the tiny checkpoint out the way the hub cache stores a downloaded snapshot.
    repo = tmp_path / 'hub' / 'models--local--tiny-vlm'
    snapshot = repo / 'snapshots' / ('0' * 40)
    shutil.copytree(tiny_ckpt, snapshot)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('0' * 40)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    assert resolve_checkpoint('local/tiny-vlm') == snapshot


def test_unavailable_device_is_a_load_error(tiny_ckpt):
    import torch

    if torch.cuda.is_available():
        assert load(tiny_ckpt, device='cuda').device == 'cuda'
    else:
        with pytest.raises(ModelLoadError, match="device 'cuda'"):
            load(tiny_ckpt, device='cuda')
