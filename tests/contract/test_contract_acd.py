"""ACD scenarios run unchanged against every PBX driver (see conftest.py).

Each scenario drives the driver through the port and the real core
(wiring.build -> CallCenter + Acd) and checks the facts callcenterd
records, so the two drivers must produce the same port events and the same
normalised outcomes.
"""

from __future__ import annotations

import asyncio

import pytest

from callcenterd.core import facts as f

QUEUE = {"strategy": "linear", "wrapup_time": 0, "announce_frequency": 0}


def queue(pbx, ring: float = 4, **extra) -> dict:
    return {**QUEUE, "ring_time": pbx.s(ring), "retry_delay": pbx.s(1), **extra}


def agent(pbx, ext: str, **extra) -> dict:
    return {"device": pbx.device(ext), "queues": ["support"], **extra}


async def test_answered_call_is_bridged_then_completed(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)}, agents={"1001": agent(pbx, "1001")})
    async with rig:
        number = await rig.customer("support", patience=5 if pbx.kind == "asterisk" else 2.0)
        call = await rig.call_id(number)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1001"
        assert rig.agent_state("1001") == "on-call"
        completed = await rig.fact(f.CallCompleted, call_id=call)
        assert completed.by == "caller"
        assert (await rig.fact(f.CallEnded, call_id=call)).outcome == "answered"
        # the agent leg is hung up by callcenterd once the caller left
        await pbx.wait(lambda: not rig.agent_leg_up("1001"), "agent leg hung up")
        await pbx.wait(lambda: rig.agent_state("1001") == "available", "agent available again")


async def test_the_caller_is_bridged_to_the_agent_leg_whatever_order_the_pbx_reports_it(pbx):
    """Asterisk: OriginateResponse before the leg's Newchannel (a bare id
    then resolved to the Local ;2 half).  FreeSWITCH: the bridge lands while
    the originate job still runs.  Either way the caller talks to the very
    leg callcenterd dialled, and the call goes on."""
    rig = pbx.rig(queues={"support": queue(pbx)}, agents={"1001": agent(pbx, "1001")})
    async with rig:
        reordered = rig.answer_first()
        number = await rig.customer("support", patience=6 if pbx.kind == "asterisk" else 2.0)
        call = await rig.call_id(number)
        caller_leg = rig.of(f.CallStarted, call_id=call)[0].leg_id
        connected = await rig.fact(f.CallerConnected, call_id=call)
        if pbx.kind == "asterisk":
            assert reordered == [connected.agent_leg_id]
        await pbx.wait(lambda: rig.bridged_with(caller_leg, connected.agent_leg_id), "caller bridged to the agent leg",
                       timeout=pbx.s(5) + 1)
        completed = await rig.fact(f.CallCompleted, call_id=call)
        assert completed.by == "caller" and (await rig.fact(f.CallEnded, call_id=call)).outcome == "answered"


async def test_caller_hangs_up_while_agent_rings_cancels_the_agent_leg(pbx):
    rig = pbx.rig(queues={"support": queue(pbx, ring=30)}, agents={"2001": agent(pbx, "2001")})
    async with rig:
        number = await rig.customer("support", patience=3 if pbx.kind == "asterisk" else pbx.s(3))
        call = await rig.call_id(number)
        await rig.fact(f.AgentOffered, call_id=call, agent="2001")
        await pbx.wait(lambda: rig.agent_leg_up("2001"), "agent 2001 ringing")
        abandoned = await rig.fact(f.CallerAbandoned, call_id=call)
        assert abandoned.queue == "support"
        # cancelled at once, not left to ring for the 30 s ring time
        await pbx.wait(lambda: not rig.agent_leg_up("2001"), "agent leg cancelled", timeout=max(pbx.s(5), 1.0))
        ring = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent="2001")
        assert ring.reason == "caller-hangup"
        assert (await rig.fact(f.CallEnded, call_id=call)).outcome == "abandoned"
        await pbx.wait(lambda: rig.agent_state("2001") == "available", "agent available")


async def test_no_answer_then_next_agent(pbx):
    rig = pbx.rig(queues={"support": queue(pbx, ring=2)},
                  agents={"2001": agent(pbx, "2001", max_missed=1), "1002": agent(pbx, "1002")})
    async with rig:
        number = await rig.customer("support", patience=12 if pbx.kind == "asterisk" else pbx.s(30))
        call = await rig.call_id(number)
        missed = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent="2001")
        assert missed.reason == "no-answer"
        assert missed.ring_ms >= pbx.s(2) * 1000 * 0.75
        paused = await rig.fact(f.AgentPaused, agent="2001")
        assert paused.reason == "no-answer"
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"
        await pbx.wait(lambda: not rig.agent_leg_up("2001"), "the unanswered leg is gone")


async def test_busy_agent_is_skipped(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)},
                  agents={"2002": agent(pbx, "2002"), "1002": agent(pbx, "1002")})
    async with rig:
        number = await rig.customer("support", patience=8 if pbx.kind == "asterisk" else pbx.s(30))
        call = await rig.call_id(number)
        busy = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent="2002")
        assert busy.reason == "busy"
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"


@pytest.mark.parametrize("ext, reason", [("2003", "congestion"), ("2004", "rejected")])
async def test_hangup_causes_are_normalised_identically(pbx, ext, reason):
    rig = pbx.rig(queues={"support": queue(pbx)},
                  agents={ext: agent(pbx, ext), "1002": agent(pbx, "1002")})
    async with rig:
        number = await rig.customer("support", patience=8 if pbx.kind == "asterisk" else pbx.s(30))
        call = await rig.call_id(number)
        failed = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent=ext)
        assert failed.reason == reason
        assert (await rig.fact(f.CallerConnected, call_id=call)).agent == "1002"


async def test_agent_hangs_up_first_completes_by_agent(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)}, agents={"4001": agent(pbx, "4001")})
    async with rig:
        number = await rig.customer("support", patience=20 if pbx.kind == "asterisk" else pbx.s(60))
        call = await rig.call_id(number)
        await rig.fact(f.CallerConnected, call_id=call)
        completed = await rig.fact(f.CallCompleted, call_id=call)
        assert completed.by == "agent"
        assert (await rig.fact(f.CallEnded, call_id=call)).outcome == "answered"


async def test_device_in_use_elsewhere_is_not_rung(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)},
                  agents={"1001": agent(pbx, "1001"), "1002": agent(pbx, "1002")})
    async with rig:
        # agent 1001's phone is busy with a call callcenterd did not make
        await rig.outside_call("1001", pbx.s(15))
        await pbx.wait(lambda: rig.agent_leg_up("1001"), "1001 busy on the outside call")
        await asyncio.sleep(pbx.s(1))  # let its device state reach callcenterd
        number = await rig.customer("support", patience=6 if pbx.kind == "asterisk" else pbx.s(30))
        call = await rig.call_id(number)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"  # linear: 1001 would have been first
        assert not rig.of(f.AgentOffered, call_id=call, agent="1001")


async def test_waiting_callers_hear_their_position(pbx):
    rig = pbx.rig(queues={"support": queue(pbx, announce_frequency=pbx.s(2))}, agents={"1001": agent(pbx, "1001")})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        calls = []
        for _ in range(2):
            number = await rig.customer("support", patience=12 if pbx.kind == "asterisk" else pbx.s(60))
            calls.append(await rig.call_id(number))
            await rig.fact(f.CallerEnqueued, call_id=calls[-1])
        second = rig.of(f.CallStarted, call_id=calls[1])[0].leg_id
        await pbx.wait(lambda: 2 in rig.announced(second), "position 2 announced to the second caller", timeout=15)
        rig.control("agent_unpause", "1001")
        first = await rig.fact(f.CallerConnected)
        assert first.call_id == calls[0]
        # once the first caller is taken, the second one moves up to position 1
        await pbx.wait(lambda: rig.announced(second)[-1:] == [1], "second caller told it is next", timeout=15)
        assert set(rig.announced(second)) == {1, 2}


def patience(pbx, asterisk: float, fake: float) -> float:
    """A customer's patience: whole seconds on Asterisk (Wait(<n>)), and on
    the fake a value with headroom for its scheduling jitter."""
    return asterisk if pbx.kind == "asterisk" else pbx.s(fake)


async def test_no_agents_then_overflow(pbx):
    queues = {"sales": queue(pbx, max_wait=pbx.s(2), overflow={"queue": "support"}), "support": queue(pbx)}
    rig = pbx.rig(queues=queues, agents={"1001": agent(pbx, "1001")}, login=False)
    async with rig:
        number = await rig.customer("sales", patience=patience(pbx, 10, 80))
        call = await rig.call_id(number)
        entered = await rig.fact(f.CallerEnqueued, call_id=call, queue="sales")
        timed_out = await rig.fact(f.CallerTimedOut, call_id=call)
        assert timed_out.queue == "sales" and timed_out.overflow_to == "support"
        assert timed_out.at - entered.at >= pbx.s(2) * 0.95  # not before max_wait
        await rig.fact(f.CallerEnqueued, call_id=call, queue="support")
        assert not rig.of(f.CallEnded, call_id=call)  # still there, waiting in support
        rig.control("agent_login", "1001")
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.queue == "support" and connected.agent == "1001"


async def test_priority_caller_jumps_ahead(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)}, agents={"1001": agent(pbx, "1001")})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        first = await rig.customer("support", patience=patience(pbx, 10, 80))
        first_call = await rig.call_id(first)
        assert (await rig.fact(f.CallerEnqueued, call_id=first_call)).priority == 0
        vip = await rig.customer("support", patience=patience(pbx, 10, 80), priority=10)
        vip_call = await rig.call_id(vip)
        enq = await rig.fact(f.CallerEnqueued, call_id=vip_call)
        assert enq.priority == 10 and enq.position == 1
        assert [w["call_id"] for w in rig.runtime.center.acd.waiting_view()] == [vip_call, first_call]
        rig.control("agent_unpause", "1001")
        connected = await rig.fact(f.CallerConnected)
        assert connected.call_id == vip_call


async def test_skills_requirement_relaxes_while_the_caller_waits(pbx):
    queues = {"sales": queue(pbx, strategy="skills", skills={"sales": 8},
                             skill_relax=[{"after": pbx.s(3), "min_level_delta": -4}])}
    agents = {"1001": agent(pbx, "1001", queues=["sales"], skills={"sales": 5})}
    rig = pbx.rig(queues=queues, agents=agents)
    async with rig:
        number = await rig.customer("sales", patience=patience(pbx, 10, 80))
        call = await rig.call_id(number)
        enq = await rig.fact(f.CallerEnqueued, call_id=call)
        offered = await rig.fact(f.AgentOffered, call_id=call)
        assert offered.agent == "1001"
        assert offered.at - enq.at >= pbx.s(3) * 0.97  # the sales-5 agent is not good enough before
        await rig.fact(f.CallerConnected, call_id=call)


async def test_wrapup_holds_across_two_queues(pbx):
    queues = {"support": queue(pbx, wrapup_time=pbx.s(4)), "sales": queue(pbx, wrapup_time=0)}
    agents = {"1001": agent(pbx, "1001", queues=["support", "sales"])}
    rig = pbx.rig(queues=queues, agents=agents)
    async with rig:
        first = await rig.customer("support", patience=patience(pbx, 3, 10))
        first_call = await rig.call_id(first)
        await rig.fact(f.CallerConnected, call_id=first_call)
        done = await rig.fact(f.CallCompleted, call_id=first_call)
        await rig.fact(f.AgentStateChanged, agent="1001", state="wrap-up")
        second = await rig.customer("sales", patience=patience(pbx, 8, 12))
        second_call = await rig.call_id(second)
        offered = await rig.fact(f.AgentOffered, call_id=second_call)
        # support's wrap-up holds while the agent takes sales calls too
        assert offered.agent == "1001"
        assert offered.at - done.at >= pbx.s(4) * 0.97
        # sales has no wrap-up of its own: once that call ends the agent is free
        await rig.fact(f.CallCompleted, call_id=second_call)
        await pbx.wait(lambda: not rig.agent_leg_up("1001"), "agent leg hung up")
        await pbx.wait(lambda: rig.agent_state("1001") == "available", "agent available without wrap-up")


async def test_agent_paused_while_ringing_is_cancelled_and_the_next_agent_rung(pbx):
    rig = pbx.rig(queues={"support": queue(pbx, ring=20)},
                  agents={"2001": agent(pbx, "2001"), "1002": agent(pbx, "1002")})
    async with rig:
        rig.control("agent_pause", "1002", "setup")
        number = await rig.customer("support", patience=patience(pbx, 10, 80))
        call = await rig.call_id(number)
        offered = await rig.fact(f.AgentOffered, call_id=call, agent="2001")
        await pbx.wait(lambda: rig.agent_leg_up("2001"), "2001 ringing")
        rig.control("agent_unpause", "1002")
        rig.control("agent_pause", "2001", "break")
        # cancelled at once, not left to ring for the 20 s ring time
        await pbx.wait(lambda: not rig.agent_leg_up("2001"), "2001's leg cancelled", timeout=max(pbx.s(5), 1.0))
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"
        assert connected.at - offered.at < pbx.s(10)
        assert rig.agent_state("2001") == "paused"


async def test_waiting_callers_keep_their_place_across_a_callcenterd_restart(pbx):
    rig = pbx.rig(queues={"support": queue(pbx)}, agents={"1001": agent(pbx, "1001")})
    async with rig:
        rig.control("agent_pause", "1001", "training")
        calls = []
        for _ in range(3):
            number = await rig.customer("support", patience=patience(pbx, 15, 150))
            calls.append(await rig.call_id(number))
            await rig.fact(f.CallerEnqueued, call_id=calls[-1])
            leg = rig.of(f.CallStarted, call_id=calls[-1])[0].leg_id
            await pbx.wait(lambda leg=leg: rig.held(leg), "caller on hold in the PBX")
        before = rig.runtime.center.acd.waiting_view()
        assert [w["call_id"] for w in before] == calls

        await rig.restart_callcenterd()
        acd = rig.runtime.center.acd
        await pbx.wait(lambda: len(acd.waiting_view()) == 3, "callers re-adopted", timeout=15)
        after = acd.waiting_view()
        assert [w["call_id"] for w in after] == calls
        assert [w["position"] for w in after] == [1, 2, 3]
        for b, a in zip(before, after):
            assert abs(a["enqueued_at"] - b["enqueued_at"]) < 0.002, (b, a)
        assert all(rig.of(f.CallerEnqueued, call_id=c, readopted=True) for c in calls)
        assert not rig.of(f.CallEnded)  # nobody was lost
        # the agent's login and pause came back from the store
        assert rig.agent_state("1001") == "paused"
        rig.control("agent_unpause", "1001")
        connected = await rig.fact(f.CallerConnected)
        assert connected.call_id == calls[0] and connected.agent == "1001"
