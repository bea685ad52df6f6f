"""The Asterisk driver's glue, against a recording fake AMI and fake AGI."""

from __future__ import annotations

import asyncio

import pytest

from callcenterd.pbx.api import (
    CallArrived,
    CallerId,
    CommandFailed,
    ConnectionLost,
    HoldSpec,
    LegHungUp,
    OriginateRequest,
    PbxDown,
    PbxUp,
    UnsafeValue,
    WaitingCall,
)
from callcenterd.pbx.asterisk.driver import AsteriskDriver
from callcenterd.protocols.ami.codec import Message


def msg(*pairs: tuple[str, str]) -> Message:
    return Message.from_pairs(pairs)


class FakeAmi:
    """Records actions; answers from a table of name -> response / items."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]], str | None]] = []
        self.errors: dict[str, Exception] = {}
        self.lists: dict[str, list[Message]] = {}
        self.core_status = msg(("Response", "Success"), ("CoreStartupDate", "2026-11-26"), ("CoreStartupTime", "10:00:00"))

    async def action(self, name, headers=(), *, timeout=None, action_id=None):
        self.sent.append((name, list(headers), action_id))
        if name in self.errors:
            raise self.errors[name]
        if name == "CoreStatus":
            return self.core_status
        return msg(("Response", "Success"))

    async def action_list(self, name, headers=(), *, timeout=None):
        self.sent.append((name, list(headers), None))
        return msg(("Response", "Success")), self.lists.get(name, [])

    def names(self) -> list[str]:
        return [n for n, _, _ in self.sent]


class FakeAgi:
    def __init__(self, uniqueid: str) -> None:
        self.env = {"agi_uniqueid": uniqueid, "agi_channel": "Local/support@customers-1;2",
                    "agi_callerid": "5550001", "agi_calleridname": "unknown", "agi_dnid": "unknown",
                    "agi_extension": "support", "agi_network_script": "inbound"}
        self.args = ["support", "7"]
        self.variables: dict[str, str] = {}

    async def set_variable(self, name, value):
        self.variables[name] = value


@pytest.fixture
async def connected():
    events: list = []
    driver = AsteriskDriver("ast1", events.append)
    ami = FakeAmi()
    driver.attach(ami)
    await driver.on_ami_connected(ami)
    return driver, ami, events


async def test_connect_reports_pbx_up_with_snapshot(connected):
    driver, ami, events = connected
    assert isinstance(events[-1], PbxUp) and events[-1].node == "ast1"
    assert not events[-1].snapshot.restarted
    assert ami.names() == ["CoreStatus", "Status"]  # no agent devices known: nothing more


async def test_originate_sends_channel_id_and_safe_caller_id(connected):
    driver, ami, _ = connected
    req = OriginateRequest(leg_id="leg-1", endpoint="PJSIP/1001", caller_id=CallerId("5550001", 'Evil "Name" <x>'),
                           ring_timeout=12, variables={"CC_AGENT": "1001"}, call_id="call-1")
    await driver.originate(req)
    name, headers, action_id = ami.sent[-1]
    h = dict(headers)
    assert name == "Originate" and action_id == "cc-orig-leg-1"
    assert h["ChannelId"] == "leg-1" and h["Async"] == "true" and h["Timeout"] == "12000"
    assert h["Context"] == "callcenterd-agent"
    assert h["CallerID"] == '"Evil Name x" <5550001>'
    variables = [v for k, v in headers if k == "Variable"]
    assert "CC_CALL_ID=call-1" in variables and "CC_AGENT=1001" in variables


async def test_originate_refused_by_asterisk_leaves_no_tracked_leg(connected):
    driver, ami, events = connected
    ami.errors["Originate"] = CommandFailed("Originate: Permission denied")
    with pytest.raises(CommandFailed):
        await driver.originate(OriginateRequest(leg_id="leg-2", endpoint="PJSIP/1001"))
    # a late OriginateResponse for that ActionID produces nothing
    driver.on_ami_event(msg(("Event", "OriginateResponse"), ("ActionID", "cc-orig-leg-2"),
                            ("Response", "Failure"), ("Reason", "5")))
    assert not [e for e in events if isinstance(e, LegHungUp)]


async def test_commands_fail_fast_when_not_connected():
    driver = AsteriskDriver("ast1", lambda e: None)
    with pytest.raises(ConnectionLost):
        await driver.hangup("leg-x")


async def test_agi_call_is_held_through_agi_then_bridged_once_in_hold(connected):
    driver, ami, events = connected
    agi = FakeAgi("1795.1")
    session = asyncio.create_task(driver.on_agi_session(agi))
    await asyncio.sleep(0)
    arrived = events[-1]
    assert isinstance(arrived, CallArrived)
    assert arrived.caller_id == CallerId("5550001", "") and arrived.dnis == "support"
    assert arrived.variables["queue"] == "support" and arrived.variables["priority"] == "7"
    call = WaitingCall(leg_id="1795.1", queue="support", enqueued_at=1000.25, priority=7, call_id="c1",
                       skills={"sales": 5})
    await driver.hold(call, HoldSpec(moh_class="default", announce_every=30, position=1))
    await asyncio.wait_for(session, 1)  # the AGI session ends: the dialplan moves the caller on
    assert agi.variables["CC_QUEUE"] == "support" and agi.variables["CC_ENQUEUED"] == "1000.250"
    assert agi.variables["CC_SKILLS"] == "sales:5" and agi.variables["CC_POSITION"] == "1"
    assert "Redirect" not in ami.names()

    bridging = asyncio.create_task(driver.bridge("1795.1", "leg-9"))
    await asyncio.sleep(0.05)
    assert "Bridge" not in ami.names()  # still on its way to [callcenterd-hold]
    driver.on_ami_event(msg(("Event", "UserEvent"), ("Uniqueid", "1795.1"), ("UserEvent", "CallCenterHold")))
    await asyncio.wait_for(bridging, 1)
    assert ami.names()[-2:] == ["Bridge", "Setvar"]  # CC_CONNECTED only once bridged
    assert dict(ami.sent[-1][1])["Variable"] == "CC_CONNECTED"


async def test_hold_without_agi_stamps_by_ami_and_redirects_once(connected):
    driver, ami, _ = connected
    call = WaitingCall(leg_id="1795.7", queue="sales", enqueued_at=5.0, call_id="c7")
    await driver.hold(call, HoldSpec())
    assert ami.names().count("Redirect") == 1
    stamped = {dict(h)["Variable"]: dict(h)["Value"] for n, h, _ in ami.sent if n == "Setvar"}
    assert stamped["CC_QUEUE"] == "sales" and stamped["CC_CALL_ID"] == "c7"
    await driver.hold(call, HoldSpec())  # overflow re-stamps, no second redirect
    assert ami.names().count("Redirect") == 1


async def test_hold_refuses_line_breaks_before_sending(connected):
    driver, ami, _ = connected
    sent = len(ami.sent)
    with pytest.raises(UnsafeValue):
        await driver.hold(WaitingCall(leg_id="l", queue="q\r\nAction: Hangup", enqueued_at=1.0), HoldSpec())
    assert len(ami.sent) == sent


async def test_hangup_of_a_vanished_channel_is_not_an_error(connected):
    driver, ami, _ = connected
    ami.errors["Hangup"] = CommandFailed("Hangup: No such channel")
    await driver.hangup("gone")


async def test_pbx_shutdown_is_not_reported_as_callers_hanging_up(connected):
    driver, ami, events = connected
    driver._translator.track("caller-1")
    driver.on_ami_event(msg(("Event", "SoftHangupRequest"), ("Uniqueid", "caller-1"), ("Cause", "4")))
    driver.on_ami_event(msg(("Event", "Hangup"), ("Uniqueid", "caller-1"), ("Cause", "16")))
    assert [type(e) for e in events[1:]] == [PbxDown]
    with pytest.raises(ConnectionLost):
        await driver.hangup("caller-1")
    await driver.on_ami_connected(ami)
    assert events[-1].snapshot.restarted


async def test_snapshot_lists_held_callers_in_enqueue_order(connected):
    driver, ami, events = connected

    def status(uid, queue, enq, context="callcenterd-hold", connected_flag="(null)"):
        return msg(("Event", "Status"), ("Channel", f"Local/x-{uid};2"), ("Context", context),
                   ("Uniqueid", uid), ("CallerIDNum", "555"), ("CallerIDName", "C"),
                   ("Variable", f"CC_CALL_ID=call-{uid}"), ("Variable", f"CC_QUEUE={queue}"),
                   ("Variable", f"CC_ENQUEUED={enq}"), ("Variable", "CC_PRIORITY=2"),
                   ("Variable", "CC_SKILLS=sales:4"), ("Variable", f"CC_CONNECTED={connected_flag}"))

    ami.lists["Status"] = [
        status("b", "support", "1000.500"),
        status("a", "support", "1000.100"),
        status("c", "support", "999.0", connected_flag="1"),  # bridged: not waiting
        status("d", "support", "998.0", context="agents"),  # somewhere else
        status("e", "support", "garbage"),  # unusable stamp: skipped
    ]
    ami.core_status = msg(("Response", "Success"), ("CoreStartupDate", "2026-11-26"), ("CoreStartupTime", "11:00:00"))
    await driver.on_ami_connected(ami)
    snap = events[-1].snapshot
    assert [w.leg_id for w in snap.waiting] == ["a", "b"]
    assert snap.waiting[0].enqueued_at == 1000.1 and snap.waiting[0].priority == 2
    assert snap.waiting[0].skills == {"sales": 4} and snap.waiting[0].call_id == "call-a"
    assert snap.legs == frozenset("abcde")
    assert snap.restarted  # the start time changed since the last connect


async def test_device_states_are_read_after_connect(connected):
    from callcenterd.pbx.api import DeviceState, DeviceStatus

    driver, ami, events = connected
    driver.devices = {"Local/1001@agents", "PJSIP/2000"}

    async def getvar(name, headers=(), *, timeout=None, action_id=None):
        ami.sent.append((name, list(headers), action_id))
        state = {"DEVICE_STATE(Local/1001@agents)": "INUSE"}.get(dict(headers)["Variable"])
        if state is None:
            raise CommandFailed("Getvar: timeout")
        return msg(("Response", "Success"), ("Value", state))

    ami.action = getvar  # CoreStatus is not needed for this check
    ami.core_status = None
    driver._take_snapshot = lambda session: _empty_snapshot()
    await driver.on_ami_connected(ami)
    assert isinstance(events[-2], PbxUp)
    assert events[-1] == DeviceState("Local/1001@agents", DeviceStatus.INUSE)  # the failed one is skipped


async def _empty_snapshot():
    from callcenterd.pbx.api import PbxSnapshot

    return PbxSnapshot()
