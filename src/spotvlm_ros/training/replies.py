"""The models' own replies on whole training drives, computed once per checkpoint pair.

The edge model learns to read context from what the fuser will really hand it: the cloud
model's replies on earlier keyframes (not the ground truth) and its own earlier answers. Both
are generated here, once, on the training seeds only, and kept in a pickle ("reply book").
"""

from __future__ import annotations

import argparse
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from spotvlm_ros.models.prompt import build_messages
from spotvlm_ros.scenes.large_model import SimulatedLargeModel, is_simulated
from spotvlm_ros.scenes.truth import DESCRIPTION, frame_truth
from spotvlm_ros.scenes.world import sample_scene
from spotvlm_ros.training.pool import FPS, FRAME_H, FRAME_W, PooledFrame, encode_jpeg
from spotvlm_ros.training.samples import CLOUD_SYSTEM_PROMPT, regions_of

TRAIN_SEEDS = range(0, 4000)  # the protocol's train split; nothing else goes in a book
FRAME_STEP = 5  # frames kept per drive: every half second at 10 Hz
KEY_STEP = 10  # keyframes (cloud and own replies): every second


@dataclass
class DriveBook:
    """One training drive: its frames, and both models' replies on its keyframes."""

    seed: int
    frames: dict  # frame index -> PooledFrame, every FRAME_STEP
    questions: tuple  # the questions replied to in this drive
    cloud: dict = field(default_factory=dict)  # (frame index, question) -> raw cloud reply
    edge: dict = field(default_factory=dict)  # (frame index, question) -> edge reply, no context

    @property
    def keyframes(self) -> list:
        return sorted({index for index, _ in self.cloud})


def drive_frames(seed: int, seconds: float) -> dict:
    """{frame index: PooledFrame} every FRAME_STEP frames of the seed's drive."""
    scene = sample_scene(seed)
    out = {}
    for index in range(0, round(seconds * FPS), FRAME_STEP):
        image, truth = frame_truth(scene, index, FRAME_W, FRAME_H, FPS)
        out[index] = PooledFrame(encode_jpeg(image), truth)
    return out


def pick_questions(frames: dict, count: int, rng: np.random.Generator) -> tuple:
    """The description and `count - 1` other questions the drive asks, at random."""
    asked = sorted({q.question for f in frames.values() for q in f.truth.qa
                    if q.family != DESCRIPTION})
    picked = rng.choice(asked, size=min(count - 1, len(asked)), replace=False)
    describe = next(q.question for q in next(iter(frames.values())).truth.qa
                    if q.family == DESCRIPTION)
    return (describe, *sorted(str(q) for q in picked))


def build_drive(seed: int, seconds: float, questions: int, edge, cloud,
                batch_size: int = 16) -> DriveBook:
    """Frames of one drive and both models' replies on every keyframe it asks about."""
    from spotvlm_ros.models.batched import generate_texts

    if seed not in TRAIN_SEEDS:
        raise ValueError(f'seed {seed} is outside the train split {TRAIN_SEEDS}')
    frames = drive_frames(seed, seconds)
    book = DriveBook(seed, frames, pick_questions(frames, questions,
                                                  np.random.default_rng([seed, 21])))
    asks = [(index, q.question) for index, f in frames.items() if index % KEY_STEP == 0
            for q in f.truth.qa if q.question in book.questions]
    images = {index: frames[index].image() for index, _ in asks}
    if isinstance(cloud, SimulatedLargeModel):
        book.cloud = {(i, q): simulated_reply(cloud, seed, frames[i].truth, q) for i, q in asks}
    else:
        cloud_chats = [build_messages(images[i], q, system_prompt=CLOUD_SYSTEM_PROMPT)
                       for i, q in asks]
        book.cloud = dict(zip(asks, generate_texts(cloud, cloud_chats, batch_size)))
    edge_chats = [build_messages(images[i], q) for i, q in asks]
    book.edge = dict(zip(asks, generate_texts(edge, edge_chats, batch_size)))
    return book


def simulated_reply(model: SimulatedLargeModel, seed: int, truth, question: str) -> str:
    """The simulated large model's reply about a training frame, at the frame's own size."""
    qa = next(q for q in truth.qa if q.question == question)
    return model.reply(question, qa.family, qa.answer, regions_of(qa), key=f'{seed}|{truth.index}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: spotvlm build-replies OUT.pkl --seeds 0:30."""
    parser = argparse.ArgumentParser(prog='spotvlm build-replies',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('out', help='pickle file to write')
    parser.add_argument('--seeds', default='0:30', help='first:last (exclusive), train split')
    parser.add_argument('--seconds', type=float, default=60.0, help='drive length')
    parser.add_argument('--questions', type=int, default=5, help='questions per drive')
    parser.add_argument('--edge', default='models/spotvlm-edge')
    parser.add_argument('--cloud', default='models/spotvlm-cloud',
                        help="cloud checkpoint, or 'simulated' (answers from the ground truth)")
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    first, _, last = args.seeds.partition(':')
    try:
        seeds = range(int(first), int(last or int(first) + 1))
        if not seeds or seeds[0] not in TRAIN_SEEDS or seeds[-1] not in TRAIN_SEEDS:
            raise ValueError(f'seeds {args.seeds} must lie in the train split 0:4000')
    except ValueError as err:
        print(f'spotvlm build-replies: {err}')
        return 2
    import torch

    from spotvlm_ros.models.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    edge = TransformersBackend(args.edge, max_new_tokens=64, warmup=False)
    cloud = (SimulatedLargeModel() if is_simulated(args.cloud)
             else TransformersBackend(args.cloud, max_new_tokens=128, warmup=False))
    books, start = [], time.perf_counter()
    for seed in seeds:
        books.append(build_drive(seed, args.seconds, args.questions, edge, cloud))
        print(f'seed {seed}: {len(books[-1].cloud)} keyframe questions, '
              f'{time.perf_counter() - start:.0f} s', flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(pickle.dumps({'edge': args.edge, 'cloud': args.cloud,
                                             'books': books}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
