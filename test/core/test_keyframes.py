"""Keyframe policy: in-flight cap, interval limits, scene change, circuit breaker, reasons."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spotvlm_ros.core.keyframes import (
    CLOSED, HALF_OPEN, OPEN, CircuitBreaker, KeyframeConfig, KeyframePolicy, scene_change,
    thumbnail)


def gray_frame(level, width=64, height=48):
    return np.full((height, width, 3), level, np.uint8)


def policy(**config):
    return KeyframePolicy(KeyframeConfig(**config))


def test_first_frame_is_sent():
    decision = policy().should_send(0.0, gray_frame(100), 0)
    assert decision.send and bool(decision) and 'first' in decision.reason


def test_nothing_goes_while_requests_are_in_flight():
    p = policy(max_in_flight=2)
    p.should_send(0.0, gray_frame(0), 0)
    decision = p.should_send(10.0, gray_frame(255), 2)
    assert not decision and 'in flight' in decision.reason
    assert p.should_send(10.0, gray_frame(255), 1).send


def test_min_interval_holds_back_even_a_big_change():
    p = policy(min_interval_s=0.5)
    p.should_send(0.0, gray_frame(0), 0)
    decision = p.should_send(0.3, gray_frame(255), 0)
    assert not decision.send and 'min interval' in decision.reason
    assert p.should_send(0.5, gray_frame(255), 0).send


def test_a_changed_scene_is_sent_and_an_unchanged_one_is_not():
    p = policy(min_interval_s=0.1, max_interval_s=10.0, change_threshold=0.1)
    p.should_send(0.0, gray_frame(100), 0)
    same = p.should_send(1.0, gray_frame(105), 0)
    assert not same.send and 'unchanged' in same.reason
    assert same.change == pytest.approx(5 / 255, abs=1e-3)
    changed = p.should_send(2.0, gray_frame(160), 0)
    assert changed.send and 'changed' in changed.reason and changed.change > 0.1


def test_change_is_measured_against_the_last_keyframe_sent():
    p = policy(min_interval_s=0.0, change_threshold=0.1)
    p.should_send(0.0, gray_frame(100), 0)
    decisions = [p.should_send(t, gray_frame(100 + 10 * t), 0).send for t in (1, 2, 3)]
    assert decisions == [False, False, True]  # a slow drift adds up


def test_max_interval_forces_a_keyframe():
    p = policy(min_interval_s=0.1, max_interval_s=2.0)
    decisions = {t: p.should_send(t, gray_frame(100), 0) for t in np.arange(0, 21) / 10}
    assert [t for t, d in decisions.items() if d.send] == [0.0, 2.0]
    assert 'max interval' in decisions[2.0].reason


def test_jittered_stamps_keep_the_max_interval_rate():
    # A live camera's stamps at 10 Hz, each a few ms off: a keyframe still goes every 10th
    # frame, the one nearest the due time, as on the exact stamps of the same drive offline.
    p = policy(min_interval_s=0.5, max_interval_s=1.0, change_threshold=1.0)
    jitter = np.random.default_rng(0).uniform(-0.01, 0.01, 600)
    sent = [i for i in range(600)
            if p.should_send(i / 10 + jitter[i], gray_frame(100), 0).send]
    assert sent == list(range(0, 600, 10))


def test_without_a_frame_only_the_max_interval_sends():
    p = policy(min_interval_s=0.1, max_interval_s=2.0)
    p.should_send(0.0, None, 0)
    assert not p.should_send(1.0, None, 0).send
    assert p.should_send(2.5, None, 0).send


def test_a_clock_jump_back_restarts_the_policy():
    p = policy(min_interval_s=1.0)
    p.should_send(100.0, gray_frame(0), 0)
    decision = p.should_send(5.0, gray_frame(0), 0)
    assert decision.send and 'back' in decision.reason


def test_reset_forgets_the_last_keyframe():
    p = policy(min_interval_s=5.0)
    p.should_send(0.0, gray_frame(0), 0)
    p.reset()
    assert p.should_send(0.1, gray_frame(0), 0).send


def test_thumbnail_and_score_are_bounded():
    black = thumbnail(gray_frame(0, 640, 480))
    white = thumbnail(gray_frame(255, 640, 480))
    assert black.shape == (24, 32)
    assert scene_change(black, white) == pytest.approx(1.0)
    assert scene_change(white, white) == 0.0
    gray16 = np.full((48, 64), 65535, np.uint16)
    assert thumbnail(gray16).max() == pytest.approx(1.0)


# Circuit breaker.

def test_breaker_opens_after_consecutive_failures_only():
    b = CircuitBreaker(failures_to_open=3, cooldown_s=2.0)
    b.record_failure(0.0)
    b.record_failure(0.1)
    b.record_success(0.2)
    b.record_failure(0.3)
    b.record_failure(0.4)
    assert b.state(0.5) == CLOSED and b.allow(0.5)
    b.record_failure(0.5)
    assert b.state(0.6) == OPEN and not b.allow(0.6)
    assert b.retry_in(1.0) == pytest.approx(1.5)
    assert 'open after 3 failures' in b.describe(1.0) and '1.5 s' in b.describe(1.0)


def test_breaker_probes_once_then_closes_on_success():
    b = CircuitBreaker(failures_to_open=1, cooldown_s=2.0)
    b.record_failure(0.0)
    assert b.state(2.0) == HALF_OPEN and b.allow(2.0)
    b.on_send(2.0)
    assert not b.allow(2.1) and 'waiting for the probe' in b.describe(2.1)
    b.record_success(3.0)
    assert b.state(3.0) == CLOSED and b.allow(3.0) and b.failures == 0


def test_failed_probes_double_the_cooldown_up_to_a_cap():
    b = CircuitBreaker(failures_to_open=1, cooldown_s=1.0, max_cooldown_s=3.0)
    b.record_failure(0.0)
    now, cooldowns = 0.0, []
    for _ in range(4):
        now += b.cooldown_s
        assert b.allow(now)
        b.on_send(now)
        b.record_failure(now)
        cooldowns.append(b.cooldown_s)
    assert cooldowns == [2.0, 3.0, 3.0, 3.0]
    b.record_success(now)
    assert b.cooldown_s == 1.0


def test_policy_backs_off_while_the_cloud_fails_and_says_so():
    p = policy(min_interval_s=0.0, max_interval_s=0.5, breaker_failures=2,
               breaker_cooldown_s=3.0)
    assert p.should_send(0.0, gray_frame(0), 0).send
    p.record_reply(0.5, ok=False)
    assert p.should_send(1.0, gray_frame(0), 0).send
    p.record_reply(1.2, ok=False)
    held = p.should_send(2.0, gray_frame(0), 0)
    assert not held.send and 'circuit open' in held.reason
    probe = p.should_send(4.2, gray_frame(0), 0)
    assert probe.send
    assert 'probe' in p.should_send(5.0, gray_frame(0), 0).reason  # one probe at a time
    p.record_reply(5.5, ok=True)
    assert p.should_send(6.0, gray_frame(0), 0).send


@pytest.mark.parametrize('field, value', [
    ('max_in_flight', 0), ('min_interval_s', -1.0), ('max_interval_s', 0.0),
    ('change_threshold', 1.5), ('thumb_width', 0), ('breaker_failures', 0),
    ('breaker_cooldown_s', 0.0), ('breaker_max_cooldown_s', 0.5)])
def test_config_refuses_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        KeyframeConfig(**{field: value})


def test_max_interval_below_min_interval_is_refused():
    with pytest.raises(ValueError, match='max_interval_s'):
        KeyframeConfig(min_interval_s=3.0, max_interval_s=2.0)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0.01, 1.0), st.integers(0, 255)), min_size=1,
                      max_size=60),
       min_interval=st.floats(0.0, 1.0), extra=st.floats(0.0, 3.0))
def test_sends_respect_both_intervals(steps, min_interval, extra):
    max_interval = min_interval + extra + 0.01
    p = policy(min_interval_s=min_interval, max_interval_s=max_interval)
    t, sent = 0.0, []
    for dt, level in steps:
        t += dt
        if p.should_send(t, gray_frame(level, 16, 12), 0).send:
            sent.append(t)
    gaps = np.diff(sent)
    assert sent and np.all(gaps >= min_interval - 1e-9)
    assert np.all(gaps <= max_interval + 1.0 + 1e-9)  # at most one frame step late
    assert t - sent[-1] < max_interval + 1.0


def test_the_breaker_runs_on_its_own_clock_whatever_the_frames_are_stamped():
    """Frames from a recording (1000 s) while the breaker counts on a monotonic clock."""
    p = policy(min_interval_s=0.0, breaker_failures=1, breaker_cooldown_s=2.0)
    clock = 5.0e5  # e.g. time.monotonic() on a long-running host
    assert p.should_send(1000.0, gray_frame(0), 0, now=clock)
    p.record_reply(clock + 0.5, ok=False)  # the circuit opens at clock + 0.5
    held = p.should_send(1000.1, gray_frame(255), 0, now=clock + 1.0)
    assert not held and 'retry in 1.5 s' in held.reason
    assert p.should_send(1000.2, gray_frame(255), 0, now=clock + 2.6).send  # the probe
    p.record_reply(clock + 2.7, ok=True)
    assert p.should_send(1000.3, gray_frame(0), 0, now=clock + 2.8).send
