"""Split execution of a VLM: its vision encoder on the edge, its language model in the cloud.

The partitioned baseline ("Distributed VLM") sends the frame's visual tokens, not the frame:
`encode_frame` runs the checkpoint's own preprocessing and vision encoder, and
`answer_from_tokens` runs the decoder on tokens that came over the link, through the
checkpoint's own prompt path, so the split answer is the unsplit one when the tokens arrive
unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from spotvlm_ros.models.base import EdgeResult, Timings


@dataclass(frozen=True)
class VisualTokens:
    """A frame as its vision encoder's output."""

    embeddings: np.ndarray  # (tokens, hidden) float32, in the order the prompt holds them
    grid_thw: tuple  # the encoder's patch grid (temporal, height, width), before merging
    image_size: tuple  # (width, height) of the frame encoded

    def __post_init__(self):
        if self.embeddings.ndim != 2 or len(self.grid_thw) != 3:
            raise ValueError(f'visual tokens must be (tokens, hidden) with a 3-number grid, '
                             f'got {self.embeddings.shape} and {self.grid_thw}')


def encode_frame(backend, frame: np.ndarray) -> VisualTokens:
    """The visual tokens of `frame` (HxWx3 uint8 RGB) by a transformers backend's encoder."""
    import torch

    inputs = backend.prepare(frame, '')  # the very preprocessing an unsplit answer runs
    with backend._lock, torch.inference_mode():
        out = backend.model.get_image_features(inputs['pixel_values'], inputs['image_grid_thw'],
                                               return_dict=True)
    embeddings = torch.cat(out.pooler_output, dim=0).float().cpu().numpy()
    grid = tuple(int(n) for n in inputs['image_grid_thw'][0])
    return VisualTokens(embeddings, grid, (frame.shape[1], frame.shape[0]))


def answer_from_tokens(backend, tokens: VisualTokens, query: str,
                       system_prompt: Optional[str] = None) -> EdgeResult:
    """A transformers backend's answer to `query` about the frame `tokens` came from."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    start = time.perf_counter()
    # A blank image of the encoder's own grid size makes the processor lay out exactly the
    # placeholders the tokens fill; its pixels are never encoded.
    _, height, width = tokens.grid_thw
    patch = backend.processor.image_processor.patch_size
    blank = np.zeros((height * patch, width * patch, 3), np.uint8)
    inputs = backend.prepare(blank, query, system_prompt=system_prompt)
    laid_out = tuple(int(n) for n in inputs['image_grid_thw'][0])
    if laid_out != tuple(tokens.grid_thw):
        raise ValueError(f'the tokens have grid {tuple(tokens.grid_thw)}; this model lays out '
                         f'{laid_out} for that size (another checkpoint or processor?)')
    hidden = backend.model.config.text_config.hidden_size
    if tokens.embeddings.shape[1] != hidden:
        raise ValueError(f'the tokens are {tokens.embeddings.shape[1]} wide; this model '
                         f'takes {hidden}')
    del inputs['pixel_values']
    embeddings = torch.from_numpy(np.ascontiguousarray(tokens.embeddings)).to(
        backend.device, backend.torch_dtype)
    encoded = {'image': BaseModelOutputWithPooling(pooler_output=(embeddings,))}
    prepared = time.perf_counter()
    with backend._lock, torch.inference_mode():
        output = backend.model.generate(**inputs, mm_encoder_outputs=encoded,
                                        generation_config=backend.generation_config)
    generated = time.perf_counter()
    prompt_ids = inputs['input_ids']
    new_ids = output[0, prompt_ids.shape[1]:].tolist()
    text = backend.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    end = time.perf_counter()
    return EdgeResult(text=text, timings=Timings.from_marks(start, prepared, prepared, generated,
                                                            end),
                      visual_tokens=len(tokens.embeddings), prompt_tokens=int(prompt_ids.shape[1]),
                      new_tokens=len(new_ids), token_ids=tuple(new_ids))

