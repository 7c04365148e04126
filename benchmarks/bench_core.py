"""Per-frame cost of the core method: context update, focus plan, optical flow, keyframe check.

Run: python benchmarks/bench_core.py [--repeat N]. Prints median and p95 in milliseconds.
Target: context update and focus plan (20 regions, 640x480, flow aside) under 1 ms median.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.core.context import ContextConfig, ContextStore  # noqa: E402
from spotvlm_ros.core.flow import FlowMemo  # noqa: E402
from spotvlm_ros.core.focus import (  # noqa: E402
    FocusConfig, focus_regions, plan_focus_from_config, propagate_along, propagate_regions)
from spotvlm_ros.core.keyframes import KeyframeConfig, KeyframePolicy  # noqa: E402
from spotvlm_ros.core.types import CloudAnswer, Region  # noqa: E402
from spotvlm_ros.scenes.texture import shifted, textured_frame  # noqa: E402

CLOUD_TEXT = ('There is a red car stopped at the intersection about 12 m ahead, and a cyclist '
              'waiting on the right curb. The traffic light facing us is red. A pedestrian is '
              'crossing from the left on the zebra crossing. The road is wet. Overall the scene '
              'is calm and I hope this helps; let me know if you need anything else. '
              '```json\n[{"bbox_2d": [410, 300, 620, 460], "label": "car"}]\n```')
N_REGIONS = 20


def measure(fn, repeat: int, warmup: int = 20) -> tuple:
    """Median and p95 of `fn()` wall time, and median process CPU time, in ms.

    CPU time leaves out time spent waiting for a core, so it stays honest on a busy machine.
    """
    for _ in range(warmup):
        fn()
    wall = np.empty(repeat)
    cpu = np.empty(repeat)
    for i in range(repeat):
        start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
        fn()
        cpu[i] = (time.process_time_ns() - start_cpu) / 1e6
        wall[i] = (time.perf_counter_ns() - start) / 1e6
    return float(np.median(wall)), float(np.percentile(wall, 95)), float(np.median(cpu))


def random_regions(width: int, height: int, n: int, seed: int) -> list:
    """`n` boxes of 5-25 % of the frame side, scores spread, in a (width, height) image."""
    rng = np.random.default_rng(seed)
    regions = []
    for i in range(n):
        w, h = rng.uniform(0.05, 0.25) * width, rng.uniform(0.05, 0.25) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        regions.append(Region(f'object{i}', x, y, x + w, y + h, float(rng.uniform(0.2, 1.0))))
    return regions


def context_rows(repeat: int) -> list:
    """A store holding 10 s of history; cost of reading turns and of taking in an answer."""
    store = ContextStore(ContextConfig(own_history=True, max_turns=3, max_age_s=10.0))
    for k in range(40):  # 10 s of 4 Hz keyframes, plus edge answers at 10 Hz
        store.add_cloud(CloudAnswer(k * 0.25, k, 'what is ahead?', CLOUD_TEXT))
    for k in range(100):
        store.add_edge(k * 0.1, 'what is ahead?', 'a car ahead')
    seq = iter(range(1000, 10**9))

    def add(text=CLOUD_TEXT):
        n = next(seq)  # a new keyframe each time, so nothing is a duplicate
        store.add_cloud(CloudAnswer(10.0 + n * 1e-6, n, 'what is ahead?', text))

    def add_and_read():
        add()
        store.turns_for(10.5)

    huge = 'A truck is braking ahead. ' * 40_000
    return [
        ('context: turns_for, 3 of 140 entries', measure(lambda: store.turns_for(9.95), repeat)),
        ('context: add_cloud, 450-char answer', measure(add, repeat)),
        ('context update: add_cloud + turns_for', measure(add_and_read, repeat)),
        ('context: add_cloud, 1 MB answer', measure(lambda: add(huge), max(repeat // 10, 20), 3)),
    ]


def focus_rows(repeat: int) -> list:
    """20 cloud regions onto a 640x480 frame (no flow), then planned with crops widened by age."""
    frame = textured_frame(640, 480, 0)
    cloud_regions = random_regions(1280, 960, N_REGIONS, 1)
    config = FocusConfig(token_budget=256, max_regions=N_REGIONS, use_flow=False)

    def mapped():
        return focus_regions(cloud_regions, (1280, 960), (640, 480), config)

    regions = mapped()
    return [
        (f'focus: focus_regions, {N_REGIONS} regions', measure(mapped, repeat)),
        ('focus: plan_focus, 640x480, 256 tok', measure(
            lambda: plan_focus_from_config(frame, regions, config, 2.4), repeat)),
        ('focus plan: regions + plan', measure(
            lambda: plan_focus_from_config(frame, mapped(), config, 2.4), repeat)),
    ]


def flow_rows(repeat: int) -> list:
    """Sparse optical flow from keyframe to current frame: 20 regions at once, and the
    fuser's longest chain of steps."""
    rows = []
    for width, height in ((640, 480), (320, 240)):
        key = textured_frame(width, height, 2)
        cur = shifted(key, 6.0, -3.0)
        regions = random_regions(width, height, N_REGIONS, 3)
        rows.append((f'optical flow: {width}x{height}, {N_REGIONS} regions', measure(
            lambda: propagate_regions(regions, key, cur), max(repeat // 5, 30), 5)))
    # The fuser's worst case: a reply 10 s old carried through its ring in 0.5 s steps.
    key = textured_frame(320, 240, 5)
    path = [key] + [shifted(key, 3.0 * step, -1.0 * step) for step in range(1, 21)]
    regions = random_regions(320, 240, 3, 6)
    rows.append(('optical flow: 320x240, 3 regions, 20 steps (10 s)', measure(
        lambda: propagate_along(regions, path), max(repeat // 10, 20), 3)))
    # The next frame of that reply, as the fuser tracks it: 19 steps from the memo, 1 new.
    stamps = [0.5 * step for step in range(len(path))]
    memo = FlowMemo()
    propagate_along(regions, path[:-1] + [path[-2]], stamps=stamps, memo=memo)
    rows.append(('optical flow: the same, the next frame (FlowMemo)', measure(
        lambda: propagate_along(regions, path, stamps=stamps, memo=memo),
        max(repeat // 10, 20), 3)))
    return rows


def keyframe_rows(repeat: int) -> list:
    """Keyframe decision on a 640x480 frame (scene-change score included)."""
    frame = textured_frame(640, 480, 4)
    # Never sends, so every call scores the change against the same keyframe.
    policy = KeyframePolicy(KeyframeConfig(min_interval_s=0.0, max_interval_s=1e9,
                                           change_threshold=1.0))
    policy.should_send(0.0, frame, 0)
    return [('keyframe: should_send, 640x480', measure(
        lambda: policy.should_send(1.0, frame, 0), repeat))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=500, help='timed runs per row')
    args = parser.parse_args()
    import cv2

    print(f'python {platform.python_version()}, numpy {np.__version__}, '
          f'opencv {cv2.__version__} ({cv2.getNumThreads()} threads), '
          f'{os.cpu_count()} cpus, {platform.machine()}')
    rows = (context_rows(args.repeat) + focus_rows(args.repeat) + flow_rows(args.repeat)
            + keyframe_rows(args.repeat))
    width = max(len(name) for name, _ in rows)
    print(f'load average {os.getloadavg()[0]:.1f} over the last minute')
    print(f'{"step":<{width}}  {"median ms":>9}  {"p95 ms":>8}  {"cpu median ms":>13}')
    for name, (median, p95, cpu) in rows:
        print(f'{name:<{width}}  {median:>9.3f}  {p95:>8.3f}  {cpu:>13.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
