"""Soak: `spotvlm run` on a looping bag at camera rate with a fluctuating cloud, for minutes.

Prints the answer rate, edge latency p50/p95 and every process's resident memory at the start
(after warm-up) and at the end, plus the samples in between, so growth can be told from noise.
Usage: SOAK_MINUTES=30 python benchmarks/soak.py  (`make soak`).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from spotvlm_ros.io.bags import write_image_bag
from spotvlm_ros.io.frame_sources import moving_box_frames

ANSWER_LINE = re.compile(r'^\[answer\] frame (\S+) latency\s+(\d+) ms')
CAMERA_HZ = 10.0
WARMUP_S = 60.0  # memory "at start" is taken after the model and caches have settled
SAMPLE_EVERY_S = 30.0
# A cloud that is usually ~1 s late, with jitter, and drops out for seconds at a time.
TRACE = ('outages', ['base_s=1.0', 'jitter_s=0.8', 'mean_gap_s=40', 'mean_outage_s=6'])


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (0 if it is gone)."""
    try:
        for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def children_by_name(pid: int) -> dict:
    """Child processes of `pid` by what they run (node module or cloud server)."""
    found = {}
    for task in pathlib.Path(f'/proc/{pid}/task').iterdir():
        for child in (task / 'children').read_text().split():
            try:
                cmd = pathlib.Path(f'/proc/{child}/cmdline').read_bytes().split(b'\0')
            except FileNotFoundError:
                continue
            module = next((c.decode() for c in cmd if c.startswith(b'spotvlm_ros.')), child)
            name = module.rsplit('.', 1)[-1]
            found['cloud_server' if name == 'server' else name] = int(child)
    return found


def memory_sample(run_pid: int) -> dict:
    """RSS MB of `spotvlm run` itself and each of its processes."""
    sample = {name: rss_mb(pid) for name, pid in children_by_name(run_pid).items()
              if isinstance(name, str) and name.isidentifier()}
    sample['run'] = rss_mb(run_pid)
    return sample


class AnswerReader(threading.Thread):
    """Reads `spotvlm run`'s output: answer arrival times and latencies; keeps the summary."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.arrivals: list = []
        self.latencies_ms: list = []
        self.tail: list = []

    def run(self) -> None:
        for line in self.stream:
            match = ANSWER_LINE.match(line)
            if match:
                self.arrivals.append(time.monotonic())
                self.latencies_ms.append(float(match.group(2)))
            else:
                self.tail = (self.tail + [line.rstrip()])[-20:]


def start_run(bag: pathlib.Path, seconds: float) -> subprocess.Popen:
    """`spotvlm run` on the bag, looping, with the fluctuating local cloud."""
    kind, params = TRACE
    cmd = [sys.executable, '-m', 'spotvlm_ros.cli', 'run', '--bag', str(bag),
           '--duration', str(seconds), '--grace', '2', '--trace', kind,
           '-p', 'image_source:loop=true', '-p', 'edge_node:model.device=cpu']
    for param in params:
        cmd += ['--trace-param', param]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ), bufsize=1)


def report(reader: AnswerReader, samples: list, seconds: float, code: int) -> None:
    """Print the figures."""
    arrivals = np.array(reader.arrivals)
    lat = np.array(reader.latencies_ms)
    # The rate over the steady part: from the first answer to the last.
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float('nan')
    print(f'soak: {seconds / 60:.1f} min at {CAMERA_HZ:g} Hz camera, cloud trace {TRACE[0]} '
          f'{" ".join(TRACE[1])}; spotvlm run exit code {code}')
    if len(lat):
        print(f'answers: {len(lat)}, rate {(len(arrivals) - 1) / span:.2f} Hz; '
              f'latency p50 {np.percentile(lat, 50):.0f} ms p95 {np.percentile(lat, 95):.0f} ms')
        gaps = np.diff(arrivals)
        print(f'longest gap between answers {gaps.max() if len(gaps) else float("nan"):.1f} s')
    else:
        print('answers: 0')
    if samples:
        first, last = samples[0], samples[-1]
        print(f'memory, RSS MB, at t={first["t"]:.0f} s and t={last["t"]:.0f} s after the first answer:')
        for name in sorted(k for k in first if k != 't'):
            series = [s.get(name, 0.0) for s in samples]
            print(f'  {name:14s} start {first[name]:7.1f} end {last.get(name, 0.0):7.1f} '
                  f'min {min(series):7.1f} max {max(series):7.1f}')
    print('\n'.join(reader.tail[-5:]))


def main() -> int:
    minutes = float(os.environ.get('SOAK_MINUTES', '30'))
    seconds = minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        bag = pathlib.Path(tmp) / 'loop'
        write_image_bag(bag, moving_box_frames(100, 640, 480), 1.0 / CAMERA_HZ)
        proc = start_run(bag, seconds)
        reader = AnswerReader(proc.stdout)
        reader.start()
        samples = []
        while proc.poll() is None:
            if reader.arrivals:
                since = time.monotonic() - reader.arrivals[0]
                due = not samples or since - samples[-1]['t'] >= SAMPLE_EVERY_S
                # No sample in the last seconds: the run is then stopping its processes.
                live = since < seconds - 5
                if since >= min(WARMUP_S, seconds / 3) and due and live:
                    sample = memory_sample(proc.pid)
                    sample['t'] = since
                    samples.append(sample)
                    print(f'[{since:6.0f} s] answers {len(reader.arrivals)} ' + ' '.join(
                        f'{k}={v:.0f}MB' for k, v in sample.items() if k != 't'), flush=True)
            time.sleep(1.0)
        reader.join(10)
        report(reader, samples, seconds, proc.returncode)
        return 0 if proc.returncode == 0 and reader.arrivals else 1


if __name__ == '__main__':
    sys.exit(main())
