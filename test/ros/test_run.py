"""`spotvlm run` ends every process it started: at the end of the bag, and on Ctrl-C."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from spotvlm_ros.io.bags import write_image_bag
from spotvlm_ros.io.frame_sources import moving_box_frames

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def children(pid: int) -> set:
    """Direct child processes of `pid`."""
    found = set()
    for task in pathlib.Path(f'/proc/{pid}/task').iterdir():
        found |= {int(c) for c in (task / 'children').read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f'/proc/{pid}/stat').read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != 'Z'


def start_run(bag: pathlib.Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, '-m', 'spotvlm_ros.cli', 'run', '--bag', str(bag), '--grace', '1',
         '-p', 'edge_node:model.device=cpu', '-p', 'edge_node:model.max_new_tokens=4', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def wait_for_children(proc: subprocess.Popen, count: int, timeout_s: float = 60) -> set:
    deadline = time.monotonic() + timeout_s
    while len(kids := children(proc.pid)) < count:
        assert proc.poll() is None and time.monotonic() < deadline, 'run did not start its nodes'
        time.sleep(0.2)
    return kids


def test_run_stops_every_process_when_the_bag_ends(tmp_path):
    bag = tmp_path / 'short'
    write_image_bag(bag, moving_box_frames(15, 320, 240), 0.1)
    proc = start_run(bag, '--no-cloud', '--namespace', 'front')
    kids = wait_for_children(proc, 3)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    # The printer listens on /front/answer: answers there prove the namespace reached every node.
    assert '[summary]' in out and '[answer]' in out
    assert not any(alive(pid) for pid in kids), 'a node outlived spotvlm run'


def test_run_stops_every_process_on_ctrl_c(tmp_path):
    bag = tmp_path / 'long'
    write_image_bag(bag, moving_box_frames(600, 320, 240), 0.1)
    proc = start_run(bag, '--trace', 'constant', '--trace-param', 'delay_s=1')
    kids = wait_for_children(proc, 5, 120)  # the cloud server and four nodes
    for line in proc.stdout:
        if line.startswith('[answer]'):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert '[summary]' in out
    assert not any(alive(pid) for pid in kids), 'a node outlived spotvlm run'


def test_run_fails_when_the_bag_cannot_be_read(tmp_path):
    bag = tmp_path / 'broken'
    write_image_bag(bag, moving_box_frames(10, 320, 240), 0.1)
    mcap = next(bag.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])  # a recording cut short
    proc = start_run(bag, '--no-cloud')
    kids = wait_for_children(proc, 2)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, out
    assert 'cannot open bag' in out
    assert not any(alive(pid) for pid in kids)


def test_run_serves_the_simulated_large_model_over_the_bags_own_truth():
    from spotvlm_ros.share import SAMPLE_BAG, resolve

    proc = start_run(pathlib.Path(resolve(SAMPLE_BAG)), '--cloud-model', 'simulated',
                     '--trace', 'constant', '--trace-param', 'delay_s=0.2')
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    # The server matched every keyframe to a frame of the bag and answered it.
    summary = next(line for line in out.splitlines() if line.startswith('[summary]'))
    used = int(summary.split(' used cloud context')[0].rsplit(' ', 1)[-1])
    assert used >= 50, summary
    assert 'unsupported_input' not in out and 'Traceback' not in out
