"""Training samples: cloud targets in the bridge's grounding format, labels on answers only."""

import numpy as np
import pytest

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS
from spotvlm_ros.models.prompt import build_messages
from spotvlm_ros.scenes.truth import GROUNDING, frame_truth
from spotvlm_ros.scenes.world import sample_scene
from spotvlm_ros.training.batches import IGNORE, encode_batch, weighted_loss
from spotvlm_ros.training.samples import (EDGE_FOCUS, cloud_sample, cloud_target, edge_sample,
                                          jitter_regions, regions_of, teacher_turn)
from spotvlm_ros.core.focus import plan_focus_from_config
from spotvlm_ros.core.types import Region

W, H = 448, 336


@pytest.fixture(scope='module')
def frame_and_truth():
    for seed in range(50):
        frame, truth = frame_truth(sample_scene(seed), 10, W, H)
        if any(q.family == GROUNDING for q in truth.qa) and any(q.regions for q in truth.qa):
            return frame, truth
    raise AssertionError('no scene with grounding questions')


@pytest.fixture(scope='module')
def processor():
    from transformers import AutoProcessor

    from spotvlm_ros.models.tiny import tiny_checkpoint
    return AutoProcessor.from_pretrained(tiny_checkpoint(), local_files_only=True)


def test_cloud_target_parses_back_to_the_true_boxes(frame_and_truth):
    _, truth = frame_and_truth
    for qa in truth.qa:
        answer, regions, warning = parse_regions(cloud_target(qa), FORMAT_PIXELS, (W, H), (W, H))
        assert warning == ''
        assert len(regions) == len(qa.regions)
        for region, obj in zip(regions, qa.regions):
            assert np.allclose((region.x1, region.y1, region.x2, region.y2), obj.box, atol=0.5)
        if qa.family != GROUNDING:
            assert answer == qa.answer


def test_edge_sample_uses_the_backend_message_layout(frame_and_truth):
    frame, truth = frame_and_truth
    qa = next(q for q in truth.qa if q.regions)
    turn = teacher_turn(qa.question, 'red', 2.0, truth.stamp_s)
    regions = jitter_regions(regions_of(qa), 2.0, np.random.default_rng(0))
    sample = edge_sample(frame, qa, turn, regions)
    expected = build_messages(frame, qa.question, [turn],
                              plan_focus_from_config(frame, regions, EDGE_FOCUS))
    strip = lambda ms: [[(p['type'], p.get('text')) for p in m['content']] for m in ms]
    assert strip(sample.messages) == strip(expected)
    assert sample.target == qa.answer


def test_labels_cover_only_answer_and_end(frame_and_truth, processor):
    frame, truth = frame_and_truth
    samples = [cloud_sample(frame, truth.qa[0]), edge_sample(frame, truth.qa[1])]
    batch = encode_batch(processor, samples)
    tok = processor.tokenizer
    for row, sample in enumerate(samples):
        kept = batch['labels'][row][batch['labels'][row] != IGNORE].tolist()
        assert tok.decode(kept) == sample.target + '<|im_end|>'


def test_key_tokens_spell_the_short_answer_and_weigh_more(frame_and_truth, processor):
    frame, truth = frame_and_truth
    qa = next(q for q in truth.qa if q.family != GROUNDING)
    sample = cloud_sample(frame, qa)
    batch = encode_batch(processor, [sample], key_weight=5.0)
    heavy = batch['input_ids'][0][batch['weights'][0] == 5.0].tolist()
    assert processor.tokenizer.decode(heavy).startswith(qa.answer)
    assert len(processor.tokenizer.decode(heavy)) <= len(qa.answer) + 2
    assert set(batch['weights'][0][batch['labels'][0] == IGNORE].tolist()) == {0.0}


def test_per_sample_weights_make_a_short_answer_weigh_as_much_as_a_box_list(
        frame_and_truth, processor):
    frame, truth = frame_and_truth
    short = next(q for q in truth.qa if q.family != GROUNDING and len(q.answer) < 6)
    boxes = next(q for q in truth.qa if q.family == GROUNDING)
    samples = [edge_sample(frame, short), edge_sample(frame, boxes)]
    by_token = encode_batch(processor, samples)['weights'].sum(dim=1)
    assert by_token[1] > 5 * by_token[0]  # tokens: the box list outweighs the word
    by_sample = encode_batch(processor, samples, per_sample=True)['weights'].sum(dim=1)
    assert by_sample.tolist() == [1.0, 1.0]


def test_weighted_loss_at_weight_one_is_the_models_own_loss(frame_and_truth, processor):
    import torch
    from transformers import AutoModelForImageTextToText

    frame, truth = frame_and_truth
    from spotvlm_ros.models.tiny import tiny_checkpoint
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint(), local_files_only=True,
                                                        dtype=torch.float32)
    batch = encode_batch(processor, [cloud_sample(frame, q) for q in truth.qa[:2]])
    weights = batch.pop('weights')
    with torch.no_grad():
        own = model(**batch).loss
        labels = batch.pop('labels')
        ours = weighted_loss(model(**batch).logits, labels, weights)
    assert torch.isclose(own, ours, rtol=1e-4)


def test_a_zoomed_sample_keeps_its_answer_and_moves_its_box(frame_and_truth):
    from spotvlm_ros.training.samples import zoom_window, zoomable, zoomed
    from spotvlm_ros.scenes.scoring import iou, split_reply

    frame, truth = frame_and_truth
    rng = np.random.default_rng(3)
    assert len(list(filter(zoomable, truth.qa))) >= 2
    for qa in filter(zoomable, truth.qa):
        x1, y1, x2, y2 = qa.regions[0].box
        whole = zoom_window(qa.regions[0].box, 1.0, rng)
        assert whole == pytest.approx((0, 0, W, H))  # t = 1: the whole frame, unchanged
        x, y, w, h = zoom_window(qa.regions[0].box, 0.0, rng)
        assert x <= x1 and y <= y1 and x + w >= x2 and y + h >= y2  # the object stays in view
        assert w / h == pytest.approx(W / H, rel=0.02) and h < H
        crop, moved = zoomed(frame, qa, (x, y, w, h))
        assert crop.shape == frame.shape
        scale = H / int(h)
        box = moved.regions[0].box
        assert (box[3] - box[1]) == pytest.approx((y2 - y1) * scale, rel=0.05)  # magnified
        if qa.family == GROUNDING:
            _, regions = split_reply(moved.answer, (W, H))
            r = regions[0]
            assert iou((r.x1, r.y1, r.x2, r.y2), box) > 0.9
        else:
            assert moved.answer == qa.answer
    counts = [q for q in truth.qa if q.question == 'How many vehicles are ahead?']
    assert counts and not zoomable(counts[0])  # a crop would change a count


def test_a_where_target_points_at_a_close_up_only_where_its_box_scores(frame_and_truth):
    frame, truth = frame_and_truth
    where = next(q for q in truth.qa if q.family == GROUNDING and q.regions)
    right = regions_of(where)
    assert edge_sample(frame, where, focus_regions=right).target == 'close-up 1'
    wrong = [Region(r.label, r.x1 + 150, r.y1, r.x2 + 150, r.y2) for r in right]
    assert edge_sample(frame, where, focus_regions=wrong).target == where.answer
    assert edge_sample(frame, where).target == where.answer
    other = next(q for q in truth.qa if q.family != GROUNDING and q.regions)
    assert edge_sample(frame, other, focus_regions=regions_of(other)).target == other.answer
