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
