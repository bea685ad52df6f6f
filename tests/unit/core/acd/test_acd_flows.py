"""Call flows through the ACD: misses, back-off, join/leave rules, timeouts, wrap-up, pause."""

import pytest

from acd_harness import A, Q, Rig, hangups, leg_for, of, offered
from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import AgentStateError, UnknownAgent, UnknownQueue
from callcenterd.pbx.api import DeviceStatus, Outcome


def test_ring_timeout_tries_next_agent_and_auto_pauses_after_max_missed():
    r = Rig([Q(ring_time=15, retry_delay=100)], [A("a1", max_missed=2), A("a2")])
    out = r.call("sales", call_id="c1")
    req = of(out, cmd.Originate)[0].request
    assert req.ring_timeout == 17.0 and req.endpoint == "PJSIP/a1"
    assert req.variables == {"CC_CALL_ID": "c1", "CC_AGENT": "a1", "CC_QUEUE": "sales"}
    assert r.acd.next_deadline() == r.clock.now + 15
    leg1 = leg_for(out, "a1")
    out = r.advance(15)
    assert of(out, cmd.Hangup) == [cmd.Hangup("pbx1", leg1, 19)]
    (rna,) = of(out, f.AgentRingNoAnswer)
    assert (rna.agent, rna.reason, rna.ring_ms) == ("a1", "no-answer", 15000)
    assert offered(out) == [("c1", "a2")]  # next agent at once
    assert r.hangup(leg1, Outcome.CANCELLED) == []  # the late LegHungUp of our own hangup is ignored
    # second miss for a1 (another caller) -> auto-pause
    r.call("sales", call_id="c2")
    assert ("c2", "a1") in offered(r.out)
    out = r.hangup(leg_for(r.out, "a1", "c2"), Outcome.NO_ANSWER)
    (paused,) = of(out, f.AgentPaused)
    assert (paused.agent, paused.reason) == ("a1", "no-answer")
    assert r.acd.agent_state("a1")["state"] == "paused"
    assert r.acd.agent_state("a1")["reason"] == "no-answer"


def test_answer_resets_the_consecutive_miss_count():
    r = Rig([Q(retry_delay=0)], [A("a1", max_missed=2)])
    r.call("sales", call_id="c1")
    r.hangup(leg_for(r.out, "a1"), Outcome.NO_ANSWER)  # miss 1, re-offered at once (retry_delay 0)
    r.answer(leg_for(r.out, "a1"))
    r.hangup("cleg-c1")
    r.call("sales", call_id="c2")
    out = r.hangup(leg_for(r.out, "a1", "c2"), Outcome.NO_ANSWER)
    assert of(out, f.AgentPaused) == []


def test_retry_delay_applies_to_that_agent_for_that_caller_only():
    r = Rig([Q(retry_delay=30)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.hangup(leg_for(r.out, "a1"), Outcome.NO_ANSWER)
    assert offered(out) == []  # a1 not re-offered c1 for 30 s
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a1")]  # but takes another caller
    r.hangup(leg_for(r.out, "a1", "c2"), Outcome.NO_ANSWER)
    assert offered(r.advance(29)) == []
    assert offered(r.advance(1.5)) == [("c1", "a1")]


def test_busy_device_is_skipped_until_it_frees():
    r = Rig([Q()], [A("a1"), A("a2")])
    r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.INUSE))  # a private call
    assert offered(r.call("sales", call_id="c1")) == [("c1", "a2")]
    assert offered(r.call("sales", call_id="c2")) == []
    assert offered(r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.NOT_INUSE))) == [("c2", "a1")]


def test_device_ringing_for_our_own_leg_does_not_block():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.RINGING))
    out = r.answer(leg_for(r.out, "a1"))
    assert of(out, cmd.Bridge)


def test_busy_backoff_keeps_agent_out_of_every_queue():
    r = Rig([Q(busy_backoff=20, retry_delay=0)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
    assert [x.reason for x in of(out, f.AgentRingNoAnswer)] == ["busy"]
    assert offered(out) == []
    assert offered(r.call("sales", call_id="c2")) == []
    assert offered(r.advance(19)) == []
    assert offered(r.advance(1)) == [("c1", "a1")]


def test_join_empty_rejects_to_overflow_destination():
    r = Rig([Q(join_empty=False, overflow_destination="voicemail,s,1")], [A("a1")], login=False)
    out = r.call("sales", call_id="c1")
    (rej,) = of(out, f.CallerRejected)
    assert (rej.reason, rej.overflow_to) == ("joinempty", "dialplan:voicemail,s,1")
    assert of(out, cmd.Redirect) == [cmd.Redirect("pbx1", "cleg-c1", "voicemail,s,1")]
    assert [e.outcome for e in of(out, f.CallEnded)] == ["rejected"]
    assert of(out, cmd.Hold) == [] and r.acd.waiting_view() == []


def test_paused_agents_do_not_count_as_staff_for_join_empty():
    r = Rig([Q(join_empty=False)], [A("a1")])
    r.run(r.acd.agent_pause("a1", "lunch"))
    out = r.call("sales", call_id="c1")
    assert [x.reason for x in of(out, f.CallerRejected)] == ["joinempty"]
    assert hangups(out) == ["cleg-c1"]  # no overflow configured: hung up


def test_full_queue_overflows_to_another_queue():
    queues = [Q(max_callers=1, overflow_queue="backup"), Q("backup")]
    r = Rig(queues, [A("b1", queues=("backup",))], login=False)
    r.call("sales", call_id="c1")
    out = r.call("sales", call_id="c2")
    (rej,) = of(out, f.CallerRejected)
    assert (rej.queue, rej.reason, rej.overflow_to) == ("sales", "full", "backup")
    (enq,) = of(out, f.CallerEnqueued)
    assert enq.queue == "backup"
    assert of(out, cmd.Hold)[0].call.queue == "backup"
    assert of(out, f.CallEnded) == []


def test_leave_empty_when_last_agent_logs_out():
    r = Rig([Q(leave_empty=True, overflow_destination="closed,s,1")], [A("a1")])
    r.call("sales", call_id="c1")
    r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)  # keep the caller waiting
    r.advance(3)
    out = r.run(r.acd.agent_logout("a1"))
    (ex,) = of(out, f.CallerExitEmpty)
    assert (ex.call_id, ex.position, ex.wait_s, ex.overflow_to) == ("c1", 1, 3, "dialplan:closed,s,1")
    assert of(out, cmd.Redirect)[0].destination == "closed,s,1"
    assert [e.outcome for e in of(out, f.CallEnded)] == ["empty"]


def test_max_wait_times_out_and_redirects():
    r = Rig([Q(max_wait=60, overflow_destination="vm,s,1")], [A("a1")], login=False)
    r.call("sales", call_id="c1")
    assert r.advance(59.9) == []
    out = r.advance(0.1)
    (to,) = of(out, f.CallerTimedOut)
    assert (to.wait_s, to.position, to.orig_position, to.overflow_to) == (60, 1, 1, "dialplan:vm,s,1")
    assert of(out, cmd.Redirect) == [cmd.Redirect("pbx1", "cleg-c1", "vm,s,1")]
    assert [e.outcome for e in of(out, f.CallEnded)] == ["timeout"]
    assert r.acd.next_deadline() is None


def test_timeout_overflow_to_queue_keeps_original_place_and_cancels_ring():
    queues = [Q(max_wait=30, overflow_queue="backup", ring_time=60), Q("backup")]
    r = Rig(queues, [A("s1"), A("b1", queues=("backup",))], login=False)
    r.run(r.acd.agent_login("s1"))
    r.call("sales", call_id="early")  # rings s1 until the timeout
    r.advance(10)
    r.call("backup", call_id="later")
    out = r.advance(20)
    assert of(out, f.CallerTimedOut)[0].overflow_to == "backup"
    assert hangups(out) == [leg_for(r.out, "s1")]
    hold = of(out, cmd.Hold)[0]
    assert hold.call.queue == "backup" and hold.call.enqueued_at == r.clock.now - 30
    view = {w["call_id"]: w["position"] for w in r.acd.waiting_view()}
    assert view == {"early": 1, "later": 2}  # original enqueue time wins in the overflow queue
    assert offered(r.run(r.acd.agent_login("b1"))) == [("early", "b1")]


def test_priority_caller_jumps_ahead():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="normal")
    r.advance(5)
    out = r.call("sales", call_id="vip", priority=5)
    assert of(out, f.CallerEnqueued)[0].position == 1
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["vip", "normal"]
    assert offered(r.hangup("cleg-c1")) == [("vip", "a1")]


def test_longest_waiting_across_two_queues_sharing_an_agent():
    r = Rig([Q("sales"), Q("support")], [A("a1", queues=("sales", "support"))])
    r.call("sales", call_id="busy")
    r.answer(leg_for(r.out, "a1"))
    r.call("support", call_id="s-old")
    r.advance(1)
    r.call("sales", call_id="s-new")
    assert offered(r.hangup("cleg-busy")) == [("s-old", "a1")]


def test_queue_weight_beats_wait_time():
    r = Rig([Q("sales"), Q("vipq", weight=10)], [A("a1", queues=("sales", "vipq"))])
    r.call("sales", call_id="busy")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="old")
    r.advance(30)
    r.call("vipq", call_id="heavy")
    assert offered(r.hangup("cleg-busy")) == [("heavy", "a1")]


def test_wrapup_holds_across_every_queue_and_agent_override_wins():
    queues = [Q("sales", wrapup_time=60), Q("support", wrapup_time=60)]
    r = Rig(queues, [A("a1", queues=("sales", "support"), wrapup_time=10)])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    out = r.hangup(leg_for(r.out, "a1"))  # agent hangs up
    (done,) = of(out, f.CallCompleted)
    assert done.by == "agent" and hangups(out) == ["cleg-c1"]
    assert r.acd.agent_state("a1")["state"] == "wrap-up"
    assert offered(r.call("support", call_id="c2")) == []
    assert offered(r.advance(9.9)) == []
    out = r.advance(0.1)
    assert offered(out) == [("c2", "a1")]


def test_pause_while_ringing_cancels_and_routes_at_once():
    r = Rig([Q()], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    leg = leg_for(r.out, "a1")
    out = r.run(r.acd.agent_pause("a1", "break"))
    assert hangups(out) == [leg]
    assert offered(out) == [("c1", "a2")]
    assert [x.reason for x in of(out, f.AgentRingNoAnswer)] == ["paused"]
    assert r.acd.agent_state("a1")["state"] == "paused"


def test_caller_hangs_up_while_agent_rings():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    leg = leg_for(r.out, "a1")
    r.advance(7)
    out = r.hangup("cleg-c1", Outcome.CANCELLED)
    assert of(out, cmd.Hangup) == [cmd.Hangup("pbx1", leg, 16)]
    (ab,) = of(out, f.CallerAbandoned)
    assert (ab.position, ab.wait_s) == (1, 7)
    assert [e.outcome for e in of(out, f.CallEnded)] == ["abandoned"]
    assert r.acd.agent_state("a1")["state"] == "available"
    assert r.hangup(leg, Outcome.CANCELLED) == []
    assert r.acd.next_deadline() is None


def test_logout_during_call_takes_effect_after_it():
    r = Rig([Q(wrapup_time=30)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    out = r.run(r.acd.agent_logout("a1"))
    assert of(out, f.AgentLoggedOut) == []
    assert r.acd.agent_state("a1")["state"] == "on-call"
    assert offered(r.call("sales", call_id="c2")) == []
    out = r.hangup("cleg-c1")
    assert len(of(out, f.AgentLoggedOut)) == 1
    assert r.acd.agent_state("a1")["state"] == "logged-out"


def test_max_concurrent_two_calls():
    r = Rig([Q()], [A("a1", max_concurrent=2)])
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    r.call("sales", call_id="c3")
    assert offered(r.out) == [("c1", "a1"), ("c2", "a1")]


def test_only_agents_on_the_callers_node_are_candidates():
    r = Rig([Q()], [A("far", node="pbx2"), A("near")])
    assert offered(r.call("sales", call_id="c1")) == [("c1", "near")]
    assert offered(r.call("sales", call_id="c2")) == []


def test_no_staff_means_no_estimate():
    r = Rig([Q()], [A("a1")], login=False)
    assert of(r.call("sales"), f.CallerEnqueued)[0].wait_estimate is None


def test_periodic_announcements_update_position():
    r = Rig([Q(announce_every=30, moh_class="jazz")], [A("a1")])
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    out = r.advance(30)
    ups = {u.leg_id: u.spec for u in of(out, cmd.UpdateHold)}
    assert ups["cleg-c2"].position == 2 and ups["cleg-c2"].moh_class == "jazz"
    r.hangup("cleg-c1", Outcome.CANCELLED)
    out = r.advance(30)
    assert [(u.leg_id, u.spec.position) for u in of(out, cmd.UpdateHold)] == [("cleg-c2", 1)]


def test_unknown_agent_and_queue_errors_are_clear():
    r = Rig([Q()], [A("a1")])
    for method in (r.acd.agent_login, r.acd.agent_logout, r.acd.agent_unpause, r.acd.agent_state):
        with pytest.raises(UnknownAgent) as err:
            method("ghost")
        assert isinstance(err.value, KeyError)
        assert str(err.value) == "unknown agent 'ghost': not in the ACD configuration"
    with pytest.raises(UnknownAgent):
        r.acd.agent_pause("ghost", "x")
    with pytest.raises(UnknownQueue, match="unknown queue 'nope'"):
        r.acd.call_waiting("c", "l", "pbx1", "nope")
    r.run(r.acd.agent_logout("a1"))
    with pytest.raises(AgentStateError, match="not logged in"):
        r.acd.agent_pause("a1", "x")


def test_state_facts_and_export_import_roundtrip():
    r = Rig([Q()], [A("a1"), A("a2"), A("a3")])
    r.run(r.acd.agent_pause("a2", "training"))
    r.run(r.acd.agent_logout("a3"))
    saved = r.acd.export_state()
    assert saved == {"a1": {"logged_in": True, "paused": False, "reason": ""},
                     "a2": {"logged_in": True, "paused": True, "reason": "training"}}
    saved["retired"] = {"logged_in": True, "paused": False, "reason": ""}  # no longer configured: skipped
    r2 = Rig([Q()], [A("a1"), A("a2"), A("a3")], login=False)
    out = r2.run(r2.acd.import_state(saved))
    assert [x.agent for x in of(out, f.AgentLoggedIn)] == ["a1", "a2"]
    assert [(x.agent, x.reason) for x in of(out, f.AgentPaused)] == [("a2", "training")]
    states = {a["agent"]: (a["state"], a["reason"]) for a in r2.acd.agents_view()}
    assert states == {"a1": ("available", ""), "a2": ("paused", "training"), "a3": ("logged-out", "")}
    changes = [(x.agent, x.state) for x in of(out, f.AgentStateChanged)]
    assert changes == [("a1", "available"), ("a2", "available"), ("a2", "paused")]


def test_bad_caller_skill_level_is_refused():
    r = Rig([Q()], [A("a1")])
    with pytest.raises(ValueError, match="1..10"):
        r.acd.call_waiting("c1", "l1", "pbx1", "sales", skills={"fr": 11})


def test_join_empty_no_admits_while_a_paused_agent_is_logged_in():
    r = Rig([Q(join_empty="no")], [A("a1"), A("a2")])
    r.run(r.acd.agent_pause("a1", "lunch"))
    r.run(r.acd.agent_logout("a2"))
    out = r.call("sales", call_id="c1")  # a1 is paused but present: "no" lets the caller in
    assert of(out, f.CallerRejected) == [] and [e.call_id for e in of(out, f.CallerEnqueued)] == ["c1"]
    r.run(r.acd.agent_logout("a1"))
    out = r.call("sales", call_id="c2")  # nobody logged in at all: refused
    assert [x.reason for x in of(out, f.CallerRejected)] == ["joinempty"]


def test_join_empty_strict_refuses_when_every_agent_is_paused():
    r = Rig([Q(join_empty="strict")], [A("a1")])
    r.run(r.acd.agent_pause("a1", "lunch"))
    assert [x.reason for x in of(r.call("sales", call_id="c1"), f.CallerRejected)] == ["joinempty"]


def test_leave_empty_yes_waits_for_paused_agents_and_leaves_when_they_log_out():
    r = Rig([Q(leave_empty="yes", overflow_destination="closed,s,1")], [A("a1"), A("a2")])
    r.run(r.acd.agent_pause("a1", "lunch"))
    r.call("sales", call_id="c1")
    r.hangup(leg_for(r.out, "a2"), Outcome.BUSY)  # keep the caller waiting
    out = r.run(r.acd.agent_logout("a2"))
    assert of(out, f.CallerExitEmpty) == []  # a1 is paused, still logged in: stay
    out = r.run(r.acd.agent_logout("a1"))  # the last logged-in agent goes
    assert [x.call_id for x in of(out, f.CallerExitEmpty)] == ["c1"]


def test_leave_empty_strict_leaves_when_the_last_unpaused_agent_pauses():
    r = Rig([Q(leave_empty="strict", overflow_destination="closed,s,1")], [A("a1")])
    r.call("sales", call_id="c1")
    r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
    out = r.run(r.acd.agent_pause("a1", "meeting"))
    assert [x.call_id for x in of(out, f.CallerExitEmpty)] == ["c1"]


def test_empty_policies_are_validated():
    from callcenterd.core.acd.specs import ConfigError

    with pytest.raises(ConfigError, match="join_empty"):
        Q(join_empty="sometimes")


def test_agent_busy_backoff_beats_the_queue_s():
    r = Rig([Q(busy_backoff=20, retry_delay=0)], [A("a1", busy_backoff=3)])
    r.call("sales", call_id="c1")
    r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
    assert offered(r.advance(2)) == []
    assert offered(r.advance(1)) == [("c1", "a1")]
