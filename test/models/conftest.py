"""Shared fixtures for the model tests: one tiny checkpoint, its backends and ONNX export."""

from pathlib import Path

import pytest


@pytest.fixture(scope='session', autouse=True)
def few_threads():
    """The machine is shared: keep torch to one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope='session')
def tiny_ckpt() -> Path:
    """The cached tiny Qwen2.5-VL checkpoint (built on first use)."""
    from spotvlm_ros.models.tiny import tiny_checkpoint

    return tiny_checkpoint()


@pytest.fixture(scope='session')
def transformers_backend(tiny_ckpt):
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_ckpt, device='cpu', dtype='float32', max_new_tokens=16)
    yield backend
    backend.close()


@pytest.fixture(scope='session')
def onnx_dir(tiny_ckpt, tmp_path_factory) -> Path:
    """A whole-model ONNX export of the tiny checkpoint, made once per session."""
    from spotvlm_ros.models.onnx_export import export_model

    return export_model(tiny_ckpt, tmp_path_factory.mktemp('onnx') / 'tiny')


@pytest.fixture(scope='session')
def onnx_backend(onnx_dir):
    from spotvlm_ros.models.onnx_backend import OnnxBackend

    backend = OnnxBackend(onnx_dir, device='auto', max_new_tokens=16, threads=1)
    yield backend
    backend.close()
