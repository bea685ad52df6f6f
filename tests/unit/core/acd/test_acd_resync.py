"""PBX down / up: re-adoption of waiting callers, restart, lost ringing legs."""

import pytest
from acd_harness import A, Q, Rig, hangups, leg_for, of, offered
from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.pbx.api import CallerId, LiveAgentLeg, PbxSnapshot, WaitingCall

T0 = 1_700_000_000.0


def test_daemon_restart_readopts_callers_in_original_enqueue_order():
    r = Rig([Q(), Q("support")], [A("a1", queues=("sales", "support"))], login=False)
    r.clock.now = T0 + 100
    waiting = (
        WaitingCall("leg-b", "sales", T0 + 20, call_id="b", caller_id=CallerId("2")),
        WaitingCall("leg-a", "support", T0 + 10, call_id="a", caller_id=CallerId("1")),
        WaitingCall("leg-c", "sales", T0 + 30, call_id="", caller_id=CallerId("3")),
    )
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a", "leg-b", "leg-c"}), waiting=waiting)))
    enq = of(out, f.CallerEnqueued)
    assert [e.call_id for e in enq][:2] == ["a", "b"] and enq[2].call_id  # id minted for the unnamed one
    assert all(e.readopted for e in enq)
    assert of(out, cmd.Hold) == []  # already on hold: only refreshed
    assert sorted(u.leg_id for u in of(out, cmd.UpdateHold)) == ["leg-a", "leg-b", "leg-c"]
    assert [w["waited"] for w in r.acd.waiting_view()] == [90.0, 80.0, 70.0]
    # the agent takes the longest-waiting caller across both queues
    assert offered(r.run(r.acd.agent_login("a1"))) == [("a", "a1")]
    # a second pbx_up with the same snapshot adopts nobody twice
    again = r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a", "leg-b", "leg-c"}), waiting=waiting))
    assert of(again, f.CallerEnqueued) == []


def test_readopted_caller_keeps_its_place_against_newer_callers():
    r = Rig([Q()], [A("a1")], login=False)
    r.clock.now = T0 + 50
    r.call("sales", call_id="new")
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-old", "cleg-new"}),
                                           waiting=(WaitingCall("leg-old", "sales", T0, call_id="old"),))))
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["old", "new"]


def test_pbx_restart_closes_every_call_and_keeps_agent_state():
    r = Rig([Q()], [A("a1"), A("a2"), A("a3")])
    r.run(r.acd.agent_pause("a3", "meeting"))
    r.call("sales", call_id="talking")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="ringing")
    r.call("sales", call_id="waiting")
    r.clock.now += 5
    r.run(r.acd.pbx_down("pbx1"))
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(restarted=True)))
    ended = {e.call_id: e.outcome for e in of(out, f.CallEnded)}
    assert ended == {"talking": "pbx-restart", "ringing": "pbx-restart", "waiting": "pbx-restart"}
    assert hangups(out) == []  # nothing left to hang up
    states = {a["agent"]: (a["state"], a["reason"]) for a in r.acd.agents_view()}
    assert states == {"a1": ("available", ""), "a2": ("available", ""), "a3": ("paused", "meeting")}
    assert r.acd.waiting_view() == []
    # a2 only rang (its idle time is kept), a1 was talking: a2 is the longest idle
    assert offered(r.call("sales", call_id="fresh")) == [("fresh", "a2")]


def test_pbx_down_loses_ringing_legs_and_reroutes_on_up():
    r = Rig([Q(ring_time=30)], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    lost = leg_for(r.out, "a1")
    out = r.run(r.acd.pbx_down("pbx1"))
    assert hangups(out) == []  # cannot reach the PBX anyway
    assert [x.reason for x in of(out, f.AgentRingNoAnswer)] == ["pbx-down"]
    assert r.acd.next_deadline() is None  # no ring timer left
    assert offered(r.call("sales", call_id="c2")) == []  # node down: nobody rung
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"cleg-c1", "cleg-c2", lost}))))
    assert hangups(out) == [lost]  # it kept ringing while we were away
    assert sorted(offered(out)) == [("c1", "a1"), ("c2", "a2")]


def test_pbx_up_closes_callers_whose_leg_is_gone():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="talk")
    r.answer(leg_for(r.out, "a1"))
    agent_leg = leg_for(r.out, "a1")
    r.call("sales", call_id="gone")
    r.call("sales", call_id="stays")
    r.run(r.acd.pbx_down("pbx1"))
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"cleg-talk", "cleg-stays"}))))
    (done,) = of(out, f.CallCompleted)
    assert (done.call_id, done.by) == ("talk", "agent")
    assert hangups(out) == ["cleg-talk"]
    assert [a.call_id for a in of(out, f.CallerAbandoned)] == ["gone"]
    assert {e.call_id: e.outcome for e in of(out, f.CallEnded)} == {"talk": "answered", "gone": "abandoned"}
    assert offered(out) == [("stays", "a1")]
    assert agent_leg not in {o.request.leg_id for o in of(out, cmd.Originate)}


# ----------------------------------------- a complete snapshot, then routing
def _restarted_daemon(agents=("a1", "a2")):
    """A fresh ACD after our crash: agents logged back in from the store,
    the node not up yet (the wiring marks it down until its first PbxUp)."""
    r = Rig([Q()], [A(a) for a in agents], login=False)
    r.run(r.acd.pbx_down("pbx1"))
    for a in agents:
        r.run(r.acd.agent_login(a))
    r.clock.now = T0 + 100
    return r


def test_an_agent_still_talking_from_before_the_crash_is_on_call_not_offered():
    from callcenterd.pbx.api import LiveAgentLeg

    r = _restarted_daemon()
    snap = PbxSnapshot(
        legs=frozenset({"cl-old", "al-old", "cl-1", "cl-2"}),
        waiting=(WaitingCall("cl-1", "sales", T0 + 10, call_id="w1"), WaitingCall("cl-2", "sales", T0 + 20, call_id="w2")),
        agent_legs=(LiveAgentLeg("al-old", "a1", call_id="old", bridged_to="cl-old", queue="sales"),),
    )
    out = r.run(r.acd.pbx_up("pbx1", snap))
    assert offered(out) == [("w1", "a2")]  # a1 is busy with the pre-crash call
    assert r.acd.agent_state("a1")["state"] == "on-call" and r.acd.agent_state("a1")["call_ids"] == ["old"]
    # the pre-crash call ends: a1 takes the next caller (after wrap-up, none here)
    done = r.run(r.acd.leg_hung_up("cl-old", "answered"))
    assert of(done, f.CallCompleted)[0].call_id == "old" and hangups(done) == ["al-old"]
    assert offered(done) == [("w2", "a1")]


def test_device_states_in_the_snapshot_apply_before_the_first_offer():
    from callcenterd.pbx.api import DeviceStatus

    r = _restarted_daemon()
    snap = PbxSnapshot(legs=frozenset({"cl-1"}), waiting=(WaitingCall("cl-1", "sales", T0, call_id="w1"),),
                       devices={"PJSIP/a1": DeviceStatus.INUSE})
    out = r.run(r.acd.pbx_up("pbx1", snap))
    assert offered(out) == [("w1", "a2")]  # a1's phone is busy: never offered, not even once


def test_an_orphaned_agent_leg_is_hung_up_after_a_restart():
    from callcenterd.pbx.api import LiveAgentLeg

    r = _restarted_daemon()
    snap = PbxSnapshot(legs=frozenset({"al-x"}), agent_legs=(LiveAgentLeg("al-x", "a1", call_id="gone"),))
    out = r.run(r.acd.pbx_up("pbx1", snap))
    assert hangups(out) == ["al-x"]
    assert r.acd.agent_state("a1")["state"] == "available"


def test_readopted_callers_with_equal_stamps_keep_the_snapshot_order():
    r = _restarted_daemon(agents=())
    waiting = tuple(WaitingCall(f"1700000000.{n}", "sales", T0, call_id=f"c{n}") for n in (71, 100, 9))
    r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset(w.leg_id for w in waiting), waiting=waiting)))
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["c71", "c100", "c9"]


def test_nothing_is_offered_while_the_node_waits_for_its_snapshot():
    r = _restarted_daemon()
    out = r.call("sales", call_id="early")
    assert offered(out) == []
    assert offered(r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"cleg-early"}))))) == [("early", "a1")]


def test_a_caller_held_without_our_decision_is_adopted_once_in_its_place():
    r = Rig([Q()], [A("a1")], login=False)
    r.clock.now = T0 + 30
    r.call("sales", call_id="newer")
    out = r.run(r.acd.caller_held("pbx1", WaitingCall("leg-h", "sales", T0, call_id="held")))
    assert [e.call_id for e in of(out, f.CallerEnqueued)] == ["held"] and of(out, f.CallerEnqueued)[0].readopted
    assert of(out, cmd.Hold) == []  # the dialplan holds it already
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["held", "newer"]
    assert r.acd.caller_held("pbx1", WaitingCall("leg-h", "sales", T0, call_id="held")) == []
    assert offered(r.run(r.acd.agent_login("a1"))) == [("held", "a1")]


def test_an_originate_timeout_withdraws_the_offer_without_blaming_the_agent():
    r = Rig([Q(retry_delay=5)], [A("a1", max_missed=1), A("a2")])
    r.call("sales", call_id="c1")
    leg = leg_for(r.out, "a1")
    out = r.run(r.acd.offer_lost(leg))
    ring = of(out, f.AgentRingNoAnswer)[0]
    assert ring.reason == "pbx-timeout" and hangups(out) == []  # the driver hangs up a late leg itself
    assert offered(out) == [("c1", "a2")]
    assert not r.acd.agent_state("a1")["paused"] and r.acd.agent_state("a1")["missed"] == 0


def test_a_held_caller_adopted_while_an_agent_is_free_is_offered_at_once():
    r = Rig([Q()], [A("a1")])
    out = r.run(r.acd.caller_held("pbx1", WaitingCall("leg-h", "sales", T0, call_id="held")))
    assert offered(out) == [("held", "a1")]


def _daemon_with_queues(*agents):
    r = Rig([Q(), Q("support")], list(agents), login=False)
    r.run(r.acd.pbx_down("pbx1"))
    for a in agents:
        r.run(r.acd.agent_login(a.id))
    r.clock.now = T0 + 100
    return r


@pytest.mark.parametrize("live", [
    LiveAgentLeg("al-x", "a1", call_id="gone"),  # answered or ringing, but bridged to nobody
    LiveAgentLeg("al-x", "a9", call_id="c9", bridged_to="cl-9", queue="sales"),  # agent no longer configured
    LiveAgentLeg("al-x", "b1", call_id="c9", bridged_to="cl-9", queue="sales"),  # agent of another node
    LiveAgentLeg("al-x", "a1", call_id="early", bridged_to="cl-9", queue="sales"),  # call id of a caller we hold
    LiveAgentLeg("al-x", "lone", call_id="c9", bridged_to="cl-9", queue="vip"),  # no queue to count it in
])
def test_an_agent_leg_the_daemon_cannot_take_back_is_hung_up_on_its_node(live):
    r = _daemon_with_queues(A("a1"), A("b1", node="pbx2"), A("lone", queues=()))
    r.call("sales", call_id="early")  # queued while the node was down
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"al-x", "cl-9", "cleg-early"}), agent_legs=(live,))))
    assert cmd.Hangup("pbx1", "al-x", 16) in of(out, cmd.Hangup)
    assert "al-x" not in {leg for a in r.acd.agents_view() for leg in a["call_ids"]}
    assert r.acd.leg_hung_up("al-x", "answered") == []  # not tracked


@pytest.mark.parametrize("live_queue, counted_in", [("support", "support"), ("", "sales"), ("gone", "sales")])
def test_a_call_taken_back_after_a_restart_counts_in_its_queue_or_the_agents_first(live_queue, counted_in):
    r = _daemon_with_queues(A("a1", queues=("sales", "support")))
    snap = PbxSnapshot(legs=frozenset({"al-old", "cl-old"}),
                       agent_legs=(LiveAgentLeg("al-old", "a1", call_id="old", bridged_to="cl-old", queue=live_queue),))
    r.run(r.acd.pbx_up("pbx1", snap))
    r.clock.now += 30
    out = r.run(r.acd.leg_hung_up("al-old", "answered"))  # the agent hangs up first
    assert [(c.call_id, c.queue, c.agent, c.talk_s, c.by) for c in of(out, f.CallCompleted)] == [
        ("old", counted_in, "a1", 30, "agent")]
    assert of(out, cmd.Hangup) == [cmd.Hangup("pbx1", "cl-old", 16)]  # the caller's leg, on its node
    assert r.acd.agent_state("a1")["calls"] == 1


def test_callers_arriving_right_after_a_reconnect_are_listed_while_a_pre_crash_call_goes_on():
    r = _restarted_daemon(agents=("a1",))
    snap = PbxSnapshot(legs=frozenset({"al-old", "cl-old"}),
                       agent_legs=(LiveAgentLeg("al-old", "a1", call_id="old", bridged_to="cl-old", queue="sales"),))
    r.run(r.acd.pbx_up("pbx1", snap))
    r.call("sales", call_id="new")  # the same instant
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["new"]
    r.clock.now += 5
    r.call("sales", call_id="later")
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["new", "later"]


def test_after_an_originate_timeout_the_agent_gets_the_caller_again_once_the_retry_delay_passes():
    r = Rig([Q(retry_delay=1)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.run(r.acd.offer_lost(leg_for(r.out, "a1")))
    assert offered(out) == []
    assert offered(r.advance(0.5)) == []
    assert offered(r.advance(0.5)) == [("c1", "a1")]


def test_an_originate_timeout_for_a_leg_answered_or_gone_changes_nothing():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    leg = leg_for(r.out, "a1")
    r.answer(leg)
    assert r.acd.offer_lost(leg) == []
    assert r.acd.offer_lost("cleg-c1") == [] and r.acd.offer_lost("no-such-leg") == []
    assert r.acd.agent_state("a1")["state"] == "on-call"


def test_a_caller_who_queued_during_the_outage_is_not_given_an_agent_still_on_a_pre_crash_call():
    from callcenterd.pbx.api import DeviceStatus

    r = _restarted_daemon()
    r.call("sales", call_id="early")  # queued while the node was down
    snap = PbxSnapshot(legs=frozenset({"cleg-early", "al-old", "cl-old", "cl-1"}),
                       devices={"PJSIP/a1": DeviceStatus.NOT_INUSE, "PJSIP/a2": DeviceStatus.NOT_INUSE},
                       agent_legs=(LiveAgentLeg("al-old", "a1", call_id="old", bridged_to="cl-old", queue="sales"),),
                       waiting=(WaitingCall("cl-1", "sales", T0 + 10, call_id="w1"),))
    out = r.run(r.acd.pbx_up("pbx1", snap))
    assert offered(out) == [("w1", "a2")]  # w1 was stamped before "early" arrived; a1 is talking
    assert [e.call_id for e in of(out, f.CallerEnqueued)] == ["w1"]
    assert r.acd.agent_state("a1")["call_ids"] == ["old"]


def test_a_first_snapshot_never_offers_a_caller_to_an_agent_it_shows_on_a_call():
    from callcenterd.pbx.api import DeviceStatus

    r = Rig([Q()], [A("a1")])  # the node was never marked down: the driver's first connection
    r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.INUSE))  # busy with a call we do not know yet
    r.call("sales", call_id="c1")
    snap = PbxSnapshot(legs=frozenset({"cleg-c1", "al-old", "cl-old"}), devices={"PJSIP/a1": DeviceStatus.NOT_INUSE},
                       agent_legs=(LiveAgentLeg("al-old", "a1", call_id="old", bridged_to="cl-old", queue="sales"),))
    out = r.run(r.acd.pbx_up("pbx1", snap))
    assert offered(out) == []  # the device state alone would have freed a1
    assert r.acd.agent_state("a1")["call_ids"] == ["old"]


def test_a_call_taken_back_after_a_restart_is_logged_for_the_operator():
    """No fact records it (it never queued in this run): the info line is the only trace."""
    import itertools
    import random

    from acd_harness import FakeClock

    from callcenterd.core.acd import Acd

    lines = []

    class Log:
        def info(self, event, **kw):
            lines.append((event, kw))

        debug = warning = info

    ids = itertools.count(1)
    acd = Acd([Q()], [A("a1")], FakeClock(), rng=random.Random(1), new_id=lambda: f"id-{next(ids)}", log=Log())
    acd.agent_login("a1")
    acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"al-old", "cl-old"}),
                                   agent_legs=(LiveAgentLeg("al-old", "a1", bridged_to="cl-old", queue="sales"),)))
    assert ("acd.call_readopted", {"call_id": "id-1", "agent": "a1", "leg_id": "al-old"}) in lines
