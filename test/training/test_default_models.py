"""The committed default models: Qwen2.5-VL checkpoints in fp16 safetensors that the
ordinary backend loads, small enough to commit, and a cloud that answers in the bridge's
grounding format."""

import json
from pathlib import Path

import pytest

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS
from spotvlm_ros.scenes.truth import frame_truth
from spotvlm_ros.scenes.world import sample_scene
from spotvlm_ros.training.pool import FRAME_H, FRAME_W, HELD_OUT_SEED_START
from spotvlm_ros.training.samples import CLOUD_SYSTEM_PROMPT

MODELS = Path(__file__).resolve().parents[2] / 'models'
MAX_BYTES = 25 * 2**20


@pytest.mark.parametrize('name', ['spotvlm-edge', 'spotvlm-cloud'])
def test_checkpoint_is_small_fp16_qwen2_5_vl(name):
    from safetensors import safe_open

    folder = MODELS / name
    assert json.loads((folder / 'config.json').read_text())['model_type'] == 'qwen2_5_vl'
    assert sum(f.stat().st_size for f in folder.iterdir()) <= MAX_BYTES
    with safe_open(folder / 'model.safetensors', 'pt') as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {'F16'}


def test_cloud_replies_with_a_short_answer_and_parseable_regions():
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    cloud = TransformersBackend(MODELS / 'spotvlm-cloud', max_new_tokens=96, warmup=False)
    frame, _ = frame_truth(sample_scene(HELD_OUT_SEED_START), 20, FRAME_W, FRAME_H)
    reply = cloud.answer(frame, 'What colour is the traffic light?',
                         system_prompt=CLOUD_SYSTEM_PROMPT).text
    answer, _, warning = parse_regions(reply, FORMAT_PIXELS, (FRAME_W, FRAME_H),
                                       (FRAME_W, FRAME_H))
    assert '```json' in reply and warning == ''
    assert answer in ('red', 'yellow', 'green', 'none')


@pytest.mark.parametrize('seed, index', [(HELD_OUT_SEED_START, 200), (HELD_OUT_SEED_START + 1, 10),
                                         (HELD_OUT_SEED_START + 2, 400)])
def test_edge_points_at_the_close_up_of_the_asked_object_and_answers_its_box(seed, index):
    from spotvlm_ros.core.focus import plan_focus_from_config
    from spotvlm_ros.models.transformers_backend import TransformersBackend
    from spotvlm_ros.training.samples import EDGE_FOCUS, regions_of

    edge = TransformersBackend(MODELS / 'spotvlm-edge', max_new_tokens=64, warmup=False)
    frame, truth = frame_truth(sample_scene(seed), index, FRAME_W, FRAME_H)
    where = next(q for q in truth.qa if q.question == 'Where is the nearest vehicle?')
    plan = plan_focus_from_config(frame, regions_of(where), EDGE_FOCUS)
    result = edge.answer(frame, where.question, focus=plan)
    assert edge.tokenizer.decode(list(result.token_ids), skip_special_tokens=True) == 'close-up 1'
    assert json.loads(result.text) == json.loads(where.answer)  # the caption's box, written out
