"""Cloud-delay independence: the edge's answer rate and latency with the cloud 0 s and 9 s late.

Runs `spotvlm run` on the looping sample bag with the trained models and the local cloud
server on a constant-delay trace, once per delay (alternating, `--rounds` times each), and
prints each run's answer rate and latency p50/p95 over its steady part, then the ratios of
9 s to 0 s (goals: rate >= 0.95x, p95 <= 1.1x). Not a timed test: a benchmark that prints.

Run: python benchmarks/bench_cloud_delay.py [--seconds 45] [--rounds 1] [--delays 0,9]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ANSWER_LINE = re.compile(r'^\[answer\] frame (\S+) latency\s+(\d+) ms')
WARMUP_S = 10.0  # answers in the first seconds after the first one are not counted


def load() -> str:
    """The 1-minute load average, as the shared machine's noise level."""
    return open('/proc/loadavg').read().split()[0]


def run_once(delay_s: float, seconds: float) -> dict:
    """One `spotvlm run` with the cloud `delay_s` late: answer arrivals and latencies."""
    cmd = [sys.executable, '-m', 'spotvlm_ros.cli', 'run', '--duration', str(seconds),
           '--grace', '2', '--trace', 'constant', '--trace-param', f'delay_s={delay_s:g}',
           '-p', 'image_source:loop=true', '-p', 'edge_node:model.device=cpu']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ), bufsize=1)
    arrivals, latencies_ms, tail = [], [], []
    for line in proc.stdout:
        match = ANSWER_LINE.match(line)
        if match:
            arrivals.append(time.monotonic())
            latencies_ms.append(float(match.group(2)))
        else:
            tail = (tail + [line.rstrip()])[-10:]
    code = proc.wait()
    if code != 0 or len(arrivals) < 2:
        raise RuntimeError(f'spotvlm run failed (exit {code}):\n' + '\n'.join(tail))
    arrivals = np.array(arrivals)
    steady = arrivals >= arrivals[0] + WARMUP_S
    span = arrivals[steady][-1] - arrivals[steady][0]
    lat = np.array(latencies_ms)[steady]
    return {'answers': int(steady.sum()), 'rate': (steady.sum() - 1) / span,
            'p50': float(np.percentile(lat, 50)), 'p95': float(np.percentile(lat, 95)),
            'load': load()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=45.0, help='each run')
    parser.add_argument('--rounds', type=int, default=1, help='runs per delay, alternating')
    parser.add_argument('--delays', default='0,9', help='two constant delays, seconds')
    args = parser.parse_args(argv)
    delays = [float(d) for d in args.delays.split(',')]
    print(f'cloud-delay independence: spotvlm run on the looping sample bag, trained models, '
          f'edge on the CPU, {args.seconds:g} s per run ({WARMUP_S:g} s warm-up not counted); '
          f'load average {load()} at start')
    runs = {delay: [] for delay in delays}
    for round_index in range(args.rounds):
        order = delays if round_index % 2 == 0 else delays[::-1]
        for delay in order:
            result = run_once(delay, args.seconds)
            runs[delay].append(result)
            print(f'  delay {delay:4g} s: {result["answers"]:4d} answers, '
                  f'{result["rate"]:5.2f} answers/s, latency p50 {result["p50"]:5.0f} ms '
                  f'p95 {result["p95"]:5.0f} ms (load {result["load"]})', flush=True)
    base, late = delays
    rate = {d: float(np.mean([r['rate'] for r in runs[d]])) for d in delays}
    p95 = {d: float(np.mean([r['p95'] for r in runs[d]])) for d in delays}
    rate_ratio, p95_ratio = rate[late] / rate[base], p95[late] / p95[base]
    print(f'{late:g} s against {base:g} s: answer rate {rate_ratio:.3f}x (goal >= 0.95: '
          f'{"met" if rate_ratio >= 0.95 else "NOT met"}), latency p95 {p95_ratio:.3f}x '
          f'(goal <= 1.1: {"met" if p95_ratio <= 1.1 else "NOT met"}); load average {load()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
