"""Edge backend on Hugging Face transformers: any image-text-to-text chat checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

from spotvlm_ros.models.base import EdgeBackend, ModelLoadError
from spotvlm_ros.models.checkpoint import resolve_checkpoint
from spotvlm_ros.models.prompt import chat_inputs

_DTYPES = {'float32': 'float32', 'fp32': 'float32', 'float16': 'float16', 'fp16': 'float16',
           'half': 'float16', 'bfloat16': 'bfloat16', 'bf16': 'bfloat16'}


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'; others pass through."""
    import torch

    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: Union[str, Any], device: str):
    """A torch dtype from a name; 'auto' is bfloat16/float16 on a GPU and float32 on a CPU."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == 'auto':
        if not device.startswith('cuda'):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; use one of {sorted(set(_DTYPES))} or 'auto'")
    return getattr(torch, _DTYPES[dtype])


def model_class(config):
    """AutoModelForImageTextToText when it knows the config, else the checkpoint's own class."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return transformers.AutoModelForImageTextToText
    for arch in getattr(config, 'architectures', None) or ():
        if (cls := getattr(transformers, arch, None)) is not None:
            return cls
    raise ModelLoadError(f"no image-text-to-text model class for model_type '{config.model_type}'")


def image_token_id(config, processor) -> Optional[int]:
    """The id of the placeholder token that stands for one visual token, if the model has one."""
    for owner, attr in ((config, 'image_token_id'), (config, 'image_token_index'),
                        (processor, 'image_token_id')):
        if isinstance(value := getattr(owner, attr, None), int):
            return value
    return None


def check_processor(config, processor) -> None:
    """Raise ModelLoadError if the processor cannot be the one this model was trained with."""
    tokenizer = getattr(processor, 'tokenizer', processor)
    # A checkpoint missing its tokenizer files still loads, as an empty vocabulary.
    if not tokenizer('a car', add_special_tokens=False)['input_ids']:
        raise ModelLoadError('the tokenizer has no vocabulary (tokenizer files missing?)')
    model_id = image_token_id(config, None)
    processor_id = getattr(processor, 'image_token_id', None)
    if model_id is not None and isinstance(processor_id, int) and model_id != processor_id:
        raise ModelLoadError(f"the processor's image token id {processor_id} is not the model's "
                             f'{model_id}')


def load_processor_and_model(path: Path, device: str, torch_dtype,
                             attn_implementation: Optional[str] = None):
    """Load processor and model from a local folder; ModelLoadError names the folder."""
    from transformers import AutoConfig, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        check_processor(config, processor)
        kwargs = {'dtype': torch_dtype, 'local_files_only': True}
        if attn_implementation:
            kwargs['attn_implementation'] = attn_implementation
        model = model_class(config).from_pretrained(path, **kwargs)
    except ModelLoadError as exc:
        raise ModelLoadError(f"cannot load checkpoint '{path}': {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure here means a broken checkpoint
        raise ModelLoadError(
            f"cannot load checkpoint '{path}': {type(exc).__name__}: {exc}") from exc
    return processor, model.to(device).eval()


def greedy_generation_config(model, max_new_tokens: int):
    """The model's generation config with sampling and its penalties switched off."""
    gen = model.generation_config.__class__.from_dict(model.generation_config.to_dict())
    gen.update(do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None,
               repetition_penalty=None, max_new_tokens=max_new_tokens)
    if gen.pad_token_id is None:
        eos = gen.eos_token_id
        gen.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
    return gen


class TransformersBackend(EdgeBackend):
    """Answers with `model.generate` of a transformers checkpoint, using its chat template.

    `model` is a local checkpoint folder or a hub id already in the local cache (set
    `allow_download` to fetch it). `generate_kwargs` override the greedy defaults and
    `processor_kwargs` go to the processor, e.g. a pixel cap per image for Qwen2.5-VL:
    {'images_kwargs': {'size': {'shortest_edge': 3136, 'longest_edge': 448 * 448}}}.
    """

    streams_prompt = True  # generate() hands its streamer the prompt first

    def __init__(
        self,
        model: Union[str, Path],
        device: str = 'cpu',
        dtype: str = 'float32',
        max_new_tokens: int = 32,
        *,
        allow_download: bool = False,
        attn_implementation: Optional[str] = None,
        generate_kwargs: Optional[dict] = None,
        processor_kwargs: Optional[dict] = None,
        warmup: bool = True,
        name: Optional[str] = None,
        threads: Optional[int] = None,
    ):
        super().__init__()
        self.name = name or str(model)
        self.path = resolve_checkpoint(str(model), allow_download=allow_download)
        if threads:  # torch's pool is the process's: the node's own process sets it once
            import torch

            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs = dict(generate_kwargs or {})
        self.processor_kwargs = dict(processor_kwargs or {})
        start = time.perf_counter()
        self.processor, self.model = load_processor_and_model(
            self.path, self.device, self.torch_dtype, attn_implementation)
        self.tokenizer = getattr(self.processor, 'tokenizer', self.processor)
        self.image_token_id = image_token_id(self.model.config, self.processor)
        self.generation_config = greedy_generation_config(self.model, max_new_tokens)
        self.load_s = time.perf_counter() - start
        self.warmup_s = self.warmup() if warmup else 0.0

    def encode(self, messages: list):
        """The model inputs (token ids, pixels, grids) for chat messages, on the model's device."""
        inputs = chat_inputs(self.processor, messages, self.processor_kwargs)
        return inputs.to(self.device, dtype=self.torch_dtype)

    def generate(self, inputs, monitor) -> list:
        """`model.generate`, greedy, streaming into `monitor`; the new token ids."""
        import torch

        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=self.generation_config,
                                         streamer=monitor, **self.generate_kwargs)
        return output[0, inputs['input_ids'].shape[1]:].tolist()

    def prompt_ids(self, inputs):
        """The prompt's token ids."""
        return inputs['input_ids'][0]

    def release(self) -> None:
        """Drop the model and free GPU memory it held."""
        import torch

        self.model = None
        if self.device.startswith('cuda'):
            torch.cuda.empty_cache()
