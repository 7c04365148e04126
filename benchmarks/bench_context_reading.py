"""Does the edge model read its context? How often it answers what a fresh cloud turn says.

For frames of validation drives and each VQA question, the edge gets one cloud history turn
(1.0 s old) whose answer is a word of the question's vocabulary drawn at random, right or
wrong, and no focus crops. A model that ignores its context copies at the rate its own answer
happens to match (about chance); one that trusts the cloud copies nearly always. Also printed:
the same model without the turn, scored against the truth, for scale.

For each grounding question the context is a box of the object's true size at a random place,
given two ways: as a focus region, cropped and captioned as the fuser's regions are
("Close-up of car at x1, y1, x2, y2:"), or as a cloud turn 1.0 s old, the box written as the
store writes a "where" answer with `where_boxes` on. Copied: the answer's first box hits it
(IoU >= 0.5); own right: without it, the answer hits the truth.

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

from spotvlm_ros.core.focus import plan_focus_from_config  # noqa: E402
from spotvlm_ros.core.regions import regions_json  # noqa: E402
from spotvlm_ros.core.types import HistoryTurn, Region  # noqa: E402
from spotvlm_ros.models.transformers_backend import TransformersBackend  # noqa: E402
from spotvlm_ros.scenes.large_model import VOCABULARY  # noqa: E402
from spotvlm_ros.scenes.scoring import box_hit, split_reply  # noqa: E402
from spotvlm_ros.scenes.truth import GROUNDING, Q_WHERE, sequence  # noqa: E402
from spotvlm_ros.training.samples import EDGE_FOCUS  # noqa: E402
from spotvlm_ros.share import DEFAULT_EDGE_CHECKPOINT, resolve  # noqa: E402

VALIDATION_SEEDS = (1000003, 1000005)  # validation split: nothing here trains a model
FRAMES_PER_SEED = 600
BOX_TOKENS = 64  # a one-box answer is ~50 tokens; fewer cut it before its first digit


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


def random_box(label: str, like: tuple, size: tuple, rng: np.random.Generator) -> Region:
    """A box the size of `like` (x1, y1, x2, y2; at least 8 px a side) anywhere in the frame."""
    width, height = max(8.0, like[2] - like[0]), max(8.0, like[3] - like[1])
    x1 = float(rng.uniform(0, size[0] - width))
    y1 = float(rng.uniform(0, size[1] - height))
    return Region(label, x1, y1, x1 + width, y1 + height)


def box_rates(edge: TransformersBackend, frames: list, rng: np.random.Generator) -> dict:
    """{question: (copied from a crop, from a turn, own answer right, asked)} over the frames
    that show the object."""
    out = {}
    for label, question in Q_WHERE.items():
        from_crop = from_turn = right = asked = 0
        for image, truth in frames:
            qa = next((q for q in truth.qa if q.question == question), None)
            if qa is None or qa.family != GROUNDING or not qa.regions:
                continue
            size = (image.shape[1], image.shape[0])
            given = random_box(label, qa.regions[0].box, size, rng)
            plan = plan_focus_from_config(image, [given], EDGE_FOCUS, age_s=1.0)
            said = split_reply(edge.answer(image, question, [], plan).text, size)[1]
            from_crop += box_hit([given], said)
            turn = HistoryTurn(question, regions_json([given]), truth.stamp_s - 1.0, 1.0)
            said = split_reply(edge.answer(image, question, [turn]).text, size)[1]
            from_turn += box_hit([given], said)
            right += box_hit(split_reply(qa.answer, size)[1],
                             split_reply(edge.answer(image, question).text, size)[1])
            asked += 1
        out[question] = (from_crop, from_turn, right, asked)
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
        edge = TransformersBackend(path, max_new_tokens=BOX_TOKENS, warmup=False)
        print(f'\n{Path(path).name}')
        print(f'{"question":<36}{"copied":>8}{"chance":>8}{"own right":>11}')
        for question, (copied, right, asked) in rates(edge, frames,
                                                      np.random.default_rng(0)).items():
            print(f'{question:<36}{copied / asked:>8.2f}{1 / len(VOCABULARY[question]):>8.2f}'
                  f'{right / asked:>11.2f}')
        print(f'\n{"question (a box at random)":<36}{"crop":>8}{"turn":>8}{"own right":>11}')
        for question, (from_crop, from_turn, right, asked) in box_rates(
                edge, frames, np.random.default_rng(0)).items():
            if asked:
                print(f'{question:<36}{from_crop / asked:>8.2f}{from_turn / asked:>8.2f}'
                      f'{right / asked:>11.2f}  ({asked} frames show it)')
        edge.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
