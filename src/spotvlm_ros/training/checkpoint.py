"""Fresh random-weight Qwen2.5-VL checkpoints of the default models' sizes."""

from __future__ import annotations

from pathlib import Path

# Per role: a tiny.py preset, sizes that differ from it, and the most pixels per image.
ROLE_SPECS = {
    # 224x168 input (48 visual tokens): small sign text is a few pixels, unreadable.
    'edge': dict(preset='tiny', vision={}, text={}, max_pixels=224 * 168),
    # 448x336 input (192 visual tokens), a wider and deeper model.
    'cloud': dict(preset='tiny',
                  vision=dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=2,
                              fullatt_block_indexes=[1, 3]),
                  text=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3,
                            num_attention_heads=4, num_key_value_heads=2),
                  mrope_section=[4, 6, 6], max_pixels=448 * 336),
}


def set_max_pixels(processor, max_pixels: int) -> None:
    """Cap every image the processor sees at `max_pixels` (the model's input resolution)."""
    ip = processor.image_processor
    ip.size = {'shortest_edge': ip.size['shortest_edge'], 'longest_edge': max_pixels}
    if hasattr(ip, 'max_pixels'):
        ip.max_pixels = max_pixels


def resized_config(config, spec: dict):
    """The preset's config with the role's sizes, rebuilt so derived fields follow."""
    from transformers import Qwen2_5_VLConfig

    data = config.to_dict()
    text, vision = data['text_config'], data['vision_config']
    text.update(spec['text'])
    vision.update(spec['vision'], out_hidden_size=text['hidden_size'])
    text['head_dim'] = text['hidden_size'] // text['num_attention_heads']
    text['rope_parameters']['mrope_section'] = spec['mrope_section']
    for derived in ('layer_types', 'max_window_layers'):
        text.pop(derived, None)
    data.pop('layer_types', None)
    return Qwen2_5_VLConfig(**data)


def build_role_checkpoint(out: Path, role: str, seed: int) -> Path:
    """Write an untrained checkpoint for `role` with tiny.py's tokenizer, processor, template."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from spotvlm_ros.models.tiny import PRESETS, build_config, build_processor, build_tokenizer

    spec = ROLE_SPECS[role]
    tokenizer = build_tokenizer(PRESETS[spec['preset']]['bpe_vocab'])
    config = build_config(tokenizer, spec['preset'])
    if spec['vision'] or spec['text']:
        config = resized_config(config, spec)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id],
        pad_token_id=config.text_config.pad_token_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor = build_processor(tokenizer)
    set_max_pixels(processor, spec['max_pixels'])
    processor.save_pretrained(out)
    return out


def add_whole_words(processor, model, words) -> list:
    """Give each word the tokenizer splits into pieces an id of its own; the words added.

    The tiny BPE holds 'red' whole but spells 'green' and 'yellow' letter by letter, so a
    small model that copies a colour from its context finds 'red' far easier to write. A new
    id's input and output rows start as the mean of its pieces' rows.
    """
    import torch

    tokenizer = processor.tokenizer
    pieces = {w: tokenizer(w, add_special_tokens=False)['input_ids'] for w in words}
    new = [w for w, ids in pieces.items() if len(ids) > 1]
    if not new:
        return []
    tokenizer.add_tokens(new)
    ids = tokenizer.convert_tokens_to_ids(new)
    model.resize_token_embeddings(max(model.get_input_embeddings().num_embeddings,
                                      max(ids) + 1), mean_resizing=False)  # set below
    with torch.no_grad():
        for table in {model.get_input_embeddings().weight, model.get_output_embeddings().weight}:
            for word, index in zip(new, ids):
                table[index] = table[pieces[word]].mean(0)
    return new
