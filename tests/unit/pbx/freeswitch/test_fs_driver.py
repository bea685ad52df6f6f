"""FreeswitchDriver against the capture-based fake FreeSWITCH: commands on
the wire, hostile values, resync, and faults (FreeSWITCH-only)."""

from __future__ import annotations

import asyncio
import re

import pytest

from callcenterd.pbx.api import (
    CallArrived,
    CallerId,
    CommandFailed,
    ConnectionLost,
    DeviceState,
    DeviceStatus,
    HoldSpec,
    LegAnswered,
    LegHungUp,
    LiveAgentLeg,
    OriginateRequest,
    Outcome,
    PbxDown,
    PbxUp,
    UnsafeValue,
    WaitingCall,
)
from callcenterd.pbx.freeswitch.driver import ANNOUNCE_DUE, FreeswitchDriver, uptime_seconds
from callcenterd.protocols.esl.outbound import EslOutboundServer
from callcenterd.protocols.esl.supervisor import EslSupervisor, SupervisorState
from tests.contract.fs_switch import FsSwitch
from tests.fakes.esl_server import captured_api_replies, fs_separate_string

HOSTILE = [
    "O'Brien, Jr.",
    "a,b,c=d",
    "x',evil=1,y='",
    "^^:a:b",
    '"double" \\back',
    "{balanced} [x] <y>",
    " &park() ",
    "ünïcödé ☎",
]


class Rig:
    def __init__(self, switch: FsSwitch, *, decision_timeout: float = 0.5, command_timeout: float = 1.0,
                 up_timeout: float = 3.0) -> None:
        self.switch = switch
        self.events: list = []
        self.driver = FreeswitchDriver("fs", self.events.append, decision_timeout=decision_timeout)
        self.command_timeout = command_timeout
        self.up_timeout = up_timeout
        self.sup: EslSupervisor | None = None
        self.server: EslOutboundServer | None = None

    async def start(self) -> "Rig":
        port = await self.switch.start()
        self.sup = EslSupervisor("127.0.0.1", port, "ClueCon", on_connected=self.driver.on_esl_connected,
                                 on_disconnected=self.driver.on_esl_disconnected, backoff_initial=0.05,
                                 command_timeout=self.command_timeout, keepalive_interval=0)
        self.sup.start()
        self.server = EslOutboundServer(self.driver.on_outbound_call, "127.0.0.1", 0)
        await self.server.start()
        await self.wait(lambda: self.driver.up, self.up_timeout)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self.sup is not None:
            await self.sup.stop()
        await self.driver.close()
        await self.switch.close()

    async def wait(self, pred, timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.01)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def rig():
    r = await Rig(FsSwitch()).start()
    try:
        yield r
    finally:
        await r.stop()


def _request(leg: str, ext: str, cid: CallerId = CallerId("15551230000", "Test Caller"), **kw) -> OriginateRequest:
    return OriginateRequest(leg_id=leg, endpoint=f"loopback/{ext}/agents", caller_id=cid, ring_timeout=5,
                            call_id="call-1", variables={"CC_AGENT": "1001"}, **kw)


async def test_subscribes_and_reports_pbx_up(rig):
    cmds = rig.switch.fake.commands()
    assert any(c.startswith("event json ") and "CHANNEL_HANGUP_COMPLETE" in c and "CHANNEL_ANSWER" in c for c in cmds)
    (up,) = rig.of(PbxUp)
    assert up.node == "fs" and up.snapshot.restarted is False and up.snapshot.legs == frozenset()


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_caller_id_arrives_as_one_literal_value(rig, name):
    await rig.driver.originate(_request("leg-h", "1001", CallerId("+1 555 'x'", name)))
    await rig.wait(lambda: rig.of(LegAnswered))
    variables, endpoint = rig.switch.originates[-1]
    assert endpoint == "loopback/1001/agents"
    assert variables["origination_caller_id_name"] == name
    assert variables["origination_caller_id_number"] == "+1 555 'x'"
    assert variables["origination_uuid"] == "leg-h"
    assert variables["cc_call_id"] == "call-1" and variables["cc_agent"] == "1001"
    raw = next(c for c in rig.switch.fake.received if c.startswith("bgapi originate"))
    assert fs_separate_string(raw.split("\n", 1)[0][len("bgapi originate "):], " ")[1:] == ["&park()"]


async def test_expansion_in_a_caller_name_is_dropped_not_dialled(rig):
    await rig.driver.originate(_request("leg-x", "1001", CallerId("1", "${system(rm -rf /)}")))
    variables, _ = rig.switch.originates[-1]
    assert "${" not in variables["origination_caller_id_name"]


async def test_newlines_and_injection_are_refused(rig):
    with pytest.raises(UnsafeValue):
        CallerId("1", "evil\nEvent-Name: x")
    with pytest.raises(UnsafeValue):
        await rig.driver.originate(OriginateRequest("leg-n", "loopback/1/agents", variables={"a": "${x}"}))
    with pytest.raises(UnsafeValue):
        await rig.driver.originate(OriginateRequest("leg-s", "loopback/1 &park()"))
    with pytest.raises(UnsafeValue):
        await rig.driver.set_var("some-leg", "cc_x", "${hostname}")
    with pytest.raises(UnsafeValue):
        await rig.driver.redirect("some-leg", "ctx,1000 XML evil")
    assert not any(c.startswith("bgapi originate") for c in rig.switch.fake.received)


async def test_busy_ringing_and_cancel_outcomes(rig):
    await rig.driver.originate(_request("leg-b", "2002"))
    await rig.driver.originate(_request("leg-r", "2001"))
    await rig.wait(lambda: rig.switch.ext_up("2001"))
    await rig.driver.hangup("leg-r", 16)
    await rig.wait(lambda: len(rig.of(LegHungUp)) == 2)
    outcomes = {e.leg_id: e.outcome for e in rig.of(LegHungUp)}
    assert outcomes == {"leg-b": Outcome.BUSY, "leg-r": Outcome.CANCELLED}
    assert ("leg-r", "NORMAL_CLEARING") in rig.switch.killed
    await asyncio.sleep(0.05)
    assert len(rig.of(LegHungUp)) == 2  # the late job results were swallowed


async def test_unknown_technology_fails_from_the_job_alone(rig):
    await rig.driver.originate(OriginateRequest("leg-u", "nosuchtech/1", ring_timeout=5))
    await rig.wait(lambda: rig.of(LegHungUp))
    assert rig.of(LegHungUp) == [LegHungUp("leg-u", Outcome.FAILED, 66, "CHAN_NOT_IMPLEMENTED")]


async def test_inbound_call_is_held_stamped_and_released_then_readopted(rig):
    chan = await rig.switch.customer(rig.server.port, "support", 30, "15551239999", "Ann O'Neil, \"VIP\"")
    await rig.wait(lambda: rig.of(CallArrived))
    (arrived,) = rig.of(CallArrived)
    assert arrived.leg_id == chan.uuid
    assert arrived.caller_id == CallerId("15551239999", "Ann O'Neil, \"VIP\"")
    assert arrived.dnis == "support" and arrived.variables["queue"] == "support"
    wc = WaitingCall(chan.uuid, "support", 1700000000.5, priority=3, call_id="call-7", skills={"fr": 5})
    await rig.driver.hold(wc, HoldSpec(position=2))
    await rig.wait(lambda: chan.socket.released)
    assert chan.vars["cc_queue"] == "support" and chan.vars["cc_enqueued"] == "1700000000.500"
    assert chan.vars["cc_moh_playing"] == "local_stream://moh"
    assert chan.answered and not chan.gone  # parked in FreeSWITCH, socket closed
    # a restarted daemon re-adopts it from the stamps
    snap = await rig.driver.snapshot()
    (w,) = snap.waiting
    assert (w.leg_id, w.queue, w.enqueued_at, w.priority, w.call_id, w.skills) == (
        chan.uuid, "support", 1700000000.5, 3, "call-7", {"fr": 5})
    # once bridged it is no longer waiting
    await rig.driver.originate(_request("leg-a", "1001"))
    await rig.wait(lambda: rig.of(LegAnswered))
    await rig.driver.bridge(chan.uuid, "leg-a")
    assert (await rig.driver.snapshot()).waiting == ()
    assert await rig.driver.get_var(chan.uuid, "cc_connected") == "1"
    assert await rig.driver.get_var(chan.uuid, "nothing_here") is None


async def test_no_decision_holds_the_caller_by_itself(rig):
    chan = await rig.switch.customer(rig.server.port, "sales", 30, "1555", "X")
    await rig.wait(lambda: chan.socket.released, timeout=4)
    assert chan.vars["cc_queue"] == "sales" and chan.vars["cc_call_id"] == chan.uuid
    assert "cc_moh_playing" in chan.vars and not chan.gone


async def test_caller_hanging_up_reports_legs_hung_up(rig):
    chan = await rig.switch.customer(rig.server.port, "support", 0.2, "1555", "X")
    await rig.wait(lambda: rig.of(LegHungUp))
    assert rig.of(LegHungUp)[0].leg_id == chan.uuid


async def test_uuid_kill_of_a_gone_channel_is_not_an_error(rig):
    await rig.driver.hangup("00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandFailed):
        await rig.driver.bridge("nope-a", "nope-b")


async def test_restart_is_detected_by_core_uuid(rig):
    rig.switch.core_uuid = "11111111-2222-3333-4444-555555555555"
    assert (await rig.driver.snapshot()).restarted is True
    assert (await rig.driver.snapshot()).restarted is False


def test_uptime_parsed_from_captured_status():
    assert uptime_seconds(captured_api_replies()["status"].decode()) == pytest.approx(7.524)
    assert uptime_seconds("garbage") is None


# ------------------------------------------------------------------ faults
async def test_disconnect_notice_mid_call_then_resync_and_resubscribe(rig):
    await rig.driver.originate(_request("leg-r", "2001"))
    rig.switch.fake.disconnect_all()
    await rig.wait(lambda: rig.of(PbxDown))
    with pytest.raises(ConnectionLost):
        await rig.driver.originate(_request("leg-2", "1001"))
    await rig.wait(lambda: len(rig.of(PbxUp)) == 2)
    up = rig.of(PbxUp)[-1]
    assert "leg-r" in up.snapshot.legs and up.snapshot.restarted is False
    subs = [c for c in rig.switch.fake.commands() if c.startswith("event json CHANNEL_CREATE")]
    assert len(subs) == 2  # re-sent on the new connection, never by itself
    assert len([c for c in rig.switch.fake.commands() if c.startswith("bgapi originate")]) == 1


async def test_server_shutdown_with_calls_up(rig):
    chan = await rig.switch.customer(rig.server.port, "support", 30, "1555", "X")
    await rig.wait(lambda: rig.of(CallArrived))
    rig.switch.fake.shutdown()
    await rig.wait(lambda: rig.of(PbxDown))
    assert rig.of(PbxDown)[0].node == "fs"
    assert not rig.driver.up
    del chan


async def test_garbage_bytes_drop_the_session_and_it_comes_back(rig):
    rig.switch.fake.send_raw(b"\x00\xff not a header\n\n")
    await rig.wait(lambda: rig.of(PbxDown))
    await rig.wait(lambda: len(rig.of(PbxUp)) == 2)


async def test_rude_rejection_never_reports_up():
    switch = FsSwitch()
    switch.fake.rude_rejection = True
    r = Rig(switch, up_timeout=0.5)
    try:
        with pytest.raises(TimeoutError):
            await r.start()
        assert r.sup.state in (SupervisorState.LOGIN_FAILED, SupervisorState.CONNECTING)
        assert r.of(PbxUp) == []
    finally:
        await r.stop()


async def test_server_that_never_answers_times_out_instead_of_hanging():
    switch = FsSwitch()
    switch.fake.silent = True
    r = Rig(switch, command_timeout=0.2, up_timeout=1.6)  # each try: 0.2 s + 1 s polite exit
    try:
        with pytest.raises(TimeoutError):
            await r.start()
        assert r.of(PbxUp) == []
        assert switch.fake.connections >= 2  # dropped and retried
    finally:
        await r.stop()


async def test_commands_while_down_raise_connection_lost():
    driver = FreeswitchDriver("fs", lambda e: None)
    with pytest.raises(ConnectionLost):
        await driver.originate(_request("leg", "1001"))
    with pytest.raises(ConnectionLost):
        await driver.bridge("a", "b")


async def test_restart_is_detected_by_boot_time_when_core_uuid_is_unreadable():
    switch = FsSwitch()
    switch._api_global_getvar = lambda conn, args: b"-ERR no reply\n"  # as captured for an unset global
    now = [1000.0]
    r = Rig(switch)
    r.driver._clock = lambda: now[0]
    try:
        await r.start()  # captured status: up 7.5 s
        now[0] += 1.0
        assert (await r.driver.snapshot()).restarted is False  # same boot, 1 s later
        now[0] += 600.0  # the same "up 7 s" ten minutes later: it restarted
        assert (await r.driver.snapshot()).restarted is True
    finally:
        await r.stop()


# ----------------------------------------------------- position announcements
def _broadcast_lines(rig, uuid: str) -> list[str]:
    return [c for c in rig.switch.fake.commands() if c.startswith(f"api uuid_broadcast {uuid} ")]


async def _held_caller(rig, spec: HoldSpec):
    now = [1000.0]
    rig.driver._monotonic = lambda: now[0]
    chan = await rig.switch.customer(rig.server.port, "support", 30, "1555", "X")
    await rig.wait(lambda: rig.of(CallArrived))
    await rig.driver.hold(WaitingCall(chan.uuid, "support", 1700000000.0, call_id="call-1"), spec)
    await rig.wait(lambda: chan.socket.released)
    return chan, now


async def test_position_is_announced_once_per_period_over_the_music(rig):
    chan, now = await _held_caller(rig, HoldSpec(announce_every=30, position=2))
    u = chan.uuid
    # a refresh long before the period is up (re-adoption, position change) only stamps
    now[0] += 5
    await rig.driver.update_hold(u, HoldSpec(announce_every=30, position=2))
    assert chan.vars["cc_position"] == "2" and _broadcast_lines(rig, u) == []
    # the core's announce tick, one period after the hold
    now[0] += 25
    await rig.driver.update_hold(u, HoldSpec(announce_every=30, position=2))
    assert _broadcast_lines(rig, u) == [
        f"api uuid_broadcast {u} playback::ivr/ivr-you_are_number.wav aleg",
        f"api uuid_broadcast {u} 'say::en number pronounced 2' aleg",
        f"api uuid_broadcast {u} playback::ivr/ivr-in_line.wav aleg",
    ]
    # what FreeSWITCH gets once mod_commands split the line: one app::arg each, aleg
    assert [b[1:] for b in rig.switch.broadcasts] == [
        ("playback::ivr/ivr-you_are_number.wav", "aleg"),
        ("say::en number pronounced 2", "aleg"),
        ("playback::ivr/ivr-in_line.wav", "aleg"),
    ]
    # the position moves up right after: stamped, not announced again yet
    now[0] += 1
    await rig.driver.update_hold(u, HoldSpec(announce_every=30, position=1))
    assert chan.vars["cc_position"] == "1" and rig.switch.announced(u) == [2]
    # next tick (measured from the last announcement, with the core's jitter allowed)
    now[0] += 30 * ANNOUNCE_DUE
    await rig.driver.update_hold(u, HoldSpec(announce_every=30, position=1))
    assert rig.switch.announced(u) == [2, 1]
    # the music is never stopped or restarted around it (endless_playback resumes by itself)
    assert not any(c.startswith(("api uuid_break", "api uuid_broadcast " + u + " endless_playback"))
                   for c in rig.switch.fake.commands())


async def test_nothing_is_announced_when_announce_every_is_zero(rig):
    chan, now = await _held_caller(rig, HoldSpec(position=3))
    for position in (3, 2, 1):
        now[0] += 600
        await rig.driver.update_hold(chan.uuid, HoldSpec(announce_every=0, position=position))
    assert chan.vars["cc_position"] == "1" and chan.vars["cc_announce_every"] == "0"
    assert _broadcast_lines(rig, chan.uuid) == []


async def test_no_announcement_once_bridged_or_before_a_readopted_caller_waited_a_period(rig):
    chan, now = await _held_caller(rig, HoldSpec(announce_every=10, position=1))
    rig.driver._held.clear()  # as after our restart: only the snapshot knows the caller
    rig.driver._told_at.clear()
    (w,) = (await rig.driver.snapshot()).waiting
    assert w.leg_id == chan.uuid
    await rig.driver.update_hold(chan.uuid, HoldSpec(announce_every=10, position=1))  # the re-adoption refresh
    assert rig.switch.announced(chan.uuid) == []
    now[0] += 10
    await rig.driver.update_hold(chan.uuid, HoldSpec(announce_every=10, position=1))
    assert rig.switch.announced(chan.uuid) == [1]
    await rig.driver.originate(_request("leg-a", "1001"))
    await rig.wait(lambda: rig.of(LegAnswered))
    await rig.driver.bridge(chan.uuid, "leg-a")
    now[0] += 100
    await rig.driver.update_hold(chan.uuid, HoldSpec(announce_every=10, position=1))
    assert rig.switch.announced(chan.uuid) == [1]


def test_an_announcement_with_a_newline_is_refused():
    with pytest.raises(UnsafeValue):
        FreeswitchDriver("fs", lambda e: None, announce=("playback::x.wav\napi hupall",))


# ------------------------------------------------------------- device state
def _states(rig, device: str) -> list[DeviceStatus]:
    return [e.status for e in rig.of(DeviceState) if e.device == device]


async def test_outside_call_on_an_agent_device_reports_inuse_then_not_inuse(rig):
    assert FreeswitchDriver.device_key("loopback/1001/agents") == "loopback/1001"
    rig.switch.outside_call("1001", 0.2)
    await rig.wait(lambda: _states(rig, "loopback/1001") == [DeviceStatus.RINGING, DeviceStatus.INUSE])
    await rig.wait(lambda: _states(rig, "loopback/1001")[-1:] == [DeviceStatus.NOT_INUSE])
    assert _states(rig, "loopback/1001") == [DeviceStatus.RINGING, DeviceStatus.INUSE, DeviceStatus.NOT_INUSE]


async def test_user_device_known_by_dialed_user_and_kept_busy_until_its_last_channel(rig):
    assert FreeswitchDriver.device_key("user/1001@example.com") == "user/1001"
    rig.switch.outside_call("x1", 0.1, headers={"variable_dialed_user": "1001"})
    rig.switch.outside_call("x2", 0.4, headers={"Channel-Presence-ID": "1001@example.com"})
    await rig.wait(lambda: DeviceStatus.INUSE in _states(rig, "user/1001"))
    await asyncio.sleep(0.2)  # the first channel ended; the second one still holds the device
    assert _states(rig, "user/1001") == [DeviceStatus.RINGING, DeviceStatus.INUSE]
    await rig.wait(lambda: _states(rig, "user/1001")[-1:] == [DeviceStatus.NOT_INUSE])


async def test_device_busy_at_reconnect_comes_from_the_snapshot_and_clears_after(rig):
    chan = rig.switch.outside_call("1001", 30)
    await rig.wait(lambda: _states(rig, "loopback/1001")[-1:] == [DeviceStatus.INUSE])
    rig.switch.fake.disconnect_all()
    await rig.wait(lambda: rig.of(PbxDown))
    chan.gone = True  # hung up while we were away: no event will ever say so
    await rig.wait(lambda: len(rig.of(PbxUp)) == 2)
    up = rig.of(PbxUp)[-1]
    # in the snapshot the core gets before it routes, not in events after PbxUp
    assert up.snapshot.devices == {"loopback/1001": DeviceStatus.NOT_INUSE}
    assert rig.events[-1] is up or not any(isinstance(e, DeviceState) for e in rig.events[rig.events.index(up):])


# ------------------------------------- 2026-11-29 captures: bridge vs job, after the socket
async def _bridge_on_answer(rig, caller_uuid: str, agent_leg: str) -> None:
    """Bridge the moment the agent leg answers, as the core does."""
    await rig.wait(lambda: any(e.leg_id == agent_leg for e in rig.of(LegAnswered)))
    await rig.driver.bridge(caller_uuid, agent_leg)


async def _held(rig, queue: str = "support"):
    chan = await rig.switch.customer(rig.server.port, queue, 30, "1555", "X")
    await rig.wait(lambda: rig.of(CallArrived))
    await rig.driver.hold(WaitingCall(chan.uuid, queue, 1700000000.0, call_id="call-1"), HoldSpec(position=1))
    await rig.wait(lambda: chan.socket.released)
    return chan


@pytest.mark.parametrize("job_delay, job", [(5.0, "-ERR ORIGINATOR_CANCEL\n"), (0.0, "+OK leg-a\n")])
async def test_a_bridged_agent_leg_lives_whatever_its_originate_job_says(rig, job_delay, job):
    """esl-bridge-before/after-originate-job: the job's text is not the leg's life."""
    rig.switch.job_delay = job_delay
    chan = await _held(rig)
    await rig.driver.originate(_request("leg-a", "1001"))
    await _bridge_on_answer(rig, chan.uuid, "leg-a")
    await rig.wait(lambda: ("leg-a", job) in rig.switch.job_results)
    await asyncio.sleep(0.05)
    assert not [e for e in rig.of(LegHungUp) if e.leg_id == "leg-a"]
    assert rig.switch.channels["leg-a"].bridged == chan.uuid and not rig.switch.channels["leg-a"].gone
    # the uuid_bridge reply came before CHANNEL_BRIDGE, as captured
    await rig.driver.hangup("leg-a")
    await rig.wait(lambda: [e for e in rig.of(LegHungUp) if e.leg_id == "leg-a"])
    assert [e.outcome for e in rig.of(LegHungUp) if e.leg_id == "leg-a"] == [Outcome.ANSWERED]


async def test_cc_connected_is_set_before_the_bridge_and_cleared_when_it_fails(rig):
    chan = await _held(rig)
    with pytest.raises(CommandFailed):
        await rig.driver.bridge(chan.uuid, "no-such-agent-leg")
    cmds = [c for c in rig.switch.fake.commands() if c.startswith(("api uuid_setvar", "api uuid_bridge"))]
    assert cmds == [f"api uuid_setvar {chan.uuid} cc_connected 1", f"api uuid_bridge {chan.uuid} no-such-agent-leg",
                    f"api uuid_setvar {chan.uuid} cc_connected"]
    assert "cc_connected" not in chan.vars


async def test_after_its_agent_call_the_caller_runs_the_dialplan_and_is_hung_up(rig):
    """esl-outbound-after-bridge-ends-*: when the bridge ends the caller runs
    the lines after ``socket``; the shipped dialplan hangs it up."""
    chan = await _held(rig)
    await rig.driver.originate(_request("leg-a", "4001"))  # talks 0.3 s, then hangs up
    await _bridge_on_answer(rig, chan.uuid, "leg-a")
    await rig.wait(lambda: chan.gone)
    assert chan.after_socket and chan.hung_up_by_dialplan == "NORMAL_CLEARING"
    assert chan.vars["cc_after_socket"] == "1" and "cc_moh_playing" in chan.vars  # only the first hold's music


async def _orphan_caller(rig, **variables: str):
    """A caller found in FreeSWITCH after a reconnect, as the dialplan left it."""
    chan = await _held(rig)
    chan.vars.update(variables)
    return chan


async def test_snapshot_hangs_up_a_caller_back_on_hold_after_its_agent_call(rig):
    """An older dialplan (or any path) put a connected caller back on music:
    the snapshot used to skip it because of cc_connected=1, and nobody owned it."""
    chan = await _orphan_caller(rig, cc_connected="1", cc_after_socket="1")
    snap = await rig.driver.snapshot()
    assert chan.uuid in snap.legs and snap.waiting == ()
    assert (chan.uuid, "NORMAL_CLEARING") in rig.switch.killed and chan.gone


async def test_snapshot_readopts_a_connected_caller_whose_bridge_never_happened(rig):
    chan = await _orphan_caller(rig, cc_connected="1")  # still parked in the socket app
    (w,) = (await rig.driver.snapshot()).waiting
    assert w.leg_id == chan.uuid and not chan.gone


async def test_snapshot_stamps_and_holds_a_caller_nobody_stamped(rig):
    chan = await _held(rig)
    for name in ("cc_call_id", "cc_queue", "cc_enqueued"):
        del chan.vars[name]  # what a daemon killed before its hold leaves: cc_requested_queue only
    rig.driver._clock = lambda: 1800000000.25
    (w,) = (await rig.driver.snapshot()).waiting
    assert (w.leg_id, w.queue, w.enqueued_at, w.call_id) == (chan.uuid, "support", 1800000000.25, chan.uuid)
    assert chan.vars["cc_queue"] == "support" and chan.vars["cc_enqueued"] == "1800000000.250"
    assert (chan.uuid, "endless_playback::local_stream://moh", "aleg") in rig.switch.broadcasts


async def test_pbx_up_carries_the_live_agent_legs_and_device_states(rig):
    """Defect 4: an agent leg answered while we were away is in the snapshot
    of the PbxUp (bridged or not), and no DeviceState trails the PbxUp."""
    caller = await _held(rig)
    await rig.driver.originate(_request("leg-b", "1001"))
    await _bridge_on_answer(rig, caller.uuid, "leg-b")
    await rig.driver.originate(OriginateRequest("leg-o", "loopback/1002/agents", ring_timeout=5, call_id="call-9",
                                                variables={"CC_AGENT": "1002"}))
    await rig.wait(lambda: any(e.leg_id == "leg-o" for e in rig.of(LegAnswered)))
    rig.switch.fake.disconnect_all()
    await rig.wait(lambda: len(rig.of(PbxUp)) == 2)
    up = rig.of(PbxUp)[-1]
    assert sorted(up.snapshot.agent_legs, key=lambda a: a.leg_id) == [
        LiveAgentLeg("leg-b", "1001", "call-1", caller.uuid),
        LiveAgentLeg("leg-o", "1002", "call-9", ""),
    ]
    agents = {d: s for d, s in up.snapshot.devices.items() if d.startswith("loopback/100")}
    assert agents == {"loopback/1001": DeviceStatus.INUSE, "loopback/1002": DeviceStatus.INUSE}
    assert up.snapshot.waiting == ()  # the bridged caller is talking
    await asyncio.sleep(0.05)
    assert not any(isinstance(e, DeviceState) for e in rig.events[rig.events.index(up):])


async def test_outbound_socket_kept_open_through_a_bridge_sees_what_the_capture_shows(rig):
    """esl-outbound-after-bridge-ends-outbound.txt, event names in wire order."""
    from tests.fakes.esl_server import _event_of, captured_events

    captured = [_event_of(h, b) for h, b in captured_events("outbound-after-bridge-ends-outbound")]
    keep = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_UNPARK", "CHANNEL_EXECUTE", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE")
    start = next(i for i, e in enumerate(captured) if e.get("Application") == "endless_playback")
    want = [(e.name, e.get("Application") or "") for e in captured[start + 1:] if e.name in keep]
    # ... up to the first dialplan line after ``socket`` (what follows is the dialplan's)
    want = want[:want.index(("CHANNEL_EXECUTE_COMPLETE", "set")) + 1]
    # the listener of the capture kept the socket: so do we here, by hand
    from tests.contract.fs_switch import CustomerSocket

    chan = await _held(rig)
    sock = CustomerSocket(rig.switch, chan, 0)
    seen: list = []
    sock._event = lambda name, template, **h: seen.append((name, h.get("Application", "")))  # type: ignore[method-assign]
    sock._writer = type("W", (), {"is_closing": lambda self: False, "write": lambda self, d: None,
                                  "close": lambda self: None})()
    sock.playing = "moh-uuid"
    chan.socket = sock
    await rig.driver.originate(_request("leg-a", "4001"))
    await _bridge_on_answer(rig, chan.uuid, "leg-a")
    await rig.wait(lambda: chan.gone)
    assert [s for s in seen if s[0] in keep][:len(want)] == want


# ------------------------------------------------------------- one multiset
async def test_a_hold_stamps_the_caller_in_one_multiset_application(rig):
    chan = await rig.switch.customer(rig.server.port, "support", 30, "1555", "X")
    await rig.wait(lambda: rig.of(CallArrived))
    wc = WaitingCall(chan.uuid, "support", 1700000000.5, priority=3, call_id="call-7", skills={"fr": 5, "sales": 2})
    await rig.driver.hold(wc, HoldSpec(position=2, wait_estimate=40, announce_every=30))
    await rig.wait(lambda: chan.socket.released)
    apps = [dict(re.findall(r"^([\w-]+): (.*)$", c, re.M)).get("execute-app-name") for c in chan.socket.received
            if c.startswith("sendmsg")]
    assert apps == ["multiset", "endless_playback"]  # the dialplan answered already: no answer either
    assert {k: chan.vars[k] for k in ("cc_call_id", "cc_queue", "cc_enqueued", "cc_priority", "cc_skills",
                                      "cc_position", "cc_ewt", "cc_announce_every")} == {
        "cc_call_id": "call-7", "cc_queue": "support", "cc_enqueued": "1700000000.500", "cc_priority": "3",
        "cc_skills": "fr:5,sales:2", "cc_position": "2", "cc_ewt": "40", "cc_announce_every": "30"}


@pytest.mark.parametrize("values", [
    {"a": "fr:5,sales:2", "b": "", "c": "x=y"},
    {"a": "p|q", "b": "r~s"},
    {"a": "O'Brien"},
    {"a": " padded "},
    {"a": "|", "b": "~", "c": ";", "d": "!"},
])
def test_multiset_argument_splits_back_exactly_or_is_refused(values):
    from callcenterd.protocols.esl.outbound import multiset_arg

    arg = multiset_arg(values)
    if arg is None:  # quotes, backslashes, edge blanks, or every delimiter used: one set each
        return
    pieces = fs_separate_string(arg, " ")  # the oracle: switch_separate_string with ^^<d>
    assert dict(p.split("=", 1) for p in pieces) == values
