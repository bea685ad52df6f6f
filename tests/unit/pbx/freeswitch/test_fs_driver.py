"""FreeswitchDriver against the capture-based fake FreeSWITCH: commands on
the wire, hostile values, resync, and faults (FreeSWITCH-only)."""

from __future__ import annotations

import asyncio

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
    await rig.wait(lambda: _states(rig, "loopback/1001")[-1:] == [DeviceStatus.NOT_INUSE])
