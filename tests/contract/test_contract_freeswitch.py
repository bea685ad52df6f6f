"""FreeSWITCH-only scenarios: behaviour of a real FreeSWITCH 1.10.12 that
Asterisk does not have (the 2026-11-29 captures), run through the whole
daemon (wiring.build -> CallCenter + Acd) against the fake switch."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from callcenterd.core import facts as f
from callcenterd.pbx.api import DeviceState, DeviceStatus, LegHungUp, LiveAgentLeg, PbxUp
from callcenterd.service import CallCenter
from tests.contract.conftest import Pbx, start_fresh_runtime
from tests.contract.fs_switch import Chan
from tests.contract.test_contract_acd import agent, queue


@pytest.fixture
def fs(tmp_path) -> Pbx:
    return Pbx("freeswitch", None, tmp_path)


async def _stop_callcenterd(rig) -> None:
    await rig.runtime.stop()  # the fake keeps every channel as it is
    await rig.runtime.drivers["fs"].close()


@pytest.mark.parametrize("job_delay, job", [(5.0, "-ERR ORIGINATOR_CANCEL"), (0.0, "+OK")])
async def test_the_call_goes_on_whichever_way_the_originate_job_ends(fs, job_delay, job):
    """esl-bridge-before-originate-job: answer, uuid_bridge, then the job's
    -ERR ORIGINATOR_CANCEL; the agent leg is up and bridged all the same.
    (esl-bridge-after-originate-job: the job's +OK first.)"""
    rig = fs.rig(queues={"support": queue(fs)}, agents={"4001": agent(fs, "4001")})
    rig.switch.job_delay = job_delay
    async with rig:
        number = await rig.customer("support", patience=fs.s(80))
        call = await rig.call_id(number)
        connected = await rig.fact(f.CallerConnected, call_id=call)
        completed = await rig.fact(f.CallCompleted, call_id=call)
        assert any(body.startswith(job) for _, body in rig.switch.job_results)
        # the agent talked until it hung up (4001 talks talk_time), the caller was not dropped
        assert completed.by == "agent"
        assert completed.at - connected.at >= rig.switch.talk_time * 0.8
        assert (await rig.fact(f.CallEnded, call_id=call)).outcome == "answered"


async def test_a_caller_is_not_left_on_hold_when_its_agent_call_ends_while_callcenterd_is_down(fs):
    """esl-outbound-after-bridge-ends-*: the caller runs the dialplan after
    ``socket`` when the bridge ends; nobody is there to hang it up."""
    rig = fs.rig(queues={"support": queue(fs)}, agents={"1001": agent(fs, "1001")})
    async with rig:
        number = await rig.customer("support", patience=fs.s(300))
        call = await rig.call_id(number)
        await rig.fact(f.CallerConnected, call_id=call)
        caller = rig.switch.channels[rig.of(f.CallStarted, call_id=call)[0].leg_id]
        await _stop_callcenterd(rig)
        agent_leg = next(c for c in rig.switch.alive() if c.name.startswith("loopback/1001-"))
        rig.switch.hangup(agent_leg, "NORMAL_CLEARING")  # the agent hangs up while we are away
        await fs.wait(lambda: caller.gone, "caller hung up after its agent call", timeout=2)
        assert caller.hung_up_by_dialplan == "NORMAL_CLEARING" and caller.vars["cc_after_socket"] == "1"
        await start_fresh_runtime(rig, "fs")
        assert rig.switch.alive() == []


@pytest.fixture
def pbx_events(monkeypatch) -> list:
    """Every PBX event the drivers emit to the service, in order."""
    seen: list = []
    original = CallCenter.emit

    def emit(self, event):
        seen.append(event)
        original(self, event)

    monkeypatch.setattr(CallCenter, "emit", emit)
    return seen


async def _agent_leg_answered_while_down(fs, pbx_events):
    """callcenterd dies; an agent leg it originated answers meanwhile; a
    caller arrives (the dialplan holds it); callcenterd starts again."""
    rig = fs.rig(queues={"support": queue(fs, ring=20)}, agents={"1001": agent(fs, "1001")})
    await rig.start()
    await _stop_callcenterd(rig)
    leg = str(uuidlib.uuid4())
    orphan = Chan(leg, "loopback/1001-a", "5550001", "Customer", "1001", answered=True,
                  vars={"cc_agent": "1001", "cc_call_id": "call-before", "origination_uuid": leg})
    rig.switch.channels[leg] = orphan
    await rig.customer("support", patience=fs.s(300))  # callcenterd down: held by the dialplan
    pbx_events.clear()
    await start_fresh_runtime(rig, "fs")
    return rig, orphan


async def test_pbx_up_carries_the_agent_leg_answered_while_callcenterd_was_down(fs, pbx_events):
    """Defect 4, the driver's part: the first PbxUp already has the device
    state and the live agent leg, and no DeviceState trails it."""
    rig, orphan = await _agent_leg_answered_while_down(fs, pbx_events)
    try:
        up = next(e for e in pbx_events if isinstance(e, PbxUp))
        assert pbx_events[0] is up
        assert up.snapshot.devices["loopback/1001"] is DeviceStatus.INUSE
        assert list(up.snapshot.agent_legs) == [LiveAgentLeg(orphan.uuid, "1001", "call-before", "")]
        (waiting,) = up.snapshot.waiting
        assert waiting.queue == "support"
        # no stale replay of the state after PbxUp (the core hangs the orphan
        # up and may ring the agent anew: those later states are live ones)
        before_orphan_ends = []
        for e in pbx_events[1:]:
            if isinstance(e, LegHungUp) and e.leg_id == orphan.uuid:
                break
            before_orphan_ends.append(e)
        assert not [e for e in before_orphan_ends if isinstance(e, DeviceState) and e.device == "loopback/1001"
                    and e.status is DeviceStatus.INUSE]
    finally:
        await rig.stop()


async def test_an_agent_leg_answered_while_callcenterd_was_down_is_not_rung_twice(fs, pbx_events):
    rig, orphan = await _agent_leg_answered_while_down(fs, pbx_events)
    try:
        await fs.wait(lambda: orphan.gone, "orphan agent leg hung up", timeout=3)
        second = [v for v, endpoint in rig.switch.originates if endpoint.startswith("loopback/1001/")]
        # whatever was dialled to 1001 came after the orphan was gone
        assert (orphan.uuid, "NORMAL_CLEARING") in rig.switch.killed
        assert all(v["origination_uuid"] != orphan.uuid for v in second)
        connected = await rig.fact(f.CallerConnected)
        assert connected.agent == "1001"
    finally:
        await rig.stop()


async def test_a_graceful_freeswitch_shutdown_is_not_counted_as_abandons(fs):
    rig = fs.rig(queues={"support": queue(fs)}, agents={"1001": agent(fs, "1001")}, login=False)
    async with rig:
        number = await rig.customer("support", patience=fs.s(300))
        call = await rig.call_id(number)
        await rig.fact(f.CallerEnqueued, call_id=call)
        rig.switch.shutdown()
        ended = await rig.fact(f.CallEnded, call_id=call)
        assert ended.outcome == "pbx-shutdown"
        assert not rig.of(f.CallerAbandoned)  # so no queue_log ABANDON


async def test_a_caller_the_dialplan_held_while_callcenterd_was_down_keeps_its_name_and_enqueue_time(fs):
    rig = fs.rig(queues={"support": queue(fs)}, agents={"1001": agent(fs, "1001")}, login=False)
    await rig.start()
    try:
        await _stop_callcenterd(rig)
        chan = await rig.switch.customer(rig.outbound_port, "support", fs.s(300), "5550042", "Dora")
        assert chan.vars["cc_queue"] == "support" and "cc_moh_playing" in chan.vars  # held by callcenterd.xml
        stamped = float(chan.vars["cc_enqueued"])
        await start_fresh_runtime(rig, "fs")
        enq = await rig.fact(f.CallerEnqueued, call_id=chan.uuid)
        assert enq.at == stamped and enq.readopted is False  # so queue_log gets its ENTERQUEUE
        (started,) = rig.of(f.CallStarted, call_id=chan.uuid)
        assert (started.caller_name, started.caller_number, started.at) == ("Dora", "5550042", stamped)
    finally:
        await rig.stop()
