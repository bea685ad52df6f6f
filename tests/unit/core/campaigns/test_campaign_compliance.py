"""The abandonment ledger (24 h and 30 days) and the minimum ring time."""

import pytest
from campaign_rig import Clock, spec

from callcenterd.core.campaigns.compliance import (
    AbandonLedger,
    may_hang_up_ringing,
    ring_timeout,
)

T = 1_700_000_000.0


def ledger_with(connected: int, dropped: int, at: float = T, clock=None) -> AbandonLedger:
    led = AbandonLedger(clock or Clock(at))
    for _ in range(connected):
        led.record_connected(at)
    for _ in range(dropped):
        led.record_dropped(at)
    return led


def test_abandonment_is_drops_over_live_answers_including_the_drops():
    led = ledger_with(connected=97, dropped=3)
    assert led.rate_24h() == pytest.approx(0.03)
    assert led.rate_30d() == pytest.approx(0.03)


def test_no_live_answer_means_a_zero_rate_and_dialling_allowed():
    led = AbandonLedger(Clock(T))
    assert led.rate_24h() == 0.0 and led.allows_dial(0.03)


def test_the_budget_is_spent_at_the_cap():
    assert not ledger_with(97, 3).allows_dial(0.03)
    assert ledger_with(98, 2).allows_dial(0.03)


def test_headroom_is_the_drops_that_keep_both_windows_under_the_cap():
    led = ledger_with(100, 0)
    assert led.headroom(0.03) == 3  # 3/103 = 2.9 %, 4/104 = 3.8 %
    assert ledger_with(97, 3).headroom(0.03) == 0


def test_the_24h_window_forgets_a_day_later_the_30_day_one_does_not():
    clock = Clock(T)
    led = ledger_with(0, 2, at=T, clock=clock)
    clock.advance(3600)
    for _ in range(50):
        led.record_connected()
    clock.advance(86400 - 3600 + 120)  # the drops are now a day and two minutes old
    assert led.counts_24h() == (50, 0)
    assert led.counts_30d() == (52, 2)
    assert led.allows_dial(0.03) is False  # 2/52 = 3.8 % over 30 days
    clock.advance(30 * 86400)
    assert led.counts_30d() == (0, 0)


def test_a_spent_24h_window_alone_stops_dialling():
    clock = Clock(T)
    led = ledger_with(1000, 0, at=T, clock=clock)
    clock.advance(2 * 86400)
    led.record_connected()
    led.record_dropped()
    assert led.rate_30d() < 0.03
    assert led.rate_24h() == 0.5
    assert not led.allows_dial(0.03)
    assert led.headroom_24h(0.03) == 0 and led.headroom_30d(0.03) > 0


def test_the_ledger_restores_from_its_export():
    clock = Clock(T)
    led = AbandonLedger(clock)
    for i in range(30):
        clock.t = T + i * 3600
        led.record_connected()
        if i % 10 == 0:
            led.record_dropped()
    again = AbandonLedger.from_events(list(led.events_since(0)), clock)
    assert again.counts_24h() == led.counts_24h()
    assert again.counts_30d() == led.counts_30d()
    assert list(led.events_since(clock.t - 3600)) == [(clock.t - clock.t % 60 - 3600, "connected"),
                                                       (clock.t - clock.t % 60, "connected")]


def test_memory_stays_one_bucket_per_minute():
    led = ledger_with(5000, 100)
    assert len(led._month.buckets) == 1 and led.counts_30d() == (5100, 100)


def test_an_unknown_event_kind_is_refused():
    with pytest.raises(ValueError, match="'answered'"):
        AbandonLedger(Clock(T)).record("answered")


def test_a_dial_rings_at_least_the_minimum_ring_time():
    assert ring_timeout(spec(ring_timeout=10, min_ring=15)) == 15
    assert ring_timeout(spec(ring_timeout=25, min_ring=15)) == 25


def test_a_ringing_leg_may_be_hung_up_only_after_the_minimum_ring():
    s = spec(min_ring=15)
    assert not may_hang_up_ringing(s, T, T + 14.9)
    assert may_hang_up_ringing(s, T, T + 15)
