"""Every verb refuses a missing path, a bad number or an unreadable trace in one line, exit 2."""

import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).parents[1]


def spotvlm(*args, timeout=120):
    """Run `spotvlm ARGS` as a process; (exit code, stderr lines, seconds)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'spotvlm_ros.cli', *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, lines, time.monotonic() - start


def assert_one_line(code, lines, *words):
    assert code == 2, (code, lines)
    assert len(lines) == 1 and 'Traceback' not in lines[0], lines
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def unreadable_trace(tmp_path):
    path = tmp_path / 'link.csv'
    path.write_text('when,how_long\n0,1\n1,2\n')
    return path


def test_eval_refuses_a_trace_it_cannot_read_saying_what_it_expected(unreadable_trace):
    assert_one_line(*spotvlm('eval', '--trace', unreadable_trace)[:2], 'link.csv', 'expected',
                    'rtt_ms')


def test_eval_refuses_a_missing_trace_and_a_missing_bag(tmp_path):
    assert_one_line(*spotvlm('eval', '--trace', tmp_path / 'gone.csv')[:2], 'gone.csv')
    assert_one_line(*spotvlm('eval', '--bag', '/nonexistent')[:2], '/nonexistent')


def test_run_refuses_a_missing_bag_before_starting_anything():
    code, lines, seconds = spotvlm('run', '--bag', '/nonexistent')
    assert_one_line(code, lines, '/nonexistent')
    assert seconds < 30, f'{seconds:.0f} s: nodes or models were started'


@pytest.mark.parametrize('args, word', [
    (('--duration', 'soon'), '--duration'),
    (('--duration', '-5'), '--duration'),
    (('--trace-param', 'delay_s=fast', '--trace', 'constant'), 'delay_s'),
    (('--param', 'nonode:x=1'), 'nonode'),
    (('--cloud-model', '/nonexistent/model'), '/nonexistent/model'),
])
def test_run_refuses_bad_numbers_and_parameters(args, word):
    code, lines, _ = spotvlm('run', '--bag', REPO / 'bags' / 'sample_scene', *args)
    assert_one_line(code, lines, word)


def test_run_refuses_an_unreadable_trace(unreadable_trace):
    assert_one_line(*spotvlm('run', '--bag', REPO / 'bags' / 'sample_scene', '--trace',
                             unreadable_trace)[:2], 'expected')


@pytest.mark.parametrize('args, word', [
    (('--seconds', '-1'), '--seconds'), (('--seconds', 'ten'), '--seconds'),
    (('--fps', '0'), '--fps'), (('--jpeg-quality', '101'), '--jpeg-quality'),
    (('--seconds', '0.01'), 'less than one frame')])
def test_make_bag_refuses_bad_numbers_and_writes_nothing(tmp_path, args, word):
    code, lines, _ = spotvlm('make-bag', tmp_path / 'out', *args)
    assert_one_line(code, lines, word)
    assert not (tmp_path / 'out').exists()


def test_cloud_server_and_trace_from_bag_refuse_missing_files(tmp_path, unreadable_trace):
    assert_one_line(*spotvlm('cloud-server', '--model', 'tiny', '--trace',
                             unreadable_trace)[:2], 'expected')
    assert_one_line(*spotvlm('trace-from-bag', tmp_path / 'no_bag')[:2], 'no_bag')
    (tmp_path / 'not_a_bag').mkdir()
    assert_one_line(*spotvlm('trace-from-bag', tmp_path / 'not_a_bag')[:2], 'not_a_bag')


def test_ask_and_watch_refuse_bad_input():
    assert_one_line(*spotvlm('ask', '  ')[:2], 'empty')
    assert_one_line(*spotvlm('ask', 'what?', '--timeout', '-1')[:2], '--timeout')
    assert_one_line(*spotvlm('watch', '--count', 'many')[:2], '--count')
