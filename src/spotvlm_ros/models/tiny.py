"""Tiny random-weight Qwen2.5-VL checkpoints, built offline, for tests and benchmarks.

The folder written here is loaded back through exactly the code path a real checkpoint
takes (AutoProcessor, AutoModelForImageTextToText, the chat template, generate): only the
weights are random and the tokenizer is trained on a few hundred local sentences.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

# Bump when the recipe changes so cached checkpoints are rebuilt.
RECIPE_VERSION = 1
MARKER_FILE = 'spotvlm_tiny.json'
DEFAULT_NAME = 'tiny-qwen2_5_vl'

# Qwen2.5-VL's added tokens, in the real model's order; they follow the BPE vocab here.
SPECIAL_TOKENS = (
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
    '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>',
    '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
)

# The chat template shipped with Qwen2-VL / Qwen2.5-VL checkpoints.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

def _preset(bpe_vocab: int, vision_depth: int, vision_width: int, vision_heads: int,
            text_width: int, text_intermediate: int, text_layers: int, text_heads: int,
            mrope_section: list) -> dict:
    """A size preset: full attention in the middle and last vision blocks, 2 key/value heads."""
    return dict(
        bpe_vocab=bpe_vocab,
        vision=dict(depth=vision_depth, hidden_size=vision_width,
                    intermediate_size=2 * vision_width, num_heads=vision_heads,
                    fullatt_block_indexes=[vision_depth // 2 - 1, vision_depth - 1]),
        text=dict(hidden_size=text_width, intermediate_size=text_intermediate,
                  num_hidden_layers=text_layers, num_attention_heads=text_heads,
                  num_key_value_heads=2, mrope_section=mrope_section),
    )


# Size presets: 'tiny' for tests (~0.6 M parameters), 'small' for benchmarks where the
# model, not Python, should dominate the time.
PRESETS = {
    'tiny': _preset(400, vision_depth=4, vision_width=32, vision_heads=2, text_width=64,
                    text_intermediate=128, text_layers=2, text_heads=4, mrope_section=[2, 3, 3]),
    'small': _preset(1000, vision_depth=8, vision_width=128, vision_heads=4, text_width=256,
                     text_intermediate=704, text_layers=4, text_heads=8,
                     mrope_section=[4, 6, 6]),
}

# Qwen2.5-VL's own preprocessing limits (min 4 tokens, max 16384 tokens per image).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 12845056


def training_sentences() -> list[str]:
    """A few hundred driving-scene sentences to train the byte-level BPE on."""
    subjects = ['a car', 'the truck', 'a pedestrian', 'a cyclist', 'the bus', 'a dog',
                'the traffic light', 'a stop sign', 'the robot', 'a person']
    verbs = ['is crossing', 'is parked near', 'turns left at', 'waits at', 'is moving toward',
             'blocks', 'is 2.4 m from', 'appears behind']
    places = ['the intersection.', 'the crosswalk.', 'the left lane.', 'the sidewalk.',
              'the red light.', 'the camera.']
    sentences = [f'{s.capitalize()} {v} {p}'
                 for s, v, p in itertools.product(subjects, verbs, places)]
    sentences += ['What is in front of the vehicle?', 'Is it safe to go?', 'Describe the scene.',
                  'Answer briefly.', 'You are a helpful assistant.', 's ago: Close-up of',
                  '[{"bbox_2d": [10, 20, 30, 40], "label": "car"}]',
                  '0123456789 ,.;:!?()[]{}"\'-_/+*=<>#%&@']
    return sentences


def build_tokenizer(bpe_vocab: int):
    """Train a Qwen2-style byte-level BPE and wrap it as a transformers Qwen2Tokenizer."""
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                            trainers)
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    # Same splitting as Qwen2Tokenizer rebuilds on reload, so the merges mean the same there.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=bpe_vocab, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(training_sentences(), trainer=trainer)
    model_json = json.loads(bpe.to_str())['model']
    vocab = dict(model_json['vocab'])
    merges = [tuple(m.split(' ') if isinstance(m, str) else m) for m in model_json['merges']]
    # Fixed ids right after the BPE vocab, so the model config can name them.
    base = len(vocab)
    for offset, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = base + offset
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, errors='replace',
                               model_max_length=32768)
    tokenizer.add_special_tokens({'additional_special_tokens': list(SPECIAL_TOKENS[1:])})
    return tokenizer


def build_config(tokenizer, preset: str):
    """A Qwen2.5-VL config of the preset's size whose special ids match the tokenizer."""
    from transformers import Qwen2_5_VLConfig

    spec = PRESETS[preset]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text = dict(spec['text'])
    mrope_section = text.pop('mrope_section')
    vocab_size = max(ids.values()) + 1
    text_config = dict(
        text, vocab_size=vocab_size, max_position_embeddings=32768, rms_norm_eps=1e-6,
        bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
        pad_token_id=ids['<|endoftext|>'],
        rope_parameters={'rope_type': 'default', 'rope_theta': 1000000.0,
                         'mrope_section': mrope_section},
    )
    vision_config = dict(spec['vision'], out_hidden_size=text['hidden_size'], patch_size=14,
                         spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                         tokens_per_second=2, in_channels=3)
    return Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=ids['<|image_pad|>'], video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'], vision_end_token_id=ids['<|vision_end|>'],
        tie_word_embeddings=False,
    )


def build_processor(tokenizer):
    """The Qwen2.5-VL processor (image, video, tokenizer, chat template) made locally."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_checkpoint(out_dir, *, seed: int = 0, preset: str = 'tiny') -> Path:
    """Write a random-weight Qwen2.5-VL checkpoint with its processor to `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(PRESETS[preset]['bpe_vocab'])
    config = build_config(tokenizer, preset)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id],
        pad_token_id=config.text_config.pad_token_id, do_sample=False,
    )
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    marker = {'recipe_version': RECIPE_VERSION, 'seed': seed, 'preset': preset,
              'parameters': params}
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=1))
    return out


def cache_root() -> Path:
    """Where built checkpoints live: $SPOTVLM_CACHE_DIR, else the repo's ignored .cache/."""
    if env := os.environ.get('SPOTVLM_CACHE_DIR'):
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    if (repo / '.git').exists() or (repo / 'pytest.ini').exists():
        return repo / '.cache'
    return Path.home() / '.cache' / 'spotvlm_ros'


def _is_current(path: Path, seed: int, preset: str) -> bool:
    """Whether `path` holds a checkpoint built by this recipe with these settings."""
    try:
        marker = json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    wanted = {'recipe_version': RECIPE_VERSION, 'seed': seed, 'preset': preset}
    return all(marker.get(key) == value for key, value in wanted.items())


def cache_name(preset: str = 'tiny') -> str:
    """The default cache entry name of a preset: 'tiny-qwen2_5_vl', 'small-qwen2_5_vl'."""
    return f'{preset}-qwen2_5_vl'


def tiny_checkpoint(name: str = DEFAULT_NAME, *, seed: int = 0, preset: str = 'tiny') -> Path:
    """Path of a cached tiny checkpoint under <cache>/models/, built on first use."""
    target = cache_root() / 'models' / name
    if _is_current(target, seed, preset):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent test runs never see a half-written folder.
    staging = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=target.parent))
    try:
        build_tiny_checkpoint(staging, seed=seed, preset=preset)
        if target.exists() and not _is_current(target, seed, preset):
            shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            # Another process renamed its own build in first: that one is as good.
            if not _is_current(target, seed, preset):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: build a tiny checkpoint into a folder (or the cache) and print its path."""
    parser = argparse.ArgumentParser(prog='spotvlm make-tiny-model',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', help='folder to write; default: the cache')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='tiny')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--name', default=None, help='cache entry name (when no out_dir)')
    args = parser.parse_args(argv)
    if args.out_dir:
        path = build_tiny_checkpoint(args.out_dir, seed=args.seed, preset=args.preset)
    else:
        path = tiny_checkpoint(args.name or cache_name(args.preset), seed=args.seed,
                               preset=args.preset)
    print(path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
