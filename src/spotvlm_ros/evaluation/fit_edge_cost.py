"""`spotvlm fit-edge-cost`: measure the edge model's answers and fit their cost to the input.

Replays a bag with the edge alone, with Context Transfer (history turns and focus crops) and
with focus crops only, measuring every distinct answer one at a time, and fits seconds per
answer to prompt tokens, generated tokens and images (see evaluation/edge_cost.py). With
`--live`, it fits the times the edge node itself reported in live runs instead: the node's
threads, and the other nodes on the same cores, included.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time
from typing import Optional, Sequence

from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.edge_cost import fit_cost
from spotvlm_ros.evaluation.main import DEFAULT_BAG, DEFAULT_EDGE_COST, ROOT, trace_from_spec

QUESTIONS = ('What colour is the traffic light?', 'Describe the scene.',
             'Where is the nearest vehicle?')


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='spotvlm fit-edge-cost',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--bag', default=str(DEFAULT_BAG))
    parser.add_argument('--frames', type=int, default=60, help='frames of the bag replayed')
    parser.add_argument('--every', type=int, default=2, help='answer every Nth of them')
    parser.add_argument('--edge', default=str(ROOT / 'models' / 'spotvlm-edge'))
    parser.add_argument('--cloud', default=str(ROOT / 'models' / 'spotvlm-cloud'))
    parser.add_argument('--out', default=str(DEFAULT_EDGE_COST))
    parser.add_argument('--threads', type=int, default=1, help='torch threads, as eval uses')
    parser.add_argument('--live', action='append', default=[], metavar='DIR',
                        help="fit the edge node's answers recorded under DIR (a `spotvlm eval "
                             "--live` results folder, or its live/ folder; repeatable) "
                             'instead of measuring here')
    return parser.parse_args(argv)


def live_samples(folder) -> list:
    """(prompt tokens, new tokens, images, seconds) of every edge model answer in the answer
    bags under `folder` (the cloud's answers, which took no edge time, are left out)."""
    from spotvlm_ros.evaluation.live import read_answer_bag

    samples = []
    for metadata in sorted(pathlib.Path(folder).rglob('metadata.yaml')):
        for answer in read_answer_bag(metadata.parent)[1]:
            if answer.inference_time_s > 0:
                crops = len(answer.focus_regions) if answer.used_focus else 0
                samples.append((answer.prompt_tokens, answer.new_tokens, 1 + crops,
                                answer.inference_time_s))
    return samples


def fit_live(args) -> tuple:
    """(the samples, what they are) of the live runs under --live."""
    samples = [s for folder in args.live for s in live_samples(folder)]
    names = ', '.join(pathlib.Path(f).resolve().name for f in args.live)
    return samples, (f'{len(samples)} edge node answers in live runs ({names}), '
                     f'{platform.machine()}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    start = time.perf_counter()
    if args.live:
        samples, described = fit_live(args)
        if not samples:
            print(f'spotvlm fit-edge-cost: no edge answers under {", ".join(args.live)}',
                  file=sys.stderr)
            return 2
        return _fit(samples, described, args.out, start)
    import torch

    from spotvlm_ros.evaluation.answering import Answerer
    from spotvlm_ros.evaluation.offline import OfflineSettings, simulate
    from spotvlm_ros.io.replay import load_bag
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    frames = load_bag(args.bag, max_frames=args.frames)
    edge = TransformersBackend(args.edge, max_new_tokens=64)  # warmed up: no first-call cost
    cloud = TransformersBackend(args.cloud, max_new_tokens=256, warmup=False)
    answerer = Answerer(edge, cloud, edge_cost_s=None)
    settings = OfflineSettings(every=args.every, edge_cost_s=None)
    simulate(frames, [trace_from_spec('constant:delay_s=1', 0, 60.0)], answerer, settings,
             [R.EDGE_ONLY, R.CONTEXT_TRANSFER, R.FOCUS_ONLY], QUESTIONS)
    answers = answerer.edge_answers()
    return _fit([(a.prompt_tokens, a.new_tokens, 1 + a.crops, a.cost_s) for a in answers],
                f'{len(answers)} answers on {args.bag.rstrip("/").split("/")[-1]}, '
                f'{args.threads} torch thread(s), {platform.machine()}', args.out, start)


def _fit(samples: list, described: str, out: str, start: float) -> int:
    """Fit, save and say how well the model predicts its own samples."""
    model = fit_cost(samples, fitted_on=f'{described}, {time.strftime("%Y-%m-%d")}')
    model.save(out)
    error = sum(abs(model.cost(p, n, i) - s) for p, n, i, s in samples) / len(samples)
    print(f'{len(samples)} answers: {model.intercept_s * 1e3:.1f} ms + '
          f'{model.per_prompt_token_s * 1e3:.3f} ms/prompt token + '
          f'{model.per_new_token_s * 1e3:.2f} ms/new token + {model.per_image_s * 1e3:.1f} ms/'
          f'image; mean |error| {error * 1e3:.1f} ms -> {out} '
          f'({time.perf_counter() - start:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
