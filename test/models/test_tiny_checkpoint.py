"""The offline tiny checkpoint loads back like a real Qwen2.5-VL one."""

import json

import pytest

from spotvlm_ros.models import tiny


def test_cache_entry_is_built_once_and_reused(tiny_ckpt):
    marker = tiny_ckpt / tiny.MARKER_FILE
    before = marker.stat().st_mtime_ns
    assert tiny.tiny_checkpoint() == tiny_ckpt
    assert marker.stat().st_mtime_ns == before
    assert json.loads(marker.read_text())['recipe_version'] == tiny.RECIPE_VERSION
    assert tiny_ckpt == tiny.cache_root() / 'models' / tiny.DEFAULT_NAME


def test_loads_through_the_auto_classes(tiny_ckpt):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_ckpt)
    model = AutoModelForImageTextToText.from_pretrained(tiny_ckpt)
    assert type(model).__name__ == 'Qwen2_5_VLForConditionalGeneration'
    assert type(processor).__name__ == 'Qwen2_5_VLProcessor'
    assert type(processor.tokenizer).__name__ == 'Qwen2Tokenizer'
    # Special ids in the tokenizer are the ones the model config names.
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids('<|image_pad|>') == model.config.image_token_id
    assert tok.convert_tokens_to_ids('<|vision_start|>') == model.config.vision_start_token_id
    assert tok.convert_tokens_to_ids('<|im_end|>') == model.config.text_config.eos_token_id
    assert model.config.text_config.vocab_size == len(tok)


@pytest.mark.parametrize('text', ['A car is 2.4 m from the crosswalk.',
                                  '[{"bbox_2d": [10, 20, 300, 400], "label": "bus"}]',
                                  'Unseen words: zebra, café, 東京, emoji 🚗!'])
def test_tokenizer_round_trips_after_reload(tiny_ckpt, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    assert tok.decode(tok(text)['input_ids']) == text


def test_chat_template_is_qwen_format(tiny_ckpt):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_ckpt)
    messages = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Hi?'}]}]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                        '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>'
                        'Hi?<|im_end|>\n<|im_start|>assistant\n')


def test_cli_builds_a_preset_into_a_folder(tmp_path, capsys):
    out = tmp_path / 'ck'
    assert tiny.main([str(out), '--seed', '3']) == 0
    assert capsys.readouterr().out.strip() == str(out)
    marker = json.loads((out / tiny.MARKER_FILE).read_text())
    assert marker['seed'] == 3 and marker['preset'] == 'tiny'
    assert marker['parameters'] < 1_000_000
    assert (out / 'model.safetensors').is_file() and (out / 'chat_template.jinja').is_file()


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match='unknown preset'):
        tiny.build_tiny_checkpoint(tmp_path, preset='huge')
