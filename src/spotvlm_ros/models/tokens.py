"""The edge model's token counter, loaded alone (no weights), for budgets counted in its tokens."""

from __future__ import annotations

from pathlib import Path

from spotvlm_ros.core.compression import TokenCounter, tokenizer_counter, word_count
from spotvlm_ros.models.base import ModelLoadError

TINY_MODEL = 'tiny'  # as the edge node's model.path: the offline tiny checkpoint


def token_counter(model_path: str) -> TokenCounter:
    """Counts tokens as the edge model at `model_path` does; '' counts words (no model known).

    Only the tokenizer files are read (local files only); ModelLoadError names the folder.
    """
    if not model_path:
        return word_count
    if model_path == TINY_MODEL:
        from spotvlm_ros.models.tiny import tiny_checkpoint

        model_path = str(tiny_checkpoint())
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(Path(model_path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f'no tokenizer in {model_path}: {err}') from None
    if not tokenizer.encode('a car', add_special_tokens=False):
        raise ModelLoadError(f'the tokenizer in {model_path} has no vocabulary')
    return tokenizer_counter(tokenizer)
