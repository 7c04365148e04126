"""`spotvlm eval --reference cloud`: a recording without ground truth, scored as agreement."""

import json

from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.main import main as eval_main
from spotvlm_ros.evaluation.reference import FAMILY_OF, NOTICE
from spotvlm_ros.io.bags import write_image_bag
from spotvlm_ros.io.frame_sources import moving_box_frames
from spotvlm_ros.scenes.truth import GROUNDING, Q_LIGHT, Q_WHERE

WHERE_VEHICLE = Q_WHERE['vehicle']


def test_a_drive_without_ground_truth_is_scored_against_the_cloud(tmp_path, capsys):
    bag = tmp_path / 'my_drive'
    # Raw images on a topic of the user's own naming: found without being told.
    write_image_bag(bag, moving_box_frames(20, 320, 240), 0.1, topic='/front/image')
    out = tmp_path / 'out'
    argv = ['--bag', str(bag), '--out', str(out), '--no-progress', '--every', '5',
            '--trace', 'constant:delay_s=0', '--trace', 'constant:delay_s=3',
            '--strategies', 'edge_only,cloud_wait,cloud_latest,context_transfer']
    assert eval_main(argv) == 2  # no ground truth: refused unless told what to score against
    assert 'no ground truth' in capsys.readouterr().err
    assert eval_main(argv + ['--reference', 'cloud', '--question', Q_LIGHT,
                             '--question', WHERE_VEHICLE]) == 0
    records = R.read_jsonl(out / 'records.jsonl')
    assert {r.frame_index for r in records} == {0, 5, 10, 15}
    assert {(r.question, r.family) for r in records} == {(Q_LIGHT, FAMILY_OF[Q_LIGHT]),
                                                         (WHERE_VEHICLE, GROUNDING)}
    waited = [r for r in records if r.strategy == R.CLOUD_WAIT]
    # The reference is the cloud's zero-delay reply: waiting for it agrees by construction,
    # at any delay; grounding truths keep the cloud's boxes, short answers drop them.
    assert waited and all(r.score == 1.0 for r in waited if r.truth.strip())
    assert all('```' not in r.truth for r in records if r.family != GROUNDING)
    assert all(r.truth == r.answer for r in waited if r.family == GROUNDING)
    edge = [r.score for r in records if r.strategy == R.EDGE_ONLY]
    assert len(edge) == 2 * 2 * 4 and all(0.0 <= s <= 1.0 for s in edge)
    report = (out / 'report.md').read_text()
    assert NOTICE in report and 'Agreement with the cloud (acc_mean)' in report
    settings = json.loads((out / 'metrics.json').read_text())['settings']
    assert settings['scored_against'] == NOTICE


def test_reference_mode_refuses_live(tmp_path, capsys):
    bag = tmp_path / 'two'
    write_image_bag(bag, moving_box_frames(3, 64, 48), 0.1, topic='/a/image')
    argv = ['--bag', str(bag), '--out', str(tmp_path / 'o'), '--reference', 'cloud',
            '--no-progress']
    assert eval_main(argv + ['--live']) == 2
    assert 'drop --reference cloud' in capsys.readouterr().err
