"""The scene generator: deterministic by seed, boxes in the frame, answers match the state."""

import json

import numpy as np
import pytest

from spotvlm_ros.scenes.truth import (GROUNDING, Q_COUNT, Q_LIGHT, Q_LIMIT, SEEN_FRAC,
                                      description, frame_truth, seen, sequence)
from spotvlm_ros.scenes.world import sample_scene

W, H = 224, 168


def answers(truth):
    return [(q.question, q.answer) for q in truth.qa]


def test_same_seed_same_frames_and_answers():
    a = list(sequence(5, 4, W, H))
    b = list(sequence(5, 4, W, H))
    for (fa, ta), (fb, tb) in zip(a, b):
        assert np.array_equal(fa, fb)
        assert answers(ta) == answers(tb)


def test_other_seed_other_scene():
    fa, _ = next(sequence(1, 1, W, H))
    fb, _ = next(sequence(2, 1, W, H))
    assert not np.array_equal(fa, fb)


def test_frame_can_be_rendered_out_of_order():
    scene = sample_scene(9)
    direct, _ = frame_truth(scene, 7, W, H)
    in_order = [f for f, _ in sequence(9, 8, W, H)][7]
    assert np.array_equal(direct, in_order)


@pytest.mark.parametrize('seed', range(6))
def test_boxes_inside_frame_and_answers_consistent(seed):
    for frame, truth in list(sequence(seed, 100, W, H))[::4]:
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        for o in truth.objects:
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            assert 0.0 <= o.visible_frac <= 1.0
        qa = dict(answers(truth))
        lights = seen(truth.objects, ('traffic light',))
        assert qa[Q_LIGHT] == (lights[0].light_state if lights else 'none')
        vehicles = seen(truth.objects, ('car', 'truck', 'bus'))
        assert qa[Q_COUNT] == str(min(5, len(vehicles)))
        assert qa[Q_LIMIT] == truth.speed_limit
        assert description(truth).startswith('no light' if not lights else qa[Q_LIGHT])
        for q in truth.qa:
            if q.family == GROUNDING:
                box = json.loads(q.answer)[0]['bbox_2d']
                assert q.regions[0].visible_frac >= SEEN_FRAC
                assert all(abs(a - b) <= 0.5 for a, b in zip(box, q.regions[0].box))


def test_light_colour_is_drawn_where_its_box_says():
    lit = {'red': 0, 'yellow': 1, 'green': 2}
    checked = 0
    for seed in range(40):
        scene = sample_scene(seed)
        if scene.light is None:
            continue
        # Large frame, close light: the lamps are many pixels.
        frame, truth = frame_truth(scene, 0, 896, 672)
        lights = [o for o in truth.objects if o.kind == 'traffic light' and o.visible_frac > 0.9]
        if not lights or lights[0].box[3] - lights[0].box[1] < 30:
            continue
        x1, y1, x2, y2 = (int(v) for v in lights[0].box)
        thirds = np.array_split(frame[y1:y2, x1:x2].astype(int), 3, axis=0)
        brightness = [t.max(axis=2).mean() for t in thirds]
        assert int(np.argmax(brightness)) == lit[lights[0].light_state]
        checked += 1
    assert checked >= 1


def test_speed_limit_persists_and_light_changes():
    changed = False
    for seed in range(10):
        scene = sample_scene(seed)
        truths = [frame_truth(scene, i, 112, 84)[1] for i in range(0, 100, 9)]
        assert len({t.speed_limit for t in truths}) == 1  # a zone fact: whole sequence
        if scene.light is not None:
            states = {scene.light.state(t.stamp_s) for t in truths}
            changed |= len(states) > 1
    assert changed


def test_motion_is_smooth():
    frames = [t for _, t in sequence(3, 20, W, H)]
    for a, b in zip(frames, frames[1:]):
        by_id = {o.track_id: o for o in a.objects}
        for o in b.objects:
            if o.track_id in by_id:
                assert abs(o.distance_m - by_id[o.track_id].distance_m) < 1.5


def test_the_first_stretch_is_the_seeds_own_scene():
    import dataclasses

    scene = sample_scene(1_000_001)
    alone = dataclasses.replace(scene, segments=())
    for index in (0, 50, 199):
        fa, ta = frame_truth(scene, index, W, H)
        fb, tb = frame_truth(alone, index, W, H)
        assert np.array_equal(fa, fb) and answers(ta) == answers(tb)


def test_a_long_drive_keeps_changing():
    # Later segments bring new agents: a minute of driving has several light and count
    # changes, and objects whose ids belong to segments after the first.
    changes, late_ids = {Q_LIGHT: 0, Q_COUNT: 0}, set()
    for seed in (2_000_000, 2_000_001, 2_000_002):
        previous = None
        for _, truth in sequence(seed, 600, W, H):
            now = dict(answers(truth))
            late_ids |= {o.track_id // 1000 for o in truth.objects if o.track_id >= 1000}
            if previous is not None:
                for q in changes:
                    changes[q] += now[q] != previous[q]
            previous = now
    assert changes[Q_LIGHT] >= 6 and changes[Q_COUNT] >= 6
    assert {1, 2} <= late_ids


def test_the_limit_changes_at_the_new_zones_first_sign():
    for seed in range(200):
        scene = sample_scene(seed)
        zones = scene.zones(60.0)
        if scene.speed_limit is not None and len(zones) > 1:
            break
    (_, first), (start, second) = zones[0], zones[1]
    t_sign = start / scene.ego_speed
    assert scene.limit_at(t_sign - 0.05) == first
    assert scene.limit_at(t_sign + 0.05) == second
