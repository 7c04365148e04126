"""Visual focus: regions mapped into the frame, carried by flow, planned within a token budget."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spotvlm_ros.core.flow import FlowMemo
from spotvlm_ros.core.focus import (
    FocusConfig, VisualTokenCounter, clip_regions, crop_label, focus_for_answer, focus_regions,
    merge_regions,
    plan_focus, plan_focus_from_config, propagate_along, propagate_regions, scale_regions,
    track_path, widen_margin)
from spotvlm_ros.core.types import (
    SOURCE_CLOUD, SOURCE_MERGED, SOURCE_PROPAGATED, SOURCE_WIDENED, CloudAnswer, Region)

COORD = st.one_of(st.floats(-2000, 2000), st.sampled_from([float('nan'), float('inf'),
                                                           -float('inf')]))
ANY_REGION = st.builds(Region, label=st.sampled_from(['car', 'person', 'sign', '']),
                       x1=COORD, y1=COORD, x2=COORD, y2=COORD,
                       score=st.floats(0.0, 1.0))
FRAME_SIZE = st.tuples(st.integers(16, 800), st.integers(16, 600))  # (width, height)


def box(x1, y1, x2, y2, label='car', score=1.0):
    return Region(label, x1, y1, x2, y2, score)


def inside(region, size):
    width, height = size
    return 0 <= region.x1 < region.x2 <= width and 0 <= region.y1 < region.y2 <= height


# Token counting in Qwen2.5-VL units.

@pytest.mark.parametrize('height, width, max_pixels, tokens', [
    (224, 224, None, 64), (336, 448, None, 192), (480, 640, 448 * 448, 234),
    (480, 640, None, 17 * 23), (10, 10, None, 4)])
def test_counter_matches_qwen2_5_vl(height, width, max_pixels, tokens):
    counter = VisualTokenCounter(28, max_pixels=max_pixels or VisualTokenCounter().max_pixels)
    assert counter(height, width) == tokens


@settings(max_examples=80, deadline=None)
@given(height=st.integers(1, 2000), width=st.integers(1, 2000), budget=st.integers(1, 2000))
def test_fit_is_within_budget_and_a_fixed_point(height, width, budget):
    counter = VisualTokenCounter()
    fitted = counter.fit(height, width, budget)
    if budget < counter.min_tokens:
        assert fitted is None
        return
    h, w = fitted
    assert h % 28 == 0 and w % 28 == 0
    assert counter(h, w) <= budget
    assert counter.resized(h, w) == (h, w)  # the model will not resize it again


def test_fit_keeps_the_shape_and_uses_the_budget():
    h, w = VisualTokenCounter().fit(480, 640, 64)
    assert abs(h / w - 0.75) < 0.08
    assert (h // 28) * (w // 28) >= 56


def test_fit_does_not_upscale_past_native():
    counter = VisualTokenCounter()
    assert counter.fit(100, 100, 10_000) == counter.resized(100, 100)


# Mapping regions into the current frame.

def test_scale_maps_between_image_sizes():
    (r,) = scale_regions([box(100, 50, 300, 250)], (1000, 500), (500, 1000))
    assert (r.x1, r.y1, r.x2, r.y2) == (50, 100, 150, 500)
    assert r.label == 'car'


def test_the_margin_grows_with_age_and_stops_at_its_cap():
    margins = [widen_margin(age, (640, 480), 0.03, 0.25) for age in (0, 1, 2, 5, 100)]
    assert margins[0] == 0 and margins == sorted(margins)
    assert margins[-1] == pytest.approx(0.25 * 480)


@settings(max_examples=100, deadline=None)
@given(regions=st.lists(ANY_REGION, max_size=12), size=FRAME_SIZE,
       min_box=st.floats(0.0, 20.0))
def test_clipped_regions_are_always_inside_the_frame(regions, size, min_box):
    for r in clip_regions(regions, size, min_box):
        assert inside(r, size)
        assert r.width >= min_box and r.height >= min_box


def test_clip_drops_degenerate_and_tiny_boxes():
    regions = [box(10, 10, 10, 50), box(50, 50, 40, 60), box(float('nan'), 0, 5, 5),
               box(0, 0, 5, 5), box(-50, -50, 700, 500)]
    kept = clip_regions(regions, (640, 480), 8.0)
    assert [(r.x1, r.y1, r.x2, r.y2) for r in kept] == [(0, 0, 640, 480)]


def test_overlapping_boxes_merge_into_their_union():
    merged = merge_regions([box(0, 0, 100, 100, 'car', 0.9), box(50, 50, 120, 120, 'truck', 0.5),
                            box(300, 300, 350, 350, 'sign', 0.7)], 0.2)
    assert len(merged) == 2
    union = merged[0]
    assert (union.x1, union.y1, union.x2, union.y2) == (0, 0, 120, 120)
    assert union.label == 'car, truck' and union.score == 0.9 and union.source == SOURCE_MERGED
    assert merged[1].label == 'sign'


def test_a_box_inside_another_merges():
    merged = merge_regions([box(0, 0, 200, 200), box(10, 10, 20, 20, 'person')], 0.5)
    assert len(merged) == 1 and merged[0].label == 'car, person'


@settings(max_examples=60, deadline=None)
@given(regions=st.lists(ANY_REGION, max_size=15), overlap=st.floats(0.05, 1.0))
def test_after_merging_no_two_boxes_overlap_enough_to_merge(regions, overlap):
    size = (640, 480)
    merged = merge_regions(clip_regions(regions, size, 1.0), overlap)
    for i, a in enumerate(merged):
        assert inside(a, size)
        for b in merged[i + 1:]:
            iw = min(a.x2, b.x2) - max(a.x1, b.x1)
            ih = min(a.y2, b.y2) - max(a.y1, b.y1)
            if iw > 0 and ih > 0:
                assert iw * ih / min(a.area, b.area) < overlap


# Optical flow.

@pytest.mark.parametrize('dx, dy', [(12.0, -7.0), (-20.0, 15.0), (3.5, 0.0)])
def test_flow_carries_regions_with_the_scene(textured_frame, shifted, dx, dy):
    key = textured_frame(320, 240, seed=1)
    cur = shifted(key, dx, dy)
    regions = [box(100, 80, 160, 140), box(200, 60, 260, 120, 'sign')]
    for before, after in zip(regions, propagate_regions(regions, key, cur)):
        assert after.source == SOURCE_PROPAGATED
        assert after.x1 == pytest.approx(before.x1 + dx, abs=1.0)
        assert after.y2 == pytest.approx(before.y2 + dy, abs=1.0)
        assert after.width == pytest.approx(before.width, rel=0.05)


@pytest.mark.parametrize('dx, dy', [(9.0, 5.0), (-40.0, 24.0)])
def test_flow_on_a_large_frame_tracks_shrunk_and_maps_back(textured_frame, shifted, dx, dy):
    key = textured_frame(640, 480, seed=7)
    cur = shifted(key, dx, dy)
    regions = [box(200, 150, 320, 270), box(420, 100, 560, 220, 'sign')]
    for before, after in zip(regions, propagate_regions(regions, key, cur, max_side=320)):
        assert after.source == SOURCE_PROPAGATED
        assert after.x1 == pytest.approx(before.x1 + dx, abs=2.0)
        assert after.y1 == pytest.approx(before.y1 + dy, abs=2.0)


def test_flow_on_the_frames_thumbnail_gives_what_the_whole_frame_gives(textured_frame, shifted):
    from spotvlm_ros.core.images import shrink

    key = textured_frame(1280, 720, seed=8)
    cur = shifted(key, 30.0, -12.0)
    regions = [box(400, 300, 640, 540), box(840, 200, 1120, 440, 'sign')]
    whole = propagate_regions(regions, shrink(key, 320), cur, max_side=320)
    thumb = propagate_regions(regions, shrink(key, 320), shrink(cur, 320), max_side=320,
                              frame_size=(1280, 720))
    assert thumb == whole
    assert all(r.source == SOURCE_PROPAGATED for r in thumb)


def test_flow_follows_a_zoom(textured_frame):
    import cv2

    key = textured_frame(320, 240, seed=2)
    matrix = cv2.getRotationMatrix2D((160, 120), 0.0, 1.2)  # zoom about the centre
    cur = cv2.warpAffine(key, matrix, (320, 240), borderMode=cv2.BORDER_REFLECT)
    (after,) = propagate_regions([box(130, 90, 190, 150)], key, cur)
    assert after.width == pytest.approx(72, rel=0.1)
    assert (after.x1 + after.x2) / 2 == pytest.approx(160, abs=2)


def test_flow_resizes_a_keyframe_of_another_size(textured_frame, shifted):
    import cv2

    cur = textured_frame(320, 240, seed=3)
    key = cv2.resize(shifted(cur, -8, 0), (640, 480), interpolation=cv2.INTER_LINEAR)
    (after,) = propagate_regions([box(100, 80, 160, 140)], key, cur)
    assert after.x1 == pytest.approx(108, abs=1.5)


def test_flat_regions_are_left_for_widening(textured_frame):
    key = textured_frame(320, 240, seed=4)
    key[20:100, 20:100] = 128  # nothing to track there
    regions = [box(30, 30, 90, 90, 'wall'), box(150, 100, 210, 160)]
    flat, textured = propagate_regions(regions, key, key.copy())
    assert flat == regions[0]
    assert textured.source == SOURCE_PROPAGATED


def test_flow_accepts_gray_images(textured_frame, shifted):
    key = textured_frame(320, 240, seed=5)[:, :, 0].copy()
    cur = shifted(key, 5, 5)
    (after,) = propagate_regions([box(100, 80, 160, 140)], key, cur)
    assert after.x1 == pytest.approx(105, abs=1.0)


# The whole mapping.

def test_focus_regions_scales_and_keeps_boxes_in_place_without_images():
    regions = [box(200, 200, 400, 400, 'car', 0.9), box(1000, 700, 1100, 800, 'sign', 0.4)]
    mapped = focus_regions(regions, (1280, 960), (640, 480))
    assert [r.label for r in mapped] == ['car', 'sign']
    # Untracked boxes stay the best guess of where their object is: a grown box would not be.
    assert (mapped[0].x1, mapped[0].y1, mapped[0].x2, mapped[0].y2) == (100, 100, 200, 200)
    assert all(r.source == SOURCE_WIDENED for r in mapped)


def test_crops_of_untracked_regions_widen_with_age_and_captions_keep_the_box():
    frame = frame_of(640, 480)
    config = FocusConfig(token_budget=512, widen_frac_per_s=0.02, widen_max_frac=0.2,
                         crop_pad_frac=0.0, min_zoom=0.0)
    (untracked,) = focus_regions([box(200, 200, 280, 260, 'car')], None, (640, 480), config)
    tracked = Region('car', 200, 200, 280, 260, 1.0, SOURCE_PROPAGATED)
    fresh = plan_focus_from_config(frame, [untracked], config, age_s=0.0).crops[0]
    old = plan_focus_from_config(frame, [untracked], config, age_s=2.0).crops[0]
    moved = plan_focus_from_config(frame, [tracked], config, age_s=2.0).crops[0]
    margin = 0.04 * 480
    assert old.region.x1 == pytest.approx(200 - margin, abs=1)
    assert old.region.x2 == pytest.approx(280 + margin, abs=1)
    assert (fresh.region.x1, moved.region.x1) == (200, 200)
    assert fresh.label == old.label == moved.label == 'car at [200, 200, 280, 260]'


def test_focus_regions_uses_flow_when_both_images_are_at_hand(textured_frame, shifted):
    key = textured_frame(320, 240, seed=6)
    cur = shifted(key, 10, 4)
    mapped = focus_regions([box(200, 160, 320, 280)], (640, 480), (320, 240),
                           key_image=key, cur_image=cur)
    (r,) = mapped
    assert r.source == SOURCE_PROPAGATED
    assert r.x1 == pytest.approx(110, abs=1.0) and r.y1 == pytest.approx(84, abs=1.0)


@pytest.mark.parametrize('stamps, hop_s, path', [
    ([i / 10 for i in range(31)], 0.5, [0, 5, 10, 15, 20, 25, 30]),
    ([i / 10 for i in range(31)], 0.0, [0, 30]),
    ([0.0, 0.1, 0.3, 0.7, 0.8, 1.1, 1.2], 0.5, [0, 3, 6]),  # frames dropped: the next one on
    ([0.0, 0.2], 0.5, [0, 1]),
    ([2.0], 0.5, [0])])
def test_track_path_steps_at_least_a_hop_apart_and_ends_on_the_current_frame(stamps, hop_s,
                                                                              path):
    assert track_path(stamps, hop_s) == path


def test_flow_in_short_steps_follows_motion_one_step_loses(textured_frame, shifted):
    key = textured_frame(320, 240, seed=6)
    frames = [shifted(key, 16 * step, 6 * step) for step in range(1, 6)]  # 80 px, 30 px
    region = box(100, 60, 160, 120)
    (direct,) = propagate_regions([region], key, frames[-1])
    (chained,) = propagate_along([region], [key, *frames])
    assert abs(direct.x1 - 180) > 5 or direct.source != SOURCE_PROPAGATED
    assert chained.source == SOURCE_PROPAGATED
    assert (chained.x1, chained.y1) == (pytest.approx(180, abs=1.5), pytest.approx(90, abs=1.5))


def test_a_region_lost_on_the_way_coasts_and_is_not_called_tracked(textured_frame, shifted):
    key = textured_frame(320, 240, seed=7)
    blank = np.full_like(key, 128)  # glare: nothing to track
    (r,) = propagate_along([box(100, 60, 160, 120)], [key, shifted(key, 8, 0), blank,
                                                      shifted(key, 24, 0)])
    assert r.source == SOURCE_CLOUD
    # its best guess: 8 px a step, the velocity of the one step that tracked it
    assert (r.x1, r.y1) == (pytest.approx(124, abs=1.5), pytest.approx(60, abs=1.5))


def test_a_lost_region_coasts_by_the_time_each_step_takes(textured_frame, shifted):
    key = textured_frame(320, 240, seed=7)
    blank = np.full_like(key, 128)
    (r,) = propagate_along([box(100, 60, 160, 120)], [key, shifted(key, 8, 0), blank,
                                                      shifted(key, 20, 0)],
                           stamps=[0.0, 0.5, 1.0, 1.25])
    assert r.x1 == pytest.approx(120, abs=1.5)  # 16 px/s for 0.5 s, then for 0.25 s
    with pytest.raises(ValueError, match='3 stamps for 2 images'):
        propagate_along([box(100, 60, 160, 120)], [key, key], stamps=[0.0, 0.5, 1.0])


def test_a_memo_gives_what_tracking_every_step_again_gives(textured_frame, shifted):
    # The fuser's frames, one after another: a reply's steps through the ring are the same for
    # each, and a region lost on the way (glare) must coast on from the memo as it would.
    key = textured_frame(320, 240, seed=8)
    images = [shifted(key, 6 * step, -2 * step) for step in range(12)]
    images[5] = np.full_like(key, 128)
    stamps = [0.5 * step for step in range(12)]
    regions = [box(100, 60, 160, 120), box(40, 150, 90, 200, 'sign')]
    memo = FlowMemo()
    for last in range(1, 12):
        walked = propagate_along(regions, images[:last + 1], stamps=stamps[:last + 1], memo=memo)
        assert walked == propagate_along(regions, images[:last + 1], stamps=stamps[:last + 1])
    assert memo.hits >= 9 * 10 // 2  # frame n looked up its first n - 1 steps


def test_a_memo_keeps_no_step_onto_the_frame_itself(textured_frame, shifted):
    # The frame's own image may differ from the copy the ring keeps of it (the evaluator passes
    # the whole frame), so a later frame must not find that step in the memo.
    key = textured_frame(320, 240, seed=8)
    via, whole = shifted(key, 6, 0), shifted(key, 12, 0)
    ring_copy, later = np.full_like(key, 128), shifted(key, 24, 0)
    regions = [box(100, 60, 160, 120)]
    memo = FlowMemo()
    propagate_along(regions, [key, via, whole], stamps=[0.0, 0.5, 1.0], memo=memo)
    again = propagate_along(regions, [key, via, ring_copy, later], stamps=[0.0, 0.5, 1.0, 1.5],
                            memo=memo)
    assert again == propagate_along(regions, [key, via, ring_copy, later],
                                    stamps=[0.0, 0.5, 1.0, 1.5])
    assert memo.hits == 1


def test_a_small_box_follows_its_own_corners_not_the_ground_behind_it(textured_frame,
                                                                      shifted):
    # A pedestrian-sized blob walks 6 px a step to the right; the ground moves 3 px left.
    ground = textured_frame(320, 240, seed=9)
    frames = []
    for step in range(4):
        frame = shifted(ground, -3 * step, 0)
        x = 150 + 6 * step
        frame[100:113, x:x + 6] = (200, 60, 160)  # shirt
        frame[113:127, x + 1:x + 5] = (40, 40, 90)  # trousers
        frames.append(frame)
    (r,) = propagate_along([box(150, 100, 156, 127, 'pedestrian')], frames)
    assert r.source == SOURCE_PROPAGATED
    assert r.x1 == pytest.approx(168, abs=1.5)


def test_focus_regions_steps_through_the_frames_between(textured_frame, shifted):
    key = textured_frame(320, 240, seed=6)
    via = [shifted(key, 16 * step, 0) for step in range(1, 5)]
    (r,) = focus_regions([box(100, 80, 160, 140)], None, (320, 240), key_image=key,
                         cur_image=shifted(key, 80, 0), via_images=via)
    assert r.source == SOURCE_PROPAGATED and r.x1 == pytest.approx(180, abs=1.5)


def test_focus_regions_can_skip_flow(textured_frame, shifted):
    key = textured_frame(320, 240, seed=6)
    (r,) = focus_regions([box(100, 80, 160, 140)], None, (320, 240),
                         FocusConfig(use_flow=False), key, shifted(key, 10, 4))
    assert r.source == SOURCE_WIDENED


def test_focus_for_answer_maps_the_answer_by_its_age_and_image_size(textured_frame, shifted):
    key = textured_frame(320, 240, seed=8)
    answer = CloudAnswer(10.0, 1, 'q', 'a car', regions=(box(200, 160, 320, 280),),
                         image_size=(640, 480))
    config = FocusConfig(token_budget=200, widen_frac_per_s=0.05)
    cur = shifted(key, 6, 0)
    (tracked,), plan = focus_for_answer(answer, cur, 12.0, config, key_image=key)
    assert tracked.source == SOURCE_PROPAGATED and tracked.x1 == pytest.approx(106, abs=1)
    (untracked,), untracked_plan = focus_for_answer(answer, cur, 12.0, config)
    assert untracked.source == SOURCE_WIDENED and untracked.x1 == pytest.approx(100)
    # Two seconds old: its crop has the margin around the box the caption gives.
    assert untracked_plan.crops[0].region.x1 < 100 - 0.1 * 240 + 1
    # The crop says where the box was carried to, not where the cloud saw it.
    assert [c.label for c in plan.crops] == ['car at [106, 80, 166, 140]']
    assert plan.visual_tokens <= 200


def test_focus_for_no_answer_is_the_global_view_alone():
    regions, plan = focus_for_answer(None, frame_of(320, 240), 1.0)
    assert regions == [] and plan.crops == [] and plan.global_view.size


@settings(max_examples=40, deadline=None)
@given(regions=st.lists(ANY_REGION, max_size=30), src=FRAME_SIZE, size=FRAME_SIZE)
def test_focus_regions_are_inside_ranked_and_bounded(regions, src, size):
    config = FocusConfig(max_regions=5, min_box_px=4.0)
    mapped = focus_regions(regions, src, size, config)
    assert len(mapped) <= 5
    for r in mapped:
        assert inside(r, size) and r.width >= 4.0 and r.height >= 4.0
    assert [r.score for r in mapped] == sorted((r.score for r in mapped), reverse=True)


# The focus plan.

def frame_of(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@settings(max_examples=50, deadline=None)
@given(size=st.tuples(st.integers(8, 700), st.integers(8, 500)),
       regions=st.lists(ANY_REGION, max_size=8), budget=st.integers(4, 800),
       max_crops=st.integers(1, 4), share=st.floats(0.0, 1.0))
def test_plan_never_exceeds_its_budget(size, regions, budget, max_crops, share):
    width, height = size
    counter = VisualTokenCounter()
    plan = plan_focus(frame_of(width, height), regions, budget, global_share=share,
                      max_crops=max_crops)
    images = [plan.global_view] + [c.image for c in plan.crops]
    assert plan.visual_tokens == sum(counter(*im.shape[:2]) for im in images)
    assert plan.visual_tokens <= budget == plan.token_budget
    assert len(plan.crops) <= max_crops
    for crop in plan.crops:
        assert inside(crop.region, size)
        assert crop.image.shape[0] % 28 == 0 and crop.image.shape[1] % 28 == 0


def test_plan_gives_sharper_crops_of_the_best_regions():
    frame = frame_of(640, 480)
    regions = [box(100, 100, 160, 140, 'car', 0.9), box(400, 50, 420, 120, 'person', 0.8),
               box(500, 300, 560, 360, 'dog', 0.1)]
    plan = plan_focus(frame, regions, 256, max_crops=2)
    assert [c.label for c in plan.crops] == ['car at [100, 100, 160, 140]',
                                             'person at [400, 50, 420, 120]']
    global_scale = plan.global_view.shape[1] / 640
    for crop, region in zip(plan.crops, regions):
        assert crop.image.shape[1] / crop.region.width >= 1.25 * global_scale
        assert crop.region.x1 <= region.x1 and crop.region.y1 <= region.y1
        assert crop.region.x2 >= region.x2 and crop.region.y2 >= region.y2


def test_crop_shows_the_region_it_names():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[200:260, 300:380] = (255, 0, 0)
    plan = plan_focus(frame, [box(300, 200, 380, 260, 'red thing')], 200, crop_pad_frac=0.0)
    (crop,) = plan.crops
    assert crop.image[..., 0].mean() > 200 and crop.image[..., 1].mean() < 30


def test_without_regions_the_global_view_takes_the_whole_budget():
    plan = plan_focus(frame_of(640, 480), [], 100)
    assert plan.crops == [] and 90 <= plan.visual_tokens <= 100


def test_a_budget_too_small_for_any_crop_keeps_only_the_global_view():
    plan = plan_focus(frame_of(640, 480), [box(10, 10, 60, 60)], 6)
    assert plan.crops == [] and plan.visual_tokens <= 6


def test_a_budget_below_one_image_is_refused():
    with pytest.raises(ValueError, match='token_budget'):
        plan_focus(frame_of(64, 64), [], 3)


def test_plan_accepts_gray_frames_and_refuses_empty_ones():
    gray = frame_of(320, 240)[:, :, 0]
    assert plan_focus(gray, [box(10, 10, 50, 50)], 64).global_view.ndim == 2
    with pytest.raises(ValueError, match='frame'):
        plan_focus(np.zeros((0, 10, 3), np.uint8), [], 64)


def test_plan_from_config_uses_its_knobs():
    config = FocusConfig(token_budget=120, max_crops=1, max_pixels=448 * 448)
    plan = plan_focus_from_config(frame_of(640, 480), [box(10, 10, 60, 60),
                                                       box(300, 300, 340, 340)], config)
    assert plan.token_budget == 120 and len(plan.crops) == 1 and plan.visual_tokens <= 120


@pytest.mark.parametrize('region, words', [
    (box(0, 0, 50, 50, 'car'), 'car at [0, 0, 50, 50]'),
    (box(300.4, 220.6, 340, 260, 'dog'), 'dog at [300, 221, 340, 260]'),
    (box(-10, -5, 700, 500, 'bus'), 'bus at [0, 0, 640, 480]'),
    (box(300, 0, 340, 40, ''), 'at [300, 0, 340, 40]')])
def test_crop_label_says_where(region, words):
    assert crop_label(region, (640, 480)) == words


@pytest.mark.parametrize('field, value', [
    ('token_budget', 0), ('patch_px', 0), ('max_pixels', 10), ('global_share', 1.5),
    ('max_crops', 0), ('crop_pad_frac', -0.1), ('max_regions', 0), ('min_box_px', math.nan),
    ('merge_overlap', 0.0), ('widen_frac_per_s', -1.0), ('widen_max_frac', 2.0),
    ('max_upscale', 0.5), ('use_flow', 1), ('flow_corners', 0), ('flow_max_fb_px', 0.0),
    ('flow_min_points', 0), ('flow_max_side', 0), ('min_pixels', 0)])
def test_config_refuses_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        FocusConfig(**{field: value})


def test_regions_keep_their_cloud_source_until_moved():
    (r,) = focus_regions([box(10, 10, 100, 100)], None, (640, 480))
    assert r.source == SOURCE_WIDENED
    (same,) = clip_regions([box(10, 10, 100, 100)], (640, 480))
    assert same.source == SOURCE_CLOUD
