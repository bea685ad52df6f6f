"""The facts and commands of a call's life, field by field: queue_log, the
journey records and the PBX all read them, so a wrong queue, time, hold,
talk or ring time is a wrong report or a wrong channel hung up."""

import itertools
import random

from acd_harness import A, FakeClock, Q, Rig, leg_for, of, offered

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd, Strategy
from callcenterd.pbx.api import CallerId, OriginateRequest, Outcome

T = FakeClock().now


def kinds(outputs, *types):
    return [o for o in outputs if isinstance(o, types)]


def test_a_call_on_a_second_node_from_ring_out_to_completion():
    r = Rig([Q(ring_time=15, retry_delay=5)], [A("a1", node="pbx2"), A("a2", node="pbx2")], node="pbx2")
    r.advance(3)
    out = r.call("sales", call_id="c0")
    assert kinds(out, cmd.Originate, f.AgentOffered) == [
        cmd.Originate("pbx2", OriginateRequest(
            leg_id="leg-1", endpoint="PJSIP/a1", caller_id=CallerId("5550001"), ring_timeout=17.0,
            variables={"CC_CALL_ID": "c0", "CC_AGENT": "a1", "CC_QUEUE": "sales"}, call_id="c0")),
        f.AgentOffered(T + 3, "c0", "sales", "a1", "leg-1", "longest-idle"),
    ]
    r.call("sales", call_id="c1")  # rings a2
    out = r.advance(15)  # both ring out
    assert kinds(out, cmd.Hangup, f.AgentRingNoAnswer)[:2] == [
        cmd.Hangup("pbx2", "leg-1", 19),
        f.AgentRingNoAnswer(T + 18, "c0", "sales", "a1", 15000, "no-answer"),
    ]
    assert offered(out) == [("c0", "a2"), ("c1", "a1")]  # each to the other agent (retry delay)
    r.advance(2.5)
    out = r.hangup("cleg-c1")  # c1 gives up while a1 rings
    assert kinds(out, cmd.Hangup, f.AgentRingNoAnswer) == [
        cmd.Hangup("pbx2", "leg-4", 16),
        f.AgentRingNoAnswer(T + 20.5, "c1", "sales", "a1", 2500, "caller-hangup"),
    ]
    r.advance(1.5)
    out = r.answer("leg-3")
    assert kinds(out, cmd.Bridge, f.CallerConnected) == [
        cmd.Bridge("pbx2", "cleg-c0", "leg-3"),
        f.CallerConnected(T + 22, "c0", "sales", "a2", 19, "leg-3", 4),
    ]
    r.advance(20.7)
    out = r.hangup("cleg-c0")
    assert kinds(out, f.CallCompleted, cmd.Hangup, f.CallEnded) == [
        f.CallCompleted(T + 42.7, "c0", "sales", "a2", 19, 20, 1, "caller"),
        cmd.Hangup("pbx2", "leg-3", 16),
        f.CallEnded(T + 42.7, "c0", "answered"),
    ]


def test_an_agent_ending_the_call_hangs_up_the_caller_and_records_the_position():
    r = Rig([Q()], [A("a1")], login=False)
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    r.run(r.acd.agent_login("a1"))
    r.answer(leg_for(r.out, "a1", "c1"))
    r.hangup(leg_for(r.out, "a1", "c1"))
    r.answer(leg_for(r.out, "a1", "c2"))
    r.advance(30)
    out = r.hangup(leg_for(r.out, "a1", "c2"))
    assert kinds(out, f.CallCompleted, cmd.Hangup) == [
        f.CallCompleted(T + 30, "c2", "sales", "a1", 0, 30, 2, "agent"),
        cmd.Hangup("pbx1", "cleg-c2", 16),
    ]


def test_ring_all_losers_are_recorded_with_their_ring_time():
    r = Rig([Q(strategy=Strategy.RING_ALL)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    r.advance(3.25)
    out = r.answer(leg_for(r.out, "a2"))
    assert of(out, f.AgentRingNoAnswer) == [f.AgentRingNoAnswer(T + 3.25, "c1", "sales", "a1", 3250, "answered-elsewhere")]


def test_an_agent_leg_ending_as_answered_before_we_saw_the_answer_is_a_failed_ring():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.hangup(leg_for(r.out, "a1"), Outcome.ANSWERED)
    assert [x.reason for x in of(out, f.AgentRingNoAnswer)] == ["failed"]


def test_talk_time_and_calls_per_agent_are_shown_exactly():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.advance(12.3456)
    r.hangup("cleg-c1")
    view = r.acd.agent_state("a1")
    assert (view["calls"], view["talk_time"]) == (1, 12.346)  # rounded to the millisecond


def test_handle_time_average_includes_wrap_up():
    r = Rig([Q(wrapup_time=10, talk_time_prior=100)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.advance(50)
    r.hangup("cleg-c1")
    assert r.acd.queues_view()[0]["aht"] == 85.0  # talk (100 prior + 50) / 2, plus 10 s of wrap-up


def test_a_one_second_wrap_up_is_kept_and_no_wrap_up_leaves_no_timer():
    r = Rig([Q(wrapup_time=1)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.hangup("cleg-c1")
    assert r.acd.agent_state("a1")["state"] == "wrap-up"
    r.advance(1)
    assert r.acd.agent_state("a1")["state"] == "available"
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.hangup("cleg-c1")
    assert r.acd.next_deadline() is None


def test_a_one_second_back_off_is_kept():
    r = Rig([Q(busy_backoff=1, retry_delay=0)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
    assert offered(out) == []
    assert offered(r.advance(1)) == [("c1", "a1")]


def test_a_one_second_retry_delay_keeps_the_agent_from_the_caller_it_missed():
    r = Rig([Q(ring_time=10, retry_delay=1)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.advance(10)  # rings out: no back-off for a no-answer
    assert offered(out) == []
    assert offered(r.advance(1)) == [("c1", "a1")]


def test_no_back_off_and_no_retry_delay_mean_no_timer_and_an_immediate_retry():
    r = Rig([Q(busy_backoff=0, retry_delay=0, ring_time=15)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
    assert offered(out) == [("c1", "a1")]
    assert r.acd.next_deadline() == r.clock.now + 15  # only the new ring timer


def test_auto_pause_is_logged_and_clears_the_miss_count():
    log = []

    class Log:
        def info(self, event, **kw):
            log.append((event, kw))

        debug = warning = info

    clock, ids = FakeClock(), itertools.count(1)
    acd = Acd([Q(ring_time=10, retry_delay=0)], [A("a1", max_missed=2)], clock, rng=random.Random(1),
              new_id=lambda: f"leg-{next(ids)}", log=Log())
    acd.agent_login("a1")
    acd.call_waiting("c1", "cleg-c1", "pbx1", "sales", caller=CallerId("1"))
    for _ in range(2):
        clock.now += 10
        acd.tick()
    assert ("acd.auto_pause", {"agent": "a1", "misses": 2}) in log
    view = acd.agent_state("a1")
    assert (view["state"], view["reason"], view["missed"]) == ("paused", "no-answer", 0)


# ----------------------------------------- agents with more than one line
def test_a_multi_line_agent_finishing_a_call_goes_to_the_back():
    r = Rig([Q()], [A("m", max_concurrent=2), A("a2")], login=False)
    r.run(r.acd.agent_login("m"))
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "m", "c1"))
    r.advance(5)
    r.run(r.acd.agent_login("a2"))
    r.advance(5)
    r.hangup("cleg-c1")  # m is free since now; a2 since 5 s
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]


def test_a_multi_line_agent_missing_a_ring_goes_to_the_back():
    r = Rig([Q(ring_time=10, retry_delay=0)], [A("m", max_concurrent=2), A("a2")], login=False)
    r.run(r.acd.agent_login("m"))
    r.call("sales", call_id="c1")
    r.run(r.acd.agent_login("a2"))
    r.advance(10)  # m misses c1, which goes to a2; m is idle since now
    assert offered(r.out)[-1] == ("c1", "a2")
    assert offered(r.call("sales", call_id="c2")) == [("c2", "m")]  # a2 rings: m is next anyway
    r.hangup("cleg-c2")
    r.hangup("cleg-c1")
    r.advance(1)
    assert offered(r.call("sales", call_id="c3")) == [("c3", "a2")]


def test_a_multi_line_agent_whose_offer_is_withdrawn_gets_its_place_back():
    r = Rig([Q()], [A("m", max_concurrent=2), A("a2")], login=False)
    r.run(r.acd.agent_login("m"))
    r.advance(5)
    r.run(r.acd.agent_login("a2"))
    r.advance(5)
    assert offered(r.call("sales", call_id="c1")) == [("c1", "m")]
    r.hangup("cleg-c1")  # withdrawn: m still has a free line, and its place back
    assert offered(r.call("sales", call_id="c2")) == [("c2", "m")]


# ------------------------------------------------ freed agent, many groups
def test_a_freed_agent_takes_the_longest_waiting_caller_across_skill_groups():
    r = Rig([Q()], [A("a1", skills={"fr": 5})])
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="plain")
    r.advance(1)
    r.call("sales", call_id="french", skills={"fr": 3})
    assert offered(r.hangup("cleg-c0")) == [("plain", "a1")]


def test_a_freed_agent_skips_a_caller_it_cannot_serve_for_the_next_one():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="german", skills={"de": 1})
    r.advance(1)
    r.call("sales", call_id="plain")
    assert offered(r.hangup("cleg-c0")) == [("plain", "a1")]
