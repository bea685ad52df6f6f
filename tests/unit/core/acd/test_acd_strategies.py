"""Each routing strategy picks the agent its rule says, via the indexed ready sets."""

from collections import Counter

import pytest

from acd_harness import A, Q, Rig, hangups, leg_for, of, offered
from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Strategy


def serve(rig, call_id, agent, talk=10.0):
    """Answer the offer to ``agent`` for ``call_id``, talk, caller hangs up."""
    rig.answer(leg_for(rig.out, agent, call_id))
    rig.advance(talk)
    rig.hangup(f"cleg-{call_id}")


def test_longest_idle_picks_the_agent_free_the_longest():
    r = Rig([Q()], [A("a1"), A("a2"), A("a3")])
    r.advance(1)
    r.call("sales", call_id="c1")  # a1 (all equal: config order breaks the tie)
    serve(r, "c1", "a1")
    r.advance(1)
    out = r.call("sales", call_id="c2")
    assert offered(out) == [("c2", "a2")]
    assert of(out, f.AgentOffered)[0].rule == "longest-idle"
    serve(r, "c2", "a2")
    out = r.call("sales", call_id="c3")
    assert offered(out) == [("c3", "a3")]
    serve(r, "c3", "a3")
    assert offered(r.call("sales", call_id="c4")) == [("c4", "a1")]  # a1 freed first of the three


def test_ring_all_rings_everyone_first_answer_wins_others_cancelled():
    r = Rig([Q(strategy=Strategy.RING_ALL)], [A("a1"), A("a2"), A("a3")])
    out = r.call("sales", call_id="c1")
    assert sorted(a for _, a in offered(out)) == ["a1", "a2", "a3"]
    originated = {o.request.leg_id: o.request.endpoint for o in of(out, cmd.Originate)}
    assert len(originated) == 3
    winner = leg_for(out, "a2")
    out = r.answer(winner)
    assert of(out, cmd.Bridge) == [cmd.Bridge("pbx1", "cleg-c1", winner)]
    cancels = of(out, cmd.Hangup)
    assert sorted(h.leg_id for h in cancels) == sorted(set(originated) - {winner})
    assert {h.cause for h in cancels} == {26}  # answered elsewhere
    assert {x.reason for x in of(out, f.AgentRingNoAnswer)} == {"answered-elsewhere"}
    assert r.acd.agent_state("a1")["state"] == "available"
    assert r.acd.agent_state("a2")["state"] == "on-call"
    # a late answer from a loser changes nothing
    assert r.answer(leg_for(r.out, "a1")) == []


def test_ring_all_respects_penalty_tier():
    r = Rig([Q(strategy=Strategy.RING_ALL)], [A("a1"), A("a2", penalty={"sales": 1})])
    assert [a for _, a in offered(r.call("sales"))] == ["a1"]


def test_round_robin_remembers_where_it_stopped():
    r = Rig([Q(strategy=Strategy.ROUND_ROBIN)], [A("a1"), A("a2"), A("a3")])
    got = []
    for i in range(5):
        out = r.call("sales", call_id=f"c{i}")
        ((_, agent),) = offered(out)
        got.append(agent)
        serve(r, f"c{i}", agent)
    assert got == ["a1", "a2", "a3", "a1", "a2"]


def test_round_robin_skips_busy_agent_and_keeps_order():
    r = Rig([Q(strategy=Strategy.ROUND_ROBIN)], [A("a1"), A("a2"), A("a3")])
    r.call("sales", call_id="c1")  # a1, stays on call
    r.answer(leg_for(r.out, "a1"))
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]
    r.answer(leg_for(r.out, "a2"))
    assert offered(r.call("sales", call_id="c3")) == [("c3", "a3")]
    r.answer(leg_for(r.out, "a3"))
    r.hangup("cleg-c1")
    assert offered(r.call("sales", call_id="c4")) == [("c4", "a1")]


def test_fewest_calls_prefers_the_agent_with_fewer_calls_in_this_queue():
    r = Rig([Q(strategy=Strategy.FEWEST_CALLS)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    serve(r, "c1", "a1")
    r.call("sales", call_id="c2")
    serve(r, "c2", "a2")
    r.call("sales", call_id="c3")
    serve(r, "c3", "a2") if ("c3", "a2") in offered(r.out) else serve(r, "c3", "a1")
    # one agent has 2 calls, the other 1: the other one is chosen
    counts = {a["agent"]: a["calls"] for a in r.acd.agents_view()}
    fewest = min(counts, key=counts.get)
    assert counts[fewest] == 1
    assert offered(r.call("sales", call_id="c4")) == [("c4", fewest)]


def test_least_talk_time_prefers_the_agent_who_talked_least():
    r = Rig([Q(strategy=Strategy.LEAST_TALK_TIME)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    assert sorted(offered(r.out)) == [("c1", "a1"), ("c2", "a2")]
    r.answer(leg_for(r.out, "a1"))
    r.answer(leg_for(r.out, "a2"))
    r.advance(100)
    r.hangup("cleg-c1")  # a1 talked 100 s, freed first
    r.advance(1)
    r.hangup("cleg-c2")  # a2 talked 101 s, but... a1 is longest idle
    assert offered(r.call("sales", call_id="c3")) == [("c3", "a1")]
    serve(r, "c3", "a1", talk=50)  # a1 150 s, a2 101 s
    assert offered(r.call("sales", call_id="c4")) == [("c4", "a2")]


def test_linear_always_tries_config_order():
    r = Rig([Q(strategy=Strategy.LINEAR)], [A("a1"), A("a2"), A("a3")])
    for i in range(3):
        assert offered(r.call("sales", call_id=f"c{i}")) == [(f"c{i}", "a1")]
        serve(r, f"c{i}", "a1")
    r.run(r.acd.agent_pause("a1", "lunch"))
    assert offered(r.call("sales", call_id="c9")) == [("c9", "a2")]


def test_random_reaches_every_agent_and_is_seeded():
    def run(seed):
        r = Rig([Q(strategy=Strategy.RANDOM)], [A(f"a{i}") for i in range(4)], seed=seed)
        got = []
        for i in range(60):
            ((_, agent),) = offered(r.call("sales", call_id=f"c{i}"))
            got.append(agent)
            serve(r, f"c{i}", agent, talk=1)
        return got

    first = run(3)
    assert set(first) == {"a0", "a1", "a2", "a3"}
    assert run(3) == first  # deterministic for a given rng


def test_weighted_random_follows_weight_within_lowest_penalty():
    agents = [A("heavy", weight=9.0), A("light", weight=1.0), A("backup", penalty={"sales": 1})]
    r = Rig([Q(strategy=Strategy.WEIGHTED_RANDOM)], agents)
    got = Counter()
    for i in range(400):
        ((_, agent),) = offered(r.call("sales", call_id=f"c{i}"))
        got[agent] += 1
        serve(r, f"c{i}", agent, talk=1)
    assert got["backup"] == 0
    assert 320 <= got["heavy"] <= 390, got


def test_ring_progressively_widens_as_the_caller_waits():
    q = Q(strategy=Strategy.RING_PROGRESSIVELY, ring_time=60, progressive_every=10)
    r = Rig([q], [A("a1"), A("a2"), A("a3")])
    assert offered(r.call("sales", call_id="c1")) == [("c1", "a1")]
    assert offered(r.advance(9.9)) == []
    assert offered(r.advance(0.2)) == [("c1", "a2")]
    assert offered(r.advance(10)) == [("c1", "a3")]
    out = r.answer(leg_for(r.out, "a2"))
    assert sorted(hangups(out)) == sorted([leg_for(r.out, "a1"), leg_for(r.out, "a3")])


def test_skills_best_proficiency_then_longest_idle():
    q = Q(strategy=Strategy.SKILLS)
    agents = [A("low", skills={"fr": 3}), A("high1", skills={"fr": 9}), A("high2", skills={"fr": 9}),
              A("none", skills={"de": 10})]
    r = Rig([q], agents)
    out = r.call("sales", call_id="c1", skills={"fr": 2})
    assert offered(out) == [("c1", "high1")]
    assert of(out, f.AgentOffered)[0].rule.startswith("skills:fr>=2")
    assert offered(r.call("sales", call_id="c2", skills={"fr": 2})) == [("c2", "high2")]
    assert offered(r.call("sales", call_id="c3", skills={"fr": 2})) == [("c3", "low")]
    assert offered(r.call("sales", call_id="c4", skills={"fr": 2})) == []  # "none" lacks fr


def test_skills_requirement_relaxes_step_by_step():
    q = Q(strategy=Strategy.SKILLS, skills={"billing": 8}, skill_relax=((20, 3), (40, 8)))
    r = Rig([q], [A("junior", skills={"billing": 5}), A("generalist", skills={"sales": 5})])
    assert offered(r.call("sales", call_id="c1")) == []
    assert offered(r.advance(19.9)) == []
    assert offered(r.advance(0.2)) == [("c1", "junior")]  # 8-3=5 now
    r.run(r.acd.agent_pause("junior", "x"))  # withdrawn; nobody else qualifies yet
    assert offered(r.out[-5:]) == []
    assert offered(r.advance(20)) == [("c1", "generalist")]  # requirement dropped: anyone


def test_skills_filter_applies_to_other_strategies_too():
    r = Rig([Q(strategy=Strategy.LONGEST_IDLE)], [A("a1"), A("a2", skills={"vip": 5})])
    assert offered(r.call("sales", call_id="c1", skills={"vip": 4})) == [("c1", "a2")]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_offers_only_a_free_agent_once(strategy):
    r = Rig([Q(strategy=strategy)], [A("a1"), A("a2")])
    out = r.call("sales", call_id="c1")
    out += r.call("sales", call_id="c2")
    out += r.call("sales", call_id="c3")
    agents = [a for _, a in offered(out)]
    assert len(agents) == len(set(agents)) == 2
    assert all(o.rule for o in of(out, f.AgentOffered))
    # the one left over is served when an agent frees up
    first_call, first_agent = offered(out)[0]
    r.answer(leg_for(r.out, first_agent, first_call))
    waiting = r.acd.waiting_view()
    unserved = [w["call_id"] for w in waiting if not w["ringing"]]
    out = r.hangup(f"cleg-{first_call}")
    if strategy is Strategy.RING_ALL:  # a freed agent joins the ring of the longest waiting caller
        assert [c for c, _ in offered(out)] == [waiting[0]["call_id"]]
    else:
        assert [c for c, _ in offered(out)] == unserved[:1]
