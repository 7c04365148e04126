"""Random training samples for the edge or the cloud role, drawn from a frame pool."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spotvlm_ros.core.compression import TokenCounter, word_count
from spotvlm_ros.scenes.truth import DESCRIPTION, FAMILIES, GROUNDING
from spotvlm_ros.training.context_samples import context_sample
from spotvlm_ros.training.samples import (EDGE_MIXTURE, Sample, cloud_sample, edge_sample,
                                          jitter_regions, regions_of, teacher_turn, zoom_window,
                                          zoomable, zoomed)

ROLES = ('edge', 'cloud')
BOOK_SHARE = 0.75  # of edge samples, when reply books are given


def _pooled_qa(pool: dict, rng: np.random.Generator) -> tuple:
    """A random pooled frame of a random scene, and a random question of it."""
    frames = pool[sorted(pool)[rng.integers(len(pool))]]
    pooled = frames[int(rng.integers(len(frames)))]
    return pooled, pick_qa(pooled.truth, rng)


def pick_qa(truth, rng: np.random.Generator):
    """A QA of the frame, each task family about equally often."""
    by_family = {f: [q for q in truth.qa if q.family == f] for f in FAMILIES}
    families = [f for f in FAMILIES if by_family[f]]
    family = families[rng.integers(len(families))]
    options = by_family[family]
    return options[rng.integers(len(options))]


def draw_sample(pool: dict, role: str, rng: np.random.Generator, zoom_from: float = 1.0,
                books: Sequence = (), count_tokens: TokenCounter = word_count,
                blind: float = 0.0) -> Sample:
    """One sample: a random frame of a random pooled scene, a random question.

    Cloud samples whose answer survives a crop are zoomed on their object by a t drawn from
    [zoom_from, 1] (see zoom_window; 1: the whole frame): a curriculum lowers it to start with.
    With reply `books`, edge samples carry the run-time context of a book's drive (most of
    them) or none at all (the pool's frames, so the whole pool's views stay learnt); a `blind`
    share of the book samples show a blank frame (see context_sample).
    """
    if role == 'edge' and books:
        if rng.random() < BOOK_SHARE:
            return context_sample(books[int(rng.integers(len(books)))], rng, count_tokens,
                                  blind)
        pooled, qa = _pooled_qa(pool, rng)
        return edge_sample(pooled.image(), qa)
    seeds = sorted(pool)
    frames = pool[seeds[rng.integers(len(seeds))]]
    index = int(rng.integers(len(frames)))
    pooled = frames[index]
    qa = pick_qa(pooled.truth, rng)
    image = pooled.image()
    if role == 'cloud':
        if zoom_from < 1.0 and zoomable(qa):
            t = rng.uniform(zoom_from, 1.0)
            image, qa = zoomed(image, qa, zoom_window(qa.regions[0].box, t, rng))
        return cloud_sample(image, qa)
    modes = list(EDGE_MIXTURE)
    use_history, use_focus = modes[rng.choice(len(modes), p=list(EDGE_MIXTURE.values()))]
    history = None
    age = 0.0
    if use_history and index > 0:
        # Teacher context of random age: the true answer on an earlier pooled frame.
        earlier = frames[int(rng.integers(index))]
        age = pooled.truth.stamp_s - earlier.truth.stamp_s
        same = [q for q in earlier.truth.qa if q.question == qa.question]
        old = same[0] if same else next(q for q in earlier.truth.qa if q.family == DESCRIPTION)
        history = teacher_turn(old.question, old.answer, age, pooled.truth.stamp_s)
    focus = None
    if use_focus:
        focus = jitter_regions(regions_of(qa), age, rng)
    if qa.family == GROUNDING and focus is not None and rng.random() < 0.5:
        focus = focus[:0]  # sometimes nothing to focus on: it must still ground from the frame
    return edge_sample(image, qa, history, focus)
