"""`spotvlm demo`: the whole pipeline offline on the sample bag, scored against its ground truth.

The four nodes run as separate processes on `bags/sample_scene` with the default models trained
on synthetic scenes (`models/`) and the local cloud server behind a latency trace; every answer
is printed as it comes, recorded with the bag's ground truth, and scored at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from spotvlm_ros import run

ROOT = Path(__file__).resolve().parents[2]
NOTE = ('Models: trained on synthetic driving scenes only (models/), not real-world models; '
        'the bag is a synthetic sequence with exact ground truth (bags/sample_scene).')


def main(argv: Optional[Sequence[str]] = None) -> int:
    from spotvlm_ros.evaluation.live import live_records, run_arguments
    from spotvlm_ros.evaluation.main import DEFAULT_OVERRIDES
    from spotvlm_ros.evaluation.metrics import score_record
    from spotvlm_ros.nodes.recorder import AnswerRecorder

    parser = argparse.ArgumentParser(prog='spotvlm demo', description=__doc__.splitlines()[0])
    parser.add_argument('--bag', default=str(ROOT / 'bags' / 'sample_scene'))
    parser.add_argument('--question', default='What colour is the traffic light?')
    parser.add_argument('--strategy', default='context_transfer')
    parser.add_argument('--trace', default='lognormal', help='latency trace of the local cloud')
    args, rest = parser.parse_known_args(argv)
    print(f'[demo] {NOTE}', flush=True)
    print(f'[demo] question {args.question!r}, strategy {args.strategy}, cloud delays: '
          f'{args.trace} trace', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        recorded = Path(tmp) / 'answers'
        recorder = AnswerRecorder(recorded)
        try:
            code = run.main(run_arguments(
                args.bag, args.question, args.strategy, args.trace, (),
                ROOT / 'models' / 'spotvlm-edge', ROOT / 'models' / 'spotvlm-cloud',
                DEFAULT_OVERRIDES) + list(rest))
        finally:
            recorder.close()
        records = [score_record(r) for r in live_records(recorded, args.trace, 0.0,
                                                         args.strategy, args.question)]
    answered = [r for r in records if r.answered]
    right = sum(r.score for r in answered)
    print(f'[demo] scored against the ground truth: {right:.0f} of {len(answered)} answers right '
          f'({len(records)} frames; {len(records) - len(answered)} dropped by the latest-frame '
          f'policy)', flush=True)
    return code
