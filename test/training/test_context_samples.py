"""Edge training samples carry the context the nodes would hand over, from the reply book."""

from pathlib import Path

import numpy as np
import pytest

from spotvlm_ros.core.context import SOURCE_EDGE
from spotvlm_ros.core.types import SOURCE_CLOUD
from spotvlm_ros.training.context_samples import (context_sample, context_store, draw_delay,
                                                  reply_style)
from spotvlm_ros.training.replies import KEY_STEP, build_drive, main as build_replies_main
from spotvlm_ros.training.train import main as train_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def book():
    from spotvlm_ros.models.transformers_backend import TransformersBackend

    edge = TransformersBackend(ROOT / 'models' / 'spotvlm-edge', max_new_tokens=64, warmup=False)
    cloud = TransformersBackend(ROOT / 'models' / 'spotvlm-cloud', max_new_tokens=128,
                                warmup=False)
    return build_drive(3, 6.0, 3, edge, cloud)


def test_the_book_holds_both_models_replies_on_every_keyframe(book):
    assert book.keyframes == list(range(0, 60, KEY_STEP))
    assert set(book.cloud) == set(book.edge)
    assert {q for _, q in book.cloud} <= set(book.questions) and len(book.questions) == 3
    assert all(isinstance(text, str) for text in book.cloud.values())


def test_the_store_replaces_own_turns_about_the_keyframe_and_older(book):
    rng = np.random.default_rng(0)
    seen_cloud = 0
    for _ in range(60):
        store, key = context_store(book, 55, book.questions[0], rng)
        turns = store.turns_for(5.5)
        clouds = [t.source_stamp for t in turns if t.source == SOURCE_CLOUD]
        own = [t.source_stamp for t in turns if t.source == SOURCE_EDGE]
        assert all(0 <= t.age_s <= 10 for t in turns)
        if clouds:
            seen_cloud += 1
            assert key is not None and max(clouds) == key / 10
            assert all(stamp > max(clouds) for stamp in own)
    assert seen_cloud > 20


def test_samples_mix_strategies_and_keep_the_frames_truth_as_target(book):
    rng = np.random.default_rng(1)
    samples = [context_sample(book, rng) for _ in range(80)]
    with_history = [s for s in samples if len(s.messages) > 1]
    with_crops = [s for s in samples if sum(p['type'] == 'image'
                                            for p in s.messages[-1]['content']) > 1]
    assert 10 < len(with_history) < 75 and with_crops
    for sample in samples:
        truths = {q.question: q.answer for f in book.frames.values() for q in f.truth.qa}
        question = sample.messages[-1]['content'][-1]['text']
        assert question in truths and sample.target
        for turn in sample.messages[1:-1:2]:  # assistant turns: the age, then the answer
            assert ' s ago:\n' in turn['content'][0]['text']


def test_blind_samples_show_a_blank_frame_and_keep_their_context(book):
    def frames(sample):
        return [p['image'] for p in sample.messages[-1]['content'] if p['type'] == 'image']

    seeing = [context_sample(book, np.random.default_rng(2)) for _ in range(1)][0]
    assert all(image.std() > 0 for image in frames(seeing))
    blind = [context_sample(book, np.random.default_rng(seed), blind=1.0) for seed in range(30)]
    assert all(image.std() == 0 for sample in blind for image in frames(sample))
    assert any(len(sample.messages) > 1 for sample in blind)  # the context is still there


@pytest.mark.parametrize('value', ['1.5', '-0.1', 'nan'])
def test_a_blind_share_outside_0_to_1_is_refused_by_name(value, capsys):
    with pytest.raises(SystemExit):
        train_main(['out', '--role', 'edge', '--blind-share', value])
    assert '--blind-share' in capsys.readouterr().err


def test_delays_and_reply_styles_vary():
    rng = np.random.default_rng(2)
    delays = [draw_delay(rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.5 and 9 < max(delays) <= 12
    assert 1.5 < float(np.median(delays)) < 4.0
    styles = {reply_style('red', ('box',), rng) for _ in range(200)}
    assert ('red', ('box',)) in styles and ('red', ()) in styles
    assert any(text != 'red' and 'red' in text for text, _ in styles)


def test_books_are_made_on_the_train_split_only(tmp_path, capsys):
    assert build_replies_main([str(tmp_path / 'b.pkl'), '--seeds', '1000000:1000001']) == 2
    assert 'train split' in capsys.readouterr().out
