"""Wait estimates: what the ACD feeds the model, and what the model makes of it."""

import math

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


# ------------------------------------- the model, against its documented maths
def _lognormal_residual_by_integration(mean, cv, elapsed):
    """E[T - e | T > e] of a lognormal talk time, integrating its survival function numerically."""
    s2 = math.log1p(cv * cv)
    s, mu = math.sqrt(s2), math.log(mean) - s2 / 2

    def survival(t):
        return 0.5 * math.erfc((math.log(t) - mu) / (s * math.sqrt(2)))

    top, n = elapsed + 60 * mean, 200_000
    h = (top - elapsed) / n
    area = h * (sum(survival(elapsed + i * h) for i in range(1, n)) + (survival(elapsed) + survival(top)) / 2)
    return area / survival(elapsed)


@pytest.mark.parametrize("mean, cv, elapsed", [(100, 1.0, 0.5), (100, 1.0, 30), (100, 1.0, 250), (180, 0.5, 120),
                                               (60, 2.0, 10)])
def test_the_rest_of_a_call_already_going_is_the_lognormal_residual(mean, cv, elapsed):
    assert residual_talk(mean, cv, elapsed) == pytest.approx(_lognormal_residual_by_integration(mean, cv, elapsed),
                                                             rel=2e-3)


def test_a_call_far_beyond_any_normal_length_is_expected_to_go_on_a_while():
    # past 7 standard deviations the closed form underflows: elapsed x s^2 / (ln elapsed - mu)
    s2 = math.log1p(0.3 * 0.3)
    mu = math.log(100) - s2 / 2
    assert residual_talk(100, 0.3, 10_000) == pytest.approx(10_000 * s2 / (math.log(10_000) - mu))
    s2 = math.log1p(0.2 * 0.2)
    mu = math.log(100) - s2 / 2
    e = math.exp(mu + 1.5)  # 7.5 sigma out, but only 1.5 above mu in log terms
    assert residual_talk(100, 0.2, e) == pytest.approx(e * s2 / 1.5)
    assert residual_talk(1.0, 0.2, math.exp(math.log(1.0) - s2 / 2 + 1.5)) == 1.0  # never under a second


def test_the_rest_of_a_call_is_never_under_half_a_second():
    assert residual_talk(100, 0.2, 99.9) > 1.0  # about a third of calls still run past the mean
    assert residual_talk(1.0, 0.2, 2.0) == 0.5  # twice a short mean: about 0.1 s left, rounded up to 0.5


def _releases_of(v):
    """Λ(t), as the module docstring defines it: expected releases for the queue by t."""
    st = v.stats
    answer, talk, cv = st.answer_mean, st.talk_mean, st.talk_cv
    handle = answer + talk + v.wrapup
    servers = [(1.0, answer + v.wrapup, talk)] * v.ready
    for b in v.busy:
        if b.ringing:
            servers.append((b.share, answer + b.then, talk))
        elif b.talk_elapsed is not None:
            servers.append((b.share, b.then, residual_talk(talk, cv, b.talk_elapsed)))
        else:
            servers.append((b.share, b.then, 0.0))

    def releases(t):
        total = 0.0
        for share, delay, mean in servers:
            x = t - delay
            if x < 0:
                continue
            p = 1 - math.exp(-x / mean) if mean > 0 else 1.0
            total += share * (p + (x - mean * p if mean > 0 else x) / handle)
        return total

    return releases


def _reference_wait(v):
    """Solve Λ(t) = m - 1/3 by bisection (no abandons)."""
    releases = _releases_of(v)
    target, lo, hi = v.ahead - v.ready + 1 - 1 / 3, 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if releases(mid) >= target else (mid, hi)
    return hi + v.stats.answer_mean


@pytest.mark.parametrize("v", [
    view(busy=[BusyAgent(0.0, ringing=True)]),  # the only agent is being offered someone else
    view(ahead=2, ready=1, busy=[BusyAgent(10.0, talk_elapsed=30.0), BusyAgent(5.0)], wrapup=10),
    view(ahead=1, busy=[BusyAgent(100.0, talk_elapsed=0.0), BusyAgent(5.0)]),  # one long job, one nearly free
    view(ahead=3, busy=[BusyAgent(5.0, share=0.5), BusyAgent(2.0, talk_elapsed=400.0)]),
    view(ahead=4, ready=1, busy=[BusyAgent(0.0, talk_elapsed=1.0), BusyAgent(3.0, ringing=True, share=0.25)],
         talk=40.0),
], ids=["ringing", "mixed", "wrapup-behind-a-long-job", "shared-and-long-call", "short-talk"])
def test_the_estimate_solves_the_documented_release_model(v):
    assert estimate_wait(v) == pytest.approx(_reference_wait(v), abs=0.05)


def test_an_agent_in_wrap_up_frees_when_the_wrap_up_ends():
    # the release is a step at 5 s: the estimate lands within one search step of answer + 5
    assert estimate_wait(view(busy=[BusyAgent(5.0)])) == pytest.approx(4.0 + 5.0, abs=0.5)


# ------------------------------------------- what the engine tells the model
def test_the_estimate_sees_what_each_busy_agent_of_the_queue_is_doing():
    from callcenterd.pbx.api import DeviceStatus

    both = ("sales", "support")
    r = Rig([Q(strategy="linear", wrapup_time=10, ring_time=60), Q("support", strategy="linear")], [
        A("gone"),  # logged out
        A("remote", node="pbx2"),  # another node: not this queue's staff here
        A("ringer", queues=both, wrapup_time=7),  # rings for c1, with its own wrap-up
        A("talker", wrapup_time=20),  # on c2, with its own wrap-up
        A("wrapper", queues=both),  # in wrap-up after c3
        A("shared", queues=both),  # on c4
        A("deskphone", queues=both),  # busy on a call we did not set up
    ])
    T = r.clock.now
    r.run(r.acd.agent_logout("gone"))
    r.run(r.acd.device_state("PJSIP/deskphone", DeviceStatus.INUSE))
    r.run(r.acd.device_state("PJSIP/remote", DeviceStatus.INUSE))
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    r.answer(leg_for(r.out, "talker"))
    r.call("sales", call_id="c3")
    r.answer(leg_for(r.out, "wrapper"))
    r.call("sales", call_id="c4")
    r.answer(leg_for(r.out, "shared"))
    r.clock.now = T + 25
    r.hangup("cleg-c3")  # wrapper: wrap-up until T + 35
    r.call("support", call_id="s1")
    r.call("support", call_id="s2")
    r.clock.now = T + 30
    r.call("sales", call_id="c5")
    enqueued = est(r.call("sales", call_id="c6"))  # c1 is being offered: only c5 is ahead
    share = 2 / (2 + 2 + 1)  # demand (c5 and c6) against support's two callers, plus one
    busy = [
        BusyAgent(7.0, ringing=True, share=share),
        BusyAgent(20.0, 30.0),
        BusyAgent(5.0, share=share),
        BusyAgent(10.0, 30.0, share=share),
        BusyAgent(10.0, ringing=True, share=share),
    ]
    stats = HandleStats.from_dict(r.acd.handle_stats("sales"))
    assert enqueued == round(estimate_wait(QueueView(1, 0, busy, 10.0, stats)), 1)


def test_the_abandon_rate_learns_from_callers_who_hang_up_and_not_from_timeouts():
    r = Rig([Q(), Q("support", max_wait=20)], [], login=False)
    r.call("sales", call_id="c1")
    r.clock.now += 30
    r.hangup("cleg-c1")
    s = r.acd.handle_stats("sales")
    assert (s["abandons"], s["waited"]) == (1.0, 30.0)
    r.call("support", call_id="c2")
    r.advance(20)
    s = r.acd.handle_stats("support")
    assert (s["abandons"], s["waited"]) == (0.0, 20.0)


def test_statistics_saved_before_a_restart_are_used_and_bad_rows_skipped_with_a_warning():
    import random

    from acd_harness import FakeClock

    from callcenterd.core.acd import Acd

    warnings = []

    class Log:
        def warning(self, event, **kw):
            warnings.append(kw)

        debug = info = warning

    acd = Acd([Q(), Q("support"), Q("vip")], [], FakeClock(), rng=random.Random(1), new_id=lambda: "x", log=Log())
    learnt = dict(GOOD, talk_mean=42.0)
    prior = acd.handle_stats("support")
    acd.import_handle_stats({"closed-queue": learnt, "support": {**GOOD, "talk_mean": -1.0}, "sales": learnt,
                             "vip": {"talk_mean": 1.0}})
    assert acd.handle_stats("sales") == HandleStats.from_dict(learnt).to_dict()
    assert acd.handle_stats("support") == prior
    assert [w.get("queue") for w in warnings] == ["support", "vip"]


# ------------------------------------------------- learning handle times
def test_before_warm_up_the_talk_time_is_the_plain_mean_with_the_prior_as_one_call():
    s = HandleStats.prior(120)  # cv 1: E[talk^2] = 2 x 120^2
    s.add_talk(60)
    s.add_talk(30)
    assert s.samples == 2
    assert s.talk_mean == pytest.approx((120 + 60 + 30) / 3)
    assert s.talk_sq_mean == pytest.approx((2 * 120 ** 2 + 60 ** 2 + 30 ** 2) / 3)


def test_once_warmed_up_each_call_moves_the_talk_time_by_one_percent():
    s = HandleStats.prior(120)
    for _ in range(300):
        s.add_talk(60)
    mean, sq = s.talk_mean, s.talk_sq_mean
    s.add_talk(160)
    assert s.talk_mean - mean == pytest.approx(0.01 * (160 - mean))
    assert s.talk_sq_mean - sq == pytest.approx(0.01 * (160 ** 2 - sq))


def test_the_answer_delay_is_learnt_the_same_way_and_an_answer_is_a_wait_not_an_abandon():
    s = HandleStats.prior(120)  # answer prior 4 s, counted as one
    s.add_answer(2.0, waited=30.0)
    s.add_answer(6.0)
    assert (s.answers, s.answer_mean) == (2, pytest.approx((4 + 2 + 6) / 3))
    assert (s.abandons, s.waited) == (0.0, 30.0)


def test_the_abandon_rate_forgets_slowly():
    s = HandleStats.prior(120)
    s.add_wait(30.0, abandoned=True)
    s.add_wait(0.5, abandoned=False)
    s.add_wait(-3.0, abandoned=False)  # a clock step: no negative wait
    keep = 0.998
    assert s.abandons == pytest.approx(1.0 * keep * keep)
    assert s.waited == pytest.approx((30.0 * keep + 0.5) * keep)
    assert s.abandon_rate == pytest.approx(s.abandons / s.waited)


def test_an_answered_caller_counts_its_wait_and_the_agents_answer_delay():
    r = Rig([Q(ring_time=30)], [A("a1")], login=False)
    r.call("sales", call_id="c1")
    r.clock.now += 9
    r.run(r.acd.agent_login("a1"))
    r.clock.now += 3
    r.answer(leg_for(r.out, "a1"))
    s = r.acd.handle_stats("sales")
    assert (s["waited"], s["abandons"], s["answers"]) == (12.0, 0.0, 1)
    assert s["answer_mean"] == pytest.approx((4.0 + 3.0) / 2)


def _with_abandons(v, abandons, waited):
    s = HandleStats.from_dict(v.stats.to_dict())
    s.abandons, s.waited = abandons, waited
    return QueueView(v.ahead, v.ready, v.busy, v.wrapup, s)


def _reference_wait_with_abandons(v, dt=0.01):
    """Callers ahead give up at the abandon rate while agents release: a fine Euler walk of the same model."""
    st = v.stats
    releases = _releases_of(v)
    target, ahead, theta = v.ahead - v.ready + 1 - 1 / 3, v.ahead - v.ready, st.abandon_rate
    t = gone = 0.0
    while True:
        done = releases(t)
        if done + gone >= target:
            return t + st.answer_mean
        gone += theta * dt * max(0.0, ahead - done - gone)
        t += dt


@pytest.mark.parametrize("v", [
    _with_abandons(view(ahead=4, busy=[BusyAgent(0.0, talk_elapsed=10.0), BusyAgent(0.0, talk_elapsed=50.0)]),
                   1.0, 60.0),
    _with_abandons(view(ahead=6, ready=1, busy=[BusyAgent(10.0, talk_elapsed=10.0)], wrapup=10), 2.0, 100.0),
    _with_abandons(view(ahead=3, busy=[BusyAgent(0.0, ringing=True, share=0.5)]), 1.0, 300.0),
], ids=["two-talking", "ready-and-wrap-up", "shared-ringing"])
def test_callers_ahead_who_give_up_bring_the_caller_forward(v):
    no_abandons = QueueView(v.ahead, v.ready, v.busy, v.wrapup, HandleStats.prior(v.stats.talk_mean))
    assert estimate_wait(v) < estimate_wait(no_abandons)
    assert estimate_wait(v) == pytest.approx(_reference_wait_with_abandons(v), rel=0.03)


def test_with_no_agent_at_all_each_caller_ahead_costs_a_whole_handle_time():
    # answer 4 + (2 ahead + 1 - 1/3) x (4 + 100 talk + 0 wrap-up)
    assert estimate_wait(view(ahead=2)) == pytest.approx(4 + (3 - 1 / 3) * 104)


@pytest.mark.parametrize("abandons", [10.0, 5.0, 1.0])
def test_a_queue_where_callers_give_up_fast_still_gets_the_models_wait(abandons):
    # abandons per 60 s waited: with coarse steps the callers ahead once "gave up" faster than
    # there were callers, and the 10th caller heard 45 s instead of about 62
    v = _with_abandons(view(ahead=10, busy=[BusyAgent(0.0, talk_elapsed=60.0), BusyAgent(10.0, talk_elapsed=5.0)]),
                       abandons, 60.0)
    assert estimate_wait(v) == pytest.approx(_reference_wait_with_abandons(v), rel=0.02)


def test_the_next_caller_for_an_agent_finishing_wrap_up_waits_about_the_answer_time():
    assert estimate_wait(view(busy=[BusyAgent(0.2)])) == pytest.approx(4.0 + 0.2, abs=0.45)


def test_short_calls_release_agents_as_a_stream_too():
    v = view(ahead=3, ready=1, talk=0.8)
    assert estimate_wait(v) == pytest.approx(_reference_wait(v), abs=0.05)
