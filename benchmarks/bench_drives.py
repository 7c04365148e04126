"""The multi-drive evaluation of the README's headline table: wall time on this machine.

Run: python benchmarks/bench_drives.py [--drives 8] [--seconds 60] [--jobs 2]. Generates (once)
and replays validation-split drives under the default traces with every baseline and the
method, as `spotvlm eval --seeds` does, and prints the wall time against the 15-minute target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.evaluation.main import main as eval_main  # noqa: E402
from spotvlm_ros.evaluation.records import read_jsonl  # noqa: E402

TARGET_S = 15 * 60
STRATEGIES = 'edge_only,cloud_latest,cloud_wait,offload,context_transfer'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--drives', type=int, default=8)
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--every', type=int, default=25)
    parser.add_argument('--jobs', type=int, default=2)
    args = parser.parse_args()
    first = 1_000_000  # validation split: never the test split
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        code = eval_main(['--out', tmp, '--seeds', f'{first}:{first + args.drives}',
                          '--seconds', str(args.seconds), '--every', str(args.every),
                          '--jobs', str(args.jobs), '--strategies', STRATEGIES,
                          '--no-progress'])
        seconds = time.perf_counter() - start
        if code:
            return code
        records = len(read_jsonl(Path(tmp) / 'records.jsonl'))
    print(f'eval over {args.drives} drives of {args.seconds:g} s (every {args.every}th frame '
          f'scored, {records} records, {args.jobs} jobs): {seconds:.0f} s, '
          f'{seconds / TARGET_S:.2f} of the 15-minute target')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
