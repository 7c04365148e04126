"""Cloud latency traces: the delay a request sent at time t would see, loaded or generated."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from spotvlm_ros.core.checks import finite, non_negative, positive, require

TRACE_KINDS = ('constant', 'uniform', 'normal', 'lognormal', 'pareto', 'spikes', 'outages',
               'pareto_outages')

# Words a CSV delay cell may hold to mean "no reply ever" (besides an empty cell).
_OUTAGE_WORDS = frozenset({'', 'nan', 'inf', '+inf', 'none', 'outage', 'null'})
# Header names a trace CSV may use, in seconds unless they end in _ms (milliseconds).
_TIME_COLUMNS = ('time_s', 'time', 't', 't_s', 'stamp', 'stamp_s', 'timestamp', 'timestamp_s',
                 'send_time', 'send_time_s', 'sent_s', 'time_ms', 't_ms', 'timestamp_ms')
_DELAY_COLUMNS = ('delay_s', 'delay', 'latency_s', 'latency', 'rtt', 'rtt_s', 'round_trip_s',
                  'delay_ms', 'latency_ms', 'rtt_ms', 'round_trip_ms')
_ABSOLUTE_TIME_S = 1e6  # first send times past this are clock stamps: made relative to the first
EXPECTED_CSV = ('a CSV of send time and delay: a header with a time column (t, t_s, time_s, '
                'timestamp, time_ms, ...) and a delay column (delay_s, latency_s, rtt_s, rtt_ms, '
                '...; _ms in milliseconds), or two numeric columns time_s,delay_s without header, '
                'or the columns named by --trace-columns TIME,DELAY')


class LatencyTrace:
    """A step function of send time to delay; NaN marks an outage; repeats past its end."""

    def __init__(self, times_s, delays_s, name: str = ''):
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        delays = np.asarray(delays_s, dtype=np.float64).reshape(-1).copy()
        require(times.size > 0, 'times_s', 'a trace needs at least one sample')
        require(times.size == delays.size, 'delays_s',
                f'has {delays.size} samples but times_s has {times.size}')
        require(bool(np.all(np.isfinite(times))), 'times_s', 'must be finite')
        require(bool(np.all(np.diff(times) > 0)), 'times_s', 'must be strictly increasing')
        delays[np.isinf(delays)] = np.nan  # an infinite delay is an outage
        require(bool(np.all(np.isnan(delays) | (delays >= 0))), 'delays_s',
                'must be >= 0 (or NaN for an outage)')
        times.setflags(write=False)
        delays.setflags(write=False)
        self.times_s = times
        self.delays_s = delays
        self.name = name
        self.period_s = _period(times)

    def __len__(self) -> int:
        return int(self.times_s.size)

    def __repr__(self) -> str:
        return f'LatencyTrace({self.name!r}, {len(self)} samples, {self.period_s:g} s)'

    def delay_at(self, t: float) -> Optional[float]:
        """Delay (s) of a request sent at `t`; None during an outage (no reply ever)."""
        delay = self.delays_s[self._index(t)]
        return None if math.isnan(delay) else float(delay)

    def arrival_at(self, t: float) -> Optional[float]:
        """When a request sent at `t` is answered; None during an outage."""
        delay = self.delay_at(t)
        return None if delay is None else t + delay

    def outage_fraction(self) -> float:
        """Share of samples during which nothing returns."""
        return float(np.mean(np.isnan(self.delays_s)))

    def summary(self) -> dict:
        """Median, p95 and max delay of the answered samples, and the outage share."""
        answered = self.delays_s[~np.isnan(self.delays_s)]
        if answered.size == 0:
            return {'median_s': None, 'p95_s': None, 'max_s': None, 'outage_fraction': 1.0}
        return {
            'median_s': float(np.median(answered)),
            'p95_s': float(np.percentile(answered, 95)),
            'max_s': float(answered.max()),
            'outage_fraction': self.outage_fraction(),
        }

    def to_csv(self, path: Union[str, Path]) -> None:
        """Write `time_s,delay_s` rows; outages as `nan`; floats round-trip exactly."""
        with open(path, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['time_s', 'delay_s'])
            for t, d in zip(self.times_s.tolist(), self.delays_s.tolist()):
                writer.writerow([repr(t), 'nan' if math.isnan(d) else repr(d)])

    @classmethod
    def from_csv(cls, path: Union[str, Path], columns: Optional[tuple] = None) -> 'LatencyTrace':
        """Read a CSV of send time and delay; header optional; rows sorted by time.

        `columns` = (time, delay) header names to read instead of the known ones; a name
        ending in _ms is in milliseconds. Send times that are clock stamps start at 0.
        ValueError says what was expected when the file is no such CSV.
        """
        try:
            with open(path, newline='', encoding='utf-8') as f:
                rows = [r for r in csv.reader(f) if r and not r[0].lstrip().startswith('#')]
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f'{path}: not a text CSV ({err}); expected {EXPECTED_CSV}') from None
        require(bool(rows), 'path', f'{path} holds no samples; expected {EXPECTED_CSV}')
        t_col, d_col, t_scale, d_scale = 0, 1, 1.0, 1.0
        if columns or not _is_number(rows[0][0]):
            require(not _is_number(rows[0][0]), 'path',
                    f'{path} has no header to find the columns {columns} in')
            t_col, d_col = _header_columns(rows[0], path, columns)
            t_scale, d_scale = (_unit_scale(rows[0][c]) for c in (t_col, d_col))
            rows = rows[1:]
        require(bool(rows), 'path', f'{path} holds a header but no samples')
        times, delays = [], []
        for line, row in enumerate(rows, start=1):
            require(len(row) > max(t_col, d_col), 'path',
                    f'{path} row {line} has too few cells; expected {EXPECTED_CSV}')
            times.append(_parse_time(row[t_col], path, line) * t_scale)
            delays.append(_parse_delay(row[d_col], path, line) * d_scale)
        times = np.asarray(times)
        if times.min() > _ABSOLUTE_TIME_S:
            times = times - times.min()
        order = np.argsort(times, kind='stable')
        return cls(times[order], np.asarray(delays)[order], name=Path(path).stem)

    @classmethod
    def generate(cls, kind: str, seed: int, duration_s: float = 60.0, step_s: float = 0.1,
                 **params) -> 'LatencyTrace':
        """A trace of `kind` sampled every `step_s`; the same seed gives the same trace."""
        require(kind in _GENERATORS, 'kind', f'unknown trace kind {kind!r}; one of {TRACE_KINDS}')
        require(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool), 'seed',
                f'must be an int, got {seed!r}')
        positive('step_s', step_s)
        positive('duration_s', duration_s)
        require(duration_s >= step_s, 'duration_s', 'must be at least one step_s long')
        defaults, make = _GENERATORS[kind]
        for key in params:
            require(key in defaults, key, f'is not a parameter of {kind!r} traces; '
                                          f'they take {sorted(defaults)}')
        merged = {**defaults, **params}
        for key, value in merged.items():
            if value is not None:
                finite(key, value)
        n = int(math.floor(duration_s / step_s + 1e-9))
        times = np.arange(n, dtype=np.float64) * step_s
        rng = np.random.default_rng(seed)
        delays = make(rng, times, step_s, **merged)
        return cls(times, delays, name=f'{kind}-seed{seed}')

    def _index(self, t: float) -> int:
        """Index of the sample in force at `t`, wrapping `t` into one period."""
        t0 = self.times_s[0]
        wrapped = t0 + math.fmod(float(t) - t0, self.period_s)
        if wrapped < t0:
            wrapped += self.period_s
        index = int(np.searchsorted(self.times_s, wrapped, side='right')) - 1
        return min(max(index, 0), len(self) - 1)


def _period(times: np.ndarray) -> float:
    """Span of the trace plus one typical step, so the last sample lasts like the others."""
    if times.size == 1:
        return 1.0
    return float(times[-1] - times[0] + np.median(np.diff(times)))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _header_columns(header: list, path, columns: Optional[tuple] = None) -> tuple:
    """Column indices of time and delay, found by name (the known ones, or `columns`)."""
    names = [h.strip().lower() for h in header]
    if columns:
        wanted_t, wanted_d = ((c.strip().lower(),) for c in columns)
    else:
        wanted_t, wanted_d = _TIME_COLUMNS, _DELAY_COLUMNS
    t_col = next((names.index(n) for n in wanted_t if n in names), None)
    d_col = next((names.index(n) for n in wanted_d if n in names), None)
    require(t_col is not None and d_col is not None, 'path',
            f'{path}: cannot read header {",".join(header)}; expected {EXPECTED_CSV}')
    return t_col, d_col


def _unit_scale(name: str) -> float:
    """Seconds per unit of a column, by its name: _ms is milliseconds."""
    return 1e-3 if name.strip().lower().endswith('_ms') else 1.0


def _parse_time(cell: str, path, line: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f'time_s: {path} row {line}: {cell!r} is not a number') from None
    require(math.isfinite(value), 'time_s', f'{path} row {line}: must be finite')
    return value


def _parse_delay(cell: str, path, line: int) -> float:
    if cell.strip().lower() in _OUTAGE_WORDS:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f'delay_s: {path} row {line}: {cell!r} is not a number') from None
    require(value >= 0, 'delay_s', f'{path} row {line}: must be >= 0, got {value}')
    return value


# Generators: (rng, times, step_s, **params) -> delays. Each draws from `rng` only.

def _constant(rng, times, step_s, delay_s):
    non_negative('delay_s', delay_s)
    return np.full(times.size, float(delay_s))


def _uniform(rng, times, step_s, low_s, high_s):
    non_negative('low_s', low_s)
    require(high_s >= low_s, 'high_s', f'must be >= low_s ({low_s}), got {high_s}')
    return rng.uniform(low_s, high_s, times.size)


def _normal(rng, times, step_s, mean_s, std_s, min_s):
    non_negative('std_s', std_s)
    non_negative('min_s', min_s)
    return np.maximum(rng.normal(mean_s, std_s, times.size), min_s)


def _lognormal(rng, times, step_s, median_s, sigma):
    positive('median_s', median_s)
    non_negative('sigma', sigma)
    return rng.lognormal(math.log(median_s), sigma, times.size)


def _pareto(rng, times, step_s, scale_s, alpha, max_s):
    positive('scale_s', scale_s)
    positive('alpha', alpha)
    require(max_s >= scale_s, 'max_s', f'must be >= scale_s ({scale_s}), got {max_s}')
    # Classical Pareto: numpy's pareto() is Lomax, shifted by one.
    return np.minimum(scale_s * (1.0 + rng.pareto(alpha, times.size)), max_s)


def _spikes(rng, times, step_s, base_s, jitter_s, spike_s, period_s, width_s, phase_s):
    non_negative('base_s', base_s)
    non_negative('jitter_s', jitter_s)
    non_negative('spike_s', spike_s)
    positive('period_s', period_s)
    positive('width_s', width_s)
    phase = period_s / 2 if phase_s is None else phase_s
    delays = np.maximum(base_s + rng.normal(0.0, jitter_s, times.size), 0.0)
    in_spike = np.mod(times - phase, period_s) < width_s
    delays[in_spike] = spike_s
    return delays


def _outages(rng, times, step_s, base_s, jitter_s, mean_gap_s, mean_outage_s):
    non_negative('base_s', base_s)
    non_negative('jitter_s', jitter_s)
    delays = np.maximum(base_s + rng.normal(0.0, jitter_s, times.size), 0.0)
    return _add_outages(rng, delays, times, step_s, mean_gap_s, mean_outage_s)


def _pareto_outages(rng, times, step_s, scale_s, alpha, max_s, mean_gap_s, mean_outage_s):
    delays = _pareto(rng, times, step_s, scale_s, alpha, max_s)
    return _add_outages(rng, delays, times, step_s, mean_gap_s, mean_outage_s)


def _add_outages(rng, delays, times, step_s, mean_gap_s, mean_outage_s):
    """`delays` with outages (NaN) of exponential length at exponential gaps."""
    positive('mean_gap_s', mean_gap_s)
    positive('mean_outage_s', mean_outage_s)
    end = times[-1] + step_s
    t = rng.exponential(mean_gap_s)
    while t < end:
        length = max(rng.exponential(mean_outage_s), step_s)
        delays[(times >= t) & (times < t + length)] = np.nan
        t += length + rng.exponential(mean_gap_s)
    return delays


_GENERATORS: dict[str, tuple[dict, Callable]] = {
    'constant': ({'delay_s': 1.0}, _constant),
    'uniform': ({'low_s': 0.5, 'high_s': 3.0}, _uniform),
    'normal': ({'mean_s': 2.0, 'std_s': 0.5, 'min_s': 0.0}, _normal),
    'lognormal': ({'median_s': 1.5, 'sigma': 0.5}, _lognormal),
    'pareto': ({'scale_s': 0.8, 'alpha': 1.5, 'max_s': 30.0}, _pareto),
    'spikes': ({'base_s': 1.0, 'jitter_s': 0.1, 'spike_s': 6.0, 'period_s': 10.0,
                'width_s': 1.0, 'phase_s': None}, _spikes),
    'outages': ({'base_s': 1.0, 'jitter_s': 0.2, 'mean_gap_s': 20.0, 'mean_outage_s': 3.0},
                _outages),
    # Heavy-tailed delays and outages together, the worst case of a cellular link.
    'pareto_outages': ({'scale_s': 0.8, 'alpha': 1.5, 'max_s': 30.0, 'mean_gap_s': 20.0,
                        'mean_outage_s': 3.0}, _pareto_outages),
}


def kind_parameters(kind: str) -> dict:
    """The parameters a trace kind takes, with their defaults."""
    require(kind in _GENERATORS, 'kind', f'unknown trace kind {kind!r}; one of {TRACE_KINDS}')
    return dict(_GENERATORS[kind][0])


# Function spellings of the classmethods, for callers that prefer them.
from_csv = LatencyTrace.from_csv
generate = LatencyTrace.generate
