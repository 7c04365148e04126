"""auto's calibration table: age bins, fitting, choosing, falling back, and its file."""

import pytest

from spotvlm_ros.core.calibration import (
    MIN_SAMPLES, NO_CONTEXT, CalibrationTable, Sample, age_bin, fit)

LIGHT, LIMIT, NEW = 'What colour is the traffic light?', 'What is the speed limit?', 'New?'


def samples(source, question, age, score, n=MIN_SAMPLES, family='vqa'):
    return [Sample(source, question, family, age, score)] * n


def test_ages_fall_in_their_bins():
    assert [age_bin(a) for a in (None, 0.0, 0.99, 1.0, 3.9, 4.0, 7.9, 8.0, 60.0)] == \
        [NO_CONTEXT, '0-1s', '0-1s', '1-2s', '2-4s', '4-8s', '4-8s', '8s+', '8s+']


def test_the_best_expected_source_is_chosen_per_question_and_age():
    table = fit(samples('edge_only', LIGHT, None, 0.5) + samples('edge_only', LIGHT, 5.0, 0.5)
                + samples('edge_only', LIGHT, 0.5, 0.5)
                + samples('cloud_latest', LIGHT, 0.5, 0.9) + samples('cloud_latest', LIGHT, 5.0, 0.2)
                + samples('context_transfer', LIGHT, 5.0, 0.6)
                + samples('cloud_wait', LIGHT, None, 0.95))
    assert table.choose(LIGHT, 0.5, ['edge_only', 'context_transfer', 'cloud_latest']) == \
        'cloud_latest'
    assert table.choose(LIGHT, 5.0) == 'cloud_wait'  # fresh: its reply is about this frame
    assert table.choose(LIGHT, 5.0, ['edge_only', 'context_transfer', 'cloud_latest']) == \
        'context_transfer'
    assert table.choose(LIGHT, None, ['edge_only', 'context_transfer']) == 'edge_only'
    assert table.expected(LIGHT, 5.0, 'cloud_latest') == pytest.approx(0.2)


def test_the_cloud_waited_for_gives_way_only_to_a_source_surely_better():
    def table(wait_score):
        return fit(samples('cloud_wait', LIGHT, None, wait_score, n=40)
                   + samples('edge_only', LIGHT, 5.0, 0.9, n=40))
    # 0.05 apart on 40 answers each is within noise (2 SE = 0.15): the fresh reply is kept.
    assert table(0.85).choose(LIGHT, 5.0) == 'cloud_wait'
    assert table(0.5).choose(LIGHT, 5.0) == 'edge_only'
    # Without a waited-for candidate the plain best is taken, however near.
    assert table(0.85).choose(LIGHT, 5.0, ['edge_only', 'context_transfer']) == 'edge_only'


def test_thin_cells_fall_back_to_the_family_then_to_the_edge():
    table = fit(samples('cloud_latest', LIGHT, 0.5, 1.0, n=MIN_SAMPLES - 1)
                + samples('cloud_latest', LIMIT, 0.5, 0.0)
                + samples('edge_only', LIMIT, 0.5, 0.5))
    # LIGHT's own cell is too thin: the vqa family's mean (mostly LIMIT's zeros) decides.
    family_mean = (MIN_SAMPLES - 1) / (2 * MIN_SAMPLES - 1)
    assert table.expected(LIGHT, 0.5, 'cloud_latest') == pytest.approx(family_mean, abs=1e-6)
    assert table.choose(LIGHT, 0.5) == 'edge_only'
    assert table.choose(NEW, 0.5) == 'edge_only'  # nothing known at all: the edge alone


def test_a_table_survives_its_file_and_a_wrong_file_is_named(tmp_path):
    table = fit(samples('cloud_latest', LIGHT, 2.5, 0.75), fitted_on='unit test')
    table.save(tmp_path / 'calibration.json')
    again = CalibrationTable.load(tmp_path / 'calibration.json')
    assert again.cells == table.cells and again.fitted_on == 'unit test'
    assert again.expected(LIGHT, 3.0, 'cloud_latest') == 0.75
    (tmp_path / 'bad.json').write_text('{"format": 99}')
    with pytest.raises(ValueError, match='bad.json is not a calibration table'):
        CalibrationTable.load(tmp_path / 'bad.json')


@pytest.mark.parametrize('name', ['calibration.json', 'calibration-simulated.json'])
def test_the_shipped_tables_load_and_were_fitted_on_validation_seeds(name):
    from pathlib import Path

    table = CalibrationTable.load(Path(__file__).resolve().parents[2] / 'models' / name)
    assert table.cells and 'seeds 10000' in table.fitted_on  # 1,000,000-1,000,999
