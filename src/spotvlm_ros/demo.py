"""`spotvlm demo`: edge alone vs Context Transfer on a drive whose answer changes, scored side by side.

A drive with a traffic light that cycles is generated at run time (the first seed from 1000 on,
below 4000, whose light is in view and changes colour), then replayed twice through the four
nodes as separate processes with the default edge model (trained on synthetic scenes,
`models/`) and the local cloud server behind a latency trace, serving the simulated 72B-class
model by default (`--cloud-model`): once with the edge model alone, once with the
late cloud answers as its history and focus. Both are scored against the ground truth, and a
few frames where the two answered differently are shown.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from spotvlm_ros import run
from spotvlm_ros.cli_types import positive_float, positive_int

NOTE = ('Models: trained on synthetic driving scenes only (models/), not real-world models; '
        'the drive is a generated sequence with exact ground truth.')
FIRST_SEED, LAST_SEED = 1000, 4000  # seeds the demo may draw its drive from
FPS, WIDTH, HEIGHT = 10.0, 448, 336
MIN_LIGHT_PX = 12  # the light's box height over the whole drive


def light_states(seed: int, frames: int, step: int = 10) -> list:
    """(colour, box height px) of the light every `step` frames of a seed's drive; colour
    'none' and height 0 while it is out of view; [] for a drive without a light."""
    from spotvlm_ros.scenes.truth import frame_truth
    from spotvlm_ros.scenes.world import sample_scene

    scene = sample_scene(seed)
    if scene.light is None:
        return []
    states = []
    for index in range(0, frames, step):
        truth = frame_truth(scene, index, WIDTH, HEIGHT, FPS)[1]
        lights = [o for o in truth.objects if o.kind == 'traffic light']
        states.append((truth.light_state, lights[0].box[3] - lights[0].box[1] if lights else 0))
    return states


def cycling_light_seed(frames: int, first: int = FIRST_SEED, last: int = LAST_SEED) -> tuple:
    """(seed, colours) of the first drive whose light changes colour and stays in view at
    MIN_LIGHT_PX or taller (a light a few pixels high is a guess for any model); ValueError if
    none in [first, last)."""
    for seed in range(first, last):
        states = light_states(seed, frames)
        if states and min(h for _, h in states) >= MIN_LIGHT_PX \
                and len({c for c, _ in states}) >= 2:
            return seed, [c for c, _ in states]
    raise ValueError(f'no seed in {first}..{last - 1} has a light that changes in view')


def _arguments(argv):
    parser = argparse.ArgumentParser(prog='spotvlm demo', description=__doc__.splitlines()[0])
    parser.add_argument('--bag', help='a bag to use instead of the generated drive')
    parser.add_argument('--seed', type=int,
                        help=f'drive seed (default: the first from {FIRST_SEED} with a light that cycles)')
    parser.add_argument('--seconds', type=positive_float, default=10.0, help='drive length')
    parser.add_argument('--question', default='What colour is the traffic light?')
    parser.add_argument('--strategies', default='edge_only,context_transfer',
                        help='strategies to run and compare, comma-separated')
    parser.add_argument('--trace', default='lognormal', help='latency trace of the local cloud')
    parser.add_argument('--cloud-model', default='simulated',
                        help="the local cloud: 'simulated' (default), the stand-in for a "
                             '72B-class model that reads the drive\'s ground truth, or a '
                             'checkpoint such as package://spotvlm_ros/models/spotvlm-cloud')
    parser.add_argument('--show', type=positive_int, default=5, help='differing frames to show')
    args, rest = parser.parse_known_args(argv)
    if args.seed is not None and not FIRST_SEED <= args.seed < LAST_SEED:
        parser.error(f'--seed must be in {FIRST_SEED}..{LAST_SEED - 1}')
    return args, rest


def make_drive(args, folder: Path) -> Path:
    """The generated drive's bag in `folder`."""
    from spotvlm_ros.io.bags import write_scene_bag
    from spotvlm_ros.scenes.truth import sequence

    frames = round(args.seconds * FPS)
    if args.seed is None:
        args.seed, states = cycling_light_seed(frames)
    else:
        states = [c for c, _ in light_states(args.seed, frames)]
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    print(f'[demo] drive: seed {args.seed}, {args.seconds:g} s at {FPS:g} Hz; the light goes '
          f'{" -> ".join(changes) or "(no light)"}', flush=True)
    bag = folder / f'drive_{args.seed}'
    write_scene_bag(bag, sequence(args.seed, frames, WIDTH, HEIGHT, FPS), 1.0 / FPS)
    return bag


def run_strategy(bag: Path, strategy: str, args, rest, folder: Path) -> tuple:
    """(exit code, scored records) of one recorded `spotvlm run` with this strategy."""
    from spotvlm_ros.evaluation.live import live_records, run_arguments
    from spotvlm_ros.evaluation.main import DEFAULT_OVERRIDES
    from spotvlm_ros.evaluation.metrics import score_record
    from spotvlm_ros.share import DEFAULT_EDGE_CHECKPOINT, resolve

    print(f'[demo] --- {strategy} ---', flush=True)
    recorded = folder / f'answers_{strategy}'
    code = run.main(run_arguments(
        bag, args.question, strategy, args.trace, (), resolve(DEFAULT_EDGE_CHECKPOINT),
        resolve(args.cloud_model), recorded, DEFAULT_OVERRIDES)
        + ['--quiet'] + list(rest))
    records = [score_record(r) for r in live_records(recorded, args.trace, 0.0, strategy,
                                                      args.question)]
    return code, records


def side_by_side(results: dict, show: int) -> list:
    """Lines: each strategy's score, then frames where the first two strategies differ."""
    lines = []
    for strategy, records in results.items():
        answered = [r for r in records if r.answered]
        right = sum(r.score for r in answered)
        used = sum(bool(r.used_context or r.used_focus) for r in answered)
        lines.append(f'[demo] {strategy:18s} {right:4.0f} of {len(answered):3d} answers right '
                     f'({right / max(1, len(answered)):.0%}); {len(records) - len(answered)} '
                     f'frames dropped; {used} answers used cloud context')
    names = list(results)[:2]
    if len(names) < 2:
        return lines
    by_frame = [{r.frame_index: r for r in results[n] if r.answered} for n in names]
    differing = sorted(i for i in set(by_frame[0]) & set(by_frame[1])
                       if by_frame[0][i].answer.strip() != by_frame[1][i].answer.strip())
    lines.append(f'[demo] {len(differing)} frames answered differently; '
                 f'{min(show, len(differing))} of them:')
    picked = differing[::max(1, len(differing) // show)][:show] if differing else []
    for index in picked:
        a, b = by_frame[0][index], by_frame[1][index]
        mark = lambda r: 'right' if r.score >= 1 else 'wrong'
        lines.append(f'[demo]   frame {index:3d} ({a.frame_stamp:4.1f} s) truth {a.truth!r}: '
                     f'{names[0]} {a.answer!r} ({mark(a)}), {names[1]} {b.answer!r} ({mark(b)})')
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, rest = _arguments(argv)
    strategies = [s.strip() for s in args.strategies.split(',') if s.strip()]
    print(f'[demo] {NOTE}', flush=True)
    print(f'[demo] question {args.question!r}; strategies {", ".join(strategies)}; cloud '
          f'{args.cloud_model}, delays: {args.trace} trace', flush=True)
    results, codes = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bag = Path(args.bag) if args.bag else make_drive(args, folder)
        for strategy in strategies:
            code, results[strategy] = run_strategy(bag, strategy, args, rest, folder)
            codes.append(code)
    for line in side_by_side(results, args.show):
        print(line, flush=True)
    return next((c for c in codes if c), 0)
