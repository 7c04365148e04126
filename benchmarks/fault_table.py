"""Runs every fault scenario against the real node processes; prints the table of docs/faults.md.

Usage: python benchmarks/fault_table.py [--only SUBSTRING ...]
Each row is measured (test/faults/scenarios.py): edge kept answering during the fault (answer
rate to the frames sent then, vs. half the baseline), answers lost (frames the edge answered by
its own count minus answers received), recovery time after the fault ends (a process: after
the kill), peak RSS of edge / fuser / bridge during the scenario.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'test' / 'faults'))
os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import scenarios as sc  # noqa: E402

from spotvlm_ros.io.bags import write_image_bag  # noqa: E402
from spotvlm_ros.io.frame_sources import moving_box_frames  # noqa: E402

HEADER = ('| fault | edge kept answering (answer rate) | answers lost (of processed) | '
          'recovery s | peak RSS MB edge / fuser / bridge | note |\n|---|---|---|---|---|---|')


def scenario_list(rig: sc.Rig, bags: pathlib.Path) -> list:
    """(name, thunk) for every scenario, in the order they run."""
    frames = list(moving_box_frames(30, 320, 240))
    good = bags / 'good'
    write_image_bag(good, frames, 0.1)
    return [
        ('cloud outage', lambda: sc.cloud_outage(rig)),
        ('cloud hang', lambda: sc.cloud_fault(rig, 'hang', note='client timeout 3 s')),
        ('cloud drip', lambda: sc.cloud_fault(rig, 'drip', note='1 byte / 0.5 s')),
        ('cloud 429', lambda: sc.cloud_fault(rig, '429', note='Retry-After: 1')),
        ('cloud 500', lambda: sc.cloud_fault(rig, '500')),
        ('cloud malformed', lambda: sc.cloud_fault(rig, 'malformed')),
        ('cloud truncated', lambda: sc.cloud_fault(rig, 'truncated')),
        ('cloud huge', lambda: sc.cloud_fault(rig, 'huge', note='refused past max_reply_bytes')),
        ('cloud reorder', lambda: sc.cloud_reorder(rig)),
        ('cloud inject', lambda: sc.cloud_fault(rig, 'inject', note='sanitised, capped')),
        ('camera encoding', lambda: sc.camera_fault(rig, 'encoding', 'wrong encoding (yuv422)')),
        ('camera shorter', lambda: sc.camera_fault(rig, 'shorter', 'data 1000 B short')),
        ('camera longer', lambda: sc.camera_fault(rig, 'longer', 'data 1000 B long')),
        ('camera zero', lambda: sc.camera_fault(rig, 'zero', '0x0 frame')),
        ('camera 8k', lambda: sc.camera_8k(rig)),
        ('camera flood', lambda: sc.camera_flood(rig)),
        ('camera backwards', lambda: sc.camera_backwards(rig)),
        ('camera gap', lambda: sc.camera_gap(rig)),
        ('process edge', lambda: sc.process_kill(rig, 'edge')),
        ('process fuser', lambda: sc.process_kill(rig, 'fuser')),
        ('process bridge', lambda: sc.process_kill(rig, 'bridge')),
        ('bag truncated', lambda: sc.bag_row(rig, 'truncated MCAP', sc.truncated_bag(
            good, bags / 'truncated'), expect_frames=False)),
        ('bag unknown', lambda: sc.bag_row(rig, 'unknown message type', sc.bag_with_unknown_type(
            bags / 'unknown', frames), expect_frames=True)),
        ('bag no ground truth', lambda: sc.bag_row(rig, 'no ground truth', good,
                                                   expect_frames=True)),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', nargs='*', default=[], help='run scenarios whose name has one')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        logs, bags = pathlib.Path(tmp) / 'logs', pathlib.Path(tmp) / 'bags'
        logs.mkdir()
        bags.mkdir()
        started = time.monotonic()
        rig = sc.Rig(logs)
        print(f'rig ready in {time.monotonic() - started:.0f} s (edge tiny model on CPU, '
              f'{sc.RATE_HZ:g} Hz camera, 320x240)', flush=True)
        print(HEADER, flush=True)
        rows = []
        try:
            for name, thunk in scenario_list(rig, bags):
                if not args.only or any(o in name for o in args.only):
                    rows.append(thunk())
                    print(rows[-1].line(), flush=True)
        finally:
            codes = rig.close()
        leaked = [p.name for p in logs.iterdir() if rig.api_key in p.read_text(errors='replace')]
        print(f'{len(rows)} scenarios in {time.monotonic() - started:.0f} s; exit codes {codes}; '
              f'API key found in logs: {leaked or "none"}')
        return 0 if not leaked else 1


if __name__ == '__main__':
    sys.exit(main())
