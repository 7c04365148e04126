"""Offline evaluation throughput and peak memory on the sample bag with the default models.

Run: python benchmarks/bench_eval.py [--every N] [--traces K]. Prints bag frames replayed per
second (every frame runs the keyframe policy; every Nth is scored by all strategies and
questions), model inferences, and the peak resident memory of this process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.evaluation.main import DEFAULT_TRACES  # noqa: E402
from spotvlm_ros.evaluation.main import main as eval_main  # noqa: E402
from spotvlm_ros.evaluation.records import read_jsonl  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--every', type=int, default=5)
    parser.add_argument('--traces', type=int, default=2, help='how many of the default traces')
    args = parser.parse_args()
    traces = [a for t in DEFAULT_TRACES[:args.traces] for a in ('--trace', t)]
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        code = eval_main(['--out', tmp, '--every', str(args.every), '--no-progress', *traces])
        seconds = time.perf_counter() - start
        if code:
            return code
        records = read_jsonl(Path(tmp) / 'records.jsonl')
        frames = json.loads((Path(tmp) / 'metrics.json').read_text())['settings']['frames']
    replayed = frames * args.traces
    print(f'offline eval: {replayed} frames ({frames} x {args.traces} traces, every '
          f'{args.every}th scored, {len(records)} records) in {seconds:.1f} s: '
          f'{replayed / seconds:.1f} frames/s, {len(records) / seconds:.1f} records/s')
    print(f'peak RSS {peak_rss_mb():.0f} MB (before the run {before:.0f} MB)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
