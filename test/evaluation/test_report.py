"""Writing the evaluation's files: complete, right in content, and byte-identical on a rerun."""

import csv
import json

from spotvlm_ros.evaluation.metrics import SUMMARY_COLUMNS, agreement, summarise
from spotvlm_ros.evaluation.records import (
    CLOUD_WAIT, CONTEXT_TRANSFER, EDGE_ONLY, AnswerRecord, read_jsonl)
from spotvlm_ros.evaluation.report import write_results
from spotvlm_ros.scenes.truth import DESCRIPTION, GROUNDING, VQA

FILES = ('records.jsonl', 'metrics.csv', 'metrics.json', 'accuracy_vs_delay.png',
         'latency_cdf.png', 'context_age_hist.png', 'accuracy_vs_context_age.png', 'report.md',
         'report.html')
PLOT_FILES = FILES[3:7]
SETTINGS = {'bag': 'bags/demo', 'deadline_s': 0.5, 'agreement_tolerance': 0.05}
TRACES = {'lan': 0.05, 'lte': 0.8}


def records():
    """A small scored result set: 3 strategies x 2 traces x 3 families, scores chosen by hand."""
    out = []
    scores = {EDGE_ONLY: 0.25, CONTEXT_TRANSFER: 0.75, CLOUD_WAIT: 1.0}
    for trace, delay in TRACES.items():
        for strategy, base in scores.items():
            # cloud_wait fails every question on the slow trace; context_age only with cloud help.
            late = strategy == CLOUD_WAIT and trace == 'lte'
            for i, family in enumerate((DESCRIPTION, VQA, GROUNDING)):
                out.append(AnswerRecord(
                    strategy=strategy, trace=trace, mean_delay_s=delay, frame_index=i,
                    frame_stamp=0.1 * i, question=f'q{i}', family=family, truth='t',
                    width=448, height=336, answered=not late, answer='' if late else 'a',
                    answered_at=None if late else 0.1 * i + delay,
                    latency_s=None if late else (0.0 if strategy == EDGE_ONLY else delay + i),
                    context_age_s=0.2 * (i + 1) if strategy == CONTEXT_TRANSFER else None,
                    prompt_tokens=100, new_tokens=5, score=0.0 if late else base))
    return out


def write(tmp_path, name, with_agreement=True):
    recs = records()
    rows = summarise(recs, SETTINGS['deadline_s'])
    live = [dict(r, acc_mean=r['acc_mean'] + 0.01, answered_rate=r['answered_rate'] - 0.1)
            for r in rows if r['trace'] == 'lan']
    agreed = agreement(rows, live, SETTINGS['agreement_tolerance'], answered=(rows, live)) \
        if with_agreement else None
    paths = write_results(tmp_path / name, recs, rows, dict(SETTINGS), agreed)
    return recs, rows, paths


def test_every_file_is_written_and_returned(tmp_path):
    _, _, paths = write(tmp_path, 'out')
    assert [p.name for p in paths] == list(FILES)
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
    for png in PLOT_FILES:
        assert (tmp_path / 'out' / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_records_csv_and_json_hold_the_inputs(tmp_path):
    recs, rows, _ = write(tmp_path, 'out')
    out = tmp_path / 'out'
    assert read_jsonl(out / 'records.jsonl') == recs
    with open(out / 'metrics.csv', newline='') as f:
        table = list(csv.reader(f))
    assert table[0] == list(SUMMARY_COLUMNS)
    assert len(table) == 1 + len(rows) == 7
    first = dict(zip(table[0], table[1]))
    assert first['trace'] == 'lan' and first['strategy'] == EDGE_ONLY
    assert float(first['acc_mean']) == rows[0]['acc_mean'] == 0.25
    assert first['context_age_mean_s'] == ''  # None as an empty cell
    document = json.loads((out / 'metrics.json').read_text())
    assert document['settings'] == SETTINGS
    assert document['rows'] == rows
    assert [a['within'] for a in document['agreement']] == [True] * 3


def test_report_md_tables(tmp_path):
    write(tmp_path, 'out')
    md = (tmp_path / 'out' / 'report.md').read_text()
    lines = md.splitlines()
    assert lines[0].startswith('# ')
    assert '- deadline_s: 0.5' in lines and '- bag: bags/demo' in lines
    # Strategies as rows, traces (with their mean delay) as columns, acc_mean to three places.
    assert '| strategy | lan (0.050 s) | lte (0.800 s) |' in lines
    assert '| edge_only | 0.250 | 0.250 |' in lines
    assert '| cloud_wait | 1.000 | 0.000 |' in lines
    # Rows in the table order of STRATEGIES, not the order the records came in.
    assert lines.index('| edge_only | 0.250 | 0.250 |') \
        < lines.index('| cloud_wait | 1.000 | 0.000 |') \
        < lines.index('| context_transfer | 0.750 | 0.750 |')
    # The detailed table lists every column of every row.
    assert '| ' + ' | '.join(SUMMARY_COLUMNS) + ' |' in lines
    detail = [line for line in lines if line.startswith('| lan | 0.050 | ')
              or line.startswith('| lte | 0.800 | ')]
    assert len(detail) == 6
    assert '| lte | 0.800 | cloud_wait | 3 | 0.000 |' in md  # nothing answered on lte
    # Agreement, with its tolerance stated.
    assert 'tolerance 0.050' in md
    assert '| lan | edge_only | 0.250 | 0.260 | 0.010 | yes | 1.000 | 0.900 | no |' in lines
    for name in PLOT_FILES:
        assert f']({name})' in md
    # Per question: a row per trace and question, a column per strategy.
    assert '| trace | question | edge_only | cloud_wait | context_transfer |' in lines
    assert '| lte | q1 | 0.250 | 0.000 | 0.750 |' in lines


def test_report_without_agreement_has_no_agreement_table(tmp_path):
    write(tmp_path, 'out', with_agreement=False)
    md = (tmp_path / 'out' / 'report.md').read_text()
    assert 'agreement' not in md.lower().replace('agreement_tolerance', '')
    assert json.loads((tmp_path / 'out' / 'metrics.json').read_text())['agreement'] is None


def test_report_html_is_self_contained(tmp_path):
    write(tmp_path, 'out')
    page = (tmp_path / 'out' / 'report.html').read_text()
    assert page.startswith('<!DOCTYPE html>')
    assert '<td>edge_only</td><td>0.250</td><td>0.250</td>' in page
    for name in PLOT_FILES:
        assert f'src="{name}"' in page
    assert 'http' not in page and '<script' not in page and '<link' not in page
    assert str(tmp_path) not in page


def test_two_runs_write_byte_identical_files(tmp_path):
    _, _, first = write(tmp_path, 'one')
    _, _, second = write(tmp_path, 'two')
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    for name in ('accuracy_vs_delay.png', 'report.md', 'metrics.json'):
        data = (tmp_path / 'one' / name).read_bytes()
        assert str(tmp_path).encode() not in data
    for png in PLOT_FILES:  # no 'Software' chunk naming the matplotlib version
        data = (tmp_path / 'one' / png).read_bytes()
        assert b'Software' not in data and b'matplotlib' not in data
