"""Wait estimates: what the ACD feeds the model, and what the model makes of it."""

from acd_harness import A, Q, Rig, leg_for, of

from callcenterd.core import facts as f
from callcenterd.core.acd.estimate import (
    BusyAgent,
    HandleStats,
    QueueView,
    estimate_wait,
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
