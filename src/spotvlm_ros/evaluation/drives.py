"""Several drives: per-drive summaries, means with 95 % intervals over drives, paired gaps.

A drive is the unit of evidence (scenes differ far more than questions within a scene), so
every figure here is a mean over drives of that drive's figure, with a t-interval over drives.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.core.composition import AUTO, CLOUD_LATEST, EDGE_ONLY
from spotvlm_ros.evaluation.metrics import ordered_strategies, summarise
from spotvlm_ros.scenes.truth import FAMILIES

# Two-sided 95 % Student t quantiles by degrees of freedom; past the table, the normal's.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
FIGURES = ('acc_mean', 'on_time_acc', 'acc_description', 'acc_vqa', 'acc_grounding')
BASELINES = (EDGE_ONLY, CLOUD_LATEST)


def t95(dof: int) -> float:
    """The 95 % two-sided t quantile for `dof` degrees of freedom."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


def mean_ci(values: Sequence[float]) -> tuple:
    """(mean, 95 % half-width) over `values`; the half-width is None for fewer than two."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    return mean, t95(len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def per_drive_rows(records: Sequence, deadline_s: float) -> list:
    """summarise() of each drive's records, each row with its 'drive'."""
    drives: dict = {}
    for record in records:
        drives.setdefault(record.drive, []).append(record)
    rows = []
    for drive, group in drives.items():
        rows += [{'drive': drive, **row} for row in summarise(group, deadline_s)]
    return rows


def pooled_rows(drive_rows: Sequence[dict], baselines: Sequence[str] = BASELINES) -> list:
    """Per (trace, strategy): each figure's mean and half-width over drives, and its paired
    difference to each baseline on the same drives (mean, half-width, drives won)."""
    by_key: dict = {}
    traces: list = []
    for row in drive_rows:
        by_key.setdefault((row['trace'], row['strategy']), {})[row['drive']] = row
        if row['trace'] not in traces:
            traces.append(row['trace'])
    out = []
    for trace in traces:
        names = ordered_strategies(s for t, s in by_key if t == trace)
        for name in names:
            drives = by_key[(trace, name)]
            first = next(iter(drives.values()))
            row = {'trace': trace, 'mean_delay_s': first['mean_delay_s'], 'strategy': name,
                   'drives': len(drives)}
            for figure in FIGURES:
                row[figure], row[figure + '_ci'] = mean_ci([r[figure] for r in drives.values()])
            for base in baselines:
                other = by_key.get((trace, base), {})
                gaps = [r['acc_mean'] - other[d]['acc_mean'] for d, r in drives.items()
                        if d in other and r['acc_mean'] is not None
                        and other[d]['acc_mean'] is not None]
                row[f'vs_{base}'], row[f'vs_{base}_ci'] = mean_ci(gaps)
                row[f'vs_{base}_won'] = f'{sum(g > 0 for g in gaps)}/{len(gaps)}'
            out.append(row)
    return out


def against_best_fixed(drive_rows: Sequence[dict], chooser: str = AUTO,
                       figure: str = 'on_time_acc') -> list:
    """Per trace: the fixed strategy with the best mean `figure`, and `chooser`'s paired gap
    to it over drives (mean, half-width, drives won); [] when `chooser` was not run."""
    by_key: dict = {}
    for row in drive_rows:
        by_key.setdefault(row['trace'], {}).setdefault(row['strategy'], {})[row['drive']] = \
            row[figure]
    out = []
    for trace, strategies in by_key.items():
        mine = strategies.get(chooser)
        fixed = {s: v for s, v in strategies.items() if s != chooser}
        if not mine or not fixed:
            continue
        best = max(fixed, key=lambda s: np.mean([v for v in fixed[s].values() if v is not None]))
        gaps = [mine[d] - fixed[best][d] for d in mine if d in fixed[best]
                and mine[d] is not None and fixed[best][d] is not None]
        gap, half = mean_ci(gaps)
        out.append({'trace': trace, 'best_fixed': best,
                    'best_fixed_mean': mean_ci(list(fixed[best].values()))[0],
                    'chooser_mean': mean_ci(list(mine.values()))[0], 'gap': gap,
                    'gap_ci': half, 'won': f'{sum(g > 0 for g in gaps)}/{len(gaps)}'})
    return out


def against_best_markdown(rows: Sequence[dict], chooser: str = AUTO,
                          figure: str = 'on_time_acc') -> str:
    """against_best_fixed's rows as a Markdown table."""
    lines = [f'| trace | best fixed strategy | its {figure} | {chooser} | {chooser} - best '
             f'(won) |', '|---|---|---|---|---|']
    lines += [f"| {r['trace']} | {r['best_fixed']} | {r['best_fixed_mean']:.3f} | "
              f"{r['chooser_mean']:.3f} | {_cell(r['gap'], r['gap_ci'], signed=True)} "
              f"({r['won']}) |" for r in rows]
    return '\n'.join(lines) + '\n'


def _cell(mean: Optional[float], half: Optional[float], signed: bool = False) -> str:
    if mean is None:
        return ''
    text = f'{mean:+.3f}' if signed else f'{mean:.3f}'
    return text if half is None else f'{text} ± {half:.3f}'


def pooled_markdown(rows: Sequence[dict], baselines: Sequence[str] = BASELINES) -> str:
    """The pooled rows as a Markdown table (means ± 95 % half-widths over drives)."""
    head = ['trace', 'strategy', 'drives', 'acc_mean', 'on_time_acc'] + \
        [f'acc_{f}' for f in FAMILIES] + [f'acc_mean - {b} (won)' for b in baselines]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['trace'], row['strategy'], str(row['drives'])]
        cells += [_cell(row[f], row[f + '_ci']) for f in ('acc_mean', 'on_time_acc')]
        cells += [_cell(row[f'acc_{f}'], row[f'acc_{f}_ci']) for f in FAMILIES]
        for base in baselines:
            gap = _cell(row[f'vs_{base}'], row[f'vs_{base}_ci'], signed=True)
            cells.append(f"{gap} ({row[f'vs_{base}_won']})" if row['strategy'] != base else '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def change_rates(frames_by_drive: dict) -> dict:
    """{question: mean answer changes per minute over drives} from the drives' ground truth."""
    rates: dict = {}
    for frames in frames_by_drive.values():
        minutes = (frames[-1].stamp - frames[0].stamp) / 60.0 if len(frames) > 1 else 0.0
        previous: dict = {}
        changes: dict = {}
        for frame in frames:
            for q in frame.questions:
                if q.question in previous and previous[q.question] != q.answer:
                    changes[q.question] = changes.get(q.question, 0) + 1
                changes.setdefault(q.question, changes.get(q.question, 0))
                previous[q.question] = q.answer
        for question, count in changes.items():
            rates.setdefault(question, []).append(count / minutes if minutes else 0.0)
    return {q: float(np.mean(v)) for q, v in rates.items()}
