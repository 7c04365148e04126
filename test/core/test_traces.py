"""Latency traces: generation per kind, determinism, lookup, CSV in and out."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spotvlm_ros.core.traces import TRACE_KINDS, LatencyTrace, generate, kind_parameters

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
TIMES = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(TRACE_KINDS), seed=SEEDS, t=TIMES)
def test_same_seed_gives_same_trace(kind, seed, t):
    a = LatencyTrace.generate(kind, seed, duration_s=30.0)
    b = LatencyTrace.generate(kind, seed, duration_s=30.0)
    assert np.array_equal(a.times_s, b.times_s)
    assert np.array_equal(a.delays_s, b.delays_s, equal_nan=True)
    assert a.delay_at(t) == b.delay_at(t)


@pytest.mark.parametrize('kind', [k for k in TRACE_KINDS if k != 'constant'])
def test_different_seeds_give_different_traces(kind):
    a = LatencyTrace.generate(kind, 1, duration_s=60.0)
    b = LatencyTrace.generate(kind, 2, duration_s=60.0)
    assert not np.array_equal(a.delays_s, b.delays_s, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(TRACE_KINDS), seed=SEEDS, t=TIMES)
def test_delay_is_none_or_non_negative(kind, seed, t):
    delay = LatencyTrace.generate(kind, seed, duration_s=20.0).delay_at(t)
    assert delay is None or (math.isfinite(delay) and delay >= 0)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(TRACE_KINDS), seed=SEEDS, index=st.integers(0, 199),
       within=st.floats(0.1, 0.9), periods=st.integers(-50, 50))
def test_trace_repeats_past_its_end(kind, seed, index, within, periods):
    trace = LatencyTrace.generate(kind, seed, duration_s=20.0, step_s=0.1)
    t = trace.times_s[index] + within * 0.1  # inside a sample, clear of float edges
    assert trace.delay_at(t + periods * trace.period_s) == trace.delay_at(t)
    assert trace.delay_at(t) == (None if np.isnan(trace.delays_s[index])
                                 else trace.delays_s[index])


def test_generation_does_not_touch_the_global_rng():
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    LatencyTrace.generate('lognormal', 3, duration_s=10.0)
    assert np.random.random() == expected


def test_constant_trace_is_its_delay_everywhere():
    trace = LatencyTrace.generate('constant', 0, duration_s=5.0, delay_s=2.5)
    assert {trace.delay_at(t) for t in np.linspace(-3, 12, 40)} == {2.5}
    assert trace.arrival_at(10.0) == 12.5


def test_uniform_stays_in_its_range_and_fills_it():
    trace = LatencyTrace.generate('uniform', 4, duration_s=100.0, low_s=1.0, high_s=2.0)
    assert trace.delays_s.min() >= 1.0 and trace.delays_s.max() <= 2.0
    assert trace.delays_s.min() < 1.1 and trace.delays_s.max() > 1.9


def test_normal_is_clipped_at_its_floor():
    trace = LatencyTrace.generate('normal', 5, duration_s=100.0, mean_s=0.2, std_s=0.5,
                                  min_s=0.05)
    assert trace.delays_s.min() == pytest.approx(0.05)
    assert abs(np.median(trace.delays_s) - 0.2) < 0.1


def test_lognormal_median_is_near_its_parameter():
    trace = LatencyTrace.generate('lognormal', 6, duration_s=300.0, median_s=2.0, sigma=0.4)
    assert trace.summary()['median_s'] == pytest.approx(2.0, rel=0.08)


def test_pareto_is_heavy_tailed_and_bounded():
    trace = LatencyTrace.generate('pareto', 7, duration_s=500.0, scale_s=0.5, alpha=1.2,
                                  max_s=40.0)
    delays = trace.delays_s
    assert delays.min() >= 0.5 and delays.max() <= 40.0
    # Heavy tail: the 99th percentile is many medians away (a normal would be ~1.5x).
    assert np.percentile(delays, 99) > 8 * np.median(delays)


def test_spikes_come_back_every_period():
    trace = LatencyTrace.generate('spikes', 8, duration_s=40.0, base_s=1.0, jitter_s=0.0,
                                  spike_s=7.0, period_s=10.0, width_s=1.0, phase_s=2.0)
    for k in range(4):
        assert trace.delay_at(2.5 + 10 * k) == 7.0
        assert trace.delay_at(6.0 + 10 * k) == 1.0


def test_outages_return_nothing_for_a_while():
    trace = LatencyTrace.generate('outages', 9, duration_s=600.0, base_s=1.0, jitter_s=0.1,
                                  mean_gap_s=20.0, mean_outage_s=5.0)
    lost = [t for t in trace.times_s if trace.delay_at(t) is None]
    assert lost, 'an outage trace must have outages'
    # Outages are runs of consecutive samples, not scattered single losses.
    assert 0.08 < trace.outage_fraction() < 0.5
    assert trace.summary()['outage_fraction'] == trace.outage_fraction()
    assert trace.arrival_at(lost[0]) is None


def test_pareto_outages_have_both_a_heavy_tail_and_outages():
    trace = LatencyTrace.generate('pareto_outages', 3, duration_s=600.0, scale_s=1.0, alpha=1.5,
                                  mean_gap_s=20.0, mean_outage_s=3.0)
    summary = trace.summary()
    assert 0.03 < summary['outage_fraction'] < 0.5
    assert summary['median_s'] >= 1.0  # a classical Pareto never goes below its scale
    assert summary['p95_s'] > 3 * summary['median_s']  # the tail a normal jitter lacks


def test_lookup_holds_each_sample_until_the_next():
    trace = LatencyTrace([0.0, 1.0, 2.0], [0.5, float('nan'), 3.0])
    assert trace.delay_at(0.0) == 0.5
    assert trace.delay_at(0.99) == 0.5
    assert trace.delay_at(1.0) is None
    assert trace.delay_at(2.7) == 3.0
    assert trace.period_s == pytest.approx(3.0)
    assert trace.delay_at(3.2) == 0.5  # wraps
    assert trace.delay_at(-0.5) == 3.0


def test_infinite_delay_is_an_outage():
    assert LatencyTrace([0.0], [float('inf')]).delay_at(0.0) is None


@pytest.mark.parametrize('times, delays, field', [
    ([], [], 'times_s'),
    ([0.0, 1.0], [1.0], 'delays_s'),
    ([1.0, 0.0], [1.0, 1.0], 'times_s'),
    ([0.0, 0.0], [1.0, 1.0], 'times_s'),
    ([0.0, float('nan')], [1.0, 1.0], 'times_s'),
    ([0.0, 1.0], [1.0, -0.1], 'delays_s'),
])
def test_bad_samples_are_refused_by_name(times, delays, field):
    with pytest.raises(ValueError, match=field):
        LatencyTrace(times, delays)


@pytest.mark.parametrize('kind, params, field', [
    ('nonsense', {}, 'kind'),
    ('constant', {'delay': 1.0}, 'delay'),
    ('uniform', {'low_s': 2.0, 'high_s': 1.0}, 'high_s'),
    ('normal', {'std_s': -1.0}, 'std_s'),
    ('lognormal', {'median_s': 0.0}, 'median_s'),
    ('pareto', {'alpha': 0.0}, 'alpha'),
    ('spikes', {'period_s': float('nan')}, 'period_s'),
    ('outages', {'mean_gap_s': -2.0}, 'mean_gap_s'),
])
def test_bad_parameters_are_refused_by_name(kind, params, field):
    with pytest.raises(ValueError, match=field):
        LatencyTrace.generate(kind, 0, duration_s=5.0, **params)


def test_bad_seed_and_duration_are_refused():
    with pytest.raises(ValueError, match='seed'):
        LatencyTrace.generate('constant', 1.5)
    with pytest.raises(ValueError, match='duration_s'):
        LatencyTrace.generate('constant', 0, duration_s=0.01, step_s=0.1)


def test_every_kind_lists_its_parameters():
    for kind in TRACE_KINDS:
        params = kind_parameters(kind)
        assert LatencyTrace.generate(kind, 0, duration_s=5.0, **params).name.startswith(kind)


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(TRACE_KINDS), seed=SEEDS)
def test_csv_round_trip_is_exact(tmp_path_factory, kind, seed):
    path = tmp_path_factory.mktemp('trace') / 'trace.csv'
    trace = generate(kind, seed, duration_s=20.0)
    trace.to_csv(path)
    back = LatencyTrace.from_csv(path)
    assert np.array_equal(back.times_s, trace.times_s)
    assert np.array_equal(back.delays_s, trace.delays_s, equal_nan=True)


def test_csv_reads_named_columns_comments_outage_words_and_unsorted_rows(tmp_path):
    path = tmp_path / 'measured.csv'
    path.write_text('# measured on the robot\n'
                    'seq,delay,time\n'
                    '3,2.0,2.0\n'
                    '1,0.5,0.0\n'
                    '2,outage,1.0\n'
                    '4,,3.0\n')
    trace = LatencyTrace.from_csv(path)
    assert list(trace.times_s) == [0.0, 1.0, 2.0, 3.0]
    assert [trace.delay_at(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.5, None, 2.0, None]


def test_csv_without_header_uses_the_first_two_columns(tmp_path):
    path = tmp_path / 'bare.csv'
    path.write_text('0.0,1.5\n0.5,2.5\n')
    trace = LatencyTrace.from_csv(path)
    assert trace.delay_at(0.7) == 2.5


@pytest.mark.parametrize('text, field', [
    ('', 'path'),
    ('when,how\n0,1\n', 'path'),
    ('time_s,delay_s\nzero,1\n', 'time_s'),
    ('time_s,delay_s\n0,slow\n', 'delay_s'),
    ('time_s,delay_s\n0,-1\n', 'delay_s'),
    ('time_s,delay_s\n0\n', 'path'),
])
def test_bad_csv_is_refused_by_name(tmp_path, text, field):
    path = tmp_path / 'bad.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=field):
        LatencyTrace.from_csv(path)


@pytest.mark.parametrize('text', [
    't_s,delay_s\n0,1.5\n1,2.0\n2,nan\n',
    't,delay\n0,1.5\n1,2\n2,\n',
    'timestamp,latency_s\n0,1.5\n1,2\n2,outage\n',
    'time_s,rtt_ms\n0,1500\n1,2000\n2,nan\n',
    'seq,time_ms,rtt_ms,status\n0,0,1500,ok\n1,1000,2000,ok\n2,2000,nan,timeout\n'])
def test_common_trace_headers_are_read_with_their_units(tmp_path, text):
    path = tmp_path / 'link.csv'
    path.write_text(text)
    trace = LatencyTrace.from_csv(path)
    assert trace.times_s.tolist() == [0.0, 1.0, 2.0]
    assert trace.delays_s[:2].tolist() == pytest.approx([1.5, 2.0])
    assert math.isnan(trace.delays_s[2])


def test_clock_stamps_start_at_zero_and_columns_can_be_named(tmp_path):
    path = tmp_path / 'link.csv'
    path.write_text('sent,took_ms\n1700000000.5,250\n1700000001.5,500\n')
    with pytest.raises(ValueError, match='expected'):
        LatencyTrace.from_csv(path)
    trace = LatencyTrace.from_csv(path, columns=('sent', 'took_ms'))
    assert trace.times_s.tolist() == [0.0, 1.0]
    assert trace.delays_s.tolist() == pytest.approx([0.25, 0.5])


def test_a_binary_file_is_refused_saying_what_was_expected(tmp_path):
    path = tmp_path / 'link.csv'
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match='expected a CSV'):
        LatencyTrace.from_csv(path)
