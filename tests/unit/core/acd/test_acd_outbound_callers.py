"""Answered campaign calls reach agents through the same ACD as inbound callers."""

from __future__ import annotations

import pytest

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.pbx.api import CallerId, Outcome
from tests.unit.core.acd.acd_harness import A, Q, Rig, leg_for, of


def _rig(*, max_wait=0, overflow="", login=True):
    queues = [Q("sales", max_wait=max_wait, overflow_queue=overflow), Q("backup")]
    return Rig(queues, [A("1001", ("sales",)), A("1002", ("backup",))], login=login)


def _outbound(rig, call_id="out-1", wait=2.0, priority=0, reserved=""):
    return rig.run(rig.acd.call_waiting(call_id, f"cleg-{call_id}", rig.node, "sales", priority=priority,
                                        caller=CallerId("+15550100"), outbound_wait=wait,
                                        reserved_agent=reserved))


def test_an_answered_campaign_call_is_offered_to_a_free_agent_and_bridged():
    rig = _rig()
    out = _outbound(rig)
    assert not of(out, cmd.Hold), "the person is already waiting in the PBX's outbound context"
    leg = leg_for(out, "1001", "out-1")
    out = rig.answer(leg)
    assert [(b.leg_a, b.leg_b) for b in of(out, cmd.Bridge)] == [("cleg-out-1", leg)]
    assert of(out, f.CallerConnected)


def test_no_agent_within_the_abandon_window_times_out_without_hangup_or_overflow():
    rig = _rig(max_wait=300, overflow="backup")
    rig.run(rig.acd.agent_pause("1001", "lunch"))
    _outbound(rig, wait=2.0)
    assert not of(rig.advance(1.9), f.CallerTimedOut)
    out = rig.advance(0.2)
    [timed_out] = of(out, f.CallerTimedOut)
    assert (timed_out.call_id, timed_out.overflow_to) == ("out-1", "")
    assert not of(out, cmd.Hangup) and not of(out, cmd.Redirect) and not of(out, f.CallEnded), \
        "the campaign plays the abandon message and ends the call, not the ACD"
    assert not of(out, f.CallerEnqueued), "never overflowed into another queue"
    assert not of(rig.run(rig.acd.agent_unpause("1001")), f.AgentOffered), "the timed-out call is gone"


def test_a_ringing_agent_is_withdrawn_when_the_abandon_window_closes():
    rig = _rig()
    out = _outbound(rig, wait=2.0)
    leg = leg_for(out, "1001", "out-1")
    out = rig.advance(2.5)
    assert of(out, f.CallerTimedOut)
    assert leg in [h.leg_id for h in of(out, cmd.Hangup)], "the agent leg stops ringing"


def test_a_campaign_call_joins_a_queue_with_nobody_staffed_instead_of_being_rejected():
    rig = _rig(login=False)
    out = _outbound(rig)
    assert not of(out, f.CallerRejected)
    assert of(rig.advance(2.1), f.CallerTimedOut)


def test_the_person_hanging_up_before_an_agent_is_an_abandon():
    rig = _rig()
    rig.run(rig.acd.agent_pause("1001", "lunch"))
    _outbound(rig)
    out = rig.hangup("cleg-out-1", Outcome.ANSWERED)
    assert of(out, f.CallerAbandoned) and [e.outcome for e in of(out, f.CallEnded)] == ["abandoned"]


def test_campaign_waits_do_not_shorten_the_inbound_wait_estimates():
    rig = _rig()
    rig.run(rig.acd.agent_pause("1001", "lunch"))
    before = rig.acd.handle_stats("sales")
    for n in range(5):
        _outbound(rig, call_id=f"out-{n}", wait=1.0)
        rig.advance(1.1)
    assert rig.acd.handle_stats("sales") == before


@pytest.mark.parametrize("wait", [0, -1.0])
def test_a_non_positive_abandon_window_is_refused(wait):
    rig = _rig()
    with pytest.raises(ValueError, match="outbound_wait"):
        _outbound(rig, wait=wait)


def test_a_reserved_agent_gets_no_other_call_and_takes_the_attempt_it_was_held_for():
    rig = _rig()
    rig.run(rig.acd.reserve_agent("1001", "out-7"))
    out = rig.call("sales")
    assert not of(out, f.AgentOffered), "an inbound caller does not take the reserved agent"
    out = _outbound(rig, call_id="out-7", reserved="1001")
    assert [(o.call_id, o.agent, o.rule) for o in of(out, f.AgentOffered)] == [("out-7", "1001", "reserved")]


def test_releasing_a_reservation_hands_the_agent_to_the_waiting_caller():
    rig = _rig()
    rig.run(rig.acd.reserve_agent("1001", "out-7"))
    rig.call("sales")
    assert not of(rig.run(rig.acd.release_agent("1001", "someone-else")), f.AgentOffered)
    out = rig.run(rig.acd.release_agent("1001", "out-7"))
    assert [(o.call_id, o.agent) for o in of(out, f.AgentOffered)] == [("call-1", "1001")]


def test_only_an_available_agent_can_be_reserved_and_only_once():
    from callcenterd.core.acd.errors import AgentStateError
    rig = _rig()
    rig.run(rig.acd.reserve_agent("1001", "out-1"))
    with pytest.raises(AgentStateError, match="already reserved"):
        rig.acd.reserve_agent("1001", "out-2")
    rig.run(rig.acd.agent_pause("1002", "lunch"))
    with pytest.raises(AgentStateError, match="not available"):
        rig.acd.reserve_agent("1002", "out-3")
