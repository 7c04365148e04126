"""Cost of the synthetic driving scenes: one frame with its ground truth, and a bag.

Run: python benchmarks/bench_scenes.py [--frames N]. Prints median and p95 render time in ms
(wall and process CPU) at 448x336, and the bytes per frame of a make-bag bag.
The held-out accuracy of the default models is `spotvlm eval-scenes` (minutes, not here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.io.bags import write_scene_bag  # noqa: E402
from spotvlm_ros.scenes.truth import frame_truth, sequence  # noqa: E402
from spotvlm_ros.scenes.world import sample_scene  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=40)
    args = parser.parse_args()
    scene = sample_scene(1_000_001)
    wall, cpu = [], []
    for index in range(args.frames):
        w0, c0 = time.perf_counter(), time.process_time()
        frame_truth(scene, index, 448, 336)
        wall.append(1e3 * (time.perf_counter() - w0))
        cpu.append(1e3 * (time.process_time() - c0))
    print(f'render + truth 448x336: median {np.median(wall):.1f} ms, p95 '
          f'{np.percentile(wall, 95):.1f} ms wall; median {np.median(cpu):.1f} ms CPU')
    with tempfile.TemporaryDirectory() as tmp:
        count = write_scene_bag(Path(tmp) / 'bag', sequence(1_000_001, 20), 0.1)
        size = sum(f.stat().st_size for f in (Path(tmp) / 'bag').iterdir())
    print(f'make-bag: {size / count / 1024:.0f} KiB per frame (JPEG 85 + ground truth)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
