"""The offline edge cost model: fitted to measured answers, charged per answer's input."""

import pytest

from spotvlm_ros.evaluation.edge_cost import EdgeCostModel, fit_cost


def test_a_linear_cost_is_recovered_and_a_negative_slope_dropped():
    truth = EdgeCostModel(0.02, 1e-4, 2e-3, 5e-3)
    samples = [(p, n, i, truth.cost(p, n, i)) for p in (80, 120, 200) for n in (3, 10, 30)
               for i in (1, 2, 3)]
    fitted = fit_cost(samples)
    for name in ('intercept_s', 'per_prompt_token_s', 'per_new_token_s', 'per_image_s'):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-6, abs=1e-9)
    # Time that falls with more images is noise: that slope goes, the rest is refitted.
    noisy = [(p, n, i, 0.01 + 1e-3 * n - 1e-4 * i) for p, n, i, _ in samples]
    assert fit_cost(noisy).per_image_s == 0.0 and fit_cost(noisy).per_new_token_s > 0
    # A cost below zero for a short prompt is noise too: the intercept goes, slopes refitted.
    loaded = [(p, n, i, -0.05 + 1e-3 * p + 2e-3 * n) for p, n, i, _ in samples]
    fitted = fit_cost(loaded)
    assert fitted.intercept_s == 0.0 and fitted.per_prompt_token_s > 0
    assert all(fitted.cost(p, n, i) >= 0 for p, n, i, _ in loaded)
    with pytest.raises(ValueError, match='at least 4'):
        fit_cost(samples[:3])


def test_the_model_survives_its_file_and_a_wrong_file_is_named(tmp_path):
    model = EdgeCostModel(0.011, 2.4e-5, 1.7e-3, 7e-4, 'unit test')
    model.save(tmp_path / 'edge_cost.json')
    assert EdgeCostModel.load(tmp_path / 'edge_cost.json') == model
    assert model.cost(100, 10, 2) == pytest.approx(0.011 + 2.4e-3 + 1.7e-2 + 1.4e-3)
    (tmp_path / 'bad.json').write_text('{"intercept_s": 1}')
    with pytest.raises(ValueError, match='bad.json is not an edge cost model'):
        EdgeCostModel.load(tmp_path / 'bad.json')


def test_fit_edge_cost_measures_the_edge_model_and_writes_a_model(tmp_path, capsys):
    from spotvlm_ros.evaluation.fit_edge_cost import main

    out = tmp_path / 'edge_cost.json'
    assert main(['--frames', '12', '--every', '3', '--out', str(out)]) == 0
    model = EdgeCostModel.load(out)
    assert model.intercept_s >= 0 and model.per_new_token_s >= 0 and model.per_image_s >= 0
    assert 'answers on sample_scene' in model.fitted_on
    assert 'ms/new token' in capsys.readouterr().out


def write_live_answers(path, answers):
    """An answer bag as a live run records it: (prompt, new tokens, crops, seconds) each."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from spotvlm_ros.io.bags import ANSWER_TYPE, spotvlm_typestore

    store = spotvlm_typestore()
    types = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/answer', ANSWER_TYPE, typestore=store)
        for i, (prompt, new, crops, seconds) in enumerate(answers):
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=i, nanosec=0), frame_id='camera')
            regions = [types['spotvlm_msgs/msg/Region'](label='car', score=1.0, x1=0, y1=0,
                                                         x2=10, y2=10, source='cloud')] * crops
            msg = types['spotvlm_msgs/msg/EdgeAnswer'](
                header=header, query='q', answer='a', model='edge', strategy='s', source='s',
                inference_time_s=seconds, latency_s=seconds, has_context=False,
                context_age_s=-1.0, used_context=False, used_focus=crops > 0,
                focus_regions=regions, visual_tokens=64, prompt_tokens=prompt, new_tokens=new,
                frames_dropped=0)
            writer.write(conn, i * 10**9 + 1, store.serialize_cdr(msg, ANSWER_TYPE))


def test_fit_edge_cost_fits_the_edge_nodes_own_times_in_live_runs(tmp_path, capsys):
    from spotvlm_ros.evaluation.fit_edge_cost import main

    truth = EdgeCostModel(0.012, 3e-5, 2e-3, 4e-3)
    inputs = [(p, n, c) for p in (100, 250) for n in (4, 20, 48) for c in (0, 1, 2)]
    live = tmp_path / 'eval' / 'live'
    live.mkdir(parents=True)
    write_live_answers(live / 'edge_only', [(p, n, c, truth.cost(p, n, 1 + c))
                                            for p, n, c in inputs])
    # The cloud's answers (cloud_latest) took no edge time: they are not samples.
    write_live_answers(live / 'cloud_latest', [(0, 5, 0, 0.0)] * 4)
    out = tmp_path / 'edge_cost.json'
    assert main(['--live', str(tmp_path / 'eval'), '--out', str(out)]) == 0
    model = EdgeCostModel.load(out)
    for name in ('intercept_s', 'per_prompt_token_s', 'per_new_token_s', 'per_image_s'):
        assert getattr(model, name) == pytest.approx(getattr(truth, name), rel=1e-4)
    assert model.fitted_on.startswith('18 edge node answers in live runs (eval)')
    assert '18 answers' in capsys.readouterr().out
    assert main(['--live', str(tmp_path / 'nothing'), '--out', str(out)]) == 2
