"""`spotvlm demo`: the whole pipeline offline on a generated bag, with the local cloud server."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from spotvlm_ros.bags import moving_box_frames, write_image_bag
from spotvlm_ros.models.tiny import cache_root
from spotvlm_ros import run

NOTE = ('Models: tiny random-weight Qwen2.5-VL checkpoints built offline, so the answer text is '
        'noise; the latencies, drops and context ages are real.')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='spotvlm demo', description=__doc__)
    parser.add_argument('--frames', type=int, default=100, help='frames in the generated bag (10 Hz)')
    parser.add_argument('--trace', default='lognormal', help='latency trace of the local cloud')
    args, rest = parser.parse_known_args(argv)
    bag = cache_root() / 'bags' / f'demo-{args.frames}'
    if not bag.exists():
        write_image_bag(bag, moving_box_frames(args.frames), 0.1)
        print(f'[demo] wrote {args.frames} frames (640x480, 10 Hz) to {bag}')
    print(f'[demo] {NOTE}', flush=True)
    return run.main(['--bag', str(bag), '--trace', args.trace, *rest])
