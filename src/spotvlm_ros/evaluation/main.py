"""`spotvlm eval`: replay a bag under cloud-latency traces and score every strategy."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from spotvlm_ros.evaluation import records as R
from spotvlm_ros.evaluation.reference import (
    NOTICE, REFERENCE_CLOUD, REFERENCE_TRUTH, REFERENCES)
from spotvlm_ros.scenes.large_model import SimulatedLargeModel, is_simulated

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PARAMS = ROOT / 'config' / 'spotvlm.yaml'
DEFAULT_BAG = ROOT / 'bags' / 'sample_scene'
DEFAULT_CALIBRATION = ROOT / 'models' / 'calibration.json'
DEFAULT_EDGE_COST = ROOT / 'models' / 'edge_cost.json'
# Mean delays of the README table, and a heavy-tailed trace with outages.
DEFAULT_TRACES = ('constant:delay_s=0', 'constant:delay_s=1', 'constant:delay_s=3',
                  'constant:delay_s=6', 'constant:delay_s=9',
                  'pareto_outages:scale_s=1.5,alpha=1.3,mean_gap_s=8,mean_outage_s=3')
# The default edge model was trained with 96-token focus views and answers boxes in ~40 tokens.
DEFAULT_OVERRIDES = ('edge_node:focus.token_budget=96', 'edge_node:model.max_new_tokens=64')
LIVE_TOLERANCE = 0.15  # |live - offline| mean accuracy, per strategy, that still agrees


def split_spec(spec: str) -> tuple:
    """('kind', ['key=value', ...]) of a 'kind[:key=value,...]' trace spec."""
    kind, _, rest = spec.partition(':')
    return kind, [p for p in rest.split(',') if p]


def trace_from_spec(spec: str, seed: int, duration_s: float, columns: Optional[str] = None):
    """A LatencyTrace from 'kind[:key=value,...]' or a CSV path, named by its spec."""
    from spotvlm_ros.cloud.server import load_trace

    if spec.lower().endswith('.csv') or Path(spec).is_file():
        trace = load_trace(spec, seed, duration_s, columns=columns)
    else:
        kind, params = split_spec(spec)
        trace = load_trace(kind, seed, duration_s, params)
    trace.name = spec
    return trace


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='spotvlm eval', description=__doc__.splitlines()[0])
    parser.add_argument('--bag', action='append', default=None,
                        help='bag to replay (repeatable; default: the sample bag)')
    parser.add_argument('--seeds', default=None, metavar='FIRST:LAST',
                        help='also generate and replay the drives of these scene seeds '
                             '(LAST exclusive), e.g. 1000000:1000008 (validation split)')
    parser.add_argument('--seconds', type=float, default=60.0, help='length of generated drives')
    parser.add_argument('--drives-dir', default='.cache/drives', help='where generated drives go')
    parser.add_argument('--jobs', type=int, default=1, help='drives evaluated in parallel')
    parser.add_argument('--out', default='results/eval', help='results folder')
    parser.add_argument('--edge', default=str(ROOT / 'models' / 'spotvlm-edge'))
    parser.add_argument('--cloud', default=str(ROOT / 'models' / 'spotvlm-cloud'),
                        help="cloud checkpoint, or 'simulated': a stand-in for a 72B-class "
                             'model that answers from the ground truth (synthetic drives)')
    parser.add_argument('--trace', action='append', default=None, metavar='SPEC',
                        help="'kind[:key=value,...]' or a CSV of time_s,delay_s (repeatable)")
    parser.add_argument('--trace-columns', metavar='TIME,DELAY',
                        help="header names of CSV traces' columns (_ms: milliseconds)")
    parser.add_argument('--seed', type=int, default=0, help='seed of generated traces')
    parser.add_argument('--strategies', default=','.join(R.STRATEGIES))
    parser.add_argument('--question', action='append', default=None,
                        help='only this question (repeatable; default: every question)')
    parser.add_argument('--every', type=int, default=5, help='score every Nth frame')
    parser.add_argument('--worker-frames', choices=('scored', 'all'), default='scored',
                        help="frames the simulated edge worker answers: 'all', as the node's "
                             'worker (its backlog, drops and own turns; every times the edge '
                             "answers), or only the 'scored' ones")
    parser.add_argument('--max-frames', type=int, default=None)
    parser.add_argument('--deadline', type=float, default=1.0, help='seconds')
    parser.add_argument('--edge-time', choices=('fixed', 'measured', 'model'), default=None,
                        help='edge inference time: a fixed cost (bit-identical runs; the '
                             'default), measured, or the cost model (the default with --live: '
                             'offline then times the edge as the nodes run it)')
    parser.add_argument('--edge-cost', type=float, default=0.1, help='fixed edge cost, seconds')
    parser.add_argument('--edge-cost-model', default=str(DEFAULT_EDGE_COST),
                        help='--edge-time model: the fitted cost model (spotvlm fit-edge-cost)')
    parser.add_argument('--cloud-cost', type=float, default=0.0,
                        help="the cloud model's own time added to each delay, seconds")
    parser.add_argument('--encoder-cost', type=float, default=0.1,
                        help="partitioned: the cloud vision encoder's time on the edge, seconds")
    parser.add_argument('--uplink-mbps', type=float, default=10.0,
                        help='partitioned: uplink rate for the visual tokens, Mbit/s')
    parser.add_argument('--embeds-dtype', choices=('float16', 'int8'), default='float16',
                        help='partitioned: how the visual tokens travel')
    parser.add_argument('--calibration', default=str(DEFAULT_CALIBRATION),
                        help="auto's table of expected accuracy (spotvlm calibrate)")
    parser.add_argument('--params-file', default=str(DEFAULT_PARAMS))
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NODE:NAME=VALUE')
    parser.add_argument('--reference', choices=REFERENCES, default=REFERENCE_TRUTH,
                        help="what answers are scored against: the bag's ground truth, or "
                             "(a drive without it) the cloud model's answer at zero delay")
    parser.add_argument('--live', action='store_true',
                        help='also run the real nodes on the bag and compare (slow)')
    parser.add_argument('--live-question', default='What colour is the traffic light?')
    parser.add_argument('--live-trace', default='constant:delay_s=1')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    if args.edge_time is None:
        args.edge_time = 'model' if args.live else 'fixed'
    return args


def strategies_of(args) -> list:
    """The --strategies list."""
    return [s.strip() for s in args.strategies.split(',') if s.strip()]


def node_params_of(args) -> dict:
    """The nodes' parameters: the params file, the evaluator's overrides, then -p ones."""
    from spotvlm_ros.evaluation.params import node_params

    return node_params(args.params_file, list(DEFAULT_OVERRIDES) + list(args.param))


def settings_from(args, params: dict):
    """OfflineSettings from the flags and the nodes' parameters."""
    from spotvlm_ros.core.calibration import CalibrationTable
    from spotvlm_ros.core.context import ContextConfig
    from spotvlm_ros.evaluation.edge_cost import EdgeCostModel
    from spotvlm_ros.core.focus import FocusConfig
    from spotvlm_ros.core.keyframes import KeyframeConfig
    from spotvlm_ros.evaluation.offline import OfflineSettings
    from spotvlm_ros.evaluation.params import config_from

    edge, bridge, fuser = (params.get(n, {}) for n in ('edge_node', 'cloud_bridge',
                                                       'context_fuser'))
    return OfflineSettings(
        deadline_s=args.deadline, every=args.every,
        worker_every_frame=args.worker_frames == 'all',
        edge_cost_s=args.edge_cost if args.edge_time == 'fixed' else None,
        edge_cost_model=EdgeCostModel.load(args.edge_cost_model) if args.edge_time == 'model'
        else None,
        cloud_cost_s=args.cloud_cost,
        cloud_timeout_s=float(bridge.get('cloud.timeout_s', 12.0)),
        encoder_cost_s=args.encoder_cost, uplink_mbps=args.uplink_mbps,
        embeds_dtype=args.embeds_dtype,
        calibration=CalibrationTable.load(args.calibration) if R.AUTO in strategies_of(args)
        else None,
        auto_wait=edge.get('auto.wait', True),  # the edge node's default: it may wait
        frame_ring_size=int(fuser.get('frame_ring_size', 100)),
        context=config_from(fuser, 'context', ContextConfig),
        focus=config_from(edge, 'focus', FocusConfig),
        keyframe=config_from(bridge, 'keyframe', KeyframeConfig))


def load_models(args, params: dict):
    """The edge and cloud backends, greedy, on the CPU."""
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    edge_tokens = int(params.get('edge_node', {}).get('model.max_new_tokens', 64))
    cloud_tokens = int(params.get('cloud_bridge', {}).get('cloud.max_tokens', 256))
    edge = TransformersBackend(args.edge, max_new_tokens=edge_tokens, warmup=False)
    if is_simulated(args.cloud):
        return edge, SimulatedLargeModel()
    return edge, TransformersBackend(args.cloud, max_new_tokens=cloud_tokens, warmup=False)


def run_offline(args, frames, params: dict, settings, models=None) -> list:
    """Every strategy on every trace and question, scored (against the cloud: see reference)."""
    from tqdm import tqdm

    from spotvlm_ros.cloud.client import CloudClientConfig
    from spotvlm_ros.evaluation.answering import Answerer
    from spotvlm_ros.evaluation.metrics import score_record
    from spotvlm_ros.evaluation.offline import simulate
    from spotvlm_ros.evaluation.params import config_from
    from spotvlm_ros.evaluation.reference import FAMILY_OF, with_cloud_reference
    from spotvlm_ros.io.replay import questions_of

    duration = frames[-1].stamp + 1.0
    traces = [trace_from_spec(s, args.seed, max(60.0, duration), args.trace_columns)
              for s in (args.trace or DEFAULT_TRACES)]
    strategies = strategies_of(args)
    edge, cloud = models or load_models(args, params)
    answerer = Answerer(edge, cloud, settings.edge_cost_s, settings.cloud_cost_s,
                        config_from(params.get('cloud_bridge', {}), 'cloud', CloudClientConfig),
                        settings.edge_cost_model)
    if args.reference == REFERENCE_CLOUD:
        questions = args.question or list(FAMILY_OF)
        frames = with_cloud_reference(frames, questions, answerer, settings.every)
    questions = args.question or questions_of(frames)
    bar = tqdm(total=len(traces) * len(questions), desc='offline', unit='question',
               disable=args.no_progress, file=sys.stderr)
    records = simulate(frames, traces, answerer, settings, strategies, questions, bar.update)
    bar.close()
    print(f'offline: {answerer.calls["edge"]} edge and {answerer.calls["cloud"]} cloud '
          f'inferences', flush=True)
    return [score_record(r) for r in records]


def live_strategies(args) -> list:
    """The --strategies live mode runs: those it has, partitioned only with a checkpoint
    cloud (the simulated one cannot read visual tokens)."""
    wanted = strategies_of(args)
    skipped = [s for s in wanted if s not in R.LIVE_STRATEGIES]
    if R.PARTITIONED in wanted and is_simulated(args.cloud):
        skipped.append(R.PARTITIONED)
    if skipped:
        print(f'live mode does not run {", ".join(skipped)} (offline only here)', flush=True)
    return [s for s in wanted if s not in skipped]


def run_live(args, bag: Path, strategies: list, reply_grace_s: float = 0.0) -> list:
    """The real nodes on the bag for these strategies, scored."""
    from spotvlm_ros.evaluation.live import run_live as live
    from spotvlm_ros.evaluation.metrics import score_record

    kind, trace_params = split_spec(args.live_trace)
    records = live(bag, Path(args.out), args.live_question, strategies,
                   kind, trace_params, args.edge, args.cloud,
                   extra_params=[*DEFAULT_OVERRIDES, f'edge_node:auto.deadline_s={args.deadline}',
                                 f'edge_node:offload.deadline_s={args.deadline}', *args.param],
                   trace_name=args.live_trace, seed=args.seed,
                   link={'uplink_mbps': args.uplink_mbps, 'embeds_dtype': args.embeds_dtype},
                   reply_grace_s=reply_grace_s)
    return [score_record(r) for r in records]


def answered_in_both(offline: list, live: list) -> tuple:
    """The offline and live records of the questions both answered.

    Live drops frames when the edge is slower than the camera (a fact of the machine's load,
    reported by the live run's answered rate); the comparison is on what both answered.
    """
    key = lambda r: (r.strategy, r.trace, r.frame_index, r.question)
    answered = {key(r) for r in live if r.answered} & {key(r) for r in offline if r.answered}
    return ([r for r in offline if key(r) in answered], [r for r in live if key(r) in answered])


def seed_range(spec: str) -> range:
    """The seeds of a 'FIRST:LAST' (LAST exclusive) or 'FIRST' spec."""
    first, _, last = spec.partition(':')
    try:
        return range(int(first), int(last) if last else int(first) + 1)
    except ValueError:
        raise ValueError(f"--seeds {spec!r} is not FIRST:LAST") from None


def drive_bags(args) -> list:
    """The bags to replay: --bag ones, then the --seeds drives (generated once, then reused)."""
    bags = [Path(b) for b in args.bag or ([] if args.seeds else [DEFAULT_BAG])]
    if args.seeds:
        from spotvlm_ros.io.bags import write_scene_bag
        from spotvlm_ros.scenes.truth import sequence

        seeds = seed_range(args.seeds)
        if not seeds or args.seconds <= 0:
            raise ValueError(f'--seeds {args.seeds} --seconds {args.seconds} gives no drive')
        for seed in seeds:
            bag = Path(args.drives_dir) / f'seed{seed}_{args.seconds:g}s'
            if not bag.exists():  # written aside, then renamed: a run cut short leaves no half bag
                partial = bag.with_name(bag.name + '.partial')
                shutil.rmtree(partial, ignore_errors=True)
                write_scene_bag(partial, sequence(seed, round(args.seconds * 10), fps=10.0), 0.1)
                partial.replace(bag)
            bags.append(bag)
    return bags


def bag_reading(args) -> dict:
    """How to read a bag: with ground truth on the default topic, or any one image topic."""
    return {'image_topic': '', 'need_truth': False} if args.reference == REFERENCE_CLOUD \
        else {}


def evaluate_drive(args, bag: Path, params: dict, settings, models=None) -> tuple:
    """(the scored offline records of one bag, each naming it as its drive; its frames)."""
    from spotvlm_ros.io.replay import load_bag

    start = time.perf_counter()
    frames = load_bag(bag, max_frames=args.max_frames, **bag_reading(args))
    records = run_offline(args, frames, params, settings, models)
    for record in records:
        record.drive = bag.name
    print(f'{bag.name}: {len(records)} records in {time.perf_counter() - start:.0f} s',
          flush=True)
    return records, len(frames)


def _evaluate_in_worker(args, bag: Path, params: dict, settings) -> tuple:
    import torch

    torch.set_num_threads(args.threads)
    return evaluate_drive(args, bag, params, settings)


def evaluate_drives(args, bags: list, params: dict, settings) -> tuple:
    """(every bag's records in the bags' order, frames replayed), `args.jobs` bags at a time."""
    if args.jobs <= 1 or len(bags) == 1:
        models = load_models(args, params)
        results = [evaluate_drive(args, bag, params, settings, models) for bag in bags]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        quiet = argparse.Namespace(**{**vars(args), 'no_progress': True})
        spawn = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            futures = [pool.submit(_evaluate_in_worker, quiet, bag, params, settings)
                       for bag in bags]
            results = [future.result() for future in futures]
    return [r for records, _ in results for r in records], sum(n for _, n in results)


def write_drive_tables(out: Path, records: list, bags: list, deadline_s: float,
                       truth: bool = True) -> None:
    """Per-drive rows, means over drives with 95 % intervals and paired gaps, change rates."""
    from spotvlm_ros.evaluation.drives import (
        against_best_fixed, against_best_markdown, change_rates, per_drive_rows,
        pooled_markdown, pooled_rows)
    from spotvlm_ros.io.replay import load_bag
    from spotvlm_ros.evaluation.report import metrics_csv

    drive_rows = per_drive_rows(records, deadline_s)
    pooled = pooled_rows(drive_rows)
    (out / 'drives.csv').write_text(metrics_csv(drive_rows, ('drive',)), encoding='utf-8')
    rates = change_rates({b.name: load_bag(b) for b in bags}) if truth else {}
    lines = ['# Over drives', '', f'{len(bags)} drives: ' + ', '.join(b.name for b in bags), '',
             'Means over drives of each drive\'s figure, ± the 95 % t-interval half-width; '
             'gaps are paired, drive by drive (won: drives where the strategy is ahead).', '',
             pooled_markdown(pooled)]
    best = against_best_fixed(drive_rows)
    if best:
        lines += ['## auto against the best fixed strategy (on-time accuracy, paired)', '',
                  against_best_markdown(best)]
    if rates:
        lines += ['## Answer changes per minute (ground truth)', '',
                  '| question | changes / min |', '|---|---|']
        lines += [f'| {q} | {r:.2f} |' for q, r in rates.items()]
    (out / 'drives.md').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    print(pooled_markdown(pooled), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    import torch

    from spotvlm_ros.evaluation.metrics import agreement, summarise
    from spotvlm_ros.evaluation.records import write_jsonl
    from spotvlm_ros.io.replay import load_bag
    from spotvlm_ros.evaluation.report import write_results

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        params = node_params_of(args)
        settings = settings_from(args, params)
        for spec in args.trace or ():  # an unreadable trace is refused before the long replay
            trace_from_spec(spec, args.seed, 60.0, args.trace_columns)
        bags = drive_bags(args)
        if args.live and len(bags) > 1:
            raise ValueError('--live replays one bag: give one --bag and no --seeds')
        if args.reference == REFERENCE_CLOUD and is_simulated(args.cloud):
            raise ValueError('--reference cloud scores drives without ground truth, which '
                             'the simulated cloud model needs: give a checkpoint')
        if args.live and args.reference == REFERENCE_CLOUD:
            raise ValueError('--live compares with the offline replay on ground truth: '
                             'drop --reference cloud')
        missing = [str(b) for b in bags if not b.exists()]
        if missing:
            raise ValueError(f'no such bag: {", ".join(missing)}')
        records, frame_count = evaluate_drives(args, bags, params, settings)
    except (OSError, ValueError) as err:  # a bag that cannot be read or scored, a bad setting
        print(f'spotvlm eval: {err}', file=sys.stderr)
        return 2
    rows = summarise(records, settings.deadline_s)
    agreement_rows, live_answered = None, None
    if args.live:
        # The same question, trace and strategies offline, on every frame as live answers them.
        frames = load_bag(bags[0], max_frames=args.max_frames)
        strategies = live_strategies(args)
        live_args = argparse.Namespace(**{**vars(args), 'question': [args.live_question],
                                          'trace': [args.live_trace],
                                          'strategies': ','.join(strategies)})
        every_frame = dataclasses.replace(settings, every=1)
        offline = run_offline(live_args, frames, params, every_frame)
        live = run_live(args, bags[0], strategies, settings.cloud_timeout_s)
        write_jsonl(Path(args.out) / 'live' / 'records.jsonl', live)
        every_answer = (summarise(offline, settings.deadline_s),
                        summarise(live, settings.deadline_s))
        live_answered = {row['strategy']: row['answered_rate'] for row in every_answer[1]}
        offline, live = answered_in_both(offline, live)
        agreement_rows = agreement(summarise(offline, settings.deadline_s),
                                   summarise(live, settings.deadline_s), LIVE_TOLERANCE,
                                   answered=every_answer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    described = {'scored_against': NOTICE if args.reference == REFERENCE_CLOUD
                 else 'ground truth',
                 'bag': ', '.join(b.name for b in bags),
                 'frames': frame_count,
                 'every': args.every,
                 'deadline_s': settings.deadline_s, 'edge_time': args.edge_time,
                 'edge_cost_s': settings.edge_cost_s, 'cloud_cost_s': settings.cloud_cost_s,
                 'edge_model': Path(args.edge).name, 'cloud_model': Path(args.cloud).name,
                 'seed': args.seed, 'overrides': list(DEFAULT_OVERRIDES) + list(args.param),
                 'agreement_tolerance': LIVE_TOLERANCE if args.live else None,
                 'live_answered_rate': live_answered}
    written = write_results(out, records, rows, described, agreement_rows)
    if len(bags) > 1:
        write_drive_tables(out, records, bags, settings.deadline_s,
                           args.reference == REFERENCE_TRUTH)
    print(f'{len(records)} records, {len(written)} files in {out} '
          f'({time.perf_counter() - start:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
