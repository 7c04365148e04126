"""Chat samples to model inputs with labels on the assistant's answer only."""

from __future__ import annotations

from spotvlm_ros.training.samples import with_target

IGNORE = -100


def encode_batch(processor, samples, processor_kwargs=None):
    """Right-padded inputs for `samples` with `labels`: -100 except answer + <|im_end|>."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = 'right'
    batch = processor.apply_chat_template(
        [with_target(s) for s in samples], tokenize=True, return_dict=True,
        return_tensors='pt', processor_kwargs={'padding': True, **(processor_kwargs or {})})
    ids = batch['input_ids']
    labels = ids.new_full(ids.shape, IGNORE)
    im_end = tokenizer.convert_tokens_to_ids('<|im_end|>')
    for row, sample in enumerate(samples):
        # The answer is the last turn: its tokens end at the row's last <|im_end|>.
        end = int((ids[row] == im_end).nonzero()[-1])
        answer = tokenizer(sample.target, add_special_tokens=False)['input_ids']
        start = end - len(answer)
        if ids[row, start:end].tolist() != answer:
            raise ValueError(f'answer tokens not found at the end of sample {row}')
        labels[row, start:end + 1] = ids[row, start:end + 1]
    batch['labels'] = labels
    return batch
