"""Edge backends on ONNX Runtime, running a folder written by `onnx_export`.

A whole-model export (vision encoder + decoder) runs without torch modules: the processor
prepares pixels and token ids, the encoder session embeds the images, and a greedy loop
drives the decoder session with its key/value cache kept as ONNX Runtime values (on the
GPU when the CUDA provider is used). A vision-only export runs its encoder in ONNX Runtime
inside the transformers model instead (`OnnxVisionTransformersBackend`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from spotvlm_ros.models.base import EdgeBackend, ModelLoadError
from spotvlm_ros.models.onnx_export import (DECODER_FILE, EMBED_FILE, MANIFEST_FILE, VISION_FILE,
                                            VISION_INPUTS, vision_encoder_inputs)
from spotvlm_ros.models.prompt import chat_inputs
from spotvlm_ros.models.transformers_backend import TransformersBackend

CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'


def select_providers(device: str = 'auto') -> list[str]:
    """ONNX Runtime providers for 'auto' (CUDA when present, else CPU), 'cuda' or 'cpu'."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == 'cpu':
        return [CPU]
    if device.startswith('cuda'):
        if CUDA not in available:
            raise ModelLoadError(f"device '{device}' requested but ONNX Runtime has no {CUDA} "
                                 f"(available: {', '.join(available)})")
        return [CUDA, CPU]
    if device != 'auto':
        raise ValueError(f"unknown device '{device}'; use 'auto', 'cuda' or 'cpu'")
    return [CUDA, CPU] if CUDA in available else [CPU]


def open_session(path: Path, providers: Sequence[str], threads: Optional[int] = None):
    """An InferenceSession for `path`; ModelLoadError names the file if it cannot load."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelLoadError(f"no ONNX model at '{path}'")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
        raise ModelLoadError(
            f"cannot load ONNX model '{path}': {type(exc).__name__}: {exc}") from exc


def read_manifest(folder: Path) -> dict:
    """The export manifest of `folder`; ModelLoadError if it is not an export folder."""
    try:
        return json.loads((folder / MANIFEST_FILE).read_text())
    except OSError as exc:
        raise ModelLoadError(f"not an ONNX export folder: '{folder}' has no {MANIFEST_FILE} "
                             f"(write one with `spotvlm export-onnx`)") from exc
    except ValueError as exc:
        raise ModelLoadError(
            f"broken ONNX export manifest '{folder / MANIFEST_FILE}': {exc}") from exc


class OnnxVisionEncoder:
    """Runs the exported vision encoder: processor pixels and grids in, image embeddings out."""

    def __init__(self, path: Path, vision_config, providers: Sequence[str],
                 threads: Optional[int] = None):
        self.session = open_session(path, providers, threads)
        self.vision_config = vision_config
        self.provider = self.session.get_providers()[0]

    def __call__(self, pixel_values, grid_thw) -> np.ndarray:
        inputs = vision_encoder_inputs(pixel_values, grid_thw, self.vision_config)
        feed = {name: inputs[name].numpy() for name in VISION_INPUTS}
        feed['pixel_values'] = feed['pixel_values'].astype(np.float32)
        return self.session.run(['image_embeds'], feed)[0]


def mrope_positions(input_ids: np.ndarray, image_grid_thw: np.ndarray, image_token_id: int,
                    merge_size: int) -> tuple[np.ndarray, int]:
    """Qwen2.5-VL's 3-D rope positions (3, L) for one prompt, and the text offset after it.

    Text advances all three axes together; an image's tokens take (t, row, column) positions
    from where the text stopped, and the text after it resumes past the image's larger side.
    """
    length = len(input_ids)
    positions = np.zeros((3, length), np.int64)
    is_image = input_ids == image_token_id
    current, i, image = 0, 0, 0
    while i < length:
        if not is_image[i]:
            j = i
            while j < length and not is_image[j]:
                j += 1
            positions[:, i:j] = np.arange(j - i) + current
            current += j - i
        else:
            t, h, w = (int(v) for v in image_grid_thw[image])
            image += 1
            gh, gw = h // merge_size, w // merge_size
            grid = np.meshgrid(np.arange(t), np.arange(gh), np.arange(gw), indexing='ij')
            j = i + t * gh * gw
            positions[:, i:j] = np.stack(grid).reshape(3, -1) + current
            current += max(h, w) // merge_size
        i = j
    return positions, int(positions.max()) + 1 - length


class OnnxBackend(EdgeBackend):
    """Greedy answers from a whole-model ONNX export; `provider` says where it runs."""

    def __init__(
        self,
        model: Union[str, Path],
        device: str = 'auto',
        max_new_tokens: int = 32,
        *,
        threads: Optional[int] = None,
        warmup: bool = True,
        name: Optional[str] = None,
    ):
        super().__init__()
        self.path = Path(model).expanduser()
        self.name = name or str(model)
        self.max_new_tokens = max_new_tokens
        if 'decoder' not in read_manifest(self.path).get('parts', ()):
            raise ModelLoadError(
                f"'{self.path}' holds only the vision encoder; export the whole model, or use "
                f"OnnxVisionTransformersBackend with the transformers checkpoint")
        providers = select_providers(device)
        start = time.perf_counter()
        self._load_files()
        self.vision = OnnxVisionEncoder(self.path / VISION_FILE, self.config.vision_config,
                                        providers, threads)
        self.decoder = open_session(self.path / DECODER_FILE, providers, threads)
        self.provider = self.decoder.get_providers()[0]
        self._device_type = 'cuda' if self.provider == CUDA else 'cpu'
        self._past_names = [i.name for i in self.decoder.get_inputs()[2:]]
        self._past_shape = self.decoder.get_inputs()[2].shape  # [1, kv heads, past, head dim]
        self.load_s = time.perf_counter() - start
        self.warmup_s = self.warmup() if warmup else 0.0

    def _load_files(self) -> None:
        """Config, processor, stop tokens and embedding table from the export folder."""
        from transformers import AutoConfig, AutoProcessor, GenerationConfig

        try:
            self.config = AutoConfig.from_pretrained(self.path, local_files_only=True)
            self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
            eos = GenerationConfig.from_pretrained(self.path, local_files_only=True).eos_token_id
            self.embed_tokens = np.load(self.path / EMBED_FILE, mmap_mode='r')
        except Exception as exc:  # noqa: BLE001 - any failure here means a broken export
            raise ModelLoadError(f"cannot load ONNX export '{self.path}': "
                                 f'{type(exc).__name__}: {exc}') from exc
        self.tokenizer = self.processor.tokenizer
        self.image_token_id = self.config.image_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])

    def encode(self, messages: list):
        """Processor outputs (token ids, pixels, grids) for chat messages, as torch tensors."""
        return chat_inputs(self.processor, messages)

    def prompt_ids(self, inputs) -> np.ndarray:
        """The prompt's token ids."""
        return inputs['input_ids'][0].numpy()

    def prompt_embeddings(self, input_ids: np.ndarray,
                          image_embeds: Optional[np.ndarray]) -> np.ndarray:
        """Token embeddings (1, L, H) with the image placeholders replaced by the encoder's."""
        embeds = np.asarray(self.embed_tokens[input_ids], dtype=np.float32)
        if image_embeds is not None:
            embeds[input_ids == self.image_token_id] = image_embeds
        return embeds[None]

    def empty_cache(self) -> dict:
        """Zero-length key/value inputs for the prefill run, on the session's device."""
        import onnxruntime as ort

        _, heads, _, head_dim = self._past_shape
        empty = np.zeros((1, heads, 0, head_dim), np.float32)
        return {name: ort.OrtValue.ortvalue_from_numpy(empty, self._device_type, 0)
                for name in self._past_names}

    def step(self, embeds: np.ndarray, positions: np.ndarray, cache: dict) -> tuple[int, dict]:
        """One decoder run: the greedy next token, and the grown cache (left on the device)."""
        binding = self.decoder.io_binding()
        binding.bind_cpu_input('inputs_embeds', np.ascontiguousarray(embeds, np.float32))
        binding.bind_cpu_input('position_ids', np.ascontiguousarray(positions, np.int64))
        for name, value in cache.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_output('logits', 'cpu')
        for output in self.decoder.get_outputs()[1:]:
            binding.bind_output(output.name, self._device_type)
        self.decoder.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        token = int(np.argmax(outputs[0].numpy()[0, -1]))
        return token, dict(zip(self._past_names, outputs[1:]))

    def generate(self, inputs, monitor) -> list:
        """The greedy loop: the encoder and prefill, then one decoder run per new token."""
        input_ids = self.prompt_ids(inputs)
        grid = inputs['image_grid_thw'].numpy()
        positions, delta = mrope_positions(input_ids, grid, self.image_token_id,
                                           self.config.vision_config.spatial_merge_size)
        embeds = self.prompt_embeddings(input_ids, self.vision(inputs['pixel_values'], grid))
        token, cache = self.step(embeds, positions[:, None, :], self.empty_cache())
        new_ids = [token]
        monitor.put(np.array([token]))
        while len(new_ids) < self.max_new_tokens and token not in self.eos_ids:
            # After the prompt, all three rope axes advance together, offset by `delta`.
            position = np.full((3, 1, 1), len(input_ids) + len(new_ids) - 1 + delta)
            token, cache = self.step(self.prompt_embeddings(np.array([token]), None),
                                     position, cache)
            new_ids.append(token)
            monitor.put(np.array([token]))
        monitor.end()
        return new_ids

    def release(self) -> None:
        """Release the ONNX Runtime sessions."""
        self.vision = self.decoder = None


def onnx_vision_module(encoder: OnnxVisionEncoder, visual):
    """A stand-in for `model.model.visual` that runs `encoder` and returns torch tensors."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    class OnnxVisual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.spatial_merge_size = visual.spatial_merge_size
            # get_image_features casts pixels to `visual.dtype`; keep answering it.
            self.register_buffer('dtype_probe', torch.zeros((), dtype=visual.dtype),
                                 persistent=False)

        @property
        def dtype(self):
            return self.dtype_probe.dtype

        def forward(self, pixel_values, grid_thw=None, **kwargs):
            embeds = encoder(pixel_values.float().cpu(), grid_thw.cpu())
            out = torch.from_numpy(embeds).to(pixel_values.device, pixel_values.dtype)
            return BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=out)

    return OnnxVisual()


class OnnxVisionTransformersBackend(TransformersBackend):
    """A transformers model whose vision encoder runs in ONNX Runtime (vision-only exports)."""

    def __init__(self, model: Union[str, Path], onnx_dir: Union[str, Path], device: str = 'cpu',
                 dtype: str = 'float32', max_new_tokens: int = 32, *,
                 threads: Optional[int] = None, warmup: bool = True, **kwargs):
        super().__init__(model, device, dtype, max_new_tokens, warmup=False, threads=threads,
                         **kwargs)
        onnx_dir = Path(onnx_dir).expanduser()
        read_manifest(onnx_dir)
        providers = select_providers('cuda' if self.device.startswith('cuda') else 'cpu')
        encoder = OnnxVisionEncoder(onnx_dir / VISION_FILE, self.model.config.vision_config,
                                    providers, threads)
        self.provider = encoder.provider
        self.model.model.visual = onnx_vision_module(encoder, self.model.model.visual)
        self.warmup_s = self.warmup() if warmup else 0.0


def make_onnx_backend(model: Union[str, Path], device: str = 'auto', dtype: str = 'auto',
                      max_new_tokens: int = 32, *, checkpoint: Optional[str] = None,
                      **kwargs) -> EdgeBackend:
    """The backend for an export folder: whole model, or vision encoder + `checkpoint`."""
    folder = Path(model).expanduser()
    manifest = read_manifest(folder)
    if 'decoder' in manifest.get('parts', ()):
        exported = manifest.get('dtype', 'float32')
        if dtype not in ('auto', exported):
            raise ModelLoadError(f"'{folder}' was exported as {exported}, not {dtype}")
        return OnnxBackend(folder, device, max_new_tokens, **kwargs)
    torch_dtype = 'float32' if dtype == 'auto' else dtype
    return OnnxVisionTransformersBackend(checkpoint or manifest.get('source'), folder, device,
                                         torch_dtype, max_new_tokens, **kwargs)
