"""KPI counting that reports depend on: every outcome column, boundaries,
site-time intervals, per-queue thresholds and agent rows.

The journeys are built as the report reads them back (``Journey`` records),
each one a call a supervisor would recognise.
"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest

from callcenterd.core.journeys.record import AgentAttempt, Journey, QueueSegment
from callcenterd.core.kpis import (
    AgentEvent,
    KpiSettings,
    agent_state_seconds,
    compute_kpis,
    wrapup_by_call,
)

T = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC
SITE = timezone(timedelta(hours=5, minutes=45))  # an offset no test machine runs in


def seg(queue, result, entered=T, wait=10.0, estimate=None, overflow_to=""):
    return QueueSegment(queue, entered, result=result, left_at=entered + wait, wait_estimate=estimate,
                        overflow_to=overflow_to)


def answered(call_id, queue="sales", hold=10.0, talk=60.0, agent="1001", at=T, estimate=None,
             attempts=None):
    return Journey(call_id, started_at=at, enqueued_at=at, queue=queue, final_queue=queue,
                   wait_estimate=estimate, wait_actual=hold, answered_at=at + hold, agent=agent, hold_s=hold,
                   talk_s=talk, ended_at=at + hold + talk, outcome="answered",
                   queues=[seg(queue, "answered", at, hold, estimate)],
                   attempts=[AgentAttempt(agent, f"l-{call_id}", queue, at + hold - 2, at + hold, "answered")]
                   if attempts is None else attempts)


def left(call_id, outcome, wait, queue="sales", seg_result=None, at=T):
    """A caller who left the queue unanswered (abandoned, timed out, empty, ...)."""
    return Journey(call_id, started_at=at, enqueued_at=at, queue=queue, final_queue=queue, wait_actual=wait,
                   ended_at=at + wait, outcome=outcome,
                   queues=[seg(queue, seg_result or outcome, at, wait)])


def rejected(call_id, reason="full", queue="sales", at=T):
    return Journey(call_id, started_at=at, queue=queue, final_queue=queue, ended_at=at, outcome=reason,
                   queues=[QueueSegment(queue, at, result=reason, left_at=at)])


def by_key(rows):
    return {r.key: r for r in rows}


def counts(row):
    return (row.offered, row.answered, row.abandoned, row.short_abandoned, row.timed_out, row.exited_empty,
            row.other, row.rejected)


# --------------------------------------------------------------- by queue
def busy_morning():
    """Two of every unanswered kind, after a rejection (order matters to nobody)."""
    return [
        rejected("r1", "joinempty"), rejected("r2", "full"),
        answered("a1", hold=4.0), answered("a2", hold=30.0),
        left("s1", "abandoned", 2.0), left("s2", "abandoned", 1.0),
        left("b1", "abandoned", 40.0), left("b2", "abandoned", 50.0),
        left("t1", "timeout", 60.0), left("t2", "timeout", 60.0),
        left("e1", "empty", 7.0), left("e2", "empty", 8.0),
        left("x1", "pbx-restart", 9.0, seg_result="ended"), left("x2", "pbx-restart", 3.0, seg_result="ended"),
    ]


@pytest.mark.parametrize("by", ["queue", "total"])
def test_every_unanswered_kind_is_counted_in_its_own_column_each_time(by):
    (row,) = compute_kpis(busy_morning(), by, KpiSettings(short_abandon_s=5))
    #                  offered answered abandoned short timeout empty other rejected
    assert counts(row) == (12, 2, 2, 2, 2, 2, 2, 2)
    assert row.abandon_rate_pct == 20.0  # 2 / (12 - 2 short)


def test_the_default_report_is_by_queue():
    assert compute_kpis(busy_morning()) == compute_kpis(busy_morning(), "queue")


def test_a_caller_who_hangs_up_without_a_queue_exit_is_an_abandon_of_the_last_queue():
    # sales timed out into support; the caller hung up in support, and only CallEnded said so
    j = Journey("c1", started_at=T, enqueued_at=T, queue="sales", final_queue="support", wait_actual=90.0,
                ended_at=T + 90, outcome="abandoned",
                queues=[seg("sales", "timeout", T, 60.0, overflow_to="support"), seg("support", "ended", T + 60, 30.0)])
    alone = Journey("c2", started_at=T, enqueued_at=T, queue="support", final_queue="support", wait_actual=20.0,
                    ended_at=T + 20, outcome="abandoned", queues=[seg("support", "ended", T, 20.0)])
    rows = by_key(compute_kpis([j, alone], "queue"))
    assert counts(rows["sales"]) == (1, 0, 0, 0, 1, 0, 0, 0)
    assert counts(rows["support"]) == (2, 0, 2, 0, 0, 0, 0, 0)


def test_a_call_cut_by_a_pbx_restart_is_not_an_abandon():
    j = left("c1", "pbx-restart", 30.0, seg_result="ended")
    (row,) = compute_kpis([j], "queue")
    assert (row.abandoned, row.other, row.abandon_rate_pct) == (0, 1, 0.0)


def test_an_abandon_exactly_at_the_short_abandon_limit_is_a_real_abandon():
    (row,) = compute_kpis([left("c1", "abandoned", 5.0), left("c2", "abandoned", 4.999)], "queue",
                          KpiSettings(short_abandon_s=5))
    assert (row.abandoned, row.short_abandoned) == (1, 1)


def test_ring_all_losers_and_cancelled_rings_are_not_offers_to_the_agent():
    attempts = [AgentAttempt("1001", "l1", "sales", T, T + 5, "answered"),
                AgentAttempt("1002", "l2", "sales", T, T + 5, "cancelled"),
                AgentAttempt("1003", "l3", "sales", T, T + 5, "cancelled"),
                AgentAttempt("1003", "l4", "sales", T + 6, T + 9, "no-answer")]
    rows = by_key(compute_kpis([answered("c1", hold=5.0, attempts=attempts)], "agent"))
    assert (rows["1002"].offered, rows["1002"].ring_no_answer, rows["1002"].other) == (0, 0, 0)
    assert (rows["1001"].offered, rows["1001"].answered) == (1, 1)
    assert (rows["1003"].offered, rows["1003"].ring_no_answer, rows["1003"].other) == (1, 1, 0)


def test_every_missed_ring_counts_against_the_agent():
    attempts = [AgentAttempt("1002", "l1", "sales", T, T + 15, "no-answer"),
                AgentAttempt("1002", "l2", "sales", T + 20, T + 25, "busy"),
                AgentAttempt("1001", "l3", "sales", T + 30, T + 32, "answered")]
    rows = by_key(compute_kpis([answered("c1", hold=32.0, attempts=attempts)], "agent"))
    assert (rows["1002"].offered, rows["1002"].ring_no_answer) == (2, 2)


def test_agent_rows_give_the_speed_of_answer_of_the_agents_calls():
    calls = [answered("c1", hold=10.0), answered("c2", hold=20.0, attempts=[]),  # no ring attempt recorded
             answered("c3", hold=0.0)]
    (row,) = compute_kpis(calls, "agent")
    assert (row.offered, row.answered) == (3, 3)
    assert row.asa_s == 10.0  # (10 + 20 + 0) / 3
    assert row.answered_in_sl == 0 and row.service_level_pct is None  # service level is a queue measure


def test_averages_keep_three_decimals():
    (row,) = compute_kpis([answered("c1", hold=1.0), answered("c2", hold=1.0), answered("c3", hold=2.0)], "queue")
    assert row.asa_s == 1.333


# ------------------------------------------------------- totals/intervals
def test_totals_use_the_final_queues_own_service_level_threshold():
    calls = [answered("c1", queue="vip", hold=25.0), answered("c2", queue="sales", hold=25.0)]
    settings = KpiSettings(service_level_s=20, queue_service_level_s={"vip": 30})
    (total,) = compute_kpis(calls, "total", settings)
    assert total.answered_in_sl == 1


def test_totals_carry_handle_time_and_estimate_accuracy():
    calls = [answered("c1", hold=10.0, talk=100.0, estimate=15.0), answered("c2", hold=30.0, talk=200.0, estimate=20.0)]
    (total,) = compute_kpis(calls, "total")
    assert total.aht_s == 150.0
    assert (total.estimate_mae_s, total.estimate_samples) == (7.5, 2)


def test_ivr_only_calls_are_skipped_without_hiding_the_calls_after_them():
    calls = [Journey("ivr", started_at=T, ended_at=T + 30, outcome="ended"), answered("c1")]
    (total,) = compute_kpis(calls, "total")
    assert total.offered == 1


def test_a_caller_never_admitted_is_rejected_whatever_the_segment_says():
    odd = rejected("c2", "full")
    odd.queues[-1].result = "ended"  # CallEnded came before any admission
    (total,) = compute_kpis([rejected("c1", "joinempty"), odd, answered("c3")], "total")
    assert (total.rejected, total.offered, total.other) == (2, 1, 0)


def test_an_overflow_into_a_full_queue_is_an_offer_that_ended_otherwise():
    j = Journey("c1", started_at=T, enqueued_at=T, queue="sales", final_queue="support", wait_actual=60.0,
                ended_at=T + 60, outcome="full",
                queues=[seg("sales", "timeout", T, 60.0, overflow_to="support"),
                        QueueSegment("support", T + 60, result="full", left_at=T + 60)])
    (total,) = compute_kpis([j], "total")
    assert (total.offered, total.other, total.rejected) == (1, 1, 0)


def test_intervals_are_in_site_time():
    calls = [answered("c1", at=T + 7 * 60 + 31), rejected("c2", at=T + 20 * 60)]
    rows = by_key(compute_kpis(calls, "interval", KpiSettings(interval_minutes=15), tz=SITE))
    assert sorted(rows) == ["2024-05-01 15:45", "2024-05-01 16:00"]  # 10:07 and 10:20 UTC
    assert rows["2024-05-01 16:00"].rejected == 1


def test_hourly_intervals_start_on_the_hour():
    calls = [answered("c1", at=T + 47 * 60), answered("c2", at=T + 59 * 60 + 59)]
    rows = by_key(compute_kpis(calls, "interval", KpiSettings(interval_minutes=60), tz=UTC))
    assert list(rows) == ["2024-05-01 10:00"] and rows["2024-05-01 10:00"].answered == 2


def test_bad_interval_is_refused_with_its_name():
    with pytest.raises(ValueError, match="interval_minutes"):
        KpiSettings(interval_minutes=20)


# --------------------------------------------------- agents and wrap-up
def test_queue_reports_have_no_agent_rows_even_with_agent_events():
    events = [AgentEvent(T, "1001", "available"), AgentEvent(T + 100, "1001", "logged-out")]
    assert [r.key for r in compute_kpis([answered("c1")], "queue", agent_events=events)] == ["sales"]


def test_occupancy_of_an_agent_who_took_no_call_is_zero_and_clipped_to_the_window():
    events = [AgentEvent(T - 3600, "2002", "available"), AgentEvent(T + 50, "2002", "on-call"),
              AgentEvent(T + 100, "2002", "available"), AgentEvent(T + 1000, "2002", "logged-out"),
              AgentEvent(T, "3003", "available"), AgentEvent(T + 400, "3003", "logged-out")]
    rows = by_key(compute_kpis([], "agent", agent_events=events, window=(T, T + 200)))
    assert rows["2002"].occupancy_pct == 25.0  # 50 s on-call of 200 s in the window
    assert rows["2002"].offered == 0
    assert rows["3003"].occupancy_pct == 0.0


def test_occupancy_over_a_very_short_login():
    events = [AgentEvent(T, "1001", "on-call"), AgentEvent(T + 0.5, "1001", "logged-out")]
    (row,) = compute_kpis([], "agent", agent_events=events)
    assert row.occupancy_pct == 100.0


def test_state_seconds_skip_states_that_lasted_no_time():
    events = [AgentEvent(T, "1001", "available"), AgentEvent(T, "1001", "on-call"), AgentEvent(T + 10, "1001", "available")]
    assert agent_state_seconds(events) == {"1001": {"on-call": 10.0}}
    assert agent_state_seconds([]) == {}


def test_wrapup_is_linked_to_a_call_that_ended_up_to_five_seconds_before():
    calls = [answered("c1", hold=10.0, talk=50.0)]  # ends at T + 60
    events = [AgentEvent(T + 65, "1001", "wrap-up"), AgentEvent(T + 75, "1001", "available"),
              AgentEvent(T + 200, "1001", "wrap-up"), AgentEvent(T + 210, "1001", "available")]  # no call near
    assert wrapup_by_call(calls, events) == {"c1": 10.0}


def test_two_wrapup_spans_of_one_call_add_up():
    events = [AgentEvent(T + 100, "1001", "wrap-up", call_id="c1"), AgentEvent(T + 110, "1001", "paused"),
              AgentEvent(T + 120, "1001", "wrap-up", call_id="c1"), AgentEvent(T + 125, "1001", "available")]
    assert wrapup_by_call([answered("c1")], events) == {"c1": 15.0}


def test_wrapup_of_an_agent_without_answered_calls_or_with_a_call_still_up_links_nothing():
    still_up = answered("c9", agent="2002")
    still_up.ended_at = None
    events = [AgentEvent(T, "3003", "wrap-up"), AgentEvent(T + 10, "3003", "available"),
              AgentEvent(T + 500, "2002", "wrap-up"), AgentEvent(T + 510, "2002", "available")]
    assert wrapup_by_call([still_up, left("c1", "abandoned", 9.0)], events) == {}


# ------------------------------------------- the naive estimate, judged too
def naive_morning():
    """Mean talk: sales 90 s (60, 120), support 300 s (the overflowed caller it answered)."""
    one = answered("n1", hold=10.0, talk=60.0)
    one.position_at_entry, one.staffed_at_entry = 2, 1
    one.queues[0].position, one.queues[0].staffed = 2, 1
    two = answered("n2", hold=30.0, talk=120.0)
    two.position_at_entry, two.staffed_at_entry = 1, 2
    two.queues[0].position, two.queues[0].staffed = 1, 2
    moved = answered("n3", hold=65.0, talk=300.0, queue="support")
    moved.queue, moved.position_at_entry, moved.staffed_at_entry = "sales", 3, 1
    moved.queues = [QueueSegment("sales", T, position=3, staffed=1, result="timeout", left_at=T + 60,
                                 overflow_to="support"),
                    QueueSegment("support", T + 60, position=1, staffed=1, result="answered", left_at=T + 65)]
    talking = answered("n4", hold=5.0)
    talking.talk_s = talking.ended_at = None  # still talking when the report ran
    return [one, two, moved, talking]


def test_the_naive_formula_is_scored_per_queue_with_the_mean_talk_of_the_queue_that_answered():
    rows = by_key(compute_kpis(naive_morning(), "queue", KpiSettings()))
    # sales: 2 x 90 / 1 = 180 for a 10 s wait, 1 x 90 / 2 = 45 for a 30 s wait
    assert (rows["sales"].naive_samples, rows["sales"].naive_mae_s, rows["sales"].naive_bias_s) == (2, 92.5, 92.5)
    # support: 1 x 300 / 1 for a 5 s wait
    assert (rows["support"].naive_samples, rows["support"].naive_mae_s) == (1, 295.0)


@pytest.mark.parametrize("by", ["total", "interval"])
def test_the_naive_formula_is_scored_in_total_and_per_interval_from_the_first_queue(by):
    (row,) = compute_kpis(naive_morning(), by, KpiSettings(), tz=UTC)
    # 180 - 10, 45 - 30, and the moved caller: 3 x 90 (sales, where it entered) / 1 - 65 held
    assert (row.naive_samples, row.naive_mae_s, row.naive_bias_s) == (3, 130.0, 130.0)


def test_an_answered_call_whose_queue_stay_was_not_closed_counts_its_talk_in_its_last_queue():
    lost = answered("n5", hold=10.0, talk=200.0)
    lost.position_at_entry, lost.staffed_at_entry = 1, 1
    lost.queues[0].result = "waiting"  # the answer fact never reached the journey's segment
    (row,) = compute_kpis([lost], "total", KpiSettings())
    assert (row.naive_samples, row.naive_mae_s) == (1, 190.0)  # 1 x 200 / 1 - 10
