"""Does the edge model read its context? How often it answers what a fresh cloud turn says.

For frames of validation drives and each VQA question, the edge gets one cloud history turn
(1.0 s old) whose answer is a word of the question's vocabulary drawn at random, right or
wrong, and no focus crops. A model that ignores its context copies at the rate its own answer
happens to match (about chance); one that trusts the cloud copies nearly always. Also printed:
the same model without the turn, scored against the truth, for scale.

    python benchmarks/bench_context_reading.py [--edge CKPT ...] [--frames 30]
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

from spotvlm_ros.core.types import HistoryTurn  # noqa: E402
from spotvlm_ros.models.transformers_backend import TransformersBackend  # noqa: E402
from spotvlm_ros.scenes.large_model import VOCABULARY  # noqa: E402
from spotvlm_ros.scenes.truth import sequence  # noqa: E402
from spotvlm_ros.share import DEFAULT_EDGE_CHECKPOINT, resolve  # noqa: E402

VALIDATION_SEEDS = (1000003, 1000005)  # validation split: nothing here trains a model
FRAMES_PER_SEED = 600


def frames_of(count: int) -> list:
    """`count` (image, truth) pairs spread over the validation drives."""
    step = max(1, len(VALIDATION_SEEDS) * FRAMES_PER_SEED // count)
    picked = []
    for seed in VALIDATION_SEEDS:
        for index, (image, truth) in enumerate(sequence(seed, FRAMES_PER_SEED)):
            if index % step == 0:
                picked.append((image, truth))
    return picked[:count]


def rates(edge: TransformersBackend, frames: list, rng: np.random.Generator) -> dict:
    """{question: (copied, own answer right, asked)} over `frames`."""
    out = {}
    for question, words in VOCABULARY.items():
        copied = right = 0
        for image, truth in frames:
            given = words[int(rng.integers(len(words)))]
            turn = HistoryTurn(question, given, truth.stamp_s - 1.0, 1.0)
            copied += edge.answer(image, question, [turn]).text.strip() == given
            answer = next(q.answer for q in truth.qa if q.question == question)
            right += edge.answer(image, question).text.strip() == answer
        out[question] = (copied, right, len(frames))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--edge', action='append', default=None, help='checkpoint(s)')
    parser.add_argument('--frames', type=int, default=30)
    args = parser.parse_args()
    frames = frames_of(args.frames)
    print(f'{len(frames)} frames of validation seeds {VALIDATION_SEEDS}; a cloud turn 1.0 s '
          'old with a random word of the vocabulary')
    for path in args.edge or [resolve(DEFAULT_EDGE_CHECKPOINT)]:
        edge = TransformersBackend(path, max_new_tokens=8, warmup=False)
        print(f'\n{Path(path).name}')
        print(f'{"question":<36}{"copied":>8}{"chance":>8}{"own right":>11}')
        for question, (copied, right, asked) in rates(edge, frames,
                                                      np.random.default_rng(0)).items():
            print(f'{question:<36}{copied / asked:>8.2f}{1 / len(VOCABULARY[question]):>8.2f}'
                  f'{right / asked:>11.2f}')
        edge.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
