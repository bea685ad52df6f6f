"""KPIs against hand-computed figures (see the scenario table below)."""

from __future__ import annotations

from datetime import timezone

import pytest

from callcenterd.core import facts as f
from callcenterd.core.journeys import JourneyBuilder
from callcenterd.core.kpis import AgentEvent, KpiSettings, agent_state_seconds, compute_kpis

UTC = timezone.utc
T = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC

# call  queue path            result                 hold  talk  estimate
# A     sales                 answered by 1001        10   100    15
# B     sales                 1001 RNA, 1002 answers  30   200    20
# C     sales                 abandoned                3 (short)
# D     sales                 abandoned               40
# E     sales -> support      timeout 60, answered by 1001 after 5 in support (65 total), talk 50
# F     sales                 joinempty (never admitted)


def scenario():
    b = JourneyBuilder()
    out = []

    def run(*facts):
        for fact in facts:
            out.extend(b.apply(fact))

    run(f.CallStarted(T, "A", "a"), f.CallerEnqueued(T, "A", "sales", 1, wait_estimate=15.0),
        f.AgentOffered(T + 8, "A", "sales", "1001", "la"),
        f.CallerConnected(T + 10, "A", "sales", "1001", 10, "la", 2),
        f.CallCompleted(T + 110, "A", "sales", "1001", 10, 100, 1, "caller"), f.CallEnded(T + 110, "A", "answered"))
    run(f.CallStarted(T, "B", "b"), f.CallerEnqueued(T, "B", "sales", 2, wait_estimate=20.0),
        f.AgentOffered(T + 5, "B", "sales", "1001", "lb1"), f.AgentRingNoAnswer(T + 20, "B", "sales", "1001", 15000),
        f.AgentOffered(T + 25, "B", "sales", "1002", "lb2"),
        f.CallerConnected(T + 30, "B", "sales", "1002", 30, "lb2", 5),
        f.CallCompleted(T + 230, "B", "sales", "1002", 30, 200, 2, "agent"), f.CallEnded(T + 230, "B", "answered"))
    run(f.CallStarted(T, "C", "c"), f.CallerEnqueued(T, "C", "sales", 3),
        f.CallerAbandoned(T + 3, "C", "sales", 3, 3, 3), f.CallEnded(T + 3, "C", "abandoned"))
    run(f.CallStarted(T, "D", "d"), f.CallerEnqueued(T, "D", "sales", 4),
        f.CallerAbandoned(T + 40, "D", "sales", 2, 4, 40), f.CallEnded(T + 40, "D", "abandoned"))
    run(f.CallStarted(T, "E", "e"), f.CallerEnqueued(T, "E", "sales", 5),
        f.CallerTimedOut(T + 60, "E", "sales", 3, 5, 60, overflow_to="support"),
        f.CallerEnqueued(T + 60, "E", "support", 1),
        f.AgentOffered(T + 63, "E", "support", "1001", "le"),
        f.CallerConnected(T + 65, "E", "support", "1001", 5, "le", 2),
        f.CallCompleted(T + 115, "E", "support", "1001", 5, 50, 1, "caller"), f.CallEnded(T + 115, "E", "answered"))
    run(f.CallStarted(T, "F", "f"), f.CallerRejected(T, "F", "sales", "joinempty"), f.CallEnded(T, "F", "joinempty"))
    assert len(out) == 6
    return out


def by_key(rows):
    return {r.key: r for r in rows}


def test_by_queue_hand_computed():
    rows = by_key(compute_kpis(scenario(), "queue", KpiSettings(service_level_s=20, short_abandon_s=5)))
    sales = rows["sales"]
    assert (sales.offered, sales.answered, sales.abandoned, sales.short_abandoned, sales.timed_out, sales.rejected) == (5, 2, 1, 1, 1, 1)
    assert sales.asa_s == 20.0  # (10 + 30) / 2
    assert sales.aht_s == 150.0  # (100 + 200) / 2
    assert sales.answered_in_sl == 1
    assert sales.service_level_pct == 25.0  # 1 / (5 - 1 short)
    assert sales.abandon_rate_pct == 25.0  # 1 / (5 - 1 short)
    assert sales.estimate_mae_s == 7.5 and sales.estimate_samples == 2  # (|10-15| + |30-20|) / 2
    support = rows["support"]
    assert (support.offered, support.answered, support.asa_s, support.service_level_pct) == (1, 1, 5.0, 100.0)
    assert support.aht_s == 50.0


@pytest.mark.parametrize("denominator, expected", [
    ("offered", 20.0), ("offered-minus-short", 25.0), ("answered", 50.0), ("answered+abandoned", 25.0),
])
def test_service_level_denominators(denominator, expected):
    rows = by_key(compute_kpis(scenario(), "queue", KpiSettings(sl_denominator=denominator)))
    assert rows["sales"].service_level_pct == expected


def test_per_queue_threshold():
    settings = KpiSettings(service_level_s=20, queue_service_level_s={"sales": 30})
    assert by_key(compute_kpis(scenario(), "queue", settings))["sales"].answered_in_sl == 2


def test_short_abandon_threshold_moves_calls_between_columns():
    rows = by_key(compute_kpis(scenario(), "queue", KpiSettings(short_abandon_s=0)))
    assert (rows["sales"].abandoned, rows["sales"].short_abandoned) == (2, 0)
    assert rows["sales"].abandon_rate_pct == 40.0  # 2 / 5


def test_total_counts_journeys_not_segments():
    (total,) = compute_kpis(scenario(), "total", KpiSettings())
    assert (total.offered, total.answered, total.abandoned, total.short_abandoned, total.rejected) == (5, 3, 1, 1, 1)
    assert total.timed_out == 0  # E's timeout was an overflow; the journey was answered
    assert total.asa_s == 35.0  # (10 + 30 + 65) / 3
    assert total.service_level_pct == 25.0  # only A within 20 s; 1 / (5 - 1)


def test_by_agent_with_wrapup_and_occupancy():
    events = [
        AgentEvent(T, "1001", "available"),
        AgentEvent(T + 10, "1001", "on-call"),
        AgentEvent(T + 110, "1001", "wrap-up"),  # after A (no call_id: linked by time)
        AgentEvent(T + 120, "1001", "available"),
        AgentEvent(T + 200, "1001", "logged-out"),
    ]
    rows = by_key(compute_kpis(scenario(), "agent", KpiSettings(), agent_events=events, window=(T, T + 300)))
    a1001 = rows["1001"]
    assert (a1001.offered, a1001.answered, a1001.ring_no_answer) == (3, 2, 1)
    assert a1001.aht_s == 80.0  # ((100 + 10 wrap-up) + 50) / 2
    assert a1001.occupancy_pct == 50.0  # 100 s on-call / 200 s logged in
    assert a1001.service_level_pct is None
    a1002 = rows["1002"]
    assert (a1002.offered, a1002.answered, a1002.aht_s, a1002.occupancy_pct) == (1, 1, 200.0, None)
    sales = by_key(compute_kpis(scenario(), "queue", KpiSettings(), agent_events=events))["sales"]
    assert sales.aht_s == 155.0  # (110 + 200) / 2


def test_wrapup_linked_by_call_id_wins():
    events = [AgentEvent(T + 500, "1001", "wrap-up", call_id="E"), AgentEvent(T + 530, "1001", "available")]
    rows = by_key(compute_kpis(scenario(), "agent", KpiSettings(), agent_events=events))
    assert rows["1001"].aht_s == 90.0  # (100 + (50 + 30)) / 2


def test_agent_state_seconds_clips_to_window():
    events = [AgentEvent(T - 100, "x", "paused"), AgentEvent(T + 50, "x", "on-call")]
    assert agent_state_seconds(events, (T, T + 100)) == {"x": {"paused": 50.0, "on-call": 50.0}}


def test_by_interval_buckets_on_enqueue_time():
    j = scenario()
    j[2].enqueued_at = T + 16 * 60  # C moves to 10:16
    rows15 = by_key(compute_kpis(j, "interval", KpiSettings(interval_minutes=15), tz=UTC))
    assert sorted(rows15) == ["2024-05-01 10:00", "2024-05-01 10:15"]
    assert rows15["2024-05-01 10:15"].short_abandoned == 1
    rows30 = by_key(compute_kpis(j, "interval", KpiSettings(interval_minutes=30), tz=UTC))
    assert list(rows30) == ["2024-05-01 10:00"] and rows30["2024-05-01 10:00"].offered == 5


def test_empty_input_gives_no_rows_and_bad_settings_fail():
    assert compute_kpis([], "queue") == []
    with pytest.raises(ValueError, match="sl_denominator"):
        KpiSettings(sl_denominator="calls")
    with pytest.raises(ValueError, match="by must be"):
        compute_kpis([], "skill")


def test_callers_hung_up_by_a_pbx_shutdown_are_not_abandons():
    b = JourneyBuilder()
    closed = []
    for i in range(3):
        cid = f"s{i}"
        closed += b.apply(f.CallStarted(1000.0 + i, cid, f"leg-{i}"))
        closed += b.apply(f.CallerEnqueued(1000.0 + i, cid, "sales", position=i + 1))
        # what the service records for a SYSTEM_SHUTDOWN hang-up: no CallerAbandoned
        closed += b.apply(f.CallEnded(1060.0, cid, "pbx-shutdown"))
    (row,) = compute_kpis(closed, "queue")
    assert (row.abandoned, row.short_abandoned) == (0, 0)
    assert row.abandon_rate_pct in (None, 0.0)


def test_campaign_attempts_count_for_their_agent_but_not_in_the_inbound_queue_figures():
    closed = scenario()
    b = JourneyBuilder()
    # an outbound attempt: answered, 1.5 s in the pool's queue, 1001 talks 60 s
    for fact in (f.CallStarted(T, "O1", "o1", direction="outbound", campaign="spring", lead_id=7),
                 f.CallerEnqueued(T + 10, "O1", "sales", 1),
                 f.AgentOffered(T + 10, "O1", "sales", "1001", "lo"),
                 f.CallerConnected(T + 11.5, "O1", "sales", "1001", 1, "lo", 1),
                 f.CallCompleted(T + 71.5, "O1", "sales", "1001", 1, 60, 1, "agent"),
                 f.CallEnded(T + 71.5, "O1", "answered"),
                 # a dropped attempt: no agent within 2 s
                 f.CallStarted(T, "O2", "o2", direction="outbound", campaign="spring", lead_id=8),
                 f.CallerEnqueued(T + 10, "O2", "sales", 1),
                 f.CallerTimedOut(T + 12, "O2", "sales", 1, 1, 2),
                 f.CallEnded(T + 15, "O2", "dropped")):
        closed += b.apply(fact)
    assert [j.direction for j in closed[-2:]] == ["outbound", "outbound"]
    assert (closed[-1].campaign, closed[-1].lead_id) == ("spring", 8)
    with_campaign, inbound_only = by_key(compute_kpis(closed, "queue")), by_key(compute_kpis(scenario(), "queue"))
    assert with_campaign["sales"] == inbound_only["sales"]
    assert by_key(compute_kpis(closed, "total")) == by_key(compute_kpis(scenario(), "total"))
    agents = by_key(compute_kpis(closed, "agent"))
    assert agents["1001"].answered == by_key(compute_kpis(scenario(), "agent"))["1001"].answered + 1
