"""Edge model backends behind one small base class.

base (EdgeBackend, EdgeResult, ModelLoadError), factory.make_backend, and the backends:
transformers_backend (any image-text-to-text checkpoint) and onnx_backend (a folder written by
onnx_export). tiny builds random-weight Qwen2.5-VL checkpoints offline for tests. Modules are
imported on use, so importing this package costs nothing.
"""
