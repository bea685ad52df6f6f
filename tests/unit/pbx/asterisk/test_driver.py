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
    LegAnswered,
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
    """A FastAGI session; ``real`` is what the channel itself answers to
    GET FULL VARIABLE (uniqueid|channel|linkedid)."""

    def __init__(self, uniqueid: str, *, name: str = "unknown", real: str | None = None, **env: str) -> None:
        self.env = {"agi_uniqueid": uniqueid, "agi_channel": "Local/support@customers-1;2",
                    "agi_callerid": "5550001", "agi_calleridname": name, "agi_dnid": "unknown",
                    "agi_extension": "support", "agi_network_script": "inbound", **env}
        self.real = real if real is not None else f"{uniqueid}|Local/support@customers-1;2|{uniqueid}"
        self.tampered = False
        self.forged: tuple[str, ...] = ()
        self.args = ["support", "7"]
        self.variables: dict[str, str] = {}
        self.asked: list[str] = []

    async def set_variable(self, name, value):
        self.variables[name] = value

    async def hangup(self):
        self.hung_up = True

    async def get_full_variable(self, expr, channel=None, *, timeout=None):
        self.asked.append(expr)
        return self.real


@pytest.fixture
async def connected():
    events: list = []
    driver = AsteriskDriver("ast1", events.append)
    ami = FakeAmi()
    driver.attach(ami)
    await connect(driver, ami)
    return driver, ami, events


async def connect(driver, ami):
    """What the AMI supervisor does: logged in, then ready for actions."""
    await driver.on_ami_connected(ami)
    await driver.on_ami_ready(ami)


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
    await asyncio.sleep(0.01)
    arrived = events[-1]
    assert isinstance(arrived, CallArrived)
    assert agi.asked == ["${UNIQUEID}|${CHANNEL}|${CHANNEL(linkedid)}"]
    assert arrived.caller_id == CallerId("5550001", "") and arrived.dnis == "support"
    assert arrived.variables["queue"] == "support" and arrived.variables["priority"] == "7"
    call = WaitingCall(leg_id="1795.1", queue="support", enqueued_at=1000.25, priority=7, call_id="c1",
                       skills={"sales": 5})
    await driver.hold(call, HoldSpec(moh_class="default", announce_every=30, position=1))
    await asyncio.wait_for(session, 1)  # the AGI session ends: the dialplan moves the caller on
    assert agi.variables["CC_QUEUE"] == "support" and agi.variables["CC_ENQUEUED"] == "1000.250"
    assert agi.variables["CC_SKILLS"] == "sales:5" and agi.variables["CC_POSITION"] == "1"
    assert "Redirect" not in ami.names()

    await driver.originate(OriginateRequest(leg_id="leg-9", endpoint="Local/1001@agents/n"))
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Uniqueid", "leg-9"), ("Channel", "Local/1001@agents-9;1")))
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
    await connect(driver, ami)
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
    await connect(driver, ami)
    snap = events[-1].snapshot
    assert [w.leg_id for w in snap.waiting] == ["a", "b"]
    assert snap.waiting[0].enqueued_at == 1000.1 and snap.waiting[0].priority == 2
    assert snap.waiting[0].skills == {"sales": 4} and snap.waiting[0].call_id == "call-a"
    assert snap.legs == frozenset("abcde")
    assert snap.restarted  # the start time changed since the last connect


async def test_device_states_are_in_the_snapshot_before_pbx_up(connected):
    """PbxUp carries every agent device's state: the core must not route to
    an agent whose phone is still on a call from before our restart."""
    from callcenterd.pbx.api import DeviceStatus

    driver, ami, events = connected
    driver.devices = {"Local/1001@agents", "PJSIP/2000"}
    plain = ami.action

    async def getvar(name, headers=(), *, timeout=None, action_id=None):
        if name != "Getvar":
            return await plain(name, headers, timeout=timeout, action_id=action_id)
        ami.sent.append((name, list(headers), action_id))
        state = {"DEVICE_STATE(Local/1001@agents)": "INUSE"}.get(dict(headers)["Variable"])
        if state is None:
            raise CommandFailed("Getvar: timeout")
        return msg(("Response", "Success"), ("Value", state))

    ami.action = getvar
    before = len(events)
    await driver.on_ami_connected(ami)
    assert len(events) == before  # nothing reported while the AMI is still logging in
    await driver.on_ami_ready(ami)
    assert [type(e) for e in events[before:]] == [PbxUp]
    assert events[-1].snapshot.devices == {"Local/1001@agents": DeviceStatus.INUSE}  # the failed one is skipped


async def test_snapshot_reports_agent_legs_and_what_they_are_bridged_to(connected):
    driver, ami, events = connected

    def status(uid, channel, bridge="", **variables):
        return msg(("Event", "Status"), ("Channel", channel), ("Context", "callcenterd-agent"), ("Uniqueid", uid),
                   ("BridgeID", bridge), *[("Variable", f"{k}={v}") for k, v in variables.items()])

    ami.lists["Status"] = [
        status("caller-1", "PJSIP/trunk-1", "br-1", CC_CALL_ID="call-1", CC_QUEUE="support", CC_CONNECTED="1"),
        status("leg-1", "Local/1001@agents-1;1", "br-1", CC_AGENT="1001", CC_CALL_ID="call-1", CC_QUEUE="support"),
        status("leg-1-2", "Local/1001@agents-1;2", "", CC_AGENT="1001"),  # the phone's half: not a leg of ours
        status("leg-2", "Local/1002@agents-2;1", "", CC_AGENT="1002", CC_CALL_ID="call-2"),  # orphan
    ]
    await connect(driver, ami)
    legs = {a.leg_id: a for a in events[-1].snapshot.agent_legs}
    assert set(legs) == {"leg-1", "leg-2"}
    assert legs["leg-1"].bridged_to == "caller-1" and legs["leg-1"].agent == "1001"
    assert legs["leg-1"].queue == "support" and legs["leg-1"].call_id == "call-1"
    assert legs["leg-2"].bridged_to == ""
    # both legs of the live call are followed: the caller hanging up is reported
    driver.on_ami_event(msg(("Event", "HangupRequest"), ("Uniqueid", "caller-1"), ("Cause", "16")))
    assert isinstance(events[-1], LegHungUp) and events[-1].leg_id == "caller-1"


async def test_a_forged_agi_identity_is_replaced_by_what_the_channel_says(connected):
    """A caller ID name with LF can add agi_channel/agi_uniqueid lines
    (res_agi.c setup_env): the call is identified by asking the channel."""
    driver, ami, events = connected
    agi = FakeAgi("1795.66", agi_channel="PJSIP/victim-9", real="1795.5|PJSIP/trunk-5|1795.4")
    agi.tampered, agi.forged = True, ("agi_channel", "agi_uniqueid")
    session = asyncio.create_task(driver.on_agi_session(agi))
    await asyncio.sleep(0.01)
    arrived = events[-1]
    assert isinstance(arrived, CallArrived)
    assert arrived.leg_id == "1795.5" and arrived.linked_id == "1795.4"
    assert driver._translator.known_channel("1795.5") == "PJSIP/trunk-5"
    assert driver._translator.known_channel("1795.66") is None
    await driver.hangup("1795.5")  # (ends the AGI session)
    await asyncio.wait_for(session, 1)


async def test_an_agi_identity_that_amis_view_contradicts_is_not_served(connected):
    driver, ami, events = connected
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Uniqueid", "1795.5"), ("Channel", "PJSIP/trunk-5"),
                            ("Linkedid", "1795.5")))
    before = len(events)
    await asyncio.wait_for(driver.on_agi_session(FakeAgi("1795.5", real="1795.5|PJSIP/other-7|1795.5")), 1)
    assert len(events) == before


async def test_control_characters_in_a_caller_name_are_cleaned_and_kept_escaped(connected):
    """A CR in the name used to raise before CallArrived: the caller then
    waited forever in the hold context."""
    driver, ami, events = connected
    session = asyncio.create_task(driver.on_agi_session(FakeAgi("1795.8", name="Bob\rSmith\x01")))
    await asyncio.sleep(0.01)
    arrived = events[-1]
    assert isinstance(arrived, CallArrived)
    assert arrived.caller_id.name == "Bob?Smith?" and arrived.caller_raw == "Bob\\rSmith\\x01"
    await driver.hangup("1795.8")
    await asyncio.wait_for(session, 1)


async def test_a_caller_held_without_our_decision_is_adopted_from_its_hold_event(connected):
    from callcenterd.pbx.api import CallHeld

    driver, ami, events = connected
    driver.on_ami_event(msg(("Event", "UserEvent"), ("UserEvent", "CallCenterHold"), ("Uniqueid", "1795.9"),
                            ("Channel", "PJSIP/trunk-9"), ("CallerIDNum", "555"), ("CallerIDName", "Eve\x07"),
                            ("CallId", "1795.9"), ("Queue", "support"), ("Enqueued", "1000.250"),
                            ("Priority", "3"), ("Skills", "fr:2")))
    held = events[-1]
    assert isinstance(held, CallHeld) and held.node == "ast1"
    assert held.call.leg_id == "1795.9" and held.call.queue == "support" and held.call.enqueued_at == 1000.25
    assert held.call.priority == 3 and held.call.skills == {"fr": 2} and held.call.caller_id.name == "Eve?"
    # held now: a later hold() by the core stamps, it does not redirect again
    await driver.hold(WaitingCall(leg_id="1795.9", queue="support", enqueued_at=1000.25), HoldSpec())
    assert "Redirect" not in ami.names()
    # a hold event for a caller we hold ourselves adopts nothing
    n = len(events)
    driver.on_ami_event(msg(("Event", "UserEvent"), ("UserEvent", "CallCenterHold"), ("Uniqueid", "1795.9"),
                            ("Queue", "support"), ("Enqueued", "1000.250")))
    assert len(events) == n


async def test_bridge_uses_the_originate_response_channel_not_a_bare_id(connected):
    """OriginateResponse before Newchannel: a bare id would let Asterisk
    match the Local ;2 half by uniqueid prefix (leg-9 -> leg-9-2)."""
    driver, ami, events = connected
    await driver.originate(OriginateRequest(leg_id="leg-9", endpoint="Local/1001@agents/n"))
    driver._translator.track("caller-1")
    driver._translator.channels["caller-1"] = "PJSIP/trunk-1"
    driver.on_ami_event(msg(("Event", "OriginateResponse"), ("ActionID", "cc-orig-leg-9"), ("Response", "Success"),
                            ("Channel", "Local/1001@agents-00000001;1"), ("Uniqueid", "leg-9"), ("Reason", "4")))
    await driver.bridge("caller-1", "leg-9")
    bridge = dict(next(h for n, h, _ in ami.sent if n == "Bridge"))
    assert bridge == {"Channel1": "PJSIP/trunk-1", "Channel2": "Local/1001@agents-00000001;1", "Tone": "no"}


async def test_bridge_waits_for_an_unknown_channel_name_and_never_uses_the_bare_id(connected, monkeypatch):
    import callcenterd.pbx.asterisk.driver as drv

    driver, ami, events = connected
    driver._translator.track("caller-1")
    driver._translator.channels["caller-1"] = "PJSIP/trunk-1"
    await driver.originate(OriginateRequest(leg_id="leg-3", endpoint="Local/1001@agents/n"))
    bridging = asyncio.create_task(driver.bridge("caller-1", "leg-3"))
    await asyncio.sleep(0.01)
    assert "Bridge" not in ami.names()
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Uniqueid", "leg-3"), ("Channel", "Local/1001@agents-3;1")))
    await asyncio.wait_for(bridging, 1)
    assert dict(next(h for n, h, _ in ami.sent if n == "Bridge"))["Channel2"] == "Local/1001@agents-3;1"
    monkeypatch.setattr(drv, "CHANNEL_NAME_TIMEOUT", 0.05)
    await driver.originate(OriginateRequest(leg_id="leg-4", endpoint="Local/1001@agents/n"))
    with pytest.raises(CommandFailed):
        await driver.bridge("caller-1", "leg-4")
    assert [n for n in ami.names() if n == "Bridge"] == ["Bridge"]


async def test_a_late_leg_after_an_originate_timeout_is_hung_up_at_once(connected):
    from callcenterd.pbx.api import Timeout

    driver, ami, events = connected
    ami.errors["Originate"] = Timeout("Originate: no response in 10 s")
    with pytest.raises(Timeout):
        await driver.originate(OriginateRequest(leg_id="leg-5", endpoint="Local/1001@agents/n"))
    del ami.errors["Originate"]
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Uniqueid", "leg-5"), ("Channel", "Local/1001@agents-5;1")))
    await asyncio.sleep(0.01)
    hangups = [dict(h)["Channel"] for n, h, _ in ami.sent if n == "Hangup"]
    assert hangups == ["Local/1001@agents-5;1"]
    n = len(events)
    driver.on_ami_event(msg(("Event", "OriginateResponse"), ("ActionID", "cc-orig-leg-5"), ("Response", "Success"),
                            ("Channel", "Local/1001@agents-5;1"), ("Uniqueid", "leg-5"), ("Reason", "4")))
    assert not [e for e in events[n:] if isinstance(e, LegAnswered)]


async def _empty_snapshot():
    from callcenterd.pbx.api import PbxSnapshot

    return PbxSnapshot()
