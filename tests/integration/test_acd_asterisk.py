"""The inbound ACD end to end on the real sandbox Asterisk.

Every test runs callcenterd in-process (wiring.build) against the sandbox,
places Local-channel customers through a second AMI session, and checks
what callcenterd decided (its facts), what Asterisk did (channels, CDR) and
what was written (journeys, queue_log).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from acd_rig import AcdRig, wait_for
from callcenterd.core import facts as f

pytestmark = pytest.mark.asterisk

QUEUE = {"strategy": "linear", "ring_time": 4, "retry_delay": 1, "wrapup_time": 0, "announce_frequency": 0}


def agent(device: str, *queues: str, **extra) -> dict:
    return {"device": device, "queues": list(queues or ["support"]), **extra}


async def test_answered_call_is_bridged_and_recorded(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE}, agents={"1001": agent("Local/1001@agents/n")})
    async with rig:
        number = await rig.customer("support", patience=5)
        call = await rig.call_id(number)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1001"
        assert rig.agent_state("1001") == "on-call"
        completed = await rig.fact(f.CallCompleted, call_id=call)
        assert completed.by == "caller"
        ended = await rig.fact(f.CallEnded, call_id=call)
        assert ended.outcome == "answered"
        await wait_for(lambda: rig.agent_state("1001") == "available", "agent available again")
        agent_leg = connected.agent_leg_id
    journeys = [j for j in rig.journeys() if j["call_id"] == call]
    assert len(journeys) == 1, journeys
    journey = journeys[0]
    assert journey["outcome"] == "answered"
    assert journey["agent"] == "1001"
    # Asterisk's own CDR (cdr_csv Master.csv, loguniqueid=yes: column 16).
    # The agent's Local ;2 half carries OtherChannelId = <our leg id>-2; its
    # billsec is the agent's talk time.  The caller's row (uniqueid = the
    # caller leg) covers the whole call.  Both agree with the journey within 1 s.
    cdr = rig.master_csv()
    # (the ;1 half, bridged by AMI, may also have rows -- one with billsec 0
    # for its time in [callcenterd-agent] -- and the row order in Master.csv
    # follows CDR finalisation, so pick the ;2 half's row explicitly)
    row = max((r for r in cdr if r[16] == agent_leg + "-2"), key=lambda r: int(r[13]))
    billsec = int(row[13])
    assert abs(journey["talk_s"] - billsec) <= 1, (journey, row)
    caller_leg = rig.of(f.CallStarted, call_id=call)[0].leg_id
    caller_row = next(r for r in cdr if r[16] == caller_leg)
    assert abs(journey["duration_s"] - int(caller_row[12])) <= 1, (journey, caller_row)
    events = [r[4] for r in rig.queue_log() if r[1] == call]
    assert events[:1] == ["ENTERQUEUE"] and "CONNECT" in events and events[-1] == "COMPLETECALLER"
    connect = next(r for r in rig.queue_log() if r[1] == call and r[4] == "CONNECT")
    complete = next(r for r in rig.queue_log() if r[1] == call and r[4] == "COMPLETECALLER")
    assert connect[3] == "1001"
    assert abs(int(complete[6]) - billsec) <= 1  # COMPLETECALLER|holdtime|calltime|origposition


async def test_caller_hangs_up_while_agent_rings_cancels_the_agent_leg(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": {**QUEUE, "ring_time": 30}},
                 agents={"2001": agent("Local/2001@agents/n")})
    async with rig:
        number = await rig.customer("support", patience=3)
        call = await rig.call_id(number)
        offered = await rig.fact(f.AgentOffered, call_id=call)
        await wait_for(lambda: "2001@agents" in rig.channels(), "agent 2001 ringing in Asterisk")
        abandoned = await rig.fact(f.CallerAbandoned, call_id=call)
        assert abandoned.queue == "support"
        # the ringing agent leg is cancelled at once, not left to ring 30 s
        t0 = time.monotonic()
        await wait_for(lambda: "2001@agents" not in rig.channels(), "agent leg gone", timeout=5)
        assert time.monotonic() - t0 < 5
        ring = await rig.fact(f.AgentRingNoAnswer, call_id=call)
        assert ring.agent == "2001" and ring.reason == "caller-hangup"
        assert offered.leg_id
        await wait_for(lambda: rig.agent_state("2001") == "available", "agent available")
        assert (await rig.fact(f.CallEnded, call_id=call)).outcome == "abandoned"
    assert [r[4] for r in rig.queue_log() if r[1] == call][-1] == "ABANDON"


async def test_no_answer_then_next_agent_then_auto_pause(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": {**QUEUE, "ring_time": 2}},
                 agents={"2001": agent("Local/2001@agents/n", max_missed=1),
                         "1002": agent("Local/1002@agents/n")})
    async with rig:
        number = await rig.customer("support", patience=12)
        call = await rig.call_id(number)
        missed = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent="2001")
        assert missed.reason == "no-answer" and missed.ring_ms >= 1500
        paused = await rig.fact(f.AgentPaused, agent="2001")
        assert paused.reason == "no-answer"
        assert rig.agent_state("2001") == "paused"
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"
    assert "RINGNOANSWER" in [r[4] for r in rig.queue_log() if r[1] == call]


async def test_busy_agent_is_skipped(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE},
                 agents={"2002": agent("Local/2002@agents/n"), "1002": agent("Local/1002@agents/n")})
    async with rig:
        number = await rig.customer("support", patience=8)
        call = await rig.call_id(number)
        busy = await rig.fact(f.AgentRingNoAnswer, call_id=call, agent="2002")
        assert busy.reason == "busy"
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"


async def test_device_in_use_elsewhere_is_not_rung(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE},
                 agents={"1001": agent("Local/1001@agents/n"), "1002": agent("Local/1002@agents/n")})
    async with rig:
        # agent 1001's phone is busy with a call callcenterd did not make
        await rig.traffic.action("Originate", [("Channel", "Local/1001@agents/n"), ("Application", "Wait"),
                                               ("Data", "15"), ("Async", "true")])
        await wait_for(lambda: "1001@agents" in rig.channels(), "1001 busy on the outside call")
        await asyncio.sleep(1)  # let its DeviceStateChange reach callcenterd
        number = await rig.customer("support", patience=6)
        call = await rig.call_id(number)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"
        assert not rig.of(f.AgentOffered, call_id=call, agent="1001")


async def test_no_agents_then_overflow(asterisk, tmp_path):
    queues = {
        "sales": {**QUEUE, "max_wait": 2, "overflow": {"queue": "support"}},
        "support": QUEUE,
    }
    rig = AcdRig(asterisk, tmp_path, queues=queues, agents={"1001": agent("Local/1001@agents/n", "support")})
    async with rig:
        rig.control("agent_logout", "1001")
        number = await rig.customer("sales", patience=15)
        call = await rig.call_id(number)
        timed_out = await rig.fact(f.CallerTimedOut, call_id=call)
        assert timed_out.queue == "sales" and timed_out.overflow_to == "support"
        await rig.fact(f.CallerEnqueued, call_id=call, queue="support")
        rig.control("agent_login", "1001")
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.queue == "support"
    assert "EXITWITHTIMEOUT" in [r[4] for r in rig.queue_log() if r[1] == call]


async def test_join_empty_no_sends_the_caller_to_the_overflow_destination(asterisk, tmp_path):
    queues = {"support": {**QUEUE, "join_empty": "no", "overflow": {"destination": "agents,1003,1"}}}
    rig = AcdRig(asterisk, tmp_path, queues=queues, agents={"1001": agent("Local/1001@agents/n")}, login=False)
    async with rig:
        number = await rig.customer("support", patience=6)
        call = await rig.call_id(number)
        rejected = await rig.fact(f.CallerRejected, call_id=call)
        assert rejected.reason == "joinempty"
        # the caller really went to the dialplan destination (agents,1003)
        await wait_for(lambda: "1003" in rig.channels(), "caller redirected to agents,1003")


async def test_priority_caller_jumps_ahead(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE}, agents={"1001": agent("Local/1001@agents/n")})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        first = await rig.customer("support", patience=20)
        first_call = await rig.call_id(first)
        await rig.fact(f.CallerEnqueued, call_id=first_call)
        vip = await rig.customer("support", patience=20, priority=10)
        vip_call = await rig.call_id(vip)
        enq = await rig.fact(f.CallerEnqueued, call_id=vip_call)
        assert enq.priority == 10 and enq.position == 1
        rig.control("agent_unpause", "1001")
        connected = await rig.fact(f.CallerConnected)
        assert connected.call_id == vip_call


async def test_skills_requirement_relaxes_while_the_caller_waits(asterisk, tmp_path):
    queues = {"sales": {**QUEUE, "strategy": "skills", "skills": {"sales": 8},
                        "skill_relax": [{"after": 3, "min_level_delta": -4}]}}
    agents = {"1001": agent("Local/1001@agents/n", "sales", skills={"sales": 5})}
    rig = AcdRig(asterisk, tmp_path, queues=queues, agents=agents)
    async with rig:
        number = await rig.customer("sales", patience=15)
        call = await rig.call_id(number)
        enq = await rig.fact(f.CallerEnqueued, call_id=call)
        offered = await rig.fact(f.AgentOffered, call_id=call)
        assert offered.at - enq.at >= 2.9  # not before the relaxation step
        assert offered.agent == "1001"
        await rig.fact(f.CallerConnected, call_id=call)


async def test_wrapup_holds_across_two_queues(asterisk, tmp_path):
    queues = {"support": {**QUEUE, "wrapup_time": 4}, "sales": {**QUEUE, "wrapup_time": 0}}
    agents = {"1001": agent("Local/1001@agents/n", "support", "sales")}
    rig = AcdRig(asterisk, tmp_path, queues=queues, agents=agents)
    async with rig:
        first = await rig.customer("support", patience=3)
        first_call = await rig.call_id(first)
        done = await rig.fact(f.CallCompleted, call_id=first_call)
        second = await rig.customer("sales", patience=15)
        second_call = await rig.call_id(second)
        offered = await rig.fact(f.AgentOffered, call_id=second_call)
        # support's 4 s wrap-up holds for sales too
        assert offered.at - done.at >= 3.9


async def test_agent_paused_while_ringing(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": {**QUEUE, "ring_time": 20}},
                 agents={"2001": agent("Local/2001@agents/n"), "1002": agent("Local/1002@agents/n")})
    async with rig:
        rig.control("agent_pause", "1002", "setup")
        number = await rig.customer("support", patience=15)
        call = await rig.call_id(number)
        await rig.fact(f.AgentOffered, call_id=call, agent="2001")
        await wait_for(lambda: "2001@agents" in rig.channels(), "2001 ringing")
        rig.control("agent_unpause", "1002")
        rig.control("agent_pause", "2001", "break")
        await wait_for(lambda: "2001@agents" not in rig.channels(), "2001's leg cancelled", timeout=5)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        assert connected.agent == "1002"
        assert rig.agent_state("2001") == "paused"


async def test_pbx_restart_closes_journeys_and_keeps_agents_logged_in(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE}, agents={"1001": agent("Local/1001@agents/n")})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        number = await rig.customer("support", patience=60)
        call = await rig.call_id(number)
        await rig.fact(f.CallerEnqueued, call_id=call)
        await asyncio.to_thread(asterisk.restart_core)
        ended = await rig.fact(f.CallEnded, call_id=call, timeout=60)
        assert ended.outcome == "pbx-restart"
        assert rig.agent_state("1001") == "paused"  # still logged in, still paused
        # the traffic session died with the PBX; reconnect it for the rig's stop
        await rig.traffic.close()
        rig.traffic = None


async def test_waiting_callers_hear_their_position(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": {**QUEUE, "announce_frequency": 2}},
                 agents={"1001": agent("Local/1001@agents/n")})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        calls = []
        for _ in range(2):
            number = await rig.customer("support", patience=12)
            calls.append(await rig.call_id(number))
            await rig.fact(f.CallerEnqueued, call_id=calls[-1])
        second_leg = rig.of(f.CallStarted, call_id=calls[1])[0].leg_id
        channel = rig.runtime.drivers["sandbox"]._translator.channel_name(second_leg)
        console = asterisk.log_path
        # [callcenterd-hold] says "there are <n> calls waiting" for position 2
        await wait_for(lambda: f'SayNumber("{channel}", "2")' in console.read_text(errors="replace"),
                       "position 2 announced to the second caller", timeout=15, poll=0.5)
        rig.control("agent_unpause", "1001")
        first = await rig.fact(f.CallerConnected)
        assert first.call_id == calls[0]
        # once the first caller is taken, the second one moves up to position 1
        await wait_for(lambda: f'Playback("{channel}", "queue-youarenext")' in console.read_text(errors="replace"),
                       "second caller told it is next", timeout=15, poll=0.5)
