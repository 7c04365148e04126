"""`spotvlm calibrate`: fit the `auto` strategy's table on validation drives.

Replays the drives of validation seeds under the default traces with the sources `auto`
chooses from, and writes their mean scores per question, context age and source as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from spotvlm_ros.core.calibration import SOURCES, Sample, fit
from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.main import DEFAULT_CALIBRATION, DEFAULT_TRACES

VALIDATION_SEEDS = range(1_000_000, 1_001_000)  # every choice is made on these, never on test


def samples_from(records: Sequence, deadline_s: float) -> list:
    """One Sample per scored record of a source, aged by the newest reply at its frame.

    The age comes from the same frame's cloud_latest record: the store, and so the newest
    reply, is the same for every strategy under one trace. The cloud waited for counts only
    where its reply met the deadline: `auto` hedges a wait with the best other source, which
    answers when the reply is late, so a wait is worth the cloud's score when it is on time.
    """
    ages = {(r.drive, r.trace, r.frame_index, r.question): r.context_age_s
            for r in records if r.strategy == R.CLOUD_LATEST}
    return [Sample(r.strategy, r.question, r.family,
                   ages.get((r.drive, r.trace, r.frame_index, r.question)),
                   r.score if r.answered else 0.0)
            for r in records if r.strategy in SOURCES and
            (r.strategy != R.CLOUD_WAIT or (r.answered and r.latency_s <= deadline_s))]


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='spotvlm calibrate', description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', required=True, metavar='FIRST:LAST',
                        help='validation scene seeds (1000000-1000999), LAST exclusive')
    parser.add_argument('--out', default=str(DEFAULT_CALIBRATION), help='the table (JSON)')
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--every', type=int, default=25)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--drives-dir', default='.cache/drives')
    parser.add_argument('--edge', default=None, help='edge model (default: the committed one)')
    parser.add_argument('--cloud', default=None, help='cloud model (default: the committed one)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    from spotvlm_ros.evaluation import main as evaluation

    seeds = evaluation.seed_range(args.seeds)
    if not seeds or seeds[0] not in VALIDATION_SEEDS or seeds[-1] not in VALIDATION_SEEDS:
        raise ValueError(f'--seeds {args.seeds}: the table is fitted on validation seeds only '
                         f'({VALIDATION_SEEDS.start}-{VALIDATION_SEEDS.stop - 1})')
    eval_argv = ['--seeds', args.seeds, '--seconds', str(args.seconds), '--every',
                 str(args.every), '--jobs', str(args.jobs), '--drives-dir', args.drives_dir,
                 '--strategies', ','.join(SOURCES[:3] + (R.CLOUD_WAIT,)), '--no-progress']
    eval_argv += [a for flag in ('edge', 'cloud') if getattr(args, flag)
                  for a in (f'--{flag}', getattr(args, flag))]
    eval_args = evaluation._arguments(eval_argv)
    start = time.perf_counter()
    params = evaluation.node_params_of(eval_args)
    settings = evaluation.settings_from(eval_args, params)
    bags = evaluation.drive_bags(eval_args)
    records, _ = evaluation.evaluate_drives(eval_args, bags, params, settings)
    samples = samples_from(records, settings.deadline_s)
    models = f'edge {Path(eval_args.edge).name}, cloud {Path(eval_args.cloud).name}'
    table = fit(samples, fitted_on=f'seeds {args.seeds}, {models}, {args.seconds:g} s drives, '
                                   f'every {args.every}th frame, traces: '
                                   f'{", ".join(DEFAULT_TRACES)}')
    table.save(args.out)
    print(f'{len(samples)} samples from {len(bags)} drives -> {args.out} '
          f'({time.perf_counter() - start:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
