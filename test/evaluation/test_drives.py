"""Several drives: per-drive rows, means with 95 % intervals over drives, paired gaps."""

import json
import math

import pytest

from spotvlm_ros.evaluation.drives import (
    against_best_fixed, against_best_markdown, change_rates, mean_ci, per_drive_rows,
    pooled_markdown, pooled_rows, t95)
from spotvlm_ros.evaluation.main import main as eval_main
from spotvlm_ros.evaluation.records import (AUTO, CLOUD_LATEST, CONTEXT_TRANSFER, EDGE_ONLY,
                                            AnswerRecord)
from spotvlm_ros.io.replay import BagFrame, Question
from spotvlm_ros.scenes.truth import VQA


def scored(drive, strategy, score, trace='t'):
    return AnswerRecord(strategy, trace, 1.0, 0, 0.0, 'q', VQA, 'red', 448, 336, answered=True,
                        answer='red', answered_at=0.1, latency_s=0.1, score=score, drive=drive)


def test_mean_ci_is_a_t_interval_over_values():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(t95(2) * 1.0 / math.sqrt(3))
    assert mean_ci([0.5]) == (0.5, None) and mean_ci([]) == (None, None)
    assert t95(1) == pytest.approx(12.706) and t95(1000) == 1.96


def test_gaps_are_paired_drive_by_drive():
    # The method is 0.1 ahead of the edge on every drive although drives differ a lot:
    # the paired interval is tight, the unpaired ones are wide.
    records = []
    for drive, base in (('a', 0.2), ('b', 0.5), ('c', 0.8)):
        records += [scored(drive, EDGE_ONLY, base), scored(drive, CONTEXT_TRANSFER, base + 0.1),
                    scored(drive, CLOUD_LATEST, base + 0.2)]
    rows = {r['strategy']: r for r in pooled_rows(per_drive_rows(records, 1.0))}
    method = rows[CONTEXT_TRANSFER]
    assert method['drives'] == 3 and method['acc_mean'] == pytest.approx(0.6)
    assert method['acc_mean_ci'] > 0.5
    assert method['vs_edge_only'] == pytest.approx(0.1)
    assert method['vs_edge_only_ci'] == pytest.approx(0.0, abs=1e-9)
    assert method['vs_edge_only_won'] == '3/3' and method['vs_cloud_latest_won'] == '0/3'
    assert method['vs_cloud_latest'] == pytest.approx(-0.1)
    table = pooled_markdown(list(rows.values()))
    assert '+0.100 ± 0.000 (3/3)' in table and '-0.100 ± 0.000 (0/3)' in table


def test_auto_is_compared_with_the_best_fixed_strategy_of_each_trace():
    records = []
    for drive, base in (('a', 0.2), ('b', 0.5), ('c', 0.8)):
        for trace, best in (('fast', CLOUD_LATEST), ('slow', EDGE_ONLY)):
            records += [scored(drive, best, base + 0.2, trace),
                        scored(drive, CONTEXT_TRANSFER, base, trace),
                        scored(drive, AUTO, base + (0.25 if drive != 'b' else 0.1), trace)]
    rows = {r['trace']: r for r in against_best_fixed(per_drive_rows(records, 1.0))}
    assert rows['fast']['best_fixed'] == CLOUD_LATEST and rows['slow']['best_fixed'] == EDGE_ONLY
    assert rows['fast']['gap'] == pytest.approx((0.05 - 0.1 + 0.05) / 3, abs=1e-9)
    assert rows['fast']['won'] == '2/3'
    assert '| slow | edge_only | 0.700 |' in against_best_markdown(list(rows.values()))
    assert against_best_fixed(per_drive_rows([r for r in records if r.strategy != AUTO], 1.0)) == []


def test_change_rates_count_answer_changes_per_minute():
    def frame(i, answer):
        return BagFrame(i, i * 6.0, None, (Question('light?', VQA, answer),))

    drives = {'a': [frame(0, 'red'), frame(1, 'green'), frame(2, 'green'), frame(3, 'red'),
                    frame(4, 'red'), frame(5, 'red'), frame(6, 'red'), frame(7, 'red'),
                    frame(8, 'red'), frame(9, 'red'), frame(10, 'red')],  # 2 changes in 60 s
              'b': [frame(0, 'red'), frame(10, 'red')]}  # none
    assert change_rates(drives) == {'light?': pytest.approx(1.0)}


def test_eval_over_generated_drives_reports_intervals(tmp_path):
    out = tmp_path / 'out'
    assert eval_main(['--seeds', '1000000:1000002', '--seconds', '2', '--every', '10',
                      '--drives-dir', str(tmp_path / 'drives'), '--out', str(out),
                      '--trace', 'constant:delay_s=0.5', '--question', 'Describe the scene.',
                      '--strategies', 'edge_only,cloud_latest,context_transfer',
                      '--no-progress']) == 0
    assert sorted(p.name for p in (tmp_path / 'drives').iterdir()) == [
        'seed1000000_2s', 'seed1000001_2s']
    text = (out / 'drives.md').read_text()
    assert '2 drives: seed1000000_2s, seed1000001_2s' in text and ' ± ' in text
    assert 'Describe the scene. |' in text  # its change rate
    rows = (out / 'drives.csv').read_text().splitlines()
    assert rows[0].startswith('drive,trace,') and len(rows) == 1 + 2 * 3
    settings = json.loads((out / 'metrics.json').read_text())['settings']
    assert settings['frames'] == 40


def test_seeds_that_give_no_drive_are_refused(tmp_path, capsys):
    assert eval_main(['--seeds', 'x:y', '--out', str(tmp_path)]) == 2
    assert eval_main(['--seeds', '5:5', '--out', str(tmp_path)]) == 2
    assert 'gives no drive' in capsys.readouterr().err
