"""How often a region carried by optical flow still holds its object after 1, 3 and 6 s.

Run: python benchmarks/bench_flow_hold.py [--seeds 1000000,1000001]. On validation drives, the
nearest object of each kind, every 1 s, is carried to the frame 1, 3 and 6 s later: not at all,
in `--hop-s` steps by its own corners alone (4 good tracks needed), and in those steps as the
focus defaults do it (a small box's corners sought a little around it, then in a patch; a box
lost on a step coasts). A carried box holds when its IoU with the same object's true box is
>= 0.5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.core.flow import propagate_along, track_path  # noqa: E402
from spotvlm_ros.core.focus import FocusConfig, flow_options  # noqa: E402
from spotvlm_ros.core.images import shrink  # noqa: E402
from spotvlm_ros.core.types import Region  # noqa: E402
from spotvlm_ros.scenes.scoring import iou  # noqa: E402
from spotvlm_ros.scenes.truth import VEHICLE_KINDS, seen, sequence  # noqa: E402

FPS = 10
KINDS = {'vehicle': VEHICLE_KINDS, 'speed limit sign': ('speed limit sign',),
         'traffic light': ('traffic light',), 'pedestrian': ('pedestrian',)}
AGES_S = (1, 3, 6)


def variants(hop_s: float) -> dict:
    """name -> propagate_along keywords (None: not carried)."""
    return {'not carried': None,
            f'{hop_s:g} s steps, own corners': dict(hop_s=hop_s, min_patch_px=0.0, min_points=4),
            'steps, small boxes (defaults)': dict(hop_s=hop_s, stamps=True,
                                                  **flow_options(FocusConfig()))}


def held(frames: list, small: list, key: int, later: int, obj, flow) -> bool:
    """Whether `obj`'s box at frame `key`, carried to `later`, still holds it there."""
    truth = [o for o in frames[later][1].objects
             if o.track_id == obj.track_id and o.visible_frac >= 0.3]
    if not truth:
        return False  # gone from view: no box can hold it
    box = obj.box
    if flow is not None:
        flow = dict(flow)
        stamps = [i / FPS for i in range(key, later + 1)]
        path = track_path(stamps, flow.pop('hop_s'))
        if flow.pop('stamps', False):
            flow['stamps'] = [stamps[i] for i in path]
        size = (frames[0][0].shape[1], frames[0][0].shape[0])
        (region,) = propagate_along([Region('object', *obj.box, 1.0)],
                                    [small[key + i] for i in path], frame_size=size, **flow)
        box = (region.x1, region.y1, region.x2, region.y2)
    return iou(box, truth[0].box) >= 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', default='1000000,1000001', help='validation scene seeds')
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--hop-s', type=float, default=0.5)
    args = parser.parse_args()
    frame_count = round(args.seconds * FPS)
    named = variants(args.hop_s)
    holds = {}  # (kind, age, variant) -> [bool]
    for seed in (int(s) for s in args.seeds.split(',')):
        frames = list(sequence(seed, frame_count))
        small = [shrink(image, 320) for image, _ in frames]
        for key in range(0, frame_count - max(AGES_S) * FPS, FPS):
            for kind, kinds in KINDS.items():
                for obj in seen(frames[key][1].objects, kinds)[:1]:
                    for age in AGES_S:
                        for name, flow in named.items():
                            holds.setdefault((kind, age, name), []).append(
                                held(frames, small, key, key + age * FPS, obj, flow))
    print(f'seeds {args.seeds}, {args.seconds:g} s drives; share of carried boxes that hold '
          f'(IoU >= 0.5) after {" / ".join(str(a) for a in AGES_S)} s')
    print(f'{"object":<18} {"n":>4}  ' + '  '.join(f'{name:>22}' for name in named))
    for kind in KINDS:
        count = len(holds.get((kind, AGES_S[0], 'not carried'), []))
        cells = [' / '.join(f'{np.mean(holds[(kind, a, name)]):.2f}' for a in AGES_S)
                 if count else '-' for name in named]
        print(f'{kind:<18} {count:>4}  ' + '  '.join(f'{c:>22}' for c in cells))
    return 0


if __name__ == '__main__':
    sys.exit(main())
