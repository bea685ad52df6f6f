"""What the ACD records and does when a PBX node goes down, restarts, or
comes back with some legs gone, field by field."""

import itertools
import random

from acd_harness import A, FakeClock, Q, Rig, leg_for, of, offered

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd
from callcenterd.pbx.api import CallerId, PbxSnapshot, WaitingCall

T = FakeClock().now


def test_a_pbx_restart_ends_ringing_calls_without_hanging_up_legs_that_are_gone():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.advance(2)
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(restarted=True)))
    assert of(out, cmd.Hangup) == []
    assert of(out, f.AgentRingNoAnswer) == [f.AgentRingNoAnswer(T + 2, "c1", "sales", "a1", 2000, "pbx-restart")]
    assert of(out, f.CallEnded) == [f.CallEnded(T + 2, "c1", "pbx-restart")]
    assert r.acd.agent_state("a1")["state"] == "available"


def test_a_pbx_restart_frees_the_agent_of_a_connected_call_to_the_back_of_the_line():
    r = Rig([Q()], [A("a1"), A("a2")], login=False)
    r.run(r.acd.agent_login("a1"))
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.advance(5)
    r.run(r.acd.agent_login("a2"))
    r.advance(5)
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(restarted=True)))  # a1 free since now, a2 since 5 s
    assert r.acd.agent_state("a1")["idle_since"] == T + 10
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a2")]


def test_a_pbx_restart_completes_a_pending_logout():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.run(r.acd.agent_logout("a1"))
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(restarted=True)))
    assert of(out, f.AgentLoggedOut) == [f.AgentLoggedOut(T, "a1", ("sales",))]


def test_a_lost_pbx_takes_its_agents_out_of_the_available_count():
    r = Rig([Q()], [A("a1"), A("far", node="pbx2")])
    r.run(r.acd.pbx_down("pbx1"))
    assert r.acd.queues_view()[0]["available"] == 1


def test_an_agent_leg_that_rang_on_while_we_were_away_is_hung_up_on_its_node():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    leg = leg_for(r.out, "a1")
    r.run(r.acd.pbx_down("pbx1"))
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"cleg-c1", leg}))))
    assert cmd.Hangup("pbx1", leg, 16) in of(out, cmd.Hangup)


def test_a_caller_gone_during_the_outage_completes_the_call_and_hangs_up_the_agent_if_still_up():
    r = Rig([Q()], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    l1, l2 = leg_for(r.out, "a1", "c1"), leg_for(r.out, "a2", "c2")
    r.answer(l1)
    r.answer(l2)
    r.advance(30)
    r.run(r.acd.pbx_down("pbx1"))
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({l1}))))  # both callers gone, a2's leg too
    assert [(c.call_id, c.by) for c in of(out, f.CallCompleted)] == [("c1", "caller"), ("c2", "caller")]
    assert of(out, cmd.Hangup) == [cmd.Hangup("pbx1", l1, 16)]


def test_readoption_skips_known_callers_and_unknown_queues_and_adopts_the_rest():
    log = []

    class Log:
        def warning(self, event, **kw):
            log.append((event, kw))

        debug = info = warning

    ids = itertools.count(1)
    clock = FakeClock()
    acd = Acd([Q()], [A("a1")], clock, rng=random.Random(1), new_id=lambda: f"id-{next(ids)}", log=Log())
    acd.call_waiting("known", "leg-known", "pbx1", "sales", caller=CallerId("1"))
    waiting = (WaitingCall("leg-known", "sales", T - 30, call_id="known"),
               WaitingCall("leg-old", "closed", T - 20, call_id="old"),
               WaitingCall("leg-new", "sales", T - 10, call_id="new"))
    out = acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-known", "leg-old", "leg-new"}), waiting=waiting))
    assert [e.call_id for e in of(out, f.CallerEnqueued)] == ["new"]
    assert log == [("acd.readopt_unknown_queue", {"queue": "closed", "leg_id": "leg-old"})]


def test_a_readopted_caller_who_hangs_up_is_an_abandon():
    r = Rig([Q()], [A("a1")], login=False)
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a"}),
                                           waiting=(WaitingCall("leg-a", "sales", T - 40, call_id="a"),))))
    out = r.hangup("leg-a")
    assert [(x.call_id, x.wait_s) for x in of(out, f.CallerAbandoned)] == [("a", 40)]


def test_a_readopted_caller_keeps_its_max_wait_from_when_it_first_queued():
    r = Rig([Q(max_wait=60)], [], login=False)
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a"}),
                                           waiting=(WaitingCall("leg-a", "sales", T - 50, call_id="a"),))))
    assert of(r.advance(9.9), f.CallerTimedOut) == []
    assert [t.call_id for t in of(r.advance(0.1), f.CallerTimedOut)] == ["a"]


def test_callers_readopted_with_the_same_enqueue_time_keep_a_stable_order():
    r = Rig([Q()], [A("a1")], login=False)
    waiting = (WaitingCall("leg-b", "sales", T - 5, call_id="y"), WaitingCall("leg-a", "sales", T - 5, call_id="z"))
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a", "leg-b"}), waiting=waiting)))
    # equal stamps: the order the driver listed them in (it sorts by creation),
    # neither by leg id nor by call id
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["y", "z"]
