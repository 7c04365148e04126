"""Write a synthetic driving sequence with its ground truth as an MCAP bag."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Optional, Sequence

from spotvlm_ros.io.bags import write_scene_bag
from spotvlm_ros.cli_types import percent_int, positive_float, positive_int
from spotvlm_ros.scenes.truth import sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: spotvlm make-bag OUT --seed N --seconds S."""
    parser = argparse.ArgumentParser(prog='spotvlm make-bag', description=__doc__)
    parser.add_argument('out', help='bag folder to write')
    parser.add_argument('--seed', type=int, default=1_000_001, help='scene seed')
    parser.add_argument('--seconds', type=positive_float, default=10.0)
    parser.add_argument('--fps', type=positive_float, default=10.0)
    parser.add_argument('--width', type=positive_int, default=448)
    parser.add_argument('--height', type=positive_int, default=336)
    parser.add_argument('--jpeg-quality', type=percent_int, default=85)
    parser.add_argument('--force', action='store_true', help='replace an existing bag')
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        if not args.force:
            parser.error(f'{out} exists (use --force to replace it)')
        shutil.rmtree(out)
    frames = round(args.seconds * args.fps)
    if frames < 1:
        parser.error(f'--seconds {args.seconds:g} at --fps {args.fps:g} is less than one frame')
    count = write_scene_bag(out, sequence(args.seed, frames, args.width, args.height, args.fps),
                            1.0 / args.fps, jpeg_quality=args.jpeg_quality)
    print(f'{out}: {count} frames of seed {args.seed}, images on '
          f'/camera/image_raw/compressed, ground truth on /ground_truth')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
