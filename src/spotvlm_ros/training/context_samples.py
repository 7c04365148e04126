"""Edge training samples with the context the nodes would hand over, built by the same code.

A sample is a frame of a training drive and one of its questions; its context comes from the
reply book: the cloud model's own reply on an earlier keyframe (the delay drawn from realistic
links: fast, cellular, slow, lost) and the edge model's own earlier answers, put through the
fuser's store and `core.composition` exactly as at run time. The target is the frame's truth,
so the model learns to copy what is still true and to trust the frame where it disagrees.
"""

from __future__ import annotations

import numpy as np

from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS
from spotvlm_ros.core import composition as C
from spotvlm_ros.core.compression import TokenCounter, word_count
from spotvlm_ros.core.context import ContextConfig, ContextStore
from spotvlm_ros.core.flow import track_path
from spotvlm_ros.core.types import CloudAnswer
from spotvlm_ros.models.prompt import build_messages
from spotvlm_ros.training.pool import FPS, FRAME_H, FRAME_W
from spotvlm_ros.training.replies import DriveBook
from spotvlm_ros.training.samples import EDGE_FOCUS, Sample, edge_target

# Which strategy's inputs a sample gets; edge_only also stands for "no context at all".
STRATEGY_MIX = {C.CONTEXT_TRANSFER: 0.5, C.REPLACEMENT_ONLY: 0.15, C.FOCUS_ONLY: 0.1,
                C.EDGE_ONLY: 0.25}
OTHER_QUESTION = 0.15  # the context answers another question than the one asked
LOST = 0.1  # the reply never came: no cloud context, own turns only
RING_S = 10.0  # the fuser's ring (100 frames at 10 Hz): older keyframes are not at hand for flow
SIZE = (FRAME_W, FRAME_H)
# The fuser's defaults: its store config is what the edge will read.
FUSER_CONTEXT = ContextConfig()


def track_images(book: DriveBook, key, index: int) -> tuple:
    """(keyframe, frames between, their stamps) that flow steps through from frame `key` to
    `index`, as the fuser's ring holds them; (None, (), ()) when the keyframe is not at hand."""
    if key is None or (index - key) / FPS >= RING_S or key not in book.frames:
        return None, (), ()
    held = [i for i in sorted(book.frames) if key <= i <= index]
    via = [held[i] for i in track_path([i / FPS for i in held], EDGE_FOCUS.flow_hop_s)[1:-1]]
    return book.frames[key].image(), [book.frames[i].image() for i in via], [i / FPS for i in via]


def draw_delay(rng: np.random.Generator) -> float:
    """A cloud delay (s) from a mix of links: fast, cellular (log-normal), slow, heavy tail."""
    kind = rng.random()
    if kind < 0.2:
        return float(rng.uniform(0.0, 1.0))
    if kind < 0.65:
        return float(min(12.0, rng.lognormal(np.log(2.5), 0.5)))
    if kind < 0.9:
        return float(rng.uniform(3.0, 10.0))
    return float(min(12.0, 1.5 * (1 + rng.pareto(1.3))))


def reply_style(text: str, regions: tuple, rng: np.random.Generator) -> tuple:
    """The parsed reply as another cloud might word it: as is, in prose, or without regions."""
    kind = rng.random()
    if kind < 0.6 or not text:
        return text, regions
    if kind < 0.8:
        template = ('The answer is {}.', 'I see: {}.', '{}, as far as I can tell.',
                    'It looks like {}.')[int(rng.integers(4))]
        return template.format(text.rstrip('.')), regions
    return text, ()


def cloud_answer(book: DriveBook, index: int, question: str, rng) -> CloudAnswer:
    """The book's cloud reply on keyframe `index`, parsed as the bridge parses it, restyled."""
    text, regions, _ = parse_regions(book.cloud[(index, question)], FORMAT_PIXELS, SIZE, SIZE)
    text, regions = reply_style(text, regions, rng)
    return CloudAnswer(index / FPS, index, question, text, regions, image_size=SIZE)


def context_store(book: DriveBook, index: int, question: str, rng,
                  count_tokens: TokenCounter = word_count) -> tuple:
    """(the fuser's store for frame `index` and `question`, the newest keyframe or None);
    `count_tokens` is the fuser's budget counter (the edge model's tokenizer)."""
    store = ContextStore(FUSER_CONTEXT, count_tokens)
    now = index / FPS
    keyframes = [k for k in book.keyframes if (k, question) in book.cloud]
    key = None
    if rng.random() >= LOST:
        asked = question
        if rng.random() < OTHER_QUESTION:
            others = sorted({q for k, q in book.cloud if q != question})
            asked = others[int(rng.integers(len(others)))] if others else question
        latest = now - draw_delay(rng)
        usable = [k for k in book.keyframes if k / FPS <= latest and (k, asked) in book.cloud]
        if usable:
            key = usable[-1]
            store.add_cloud(cloud_answer(book, key, asked, rng))
            older = [k for k in usable[:-1] if k / FPS >= key / FPS - 3.0]
            if older and rng.random() < 0.4:
                store.add_cloud(cloud_answer(book, older[-1], asked, rng))
    # Own answers of the last seconds; those about frames the cloud covered are replaced.
    for k in keyframes:
        if now - 4.0 <= k / FPS < now and rng.random() < 0.7:
            store.add_edge(k / FPS, question, book.edge[(k, question)])
    return store, key


def context_sample(book: DriveBook, rng: np.random.Generator,
                   count_tokens: TokenCounter = word_count, blind: float = 0.0) -> Sample:
    """One edge sample of a random frame and question of `book`, with run-time context.

    A `blind` share of the frames show nothing (a uniform grey, as a camera in glare or a
    tunnel): then only the context can answer, which makes reading it worth learning.
    """
    index = sorted(book.frames)[int(rng.integers(len(book.frames)))]
    pooled = book.frames[index]
    asked = [q for q in pooled.truth.qa if q.question in book.questions]
    qa = asked[int(rng.integers(len(asked)))] if asked else pooled.truth.qa[0]
    store, key = context_store(book, index, qa.question, rng, count_tokens)
    names = list(STRATEGY_MIX)
    name = names[rng.choice(len(names), p=list(STRATEGY_MIX.values()))]
    image = pooled.image()
    if blind and rng.random() < blind:
        image = np.full_like(image, 128)
    key_image, via_images, via_stamps = track_images(book, key, index)
    stamp = index / FPS
    fused = C.fuse(store, stamp, SIZE, EDGE_FOCUS, key_image=key_image, cur_image=image,
                   via_images=via_images, via_stamps=via_stamps)
    inputs = C.edge_inputs(name, fused, image, stamp, EDGE_FOCUS)
    return Sample(build_messages(image, qa.question, inputs.turns, inputs.focus),
                  edge_target(qa, inputs.focus), qa.family)
