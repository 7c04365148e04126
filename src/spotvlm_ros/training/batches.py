"""Chat samples to model inputs with labels on the assistant's answer only."""

from __future__ import annotations

import torch

from spotvlm_ros.training.samples import with_target

IGNORE = -100


def key_token_count(tokenizer, answer_ids: list, key_chars: int) -> int:
    """How many of the answer's first tokens spell its first `key_chars` characters."""
    count = 0
    while count < len(answer_ids) and len(tokenizer.decode(answer_ids[:count])) < key_chars:
        count += 1
    return count


def encode_batch(processor, samples, processor_kwargs=None, key_weight: float = 1.0,
                 per_sample: bool = False):
    """Right-padded inputs for `samples` with `labels` (-100 except answer + <|im_end|>) and
    `weights` per label: `key_weight` on each sample's key tokens, 1 elsewhere; `per_sample`
    scales each sample's weights to sum to 1, so that a one-word answer weighs as much as a
    40-token box list (by tokens, boxes and descriptions drown the short answers)."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = 'right'
    batch = processor.apply_chat_template(
        [with_target(s) for s in samples], tokenize=True, return_dict=True,
        return_tensors='pt', processor_kwargs={'padding': True, **(processor_kwargs or {})})
    ids = batch['input_ids']
    labels = ids.new_full(ids.shape, IGNORE)
    weights = torch.zeros(ids.shape, dtype=torch.float32)
    im_end = tokenizer.convert_tokens_to_ids('<|im_end|>')
    for row, sample in enumerate(samples):
        # The answer is the last turn: its tokens end at the row's last <|im_end|>.
        end = int((ids[row] == im_end).nonzero()[-1])
        answer = tokenizer(sample.target, add_special_tokens=False)['input_ids']
        start = end - len(answer)
        if ids[row, start:end].tolist() != answer:
            raise ValueError(f'answer tokens not found at the end of sample {row}')
        labels[row, start:end + 1] = ids[row, start:end + 1]
        weights[row, start:end + 1] = 1.0
        weights[row, start:start + key_token_count(tokenizer, answer, sample.key_chars)] = key_weight
        if per_sample:
            weights[row] /= weights[row].sum()
    batch['labels'] = labels
    batch['weights'] = weights
    return batch


def weighted_loss(logits, labels, weights):
    """Next-token cross-entropy, each label weighted, normalised by the total weight."""
    logits, labels, weights = logits[:, :-1], labels[:, 1:], weights[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
        ignore_index=IGNORE, reduction='none')
    return (per_token * weights.reshape(-1)).sum() / weights.sum()
