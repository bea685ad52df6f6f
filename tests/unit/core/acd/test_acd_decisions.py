"""What a supervisor reads about each routing decision (the rule in the CDR,
the debug decision log), and orders that must hold however the ready-agent
index is maintained (second lines, on-demand skill buckets, timer upkeep)."""

import itertools
import random

import pytest
from acd_harness import A, FakeClock, Q, Rig, leg_for, of, offered

from callcenterd.core import facts as f
from callcenterd.core.acd import Acd, ConfigError, Strategy
from callcenterd.core.acd.index import ReadyIndex, SortedBag
from callcenterd.core.acd.strategies import pick
from callcenterd.pbx.api import CallerId


def serve(rig, call_id, agent, talk=10.0):
    rig.answer(leg_for(rig.out, agent, call_id))
    rig.advance(talk)
    rig.hangup(f"cleg-{call_id}")


class DecisionLog:
    def __init__(self):
        self.lines = []

    def debug(self, event, **kw):
        self.lines.append((event, kw))

    info = warning = debug

    def decisions(self):
        return [kw for event, kw in self.lines if event == "acd.decision"]


def logged_rig(queues, agents):
    clock, ids, log = FakeClock(), itertools.count(1), DecisionLog()
    acd = Acd(queues, agents, clock, rng=random.Random(7), new_id=lambda: f"leg-{next(ids)}", log=log)
    for a in agents:
        acd.agent_login(a.id)
    return acd, log


def ask(acd, call_id, queue="sales", skills=None):
    return acd.call_waiting(call_id, f"cleg-{call_id}", "pbx1", queue, caller=CallerId("5550100"), skills=skills)


# ------------------------------------------------------ the rule in the CDR
@pytest.mark.parametrize("strategy, skills, rule", [
    (Strategy.LONGEST_IDLE, None, "longest-idle"),
    (Strategy.FEWEST_CALLS, None, "fewest-calls"),
    (Strategy.LEAST_TALK_TIME, None, "least-talk-time"),
    (Strategy.LINEAR, None, "linear:config-order"),
    (Strategy.ROUND_ROBIN, None, "round-robin:after-last"),
    (Strategy.RANDOM, None, "random"),
    (Strategy.WEIGHTED_RANDOM, None, "weighted-random:penalty=0"),
    (Strategy.RING_ALL, None, "ring-all:lowest-penalty-tier"),
    (Strategy.RING_PROGRESSIVELY, None, "ring-progressively:longest-idle:1"),
    (Strategy.SKILLS, None, "skills:none-required:longest-idle"),
    (Strategy.SKILLS, {"fr": 2}, "skills:fr>=2:best-proficiency,longest-idle"),
])
def test_each_offer_names_the_rule_that_chose_the_agent(strategy, skills, rule):
    r = Rig([Q(strategy=strategy)], [A("a1", skills={"fr": 5})])
    (offer,) = of(r.call("sales", call_id="c1", skills=skills), f.AgentOffered)
    assert offer.rule == rule


# ------------------------------------------------------- the decision log
@pytest.mark.parametrize("strategy", [Strategy.LONGEST_IDLE, Strategy.LINEAR, Strategy.SKILLS, Strategy.RANDOM])
def test_the_decision_log_lists_at_most_eight_agents_looked_at(strategy):
    agents = [A(f"a{i}", skills={"fr": 5}) for i in range(12)] + [A("z", skills={"fr": 5, "de": 1})]
    acd, log = logged_rig([Q(strategy=strategy)], agents)
    out = ask(acd, "c1", skills={"fr": 2, "de": 1})  # only "z" speaks German
    assert [o.agent for o in of(out, f.AgentOffered)] == ["z"]
    (decision,) = log.decisions()
    assert decision["chosen"] == ["z"]
    assert len(decision["considered"]) == 8
    assert set(decision["considered"]) <= {a.id for a in agents}
    if strategy is not Strategy.RANDOM:
        assert decision["considered"] == [f"a{i}" for i in range(8)]


@pytest.mark.parametrize("strategy", [Strategy.LONGEST_IDLE, Strategy.SKILLS, Strategy.WEIGHTED_RANDOM,
                                      Strategy.RING_ALL])
def test_the_decision_log_says_why_nobody_was_chosen(strategy):
    acd, log = logged_rig([Q(strategy=strategy)], [A("a1", skills={"fr": 5}), A("a2", skills={"fr": 5})])
    assert of(ask(acd, "c1", skills={"fr": 2, "de": 1}), f.AgentOffered) == []
    (decision,) = log.decisions()
    assert decision["chosen"] == [] and decision["rule"]
    expected = [] if strategy in (Strategy.WEIGHTED_RANDOM, Strategy.RING_ALL) else ["a1", "a2"]
    assert decision["considered"] == expected


def test_the_decision_log_of_a_ring_all_lists_who_rings():
    acd, log = logged_rig([Q(strategy=Strategy.RING_ALL)], [A("a1"), A("a2")])
    ask(acd, "c1")
    assert log.decisions()[0]["considered"] == ["a1", "a2"]


def test_the_decision_log_of_a_weighted_draw_lists_the_tier():
    acd, log = logged_rig([Q(strategy=Strategy.WEIGHTED_RANDOM)], [A("a1"), A("a2"), A("b", penalty={"sales": 1})])
    ask(acd, "c1")
    assert log.decisions()[0]["considered"] == ["a1", "a2"]


# ------------------------------------------------ strategies on their own
def index_of(strategy, agents, base=None):
    """A ReadyIndex over ``agents`` = [(id, skills)], all idle since 0, in order."""
    order_of = {aid: order for order, (aid, _) in enumerate(agents)}
    idx = ReadyIndex(strategy, lambda aid: (0, 0.0, order_of.get(aid, len(order_of)), aid), base=base)
    for order, (aid, skills) in enumerate(agents):
        idx.add(aid, skills, 0.0, order)
    return idx


@pytest.mark.parametrize("strategy", [Strategy.RANDOM, Strategy.WEIGHTED_RANDOM])
def test_a_draw_over_nobody_picks_nobody(strategy):
    choice = pick(strategy, index_of(strategy, []), lambda _aid: True, 1, rng=random.Random(1),
                  rr_last=None, primary=None)
    assert (choice.agents, choice.considered) == ([], [])
    assert choice.rule in ("random", "weighted-random")


def test_without_fit_only_every_ready_agent_is_a_candidate():
    idx = index_of(Strategy.LONGEST_IDLE, [("junior", {"billing": 3})], base={"billing": 5})
    choice = pick(Strategy.LONGEST_IDLE, idx, lambda _aid: True, 1, rng=random.Random(1), rr_last=None,
                  primary=None)
    assert choice.agents == ["junior"]


def test_the_ready_index_knows_who_is_in_it_in_strategy_order():
    idx = index_of(Strategy.LINEAR, [("b", {}), ("a", {})])
    assert "a" in idx and "b" in idx and "c" not in idx
    assert list(idx.ids()) == ["b", "a"]
    idx.add("c", {}, 0.0, 2)  # staged, not sorted in yet
    assert "c" in idx and len(idx) == 3
    idx.discard("b")
    assert "b" not in idx and list(idx.ids()) == ["a", "c"]
    assert idx.strategy is Strategy.LINEAR


# ----------------------------------------------- orders the index must keep
def test_an_agent_offered_a_call_on_its_first_line_goes_to_the_back_for_the_second():
    r = Rig([Q()], [A("m", max_concurrent=2), A("a2")])
    r.advance(5)
    assert offered(r.call("sales", call_id="c1")) == [("c1", "m")]
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]
    assert offered(r.call("sales", call_id="c3")) == [("c3", "m")]


def test_equal_skill_and_idle_time_is_broken_by_config_order_not_by_name():
    r = Rig([Q(strategy=Strategy.SKILLS)], [A("zed", skills={"fr": 5}), A("amy", skills={"fr": 5})])
    assert offered(r.call("sales", call_id="c1", skills={"fr": 3})) == [("c1", "zed")]


def test_an_agent_with_no_call_yet_goes_before_one_with_a_single_call():
    r = Rig([Q(strategy=Strategy.FEWEST_CALLS)], [A("one"), A("none")])
    r.run(r.acd.agent_pause("none", "x"))
    r.call("sales", call_id="c1")
    serve(r, "c1", "one")
    r.run(r.acd.agent_unpause("none"))  # "one" idles longer, with 1 call to 0
    assert offered(r.call("sales", call_id="c2")) == [("c2", "none")]


def test_an_agent_who_has_not_talked_goes_before_one_who_talked_half_a_second():
    r = Rig([Q(strategy=Strategy.LEAST_TALK_TIME)], [A("brief"), A("silent")])
    r.run(r.acd.agent_pause("silent", "x"))
    r.call("sales", call_id="c1")
    serve(r, "c1", "brief", talk=0.5)
    r.run(r.acd.agent_unpause("silent"))
    assert offered(r.call("sales", call_id="c2")) == [("c2", "silent")]


# ----------------------------------------------------------------- timers
def test_a_connected_call_leaves_no_timer_behind():
    r = Rig([Q(ring_time=15, retry_delay=60, announce_every=30, max_wait=300)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    first = offered(r.out)[0][1]
    r.advance(15)  # the first agent lets it ring out: excluded for 60 s
    other = offered(r.out)[-1][1]
    assert other != first
    r.answer(leg_for(r.out, other, "c1"))
    assert r.acd.next_deadline() is None


def test_timers_still_fire_after_thousands_of_cancelled_ones():
    q = Q(announce_every=20, max_wait=120)
    r = Rig([q, Q("slow", max_wait=600)], [A("a1")])
    r.call("slow", call_id="patient")  # nobody serves "slow": it must time out at 600 s
    for i in range(400):  # each answered call cancels its ring, max_wait and announce timers
        r.call("sales", call_id=f"c{i}")
        r.answer(leg_for(r.out, "a1", f"c{i}"))
        r.hangup(f"cleg-c{i}")
    r.advance(599)
    assert of(r.out, f.CallerTimedOut) == []
    r.advance(1)
    assert [t.call_id for t in of(r.out, f.CallerTimedOut)] == ["patient"]


def test_one_tick_handles_every_due_timer_even_behind_a_cancelled_one():
    r = Rig([Q(max_wait=60)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1", "c1"))  # c1's max_wait timer is cancelled, still in the heap
    r.clock.now += 1
    r.call("sales", call_id="c2")
    r.clock.now += 100
    out = r.run(r.acd.tick())  # one tick, as after a suspended event loop
    assert [t.call_id for t in of(out, f.CallerTimedOut)] == ["c2"]


def test_a_new_queue_is_empty_and_admits_up_to_its_limit():
    r = Rig([Q(max_callers=1)], [A("a1")], login=False)
    assert r.acd.queues_view()[0]["waiting"] == 0
    assert of(r.call("sales", call_id="c1"), f.CallerEnqueued)
    assert of(r.call("sales", call_id="c2"), f.CallerRejected)


@pytest.mark.parametrize("queues, agents, message", [
    ([Q(), Q()], [], "queue 'sales' defined twice"),
    ([Q(overflow_queue="nowhere")], [], "queue 'sales': overflow_queue 'nowhere' does not exist"),
    ([Q()], [A("a1"), A("a1")], "agent 'a1' defined twice"),
    ([Q()], [A("a1", queues=("support",))], "agent 'a1': queue 'support' does not exist"),
])
def test_config_errors_name_the_queue_or_agent(queues, agents, message):
    with pytest.raises(ConfigError) as err:
        Acd(queues, agents, FakeClock(), rng=random.Random(1), new_id=lambda: "x")
    assert str(err.value) == message


def test_the_fit_set_holds_only_agents_meeting_every_queue_level():
    idx = index_of(Strategy.LONGEST_IDLE, [("none", {}), ("low", {"billing": 3}), ("ok", {"billing": 5, "fr": 1}),
                                           ("no-fr", {"billing": 9})], base={"billing": 5, "fr": 1})
    assert [e[-1] for e in idx.fit] == ["ok"]
    assert [e[-1] for e in idx.main] == ["none", "low", "ok", "no-fr"]
    assert [e[-1] for e in index_of(Strategy.LONGEST_IDLE, [("none", {})]).fit] == ["none"]  # no levels: all fit


def test_skill_buckets_exist_up_front_only_for_a_skills_queues_own_skills():
    skills_idx = ReadyIndex(Strategy.SKILLS, lambda aid: (0, 0.0, 0, aid), skills=("fr", "de"))
    assert sorted(skills_idx.by_skill) == ["de", "fr"]
    assert ReadyIndex(Strategy.LONGEST_IDLE, lambda aid: (0, 0.0, 0, aid), skills=("fr",)).by_skill == {}


def test_discarding_what_a_sorted_bag_does_not_hold_changes_nothing():
    bag = SortedBag([(1, "a"), (3, "c")])
    bag.discard((2, "b"))
    bag.discard((4, "d"))
    assert list(bag) == [(1, "a"), (3, "c")]


def test_a_decision_log_line_carries_the_caller_queue_rule_choice_and_requirement():
    acd, log = logged_rig([Q(strategy=Strategy.LINEAR, skills={"fr": 2})],
                          [A("a1", skills={"fr": 1}), A("a2", skills={"fr": 4}), A("a3", skills={"fr": 4})])
    ask(acd, "c1", skills={"fr": 3})
    ask(acd, "c2")
    assert log.decisions() == [
        {"call_id": "c1", "queue": "sales", "rule": "linear:config-order", "chosen": ["a2"],
         "considered": ["a2"], "ready": 3, "requirement": {"fr": 3}},  # a1 is ready but below the queue's level
        {"call_id": "c2", "queue": "sales", "rule": "linear:config-order", "chosen": ["a3"],
         "considered": ["a3"], "ready": 2, "requirement": {"fr": 2}},
    ]
    acd, log = logged_rig([Q()], [A("a1")])
    ask(acd, "c1")
    assert log.decisions()[0]["requirement"] is None  # nothing required: None, not {}
