"""Writing an evaluation's results: records, metrics tables, plots and a Markdown/HTML report."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from spotvlm_ros.evaluation import records as records_io
from spotvlm_ros.evaluation.metrics import (
    AGREEMENT_COLUMNS, ANSWERED_TOLERANCE, SUMMARY_COLUMNS, ordered_strategies)

RECORDS_FILE = 'records.jsonl'
METRICS_CSV = 'metrics.csv'
METRICS_JSON = 'metrics.json'
ACCURACY_PLOT = 'accuracy_vs_delay.png'
LATENCY_PLOT = 'latency_cdf.png'
CONTEXT_AGE_PLOT = 'context_age_hist.png'
ACCURACY_AGE_PLOT = 'accuracy_vs_context_age.png'
REPORT_MD = 'report.md'
REPORT_HTML = 'report.html'
PLOTS = ((ACCURACY_PLOT, 'Accuracy vs mean cloud delay'),
         (LATENCY_PLOT, 'Latency CDF'),
         (CONTEXT_AGE_PLOT, 'Context age histogram'),
         (ACCURACY_AGE_PLOT, 'Accuracy vs context age'))
AGE_EDGES_S = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)  # accuracy vs context age: these bins, then older

# Fixed size and resolution: the same inputs must give the same PNG bytes.
FIGSIZE = (10.0, 4.0)
DPI = 100
LATENCY_FLOOR_S = 1e-3  # zero latencies drawn here, so the log axis can show them
AGE_BINS = 20
MISSING = '–'  # a cell without a value in the report tables


def write_results(out_dir: Union[str, Path], records: list, rows: list, settings: dict,
                  agreement_rows: Optional[list] = None) -> list:
    """Write records, metrics, plots and the report into out_dir; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    paths = [out / name for name in (RECORDS_FILE, METRICS_CSV, METRICS_JSON, ACCURACY_PLOT,
                                     LATENCY_PLOT, CONTEXT_AGE_PLOT, ACCURACY_AGE_PLOT,
                                     REPORT_MD, REPORT_HTML)]
    records_io.write_jsonl(paths[0], records)
    _write_text(paths[1], metrics_csv(rows))
    document = {'settings': settings, 'rows': rows, 'agreement': agreement_rows}
    _write_text(paths[2], json.dumps(document, indent=2, ensure_ascii=False, default=str) + '\n')
    colours = strategy_colours([r.strategy for r in records] + [r['strategy'] for r in rows])
    plot_accuracy_vs_delay(paths[3], rows, colours)
    plot_latency_cdf(paths[4], records, colours)
    plot_context_age(paths[5], records, colours)
    plot_accuracy_vs_age(paths[6], records, colours)
    sections = _sections(rows, settings, agreement_rows, records)
    _write_text(paths[7], render_markdown(sections))
    _write_text(paths[8], render_html(sections))
    return paths


def _write_text(path: Path, text: str) -> None:
    # '\n' on every platform: the bytes must not depend on where the evaluation ran.
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)


def _csv_cell(value) -> str:
    if value is None:
        return ''
    if isinstance(value, float):
        return repr(value)
    return str(value)


def metrics_csv(rows: list, first: tuple = ()) -> str:
    """The summary rows as CSV text: floats in repr (full precision), None as an empty cell;
    `first` names columns to put before the summary's own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    columns = tuple(first) + SUMMARY_COLUMNS
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


# --- plots -------------------------------------------------------------------------------------

def strategy_colours(names) -> dict:
    """A colour per strategy, the same in every plot of one report."""
    return {s: f'C{i % 10}' for i, s in enumerate(ordered_strategies(names))}


def _new_figure(ncols: int = 1):
    """A figure with its axes, on the Agg backend, detached from pyplot's global state."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, axes


def _save(figure, path: Path) -> None:
    # No 'Software' chunk: it names the matplotlib version, and the bytes must only follow inputs.
    figure.tight_layout()
    figure.savefig(path, format='png', dpi=DPI, metadata={'Software': None})


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes)


def plot_accuracy_vs_delay(path: Path, rows: list, colours: dict) -> None:
    """acc_mean and on_time_acc against each trace's mean delay, one line per strategy."""
    figure, (acc_ax, on_time_ax) = _new_figure(2)
    strategies = ordered_strategies(r['strategy'] for r in rows)
    for ax, column, title in ((acc_ax, 'acc_mean', 'Accuracy (any time)'),
                              (on_time_ax, 'on_time_acc', 'Accuracy within the deadline')):
        top = 0.0
        for strategy in strategies:
            # One line per trace kind ('constant:delay_s=3' is kind 'constant'): a heavy-tailed
            # trace is a point of its own, not a step on the constant traces' curve.
            kinds: dict = {}
            for r in rows:
                if r['strategy'] == strategy and r[column] is not None:
                    kinds.setdefault(r['trace'].split(':')[0], []).append(
                        (r['mean_delay_s'], r[column]))
            for number, points in enumerate(kinds.values()):
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, marker='os^vD'[number % 5], color=colours[strategy],
                        label=strategy if number == 0 else None)
                top = max(top, *ys)
        ax.set_title(title)
        ax.set_xlabel('mean cloud delay of the trace (s)')
        ax.set_ylabel(column)
        ax.set_ylim(0.0, max(0.5, min(1.0, top + 0.1)))
        ax.grid(True, alpha=0.3)
    if strategies:
        on_time_ax.legend(fontsize='small', loc='best')
    else:
        _note(acc_ax, 'no rows')
    _save(figure, path)


def plot_latency_cdf(path: Path, records: list, colours: dict) -> None:
    """Empirical CDF of the answered records' latency per strategy, pooled over traces."""
    figure, (ax,) = _new_figure()
    plotted = False
    for strategy in ordered_strategies(r.strategy for r in records):
        latencies = np.sort([max(r.latency_s, LATENCY_FLOOR_S) for r in records
                             if r.strategy == strategy and r.answered and r.latency_s is not None])
        if latencies.size:
            share = np.arange(1, latencies.size + 1) / latencies.size
            ax.step(latencies, share, where='post', label=strategy,
                    color=colours[strategy])
            plotted = True
    if plotted:
        ax.set_xscale('log')
        ax.legend(fontsize='small', loc='lower right')
    else:
        _note(ax, 'no answered records')
    ax.set_title(f'Latency of answered records (floor {LATENCY_FLOOR_S:g} s)')
    ax.set_xlabel('latency (s)')
    ax.set_ylabel('share of answered records')
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    _save(figure, path)


def plot_context_age(path: Path, records: list, colours: dict) -> None:
    """Histogram of context_age_s per strategy that has any, on bins shared by all of them."""
    figure, (ax,) = _new_figure()
    ages = {}
    for strategy in ordered_strategies(r.strategy for r in records):
        values = [r.context_age_s for r in records
                  if r.strategy == strategy and r.context_age_s is not None]
        if values:
            ages[strategy] = values
    if ages:
        # Shared bins, so the strategies' bars compare.
        edges = np.histogram_bin_edges(np.concatenate(list(ages.values())), bins=AGE_BINS)
        for strategy, values in ages.items():
            ax.hist(values, bins=edges, histtype='step', linewidth=1.5, label=strategy,
                    color=colours[strategy])
        ax.legend(fontsize='small', loc='best')
    else:
        _note(ax, 'no records with a context age')
    ax.set_title('Context age')
    ax.set_xlabel('context age (s)')
    ax.set_ylabel('records')
    ax.grid(True, alpha=0.3)
    _save(figure, path)


def plot_accuracy_vs_age(path: Path, records: list, colours: dict) -> None:
    """Mean score per context-age bin, per strategy that reads cloud context."""
    figure, (ax,) = _new_figure()
    edges = list(AGE_EDGES_S) + [np.inf]
    labels = [f'{lo:g}-{hi:g}' if hi < np.inf else f'{lo:g}+' for lo, hi in zip(edges, edges[1:])]
    drawn = False
    for strategy in ordered_strategies(r.strategy for r in records):
        bins = [[] for _ in labels]
        for r in records:
            if r.strategy == strategy and r.context_age_s is not None and r.score is not None:
                bins[int(np.searchsorted(edges, r.context_age_s, side='right')) - 1].append(r.score)
        points = [(i, float(np.mean(b))) for i, b in enumerate(bins) if b]
        if points:
            ax.plot(*zip(*points), marker='o', label=strategy, color=colours[strategy])
            drawn = True
    if drawn:
        ax.legend(fontsize='small', loc='best')
    else:
        _note(ax, 'no records with a context age')
    ax.set_xticks(range(len(labels)), labels)
    ax.set_title('Accuracy vs context age')
    ax.set_xlabel('context age (s)')
    ax.set_ylabel('mean score')
    ax.grid(True, alpha=0.3)
    _save(figure, path)


def question_table(records: list) -> tuple:
    """(header, rows) of the mean score per trace and question, a column per strategy."""
    strategies = ordered_strategies(r.strategy for r in records)
    scores: dict = {}
    for r in records:
        if r.score is not None:
            scores.setdefault((r.trace, r.question), {}).setdefault(r.strategy, []).append(r.score)
    body = [[trace, question] + [_fmt(float(np.mean(by[s]))) if s in by else MISSING
                                 for s in strategies]
            for (trace, question), by in scores.items()]
    return ['trace', 'question'] + strategies, body


# --- the report ----------------------------------------------------------------------------------
# The report is a list of sections, rendered once as Markdown and once as HTML, so both agree.

def _fmt(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def _sections(rows: list, settings: dict, agreement_rows: Optional[list],
              records: list = ()) -> list:
    """The report as ('title'|'heading'|'list'|'paragraph'|'table'|'image', content) items."""
    sections = [('title', 'SpotVLM evaluation report'), ('heading', 'Settings'),
                ('list', [f'{key}: {value}' for key, value in settings.items()])]
    delays = {}  # trace -> its mean delay, in order of first appearance
    for row in rows:
        delays.setdefault(row['trace'], row['mean_delay_s'])
    traces = list(delays.items())
    by_key = {(r['trace'], r['strategy']): r for r in rows}
    header = ['strategy'] + [f'{trace} ({_fmt(delay)} s)' for trace, delay in traces]
    body = [[strategy] + [_fmt(by_key[(trace, strategy)]['acc_mean'])
                          if (trace, strategy) in by_key else MISSING for trace, _ in traces]
            for strategy in ordered_strategies(r['strategy'] for r in rows)]
    against = settings.get('scored_against', 'ground truth')
    measure = 'Accuracy' if against == 'ground truth' else 'Agreement with the cloud'
    sections += [('heading', f'{measure} (acc_mean) per strategy and trace')]
    if against != 'ground truth':
        sections.append(('paragraph', against))
    sections += [('paragraph', 'Columns: trace (mean cloud delay).'), ('table', (header, body))]
    detail = [[_fmt(row.get(column)) for column in SUMMARY_COLUMNS] for row in rows]
    sections += [('heading', 'All metrics'), ('table', (list(SUMMARY_COLUMNS), detail))]
    if records:
        sections += [('heading', 'Per question (mean score)'), ('table', question_table(records))]
    if agreement_rows is not None:
        tolerance = settings.get('agreement_tolerance')
        stated = (f'Live minus offline acc_mean (on the frames both answered); within '
                  f'tolerance {_fmt(tolerance)}. Answered rates on every frame, within '
                  f'{_fmt(ANSWERED_TOLERANCE)}.' if tolerance is not None
                  else 'Live minus offline acc_mean.')
        table = [[_fmt(row.get(column)) for column in AGREEMENT_COLUMNS]
                 for row in agreement_rows]
        sections += [('heading', 'Offline vs live agreement'), ('paragraph', stated),
                     ('table', (list(AGREEMENT_COLUMNS), table))]
    sections.append(('heading', 'Plots'))
    sections += [('image', (name, alt)) for name, alt in PLOTS]
    return sections


def _md_cell(text: str) -> str:
    return text.replace('|', '\\|')


def render_markdown(sections: list) -> str:
    """The report sections as Markdown."""
    lines = []
    for kind, content in sections:
        if kind == 'title':
            lines += [f'# {content}', '']
        elif kind == 'heading':
            lines += [f'## {content}', '']
        elif kind == 'list':
            lines += [f'- {item}' for item in content] + ['']
        elif kind == 'paragraph':
            lines += [content, '']
        elif kind == 'table':
            header, body = content
            lines.append('| ' + ' | '.join(_md_cell(h) for h in header) + ' |')
            lines.append('|' + '---|' * len(header))
            lines += ['| ' + ' | '.join(_md_cell(c) for c in row) + ' |' for row in body]
            lines.append('')
        elif kind == 'image':
            name, alt = content
            lines += [f'![{alt}]({name})', '']
    return '\n'.join(lines)


def render_html(sections: list) -> str:
    """The report sections as one self-contained HTML page (images by file name)."""
    e = html.escape
    title = next((c for k, c in sections if k == 'title'), 'Report')
    parts = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
             f'<title>{e(title)}</title>',
             '<style>body{font-family:sans-serif;margin:2em}'
             'table{border-collapse:collapse;margin-bottom:1em}'
             'th,td{border:1px solid #999;padding:2px 6px;text-align:right}'
             'th:first-child,td:first-child{text-align:left}img{max-width:100%}</style>',
             '</head>', '<body>']
    for kind, content in sections:
        if kind == 'title':
            parts.append(f'<h1>{e(content)}</h1>')
        elif kind == 'heading':
            parts.append(f'<h2>{e(content)}</h2>')
        elif kind == 'list':
            parts += ['<ul>'] + [f'<li>{e(item)}</li>' for item in content] + ['</ul>']
        elif kind == 'paragraph':
            parts.append(f'<p>{e(content)}</p>')
        elif kind == 'table':
            header, body = content
            parts.append('<table>')
            parts.append('<tr>' + ''.join(f'<th>{e(h)}</th>' for h in header) + '</tr>')
            parts += ['<tr>' + ''.join(f'<td>{e(c)}</td>' for c in row) + '</tr>'
                      for row in body]
            parts.append('</table>')
        elif kind == 'image':
            name, alt = content
            parts.append(f'<p><img src="{e(name)}" alt="{e(alt)}"></p>')
    parts += ['</body>', '</html>', '']
    return '\n'.join(parts)
