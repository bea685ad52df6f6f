"""Wait estimates: what the ACD feeds the model, and what the model makes of it."""

import pytest
from acd_harness import A, Q, Rig, leg_for, of

from callcenterd.core import facts as f
from callcenterd.core.acd.estimate import (
    BusyAgent,
    HandleStats,
    QueueView,
    estimate_wait,
    naive_wait,
    residual_talk,
)


def est(out):
    return of(out, f.CallerEnqueued)[0].wait_estimate


def view(ahead=0, ready=0, busy=(), wrapup=0.0, talk=100.0):
    return QueueView(ahead, ready, list(busy), wrapup, HandleStats.prior(talk))


def test_prior_is_configurable():
    """Before any call, the queue's talk_time_prior drives the estimate."""
    waits = []
    for prior in (30, 300):
        r = Rig([Q(talk_time_prior=prior)], [A("a1")])
        r.call("sales", call_id="c1")
        r.answer(leg_for(r.out, "a1"))
        waits.append(est(r.call("sales", call_id="c2")))
    assert waits[0] < 40 and waits[1] > 200


def test_callers_being_offered_are_not_counted_ahead():
    """c1 rings a1; c2 finds a2 ready: only the answer delay, not a whole call."""
    r = Rig([Q(talk_time_prior=100)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")  # offered to a1, still ringing, still in line
    e2 = est(r.call("sales", call_id="c2"))
    assert e2 is not None and e2 < 10


def test_elapsed_talk_time_is_used():
    """A caller behind an agent 60 s into a call waits less than behind one just connected
    (less than the 60 s talked: with CV 1 the call may well run long)."""
    waits = []
    for elapsed in (0, 60):
        r = Rig([Q(talk_time_prior=100, wrapup_time=0)], [A("a1")])
        r.call("sales", call_id="c1")
        r.answer(leg_for(r.out, "a1"))
        r.advance(elapsed)
        waits.append(est(r.call("sales", call_id="c2")))
    assert waits[0] - 60 < waits[1] < waits[0] - 3


def test_wrapup_remaining_is_used():
    """An agent in wrap-up frees exactly when it ends: 25 s left, plus the answer delay."""
    r = Rig([Q(talk_time_prior=100, wrapup_time=30)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.hangup("cleg-c1")
    r.advance(5)
    e = est(r.call("sales", call_id="c2"))
    stats = r.acd._handle["sales"]
    assert abs(e - (25 + stats.answer_mean)) < 1.0


def test_shared_agents_count_as_part_servers():
    """Two busy agents also serving a queue with callers waiting are worth less than two dedicated ones."""
    def wait(queues):
        r = Rig([Q(talk_time_prior=100), Q("other", talk_time_prior=100)],
                [A("a1", queues=queues), A("a2", queues=queues)])
        for n in (1, 2):
            r.call("sales", call_id=f"s{n}")
            r.answer(leg_for(r.out, f"a{n}"))
        if "other" in queues:
            for n in range(4):
                r.call("other", call_id=f"o{n}")
        r.call("sales", call_id="s3")
        return est(r.call("sales", call_id="s4"))

    assert wait(("sales", "other")) > 1.3 * wait(("sales",))


def test_no_staff_means_no_estimate():
    r = Rig([Q()], [A("a1")], login=False)
    assert est(r.call("sales")) is None


def test_model_more_callers_ahead_wait_longer_and_agents_help():
    one = estimate_wait(view(ahead=3, busy=[BusyAgent(0.0, 10.0)] * 2))
    two = estimate_wait(view(ahead=6, busy=[BusyAgent(0.0, 10.0)] * 2))
    more_agents = estimate_wait(view(ahead=6, busy=[BusyAgent(0.0, 10.0)] * 4))
    assert one < two and more_agents < two


def test_residual_talk_of_a_lognormal_call():
    assert residual_talk(100, 1.0, 0) == 100
    assert residual_talk(100, 1.0, 30) < 100  # part of the call is done
    assert residual_talk(100, 0.3, 95) < residual_talk(100, 1.0, 95)  # a wide spread keeps long calls going


def test_stats_learn_and_round_trip():
    s = HandleStats.prior(120)
    for _ in range(50):
        s.add_talk(30)
    assert abs(s.talk_mean - 30) < 5
    assert HandleStats.from_dict(s.to_dict()) == s


def test_the_abandon_rate_survives_a_restart():
    s = HandleStats.prior(120)
    s.add_answer(3.0, waited=40.0)
    s.add_wait(25.0, abandoned=True)
    back = HandleStats.from_dict(s.to_dict())
    assert back == s
    assert back.abandons > 0 and back.waited > 0 and back.abandon_rate == s.abandon_rate


def test_statistics_saved_before_abandons_were_tracked_load_with_no_abandons():
    old = {"talk_mean": 90.0, "talk_sq_mean": 16200.0, "answer_mean": 5.0, "samples": 12, "answers": 12}
    s = HandleStats.from_dict(old)
    assert (s.abandons, s.waited, s.abandon_rate) == (0.0, 0.0, 0.0)
    assert (s.talk_mean, s.samples, s.answers) == (90.0, 12, 12)


GOOD = {"talk_mean": 90.0, "talk_sq_mean": 16200.0, "answer_mean": 5.0, "samples": 12, "answers": 12,
        "abandons": 1.5, "waited": 300.0}


@pytest.mark.parametrize("field, value", [
    ("talk_mean", 0.0), ("talk_sq_mean", 0.0), ("answer_mean", -1.0), ("samples", -1),
    ("abandons", -0.5), ("waited", -1.0),
])
def test_corrupt_saved_statistics_are_refused(field, value):
    with pytest.raises(ValueError):
        HandleStats.from_dict({**GOOD, field: value})


@pytest.mark.parametrize("field, value", [
    ("talk_mean", 0.5), ("talk_sq_mean", 0.5), ("answer_mean", 0.0), ("answer_mean", 0.5), ("samples", 0),
    ("abandons", 0.0), ("waited", 0.0),
])
def test_small_but_valid_saved_statistics_are_kept(field, value):
    assert getattr(HandleStats.from_dict({**GOOD, field: value}), field) == value


def test_the_naive_baseline_is_position_times_talk_over_agents():
    assert naive_wait(3, 120.0, 2) == 180.0
    assert naive_wait(1, 60.0, 1) == 60.0
    assert naive_wait(3, 120.0, 0) is None
