"""Greedy answers to many chats at once, for offline work (training data, evaluation).

The nodes answer one frame at a time through `EdgeBackend.answer`; offline, batching the same
model over many prompts is several times cheaper on a CPU. Greedy decoding with left padding
gives the answers `answer` gives (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from spotvlm_ros.core.close_ups import resolve_close_up
from spotvlm_ros.models.prompt import chat_inputs


@dataclass(frozen=True)
class BatchAnswer:
    """One chat's greedy answer and its token counts."""

    text: str
    prompt_tokens: int
    new_tokens: int


def generate_batch(backend, chats: Sequence[list], batch_size: int = 16,
                   focus: Optional[Sequence] = None) -> list:
    """A BatchAnswer of `backend` (a TransformersBackend) to each chat, in order; `focus`
    holds each chat's FocusPlan (None: no crops), for answers naming a close-up, as answer()."""
    import torch

    tokenizer = backend.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = 'left'  # generation continues every row from its last token
    ends = backend.generation_config.eos_token_id
    ends = set(ends) if isinstance(ends, (list, tuple)) else {ends}
    answers = []
    try:
        for start in range(0, len(chats), batch_size):
            inputs = chat_inputs(backend.processor, list(chats[start:start + batch_size]),
                                 {'padding': True, **backend.processor_kwargs})
            inputs = inputs.to(backend.device, dtype=backend.torch_dtype)
            with torch.inference_mode():
                output = backend.model.generate(**inputs,
                                                generation_config=backend.generation_config)
            prompt = inputs['input_ids'].shape[1]
            for mask, row in zip(inputs['attention_mask'], output[:, prompt:].tolist()):
                # Finished rows are padded to the longest; their end token counts, as in answer().
                new = next((i + 1 for i, token in enumerate(row) if token in ends), len(row))
                plan = focus[len(answers)] if focus is not None else None
                answers.append(BatchAnswer(
                    resolve_close_up(tokenizer.decode(row, skip_special_tokens=True).strip(),
                                     plan),
                    int(mask.sum()), new))
    finally:
        tokenizer.padding_side = side
    return answers


def generate_texts(backend, chats: Sequence[list], batch_size: int = 16) -> list:
    """The stripped greedy answer of `backend` to each chat."""
    return [a.text for a in generate_batch(backend, chats, batch_size)]
