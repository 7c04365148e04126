"""One place that turns a backend kind and its parameters into an edge backend."""

from __future__ import annotations

from spotvlm_ros.models.base import EdgeBackend

KINDS = ('transformers', 'onnx')


def make_backend(kind: str, **params) -> EdgeBackend:
    """Load a backend: 'transformers' (a checkpoint) or 'onnx' (an `export-onnx` folder).

    `params` are the backend's own keyword arguments (model, device, dtype,
    max_new_tokens, ...); heavy libraries are imported only for the kind asked for.
    """
    if kind == 'transformers':
        from spotvlm_ros.models.transformers_backend import TransformersBackend

        return TransformersBackend(**params)
    if kind == 'onnx':
        from spotvlm_ros.models.onnx_backend import make_onnx_backend

        return make_onnx_backend(**params)
    raise ValueError(f"unknown backend kind '{kind}'; use one of {', '.join(KINDS)}")
