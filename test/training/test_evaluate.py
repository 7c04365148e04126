"""The held-out comparison's arithmetic: paired gaps between strategies on the same questions."""

import math

import pytest

from spotvlm_ros.training.evaluate import STRATEGIES, gap_table, merge, paired_gap


def test_paired_gap_counts_wins_losses_and_its_standard_error():
    g = paired_gap([1, 1, 0, 1], [0, 1, 1, 0])
    assert g['gap'] == pytest.approx(0.25) and (g['wins'], g['losses'], g['n']) == (2, 1, 4)
    # differences 1, 0, -1, 1: sample std 0.957, over sqrt(4)
    assert g['se'] == pytest.approx(0.9574271 / 2, rel=1e-6)


def test_paired_gap_of_one_question_has_no_standard_error():
    assert math.isnan(paired_gap([1.0], [0.0])['se'])


def test_gap_table_compares_the_merged_halves_question_by_question(tmp_path):
    import json

    def half(cloud, edge):
        families = {s: {'vqa': edge, 'grounding': [], 'description': [0.5]}
                    for s in STRATEGIES}
        families['cloud alone'] = {'vqa': cloud, 'grounding': [], 'description': [0.0]}
        return {'families': families, 'questions': {}}

    paths = [tmp_path / 'a.json', tmp_path / 'b.json']
    paths[0].write_text(json.dumps(half([1, 1], [0, 1])))
    paths[1].write_text(json.dumps(half([0, 1], [0, 0])))
    rows = gap_table(merge(paths)).splitlines()
    # a family with no questions gets no row; 'all' pools the questions of every family
    assert rows[2:] == ['| description (n=2) | -0.500 | 0.000 | nan | 0 | 2 |',
                        '| vqa (n=4) | +0.500 | 0.289 | 1.7 | 2 | 0 |',
                        '| all (n=6) | +0.167 | 0.279 | 0.6 | 2 | 2 |']


def test_held_out_replies_are_scored_by_the_evaluators_scorer():
    from types import SimpleNamespace

    from spotvlm_ros.scenes.scoring import score_answer
    from spotvlm_ros.scenes.truth import DESCRIPTION, frame_truth
    from spotvlm_ros.scenes.world import sample_scene
    from spotvlm_ros.training.evaluate import evaluate
    from spotvlm_ros.training.pool import FPS, FRAME_H, FRAME_W

    reply = 'red light, 3 vehicles, no pedestrian, limit 70, stop.'

    class Fixed:
        def answer(self, *args, **kwargs):
            return SimpleNamespace(text=reply)

    seed, frame = 4_000_123, 12
    results = evaluate(Fixed(), Fixed(), [seed], [frame], 0.5, log=lambda m: None)
    _, truth = frame_truth(sample_scene(seed), frame, FRAME_W, FRAME_H, FPS)
    expected = [score_answer(qa.family, qa.answer, reply, (FRAME_W, FRAME_H))
                for qa in truth.qa if qa.family == DESCRIPTION]
    assert expected and 0.0 < expected[0] < 1.0  # ROUGE-L: partial credit
    assert results['families']['edge alone'][DESCRIPTION] == expected
