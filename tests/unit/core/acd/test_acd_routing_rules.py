"""Routing rules a call center notices when they break: who gets the next
caller, who is skipped, and what the caller is told.

Every test drives the ACD through its public inputs (calls, answers,
hang-ups, agent commands, time) and reads its outputs (offers, facts, views).
"""

from collections import Counter

import pytest
from acd_harness import A, Q, Rig, leg_for, of, offered

from callcenterd.core import facts as f
from callcenterd.core.acd import Strategy
from callcenterd.pbx.api import Outcome


def serve(rig, call_id, agent, talk=10.0):
    rig.answer(leg_for(rig.out, agent, call_id))
    rig.advance(talk)
    rig.hangup(f"cleg-{call_id}")


# ------------------------------------------------------ strategy orders
def test_fewest_calls_prefers_the_agent_with_fewer_calls_even_if_another_waited_longer():
    r = Rig([Q(strategy=Strategy.FEWEST_CALLS)], [A("busy"), A("late")])
    r.run(r.acd.agent_pause("late", "meeting"))
    for c in ("c1", "c2"):
        r.call("sales", call_id=c)
        serve(r, c, "busy")
    r.advance(30)
    r.run(r.acd.agent_unpause("late"))  # "busy" has been idle longer, with 2 calls to 0
    r.advance(5)
    assert offered(r.call("sales", call_id="c3")) == [("c3", "late")]


def test_fewest_calls_counts_only_the_calls_of_this_queue():
    queues = [Q(strategy=Strategy.FEWEST_CALLS), Q("support")]
    r = Rig(queues, [A("a1"), A("a2", queues=("sales", "support"))])
    for c in ("s1", "s2", "s3"):
        r.call("support", call_id=c)
        serve(r, c, "a2")  # a2 is busy in support, never in sales
    r.call("sales", call_id="c1")
    serve(r, "c1", "a1")  # a1: one sales call, and idle for less time than a2
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]
    r.run(r.acd.agent_pause("a2", "x"))
    r.call("support", call_id="s4")  # a1 is not in support: nobody
    r.run(r.acd.agent_unpause("a2"))
    assert offered(r.out[-3:]) in ([("s4", "a2")], [])


def test_least_talk_time_prefers_the_agent_who_talked_least_even_if_another_waited_longer():
    r = Rig([Q(strategy=Strategy.LEAST_TALK_TIME)], [A("talker"), A("late")])
    r.run(r.acd.agent_pause("late", "meeting"))
    r.call("sales", call_id="c1")
    serve(r, "c1", "talker", talk=100)
    r.advance(30)
    r.run(r.acd.agent_unpause("late"))
    r.advance(5)
    assert offered(r.call("sales", call_id="c2")) == [("c2", "late")]


def test_least_talk_time_counts_only_the_talk_of_this_queue():
    queues = [Q(strategy=Strategy.LEAST_TALK_TIME), Q("support")]
    r = Rig(queues, [A("a1"), A("a2", queues=("sales", "support"))])
    r.call("support", call_id="s1")
    serve(r, "s1", "a2", talk=500)
    r.call("sales", call_id="c1")
    serve(r, "c1", "a1", talk=20)
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]


def test_weighted_random_gives_each_agent_its_weighted_share():
    r = Rig([Q(strategy=Strategy.WEIGHTED_RANDOM)], [A("light", weight=1.0), A("heavy", weight=3.0)])
    got = Counter()
    for i in range(800):
        ((_, agent),) = offered(r.call("sales", call_id=f"c{i}"))
        got[agent] += 1
        serve(r, f"c{i}", agent, talk=1)
    assert 160 <= got["light"] <= 240, got  # 25% of 800 = 200


def test_random_does_not_favour_the_longest_idle_agent():
    r = Rig([Q(strategy=Strategy.RANDOM)], [A(f"a{i}") for i in range(4)], seed=11)
    longest_idle_chosen = 0
    for i in range(200):
        ready = [a for a in r.acd.agents_view() if a["state"] == "available"]
        longest = min(ready, key=lambda a: a["idle_since"])["agent"]  # ties: config order, as the index
        ((_, agent),) = offered(r.call("sales", call_id=f"c{i}"))
        longest_idle_chosen += agent == longest
        serve(r, f"c{i}", agent, talk=1)
        r.advance(1)
    assert 25 <= longest_idle_chosen <= 80, longest_idle_chosen  # 1 in 4, not always


def test_ring_all_never_rings_the_same_agent_twice_for_one_caller():
    r = Rig([Q(strategy=Strategy.RING_ALL)], [A("multi", max_concurrent=2), A("a2"), A("a3")], login=False)
    r.run(r.acd.agent_login("multi"))
    r.run(r.acd.agent_login("a2"))
    r.call("sales", call_id="c1")
    r.run(r.acd.agent_login("a3"))  # joins the ring; "multi" is still ready (1 of 2 lines)
    r.advance(1)
    agents = [a for c, a in offered(r.out) if c == "c1"]
    assert sorted(agents) == ["a2", "a3", "multi"]


def test_an_agent_with_a_free_line_takes_the_next_caller_not_the_one_it_rings_for():
    r = Rig([Q()], [A("multi", max_concurrent=2)], login=False)
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    out = r.run(r.acd.agent_login("multi"))
    assert offered(out) == [("c1", "multi"), ("c2", "multi")]


# -------------------------------------------------------------- skills
def test_a_freed_agent_serves_the_waiting_caller_who_needs_its_skill_at_once():
    r = Rig([Q()], [A("fr", skills={"fr": 5})])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "fr"))
    r.call("sales", call_id="c2", skills={"fr": 6})  # nobody speaks fr well enough
    r.call("sales", call_id="c3", skills={"fr": 5})
    out = r.hangup("cleg-c1")  # no timer: the hang-up itself routes
    assert offered(out) == [("c3", "fr")]


def test_a_caller_who_needs_a_language_never_reaches_an_agent_without_it():
    r = Rig([Q()], [A("plain"), A("de", skills={"de": 1})])
    assert offered(r.call("sales", call_id="c1", skills={"de": 1})) == [("c1", "de")]
    assert offered(r.call("sales", call_id="c2", skills={"de": 1})) == []
    serve(r, "c1", "de")  # "de" takes c2 when free; "plain" never does
    assert [a for c, a in offered(r.out) if c == "c2"] == ["de"]


def test_a_freed_agent_without_the_language_leaves_that_caller_waiting():
    r = Rig([Q()], [A("plain")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "plain"))
    r.call("sales", call_id="c2", skills={"de": 1})
    assert offered(r.hangup("cleg-c1")) == []


def test_required_queue_skills_route_with_any_strategy():
    q = Q(strategy=Strategy.LONGEST_IDLE, skills={"billing": 5}, skill_relax=((60, 3),))
    r = Rig([q], [A("junior", skills={"billing": 3}), A("senior", skills={"billing": 7})])
    assert offered(r.call("sales", call_id="c1")) == [("c1", "senior")]  # junior idles longer, not fit
    r.answer(leg_for(r.out, "senior", "c1"))
    assert offered(r.call("sales", call_id="c2")) == []
    assert offered(r.hangup("cleg-c1")) == [("c2", "senior")]  # back in the fit set when free
    r.answer(leg_for(r.out, "senior", "c2"))
    assert offered(r.call("sales", call_id="c3")) == []
    assert offered(r.advance(60)) == [("c3", "junior")]  # relaxed to billing>=2


def test_a_queue_skill_the_agent_lacks_is_not_level_one():
    q = Q(strategy=Strategy.LINEAR, skills={"fr": 1})
    r = Rig([q], [A("none"), A("fr", skills={"fr": 1})])
    assert offered(r.call("sales", call_id="c1")) == [("c1", "fr")]
    assert offered(r.call("sales", call_id="c2")) == []


def test_equally_skilled_agents_take_turns_by_idle_time_for_a_skill_asked_for_the_first_time():
    r = Rig([Q(strategy=Strategy.SKILLS)], [A("x1", skills={"fr": 5}), A("x2", skills={"fr": 5})])
    r.call("sales", call_id="c1")  # no skill asked: x1 (config order breaks the tie)
    serve(r, "c1", "x1")
    r.advance(5)
    # the first caller asking for "fr" builds its bucket: x2 has waited longest
    assert offered(r.call("sales", call_id="c2", skills={"fr": 5})) == [("c2", "x2")]


# -------------------------------------------------- offers that go wrong
def test_a_freed_agent_takes_the_next_caller_not_the_one_it_just_missed():
    r = Rig([Q(ring_time=15, retry_delay=30)], [A("a1")])
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    out = r.advance(15)  # a1 lets c1 ring out
    assert [o.call_id for o in of(out, f.AgentRingNoAnswer)] == ["c1"]
    assert offered(out) == [("c2", "a1")]


def test_a_caller_hanging_up_while_ringing_does_not_cost_the_agent_its_place():
    r = Rig([Q()], [A("a1"), A("a2")], login=False)
    r.run(r.acd.agent_login("a1"))
    r.advance(10)
    r.run(r.acd.agent_login("a2"))
    r.advance(10)
    since = r.acd.agent_state("a1")["idle_since"]
    r.call("sales", call_id="c1")
    r.advance(3)
    r.hangup("cleg-c1", Outcome.CANCELLED)  # abandoned while a1 rang
    assert r.acd.agent_state("a1")["idle_since"] == since
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a1")]


def test_ring_all_losers_keep_their_place_in_line():
    queues = [Q("all", strategy=Strategy.RING_ALL), Q()]
    agents = [A("a1", queues=("all", "sales")), A("a2", queues=("all", "sales")), A("a3", queues=("sales",))]
    r = Rig(queues, agents, login=False)
    for a in ("a1", "a2", "a3"):
        r.run(r.acd.agent_login(a))
        r.advance(10)
    since = r.acd.agent_state("a1")["idle_since"]
    r.call("all", call_id="c1")
    r.advance(2)
    r.answer(leg_for(r.out, "a2", "c1"))  # a1 loses the race
    assert r.acd.agent_state("a1")["idle_since"] == since
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a1")]


def test_an_agent_whose_two_ringing_lines_are_both_withdrawn_keeps_its_original_place():
    r = Rig([Q(strategy=Strategy.RING_ALL)], [A("m", max_concurrent=2)])
    r.advance(10)
    r.call("sales", call_id="c1")
    r.advance(1)
    r.call("sales", call_id="c2")
    r.hangup("cleg-c1", Outcome.CANCELLED)  # c2 still rings m
    assert r.acd.agent_state("m")["state"] == "ringing"
    r.hangup("cleg-c2", Outcome.CANCELLED)
    assert r.acd.agent_state("m")["idle_since"] == r.clock.now - 11


# --------------------------------------------------------- queue weight
def test_the_heavier_queue_wins_when_callers_become_routable_together():
    relax = dict(skills={"x": 5}, skill_relax=((10, 5),))
    queues = [Q("low", weight=0, **relax), Q("vip", weight=10, **relax)]
    r = Rig(queues, [A("a1", queues=("low", "vip"))])
    r.call("low", call_id="cl")
    r.call("vip", call_id="cv")
    out = r.advance(10)  # both relax to "anyone" in the same tick
    assert offered(out)[0] == ("cv", "a1")


def test_the_heavier_queue_wins_a_freed_agent():
    queues = [Q("low", weight=0), Q("vip", weight=10)]
    r = Rig(queues, [A("a1", queues=("low", "vip"))], login=False)
    r.call("low", call_id="cl")
    r.advance(30)
    r.call("vip", call_id="cv")
    assert offered(r.run(r.acd.agent_login("a1"))) == [("cv", "a1")]


# -------------------------------------------------------- wait estimate










# --------------------------------------------------------- pause reason
def test_the_pause_reason_is_in_the_agent_state_fact_and_views():
    r = Rig([Q()], [A("a1")])
    out = r.run(r.acd.agent_pause("a1", "lunch"))
    (changed,) = of(out, f.AgentStateChanged)
    assert (changed.state, changed.reason) == ("paused", "lunch")
    assert r.acd.agent_state("a1")["reason"] == "lunch"
    out = r.run(r.acd.agent_pause("a1", "training"))  # a new reason is a new state
    assert [(c.state, c.reason) for c in of(out, f.AgentStateChanged)] == [("paused", "training")]








def test_callers_wait_on_when_the_last_agent_pauses_in_a_queue_that_never_empties():
    r = Rig([Q(leave_empty="no")], [A("a1")])
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="c1")
    out = r.run(r.acd.agent_pause("a1", "break"))
    assert of(out, f.CallerExitEmpty) == [] and [w["call_id"] for w in r.acd.waiting_view()] == ["c1"]


def test_equally_skilled_agents_take_the_queues_own_skill_by_idle_time_then_config_order():
    q = Q(strategy=Strategy.SKILLS, skills={"fr": 1})
    r = Rig([q], [A("zed", skills={"fr": 5}), A("amy", skills={"fr": 5}), A("bob", skills={"fr": 5})], login=False)
    r.run(r.acd.agent_login("amy"))
    r.clock.now += 5
    r.run(r.acd.agent_login("zed"))
    r.run(r.acd.agent_login("bob"))
    assert offered(r.call("sales", call_id="c1")) == [("c1", "amy")]  # idle the longest
    assert offered(r.call("sales", call_id="c2")) == [("c2", "zed")]  # same idle time as bob: listed first


@pytest.mark.parametrize("steps, served_by", [
    (((30, 1), (60, 2), (60, 3), (120, 4)), "fr2"),  # waited exactly 60 s: three steps due, fr 5 - 3
    (((30, 1), (60, 2), (90, 3), (120, 4)), "fr3"),  # two steps due, fr 5 - 2
])
def test_a_caller_readopted_after_a_restart_keeps_the_skill_relaxation_it_had_earned(steps, served_by):
    from callcenterd.pbx.api import PbxSnapshot, WaitingCall

    q = Q(strategy=Strategy.LINEAR, skills={"fr": 5}, skill_relax=steps)
    r = Rig([q], [A("fr1", skills={"fr": 1}), A("fr2", skills={"fr": 2}), A("fr3", skills={"fr": 3})])
    now = r.clock.now
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a"}),
                                                 waiting=(WaitingCall("leg-a", "sales", now - 60, call_id="a"),))))
    assert offered(out) == [("a", served_by)]


def test_once_relaxation_drops_a_queue_skill_any_agent_of_the_queue_may_take_the_caller():
    r = Rig([Q(skills={"fr": 1}, skill_relax=((10, 1),))], [A("en")])
    assert offered(r.call("sales", call_id="c1")) == []
    assert offered(r.advance(10)) == [("c1", "en")]


def test_the_skills_strategy_ranks_by_the_queues_own_skill_when_the_caller_brings_none():
    r = Rig([Q(strategy=Strategy.SKILLS, skills={"fr": 2})], [A("good", skills={"fr": 3}), A("best", skills={"fr": 9})],
            login=False)
    r.run(r.acd.agent_login("good"))
    r.clock.now += 30  # good has waited longer; best is the most fluent
    r.run(r.acd.agent_login("best"))
    assert offered(r.call("sales", call_id="c1")) == [("c1", "best")]


def test_ring_all_adds_a_newly_free_agent_of_the_tier_already_ringing():
    r = Rig([Q(strategy=Strategy.RING_ALL, ring_time=60)],
            [A("senior", penalty={"sales": 1}), A("second", penalty={"sales": 1}), A("junior", penalty={"sales": 2})],
            login=False)
    r.run(r.acd.agent_login("senior"))
    r.run(r.acd.agent_login("junior"))
    assert offered(r.call("sales", call_id="c1")) == [("c1", "senior")]  # the lowest tier there is
    assert offered(r.run(r.acd.agent_login("second"))) == [("c1", "second")]  # same tier: joins the ring


def test_a_caller_readopted_after_a_long_wait_still_rings_one_agent_at_a_time():
    from callcenterd.pbx.api import PbxSnapshot, WaitingCall

    r = Rig([Q()], [A("a1"), A("a2")])
    now = r.clock.now
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a"}),
                                                 waiting=(WaitingCall("leg-a", "sales", now - 45, call_id="a"),))))
    assert offered(out) == [("a", "a1")]


# ----------------------------------------------- several things to do in one event
def test_an_agent_leaving_two_queues_empties_each_that_must_empty():
    r = Rig([Q("aaa", leave_empty="strict"), Q("bbb", leave_empty="yes"), Q("ccc", leave_empty="strict")],
            [A("a1", queues=("aaa", "bbb", "ccc")), A("b2", queues=("bbb",))])
    r.run(r.acd.agent_pause("b2", "lunch"))  # bbb keeps a logged-in agent
    r.call("bbb", call_id="in-b")  # a1 rings for it
    r.call("ccc", call_id="in-c")
    out = r.run(r.acd.agent_logout("a1"))  # aaa has no line at all; bbb waits for b2
    assert [e.call_id for e in of(out, f.CallerExitEmpty)] == ["in-c"]
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["in-b"]


def test_a_caller_leaving_an_empty_queue_is_offered_at_once_in_its_overflow_queue():
    r = Rig([Q(leave_empty="strict", overflow_queue="backup"), Q("backup")],
            [A("a1"), A("b1", queues=("backup",))])
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("backup", call_id="c1")
    r.answer(leg_for(r.out, "b1"))
    r.call("sales", call_id="c2")
    r.hangup("cleg-c1")  # b1 is free again, nobody waits in backup
    out = r.run(r.acd.agent_pause("a1", "break"))  # sales is empty: c2 moves to backup
    assert offered(out) == [("c2", "b1")]


def test_an_agent_freed_by_an_originate_timeout_takes_the_next_caller_in_the_same_step():
    r = Rig([Q(retry_delay=5)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    r.call("sales", call_id="c3")
    out = r.run(r.acd.offer_lost(leg_for(r.out, "a1", "c1")))
    assert offered(out) == [("c3", "a1")]  # not c1 again for 5 s, and a2 is ringing for c2


def test_an_agent_who_ends_a_call_while_its_second_line_rings_is_idle_since_the_end_of_that_call():
    r = Rig([Q(ring_time=60)], [A("multi", max_concurrent=2)])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "multi", "c1"))
    r.clock.now += 30
    r.call("sales", call_id="c2")  # multi's free line rings
    r.clock.now += 20
    r.hangup("cleg-c1")  # multi's call ends; c2 still rings it
    ended = r.clock.now
    r.clock.now += 5
    r.hangup("cleg-c2", Outcome.CANCELLED)  # c2 gives up: not multi's doing, and not a reason to jump the line
    assert r.acd.agent_state("multi")["idle_since"] == ended


def test_an_agent_talking_on_one_line_whose_second_line_is_withdrawn_stays_on_call():
    r = Rig([Q(ring_time=60)], [A("multi", max_concurrent=2)])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "multi", "c1"))
    r.call("sales", call_id="c2")
    r.hangup("cleg-c2", Outcome.CANCELLED)
    assert r.acd.agent_state("multi")["state"] == "on-call"


def test_an_agent_who_misses_one_line_while_the_other_rings_stays_at_the_back_when_that_one_is_withdrawn():
    r = Rig([Q(ring_time=60, busy_backoff=0)], [A("multi", max_concurrent=2, max_missed=0)])
    r.advance(10)
    r.call("sales", call_id="c1")
    r.clock.now += 1
    r.call("sales", call_id="c2")
    r.clock.now += 4
    r.hangup(leg_for(r.out, "multi", "c1"), Outcome.NO_ANSWER)  # a miss: back of the line
    missed = r.clock.now
    r.clock.now += 1
    r.hangup("cleg-c2", Outcome.CANCELLED)
    assert r.acd.agent_state("multi")["idle_since"] == missed
