"""The one composition: the strategy table, the fuse step and the edge step."""

import numpy as np
import pytest

from spotvlm_ros.core import composition as C
from spotvlm_ros.core.context import SOURCE_EDGE, ContextConfig, ContextStore
from spotvlm_ros.core.focus import FocusConfig
from spotvlm_ros.core.types import SOURCE_CLOUD, CloudAnswer, Region

FOCUS = FocusConfig(token_budget=96)
SIZE = (448, 336)


def frame(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (SIZE[1], SIZE[0], 3), np.uint8)


def store_with_context():
    store = ContextStore(ContextConfig(max_turns=3))
    store.add_edge(0.5, 'q', 'edge before')
    store.add_cloud(CloudAnswer(1.0, 1, 'q', 'cloud', (Region('car', 100, 100, 200, 180),),
                                image_size=SIZE), available_at=2.0)
    store.add_edge(1.5, 'q', 'edge after')
    return store


@pytest.mark.parametrize('name', C.STRATEGIES)
def test_each_strategy_takes_what_its_row_says(name):
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    inputs = C.edge_inputs(name, fused, frame(), 3.0, FOCUS)
    row = C.strategy(name)
    sources = [t.source for t in inputs.turns]
    assert (SOURCE_CLOUD in sources) == (row.cloud_turns and row.on_edge)
    assert (SOURCE_EDGE in sources) == (row.own_turns and row.on_edge)
    assert (inputs.focus is not None) == (row.focus and row.on_edge)
    used_cloud = row.on_edge and (row.cloud_turns or row.focus)
    assert inputs.context_age_s == (pytest.approx(2.0) if used_cloud else None)


def test_fuse_replaces_own_turns_and_carries_the_newest_regions():
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    assert [(t.source, t.answer) for t in fused.turns] == [(SOURCE_CLOUD, 'cloud'),
                                                          (SOURCE_EDGE, 'edge after')]
    assert fused.newest_cloud_stamp == 1.0 and fused.has_context
    assert len(fused.regions) == 1 and fused.regions[0].label == 'car'
    assert C.fuse(store_with_context(), 1.9, SIZE, FOCUS).newest_cloud_stamp is None


def test_regions_fused_for_another_size_are_scaled_to_the_frame():
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    small = frame()[::2, ::2]
    inputs = C.edge_inputs(C.FOCUS_ONLY, fused, small, 3.0, FOCUS)
    assert inputs.regions[0].x2 <= SIZE[0] / 2 + 1


def test_turns_about_later_frames_are_not_given():
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    inputs = C.edge_inputs(C.REPLACEMENT_ONLY, fused, frame(), 1.2, FOCUS)
    assert [t.answer for t in inputs.turns] == ['cloud']


def test_unknown_strategies_are_refused_by_name():
    with pytest.raises(ValueError, match='unknown strategy .nope.; one of edge_only'):
        C.strategy('nope')
    assert set(C.NODE_STRATEGIES) <= set(C.STRATEGIES)


def test_the_edges_own_age_limit_drops_old_turns_and_regions():
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    inputs = C.edge_inputs(C.CONTEXT_TRANSFER, fused, frame(), 3.0, FOCUS, max_age_s=1.6)
    assert [t.answer for t in inputs.turns] == ['edge after']
    assert inputs.focus is None and inputs.context_age_s is None


def test_only_cloud_turns_count_as_used_context():
    fused = C.fuse(store_with_context(), 3.0, SIZE, FOCUS)
    assert C.edge_inputs(C.CONTEXT_TRANSFER, fused, frame(), 3.0, FOCUS).used_cloud_turns
    assert not C.edge_inputs(C.EDGE_OWN_HISTORY, fused, frame(), 3.0, FOCUS).used_cloud_turns
    assert C.edge_inputs(C.EDGE_OWN_HISTORY, fused, frame(), 3.0, FOCUS).turns
