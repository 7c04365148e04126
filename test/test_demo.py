"""The demo's drive has a light that cycles in view, and its report shows both scores and differences."""

from spotvlm_ros.demo import LAST_SEED, MIN_LIGHT_PX, cycling_light_seed, light_states, side_by_side
from spotvlm_ros.evaluation.records import AnswerRecord


def test_the_demo_drive_has_a_light_that_changes_colour_in_view():
    seed, colours = cycling_light_seed(100)
    assert seed < LAST_SEED
    assert len(set(colours)) >= 2 and 'none' not in colours
    assert min(h for _, h in light_states(seed, 100)) >= MIN_LIGHT_PX


def record(strategy, index, truth, answer, score):
    return AnswerRecord(strategy=strategy, trace='t', mean_delay_s=0.0, frame_index=index,
                        frame_stamp=index / 10, question='q', family='vqa', truth=truth,
                        width=4, height=3, answered=True, answer=answer, score=score)


def test_the_report_scores_both_strategies_and_shows_where_they_differ():
    results = {
        'edge_only': [record('edge_only', i, 'red', 'green', 0.0) for i in range(4)],
        'context_transfer': [record('context_transfer', i, 'red', 'red' if i else 'green',
                                    1.0 if i else 0.0) for i in range(4)],
    }
    lines = side_by_side(results, show=2)
    assert '0 of   4 answers right' in lines[0] and '3 of   4 answers right' in lines[1]
    assert '3 frames answered differently' in lines[2]
    assert len(lines) == 5
    assert "edge_only 'green' (wrong), context_transfer 'red' (right)" in lines[3]
