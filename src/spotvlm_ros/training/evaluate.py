"""Held-out accuracy of the default models per task family: edge, cloud, and context transfer."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.focus import plan_focus_from_config
from spotvlm_ros.scenes.scoring import score_answer, split_reply
from spotvlm_ros.scenes.truth import FAMILIES, frame_truth
from spotvlm_ros.scenes.world import sample_scene
from spotvlm_ros.training.pool import FPS, FRAME_H, FRAME_W, HELD_OUT_SEED_START
from spotvlm_ros.training.samples import CLOUD_SYSTEM_PROMPT, EDGE_FOCUS, teacher_turn

STRATEGIES = ('edge alone', 'cloud alone', 'edge + context', 'edge + focus',
              'edge + context + focus')


def evaluate(edge, cloud, seeds: Sequence[int], frames: Sequence[int], context_age_s: float,
             log=print) -> dict:
    """{strategy: {family: [scores]}} and per-question scores over the held-out frames,
    scored as the evaluator scores (scenes.scoring.score_answer).

    The cloud's context is its own reply on the keyframe `context_age_s` earlier: its text
    becomes the history turn, its regions (keyframe pixels, same size) the focus regions.
    """
    size = (FRAME_W, FRAME_H)
    lag = round(context_age_s * FPS)
    scores = defaultdict(lambda: defaultdict(list))
    by_question = defaultdict(lambda: defaultdict(list))
    for seed in seeds:
        scene = sample_scene(seed)
        for index in frames:
            frame, truth = frame_truth(scene, index, FRAME_W, FRAME_H, FPS)
            key_frame, key_truth = frame_truth(scene, index - lag, FRAME_W, FRAME_H, FPS)
            for qa in truth.qa:
                cloud_now = cloud.answer(frame, qa.question, system_prompt=CLOUD_SYSTEM_PROMPT)
                cloud_key = cloud.answer(key_frame, qa.question,
                                         system_prompt=CLOUD_SYSTEM_PROMPT)
                key_text, key_regions = split_reply(cloud_key.text, size)
                turn = teacher_turn(qa.question, key_text, context_age_s, truth.stamp_s)
                focus = plan_focus_from_config(frame, key_regions, EDGE_FOCUS)
                replies = {
                    'edge alone': edge.answer(frame, qa.question).text,
                    'cloud alone': cloud_now.text,
                    'edge + context': edge.answer(frame, qa.question, [turn]).text,
                    'edge + focus': edge.answer(frame, qa.question, focus=focus).text,
                    'edge + context + focus': edge.answer(frame, qa.question, [turn],
                                                          focus=focus).text,
                }
                for strategy, reply in replies.items():
                    s = score_answer(qa.family, qa.answer, reply, size)
                    scores[strategy][qa.family].append(s)
                    by_question[strategy][qa.question].append(s)
        log(f'seed {seed} done')
    return {'families': scores, 'questions': by_question}


def table(results: dict) -> str:
    """The Markdown table: mean score per strategy and family, with sample counts."""
    fams = results['families']
    counts = {f: len(fams[STRATEGIES[0]][f]) for f in FAMILIES}
    head = '| strategy | ' + ' | '.join(f'{f} (n={counts[f]})' for f in FAMILIES) + ' |'
    rows = [head, '|---|' + '---|' * len(FAMILIES)]
    for strategy in STRATEGIES:
        cells = [f'{np.mean(fams[strategy][f]):.3f}' if fams[strategy][f] else '-'
                 for f in FAMILIES]
        rows.append(f'| {strategy} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def paired_gap(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of a - b over the same questions, its paired standard error, wins and losses."""
    d = np.asarray(a, float) - np.asarray(b, float)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float('nan')
    return {'gap': float(d.mean()), 'se': se, 'wins': int((d > 0).sum()),
            'losses': int((d < 0).sum()), 'n': len(d)}


def gap_table(results: dict, better: str = 'cloud alone', base: str = 'edge alone') -> str:
    """The Markdown table of `better` against `base`, question by question, per family."""
    fams = results['families']
    rows = [f'| {better} - {base} | gap | paired SE | gap / SE | wins | losses |',
            '|---|---|---|---|---|---|']
    groups = [(f, fams[better][f], fams[base][f]) for f in FAMILIES if fams[base][f]]
    groups.append(('all', sum((g[1] for g in groups), []), sum((g[2] for g in groups), [])))
    for name, ours, theirs in groups:
        g = paired_gap(ours, theirs)
        ratio = g['gap'] / g['se'] if g['se'] > 0 else float('nan')
        rows.append(f"| {name} (n={g['n']}) | {g['gap']:+.3f} | {g['se']:.3f} | "
                    f"{ratio:.1f} | {g['wins']} | {g['losses']} |")
    return '\n'.join(rows)


def merge(paths) -> dict:
    """The scores of several --out files (a split run) as one result."""
    merged = {'families': defaultdict(lambda: defaultdict(list)),
              'questions': defaultdict(lambda: defaultdict(list))}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for key in ('families', 'questions'):
            for strategy, groups in data[key].items():
                for name, values in groups.items():
                    merged[key][strategy][name].extend(values)
    return merged


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: spotvlm eval-scenes --edge DIR --cloud DIR."""
    parser = argparse.ArgumentParser(prog='spotvlm eval-scenes', description=__doc__)
    parser.add_argument('--edge', default='models/spotvlm-edge')
    parser.add_argument('--cloud', default='models/spotvlm-cloud')
    parser.add_argument('--scenes', type=int, default=6, help='held-out scenes')
    parser.add_argument('--first-scene', type=int, default=0, help='to split a run')
    parser.add_argument('--frames', default='30,70', help='frame indices per scene')
    parser.add_argument('--context-age', type=float, default=1.0, help='seconds')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None, help='write the scores as JSON here')
    parser.add_argument('--merge', nargs='+', default=None, help='only merge --out files')
    args = parser.parse_args(argv)
    if args.merge:
        merged = merge(args.merge)
        print(table(merged) + '\n\n' + gap_table(merged))
        return 0
    import torch

    from spotvlm_ros.models.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    edge = TransformersBackend(args.edge, max_new_tokens=64, warmup=False)
    cloud = TransformersBackend(args.cloud, max_new_tokens=128, warmup=False)
    seeds = [HELD_OUT_SEED_START + args.first_scene + k for k in range(args.scenes)]
    frames = [int(f) for f in args.frames.split(',')]
    results = evaluate(edge, cloud, seeds, frames, args.context_age,
                       log=lambda m: print(m, flush=True))
    print(table(results) + '\n\n' + gap_table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(
            {'seeds': seeds, 'frames': frames, 'context_age_s': args.context_age,
             'families': results['families'], 'questions': results['questions'],
             'eval_s': round(time.perf_counter() - start, 1)}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
