"""The shared reconnect pieces: Backoff, RepeatLog, call_back."""

import random

import pytest
import structlog
from structlog.testing import capture_logs

from callcenterd.protocols.reconnect import Backoff, RepeatLog, call_back, login_backoff


def test_equal_jitter_stays_within_half_to_full_ceiling_and_caps():
    backoff = Backoff(1.0, 8.0, rng=random.Random(3))
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    for _ in range(200):
        backoff.reset()
        delays = [backoff.next() for _ in ceilings]
        assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert backoff.attempt == len(ceilings)


def test_equal_jitter_bounds_are_reached_by_the_extreme_draws():
    assert Backoff(4.0, 30.0, rng=lambda: 0.0).next() == 2.0
    assert Backoff(4.0, 30.0, rng=lambda: 1.0).next() == 4.0


def test_spread_jitter_is_plus_minus_the_fraction():
    low, high = Backoff(2.0, 30.0, rng=lambda: 0.0, jitter=0.3), Backoff(2.0, 30.0, rng=lambda: 1.0, jitter=0.3)
    assert [low.next() for _ in range(3)] == pytest.approx([1.4, 2.8, 5.6])
    assert [high.next() for _ in range(3)] == pytest.approx([2.6, 5.2, 10.4])
    sampled = Backoff(10.0, 10.0, rng=random.Random(5), jitter=0.3)
    delays = [sampled.delay(0) for _ in range(500)]
    assert all(7.0 <= d <= 13.0 for d in delays)
    assert min(delays) < 8.0 and max(delays) > 12.0  # really spread, not a constant


def test_reset_after_a_good_connection_starts_over():
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_delay_is_pure_and_next_advances():
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    assert backoff.delay(3) == backoff.delay(3) == 8.0
    assert backoff.attempt == 0


def test_rng_may_be_a_random_instance_or_a_callable():
    a, b = Backoff(1.0, 8.0, rng=random.Random(9)), Backoff(1.0, 8.0, rng=random.Random(9).random)
    assert [a.next() for _ in range(5)] == [b.next() for _ in range(5)]


def test_login_failure_backoff_is_longer_than_the_ordinary_one():
    ordinary = Backoff(0.5, 30.0, rng=random.Random(1))
    refused = login_backoff(60.0, rng=random.Random(1), jitter=0.3)
    assert all(refused.next() > ordinary.next() for _ in range(10))
    fixed = login_backoff(60.0, rng=lambda: 0.5, jitter=0.3)
    assert [fixed.next() for _ in range(5)] == [60.0] * 5  # no maximum: a fixed (jittered) delay
    growing = login_backoff(10.0, 300.0, rng=lambda: 1.0)
    assert [growing.next() for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]


def test_repeat_log_demotes_identical_failures_and_counts_them():
    logger = structlog.get_logger("test")
    repeat = RepeatLog(logger)
    with capture_logs() as logs:
        for _ in range(3):
            repeat.warning("connect failed", error="ECONNREFUSED")
        repeat.flush()
        repeat.warning("connect failed", error="ECONNREFUSED")
    levels = [(e["event"], e["log_level"], e.get("repeated"), e.get("times")) for e in logs]
    assert levels == [
        ("connect failed", "warning", None, None),
        ("connect failed", "debug", 1, None),
        ("connect failed", "debug", 2, None),
        ("previous message repeated", "info", None, 2),
        ("connect failed", "warning", None, None),  # after a success it is news again
    ]


def test_repeat_log_a_different_failure_is_a_new_warning():
    repeat = RepeatLog(structlog.get_logger("test"))
    with capture_logs() as logs:
        repeat.warning("connect failed", error="ECONNREFUSED")
        repeat.warning("connect failed", error="ECONNREFUSED")
        repeat.warning("login refused", error="LoginFailed")
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("connect failed", "warning"),
        ("connect failed", "debug"),
        ("previous message repeated", "info"),
        ("login refused", "warning"),
    ]


def test_repeat_log_custom_key_and_repeat_event_without_summary():
    repeat = RepeatLog(structlog.get_logger("test"), summarize=False)
    with capture_logs() as logs:
        for attempt in (1, 2, 3):
            repeat.warning("esl connect failed", key="OSError", again="esl connect failed again",
                           error="OSError", attempt=attempt)
        repeat.flush()
    assert [(e["event"], e["log_level"], e["attempt"]) for e in logs] == [
        ("esl connect failed", "warning", 1),
        ("esl connect failed again", "debug", 2),
        ("esl connect failed again", "debug", 3),
    ]


async def test_call_back_awaits_coroutines_and_plain_functions_alike():
    seen = []

    async def coro(x):
        seen.append(("async", x))

    await call_back(coro, 1)
    await call_back(lambda x: seen.append(("sync", x)), 2)
    await call_back(None, 3)
    assert seen == [("async", 1), ("sync", 2)]
