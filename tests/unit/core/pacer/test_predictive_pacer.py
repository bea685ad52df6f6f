"""The predictive pacer, as a campaign manager sees it."""

from dataclasses import replace

import pytest

from callcenterd.core.campaigns.pacing import PacingInput, ceiling
from callcenterd.core.pacer import PredictivePacer, TalkTracker


def busy_floor(**kw) -> PacingInput:
    """20 agents: 2 ready, 16 talking, 2 in wrap-up; a well-known list."""
    base = {
        "now": 1000.0, "agents_staffed": 20, "agents_ready": 2, "agents_in_wrapup": 2, "agents_on_call": 16,
        "lines_ringing": 0, "answered_waiting": 0, "max_lines": 200, "lines_up": 16, "cap": 0.03, "budget_ok": True,
        "headroom_24h": 40, "headroom_30d": 400, "rate_24h": 0.01, "rate_30d": 0.01,
        "talk_elapsed": tuple(float(x) for x in range(5, 85, 5)), "wrapup_remaining": (10.0, 12.0),
        "answer_rate": 0.3, "machine_rate": 0.15, "answer_samples": 500, "mean_time_to_answer": 10.0,
        "answer_delays": tuple(float(x) for x in range(4, 16)),
        "talk_mean": 120.0, "talk_cv": 0.3, "talk_samples": 300, "wrapup_mean": 15.0,
    }
    base.update(kw)
    return PacingInput(**base)


def test_dials_more_when_agents_are_about_to_finish():
    p = PredictivePacer(0.05)
    just_started = p.lines_to_dial(busy_floor(talk_elapsed=(5.0,) * 16, wrapup_remaining=(25.0, 25.0)))
    finishing = p.lines_to_dial(busy_floor(talk_elapsed=(118.0,) * 16, wrapup_remaining=(1.0, 1.0)))
    assert finishing > just_started


def test_dials_fewer_while_the_answer_rate_rests_on_few_calls():
    p = PredictivePacer(0.05)
    sure = p.lines_to_dial(busy_floor(answer_samples=5000))
    unsure = p.lines_to_dial(busy_floor(answer_samples=40))
    assert unsure < sure


def test_a_higher_answer_rate_means_fewer_lines():
    p = PredictivePacer(0.05)
    assert p.lines_to_dial(busy_floor(answer_rate=0.6)) < p.lines_to_dial(busy_floor(answer_rate=0.2))


def test_the_guard_lowers_the_pace_as_measured_abandonment_nears_the_cap():
    p = PredictivePacer(0.05)
    paces = [p.lines_to_dial(busy_floor(rate_24h=r)) for r in (0.0, 0.02, 0.026, 0.029, 0.0299)]
    assert paces == sorted(paces, reverse=True)
    assert paces[-1] < paces[0]
    thirty = [p.lines_to_dial(busy_floor(rate_30d=r)) for r in (0.0, 0.029)]
    assert thirty[1] < thirty[0]


def test_little_headroom_left_in_the_window_lowers_the_pace():
    p = PredictivePacer(0.05)
    assert p.lines_to_dial(busy_floor(headroom_24h=0)) < p.lines_to_dial(busy_floor(headroom_24h=50))


def test_no_line_when_the_last_agent_pauses_or_logs_out():
    p = PredictivePacer(0.2)
    gone = busy_floor(agents_staffed=0, agents_ready=0, agents_in_wrapup=0, agents_on_call=0,
                      talk_elapsed=(), wrapup_remaining=())
    assert p.lines_to_dial(gone) == 0
    assert p.last is not None and p.last.mode == "stopped"


def test_no_line_once_the_budget_is_spent():
    assert PredictivePacer(0.2).lines_to_dial(busy_floor(budget_ok=False, agents_ready=10)) == 0


def test_a_small_team_runs_a_lower_internal_target():
    p = PredictivePacer(0.04)
    small = p.effective_target(busy_floor(agents_staffed=5))
    large = p.effective_target(busy_floor(agents_staffed=60))
    assert small < large
    assert large == pytest.approx(p.effective_target(busy_floor(agents_staffed=100)))  # big teams: the full target


def test_never_more_lines_than_the_ceiling():
    p = PredictivePacer(0.3)
    for room in (0, 1, 3):
        inp = busy_floor(agents_ready=15, max_lines=16 + room, lines_up=16)
        assert ceiling(inp) == room
        assert p.lines_to_dial(inp) <= room


def test_a_campaign_with_no_answer_data_starts_at_progressive_pace():
    p = PredictivePacer(0.3)
    fresh = busy_floor(answer_rate=None, machine_rate=None, answer_samples=0, agents_ready=6, lines_ringing=2, lines_up=18)
    assert p.lines_to_dial(fresh) == 4
    assert p.last.mode == "progressive"


def test_predictive_dials_ahead_of_progressive_on_a_known_list():
    p = PredictivePacer(0.03)
    inp = busy_floor(agents_ready=4)
    assert p.lines_to_dial(inp) > inp.agents_ready - inp.lines_in_flight


def test_lines_ringing_long_count_less_than_fresh_ones():
    p = PredictivePacer(0.05)
    fresh = busy_floor(lines_ringing=6, lines_up=22, ringing_elapsed=(1.0,) * 6)
    stale = busy_floor(lines_ringing=6, lines_up=22, ringing_elapsed=(20.0,) * 6)
    assert p.lines_to_dial(stale) > p.lines_to_dial(fresh)


def test_status_shows_the_prediction_next_to_the_decision():
    p = PredictivePacer(0.05)
    n = p.lines_to_dial(busy_floor())
    st = p.status()
    assert st["lines_last_tick"] == n and st["mode"] == "predictive"
    assert st["free_agents_predicted"] >= 2 and st["horizon_s"] > 0


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_a_nonsense_target_is_refused(bad):
    with pytest.raises(ValueError, match="target"):
        PredictivePacer(bad)


def test_talk_tracker_learns_completed_talks_and_wrap_ups_once():
    t = TalkTracker()
    t.observe({"a": 10.0, "b": 50.0}, {})
    t.observe({"a": 20.0, "b": 60.0}, {})
    t.observe({"a": 30.0}, {"b": 15.0})
    t.observe({"a": 30.0}, {"b": 14.0})  # same view again: nothing new
    assert t.talk_stats() == (60.0, None, 1)
    assert t.wrapup_mean() == 15.0
    t.observe({}, {"a": 12.0})
    mean, cv, n = t.talk_stats()
    assert n == 2 and mean == 45.0 and cv is not None


def test_the_same_view_twice_is_the_same_decision():
    p = PredictivePacer(0.05)
    inp = busy_floor()
    assert p.lines_to_dial(inp) == p.lines_to_dial(replace(inp))
