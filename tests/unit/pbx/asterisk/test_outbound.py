"""Campaign customer legs on the Asterisk driver: the Originate it sends,
the AMD UserEvent it translates, the abandon / machine-message redirects."""

from __future__ import annotations

import pytest

from callcenterd.pbx.api import (
    AmdResult,
    AmdVerdict,
    CallerId,
    CommandFailed,
    LegAnswered,
    LegHungUp,
    LegRole,
    OriginateRequest,
    Outcome,
    UnsafeValue,
)
from callcenterd.pbx.asterisk.driver import AsteriskDriver
from callcenterd.pbx.asterisk.translate import AmiTranslator
from callcenterd.protocols.ami.codec import Message
from tests.unit.pbx.asterisk.test_driver import FakeAmi, connect


def msg(*pairs: tuple[str, str]) -> Message:
    return Message.from_pairs(pairs)


def amd_event(uid: str, status: str, cause: str = "") -> Message:
    """As app_userevent.c sends UserEvent(CallCenterAmd,AmdStatus: ..,AmdCause: ..)."""
    return msg(("Event", "UserEvent"), ("Privilege", "user,all"), ("Channel", "Local/5550100@sandbox-outbound-0001;1"),
               ("Uniqueid", uid), ("Linkedid", uid), ("UserEvent", "CallCenterAmd"),
               ("AmdStatus", status), ("AmdCause", cause))


def answered_leg(t: AmiTranslator, leg: str = "L1") -> None:
    t.originating("cc-orig-" + leg, leg)
    t.feed(msg(("Event", "OriginateResponse"), ("ActionID", "cc-orig-" + leg), ("Response", "Success"),
               ("Channel", "Local/5550100@sandbox-outbound-0001;1"), ("Uniqueid", leg), ("Reason", "4")))


@pytest.mark.parametrize("status, cause, verdict", [
    ("HUMAN", "HUMAN-800-800", AmdVerdict.HUMAN),
    ("MACHINE", "LONGGREETING-1600-1500", AmdVerdict.MACHINE),
    ("NOTSURE", "TOOLONG-5000", AmdVerdict.NOTSURE),
    ("weird", "", AmdVerdict.NOTSURE),
])
def test_amd_user_event_becomes_one_amd_result(status, cause, verdict):
    t = AmiTranslator()
    answered_leg(t)
    assert t.feed(amd_event("L1", status, cause)) == [AmdResult("L1", verdict, cause)]
    assert t.feed(amd_event("L1", "MACHINE", "again")) == []  # one verdict per leg


def test_amd_hangup_status_and_strangers_report_nothing():
    t = AmiTranslator()
    answered_leg(t)
    assert t.feed(amd_event("L1", "HANGUP", "HANGUP")) == []
    assert t.feed(amd_event("someone-else", "MACHINE")) == []
    other = msg(("Event", "UserEvent"), ("Uniqueid", "L1"), ("UserEvent", "CallCenterHold"))
    assert t.feed(other) == []
    # the leg's own hangup after the greeting is an answered call
    events = t.feed(msg(("Event", "Hangup"), ("Uniqueid", "L1"), ("Cause", "16")))
    assert events == [LegHungUp("L1", Outcome.ANSWERED, 16)]


@pytest.fixture
async def connected():
    events: list = []
    driver = AsteriskDriver("ast1", events.append, customer_wait=12, beep_wait=7)
    ami = FakeAmi()
    driver.attach(ami)
    await connect(driver, ami)
    return driver, ami, events


def customer(leg: str = "cc-1", **kw) -> OriginateRequest:
    return OriginateRequest(leg_id=leg, endpoint="Local/5550100@sandbox-outbound/n", role=LegRole.CUSTOMER,
                            caller_id=CallerId("5551000", 'Acme "Sales" <x>'), ring_timeout=25, amd=True,
                            call_id="call-1", **kw)


async def test_customer_leg_goes_to_the_outbound_context_with_ids_only(connected):
    driver, ami, _ = connected
    await driver.originate(customer(variables={"CC_CAMPAIGN": "spring-2027"}))
    name, headers, action_id = ami.sent[-1]
    h = dict(headers)
    assert name == "Originate" and action_id == "cc-orig-cc-1"
    assert h["Context"] == "callcenterd-outbound" and h["Exten"] == "s" and h["Timeout"] == "25000"
    assert h["ChannelId"] == "cc-1" and h["CallerID"] == '"Acme Sales x" <5551000>'
    assert sorted(v for k, v in headers if k == "Variable") == [
        "CC_AMD=1", "CC_CALL_ID=call-1", "CC_CAMPAIGN=spring-2027", "CC_CUSTOMER_WAIT=12", "CC_ROLE=customer"]


async def test_agent_legs_are_unchanged(connected):
    driver, ami, _ = connected
    await driver.originate(OriginateRequest("a-1", "Local/1001@agents/n", call_id="c"))
    h = dict(ami.sent[-1][1])
    assert h["Context"] == "callcenterd-agent"
    assert "CC_AGENT_WAIT=30" in [v for k, v in ami.sent[-1][1] if k == "Variable"]


@pytest.mark.parametrize("value", ["a,CC_AGENT=1", "x)", "a|b", "${EVIL}", "a;b", '"', "{", "}", "^^", "a b"])
def test_lead_data_cannot_ride_on_a_customer_leg(value):
    with pytest.raises(UnsafeValue):
        customer(variables={"CC_NOTE": value})


def test_agent_leg_variables_keep_their_old_rules():
    OriginateRequest("a-1", "Local/1001@agents/n", variables={"CC_NOTE": "a b, c"})


async def test_abandon_and_machine_message_redirect_after_stamping_the_prompt(connected):
    driver, ami, events = connected
    await driver.originate(customer())
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Channel", "Local/5550100@sandbox-outbound-0001;1"),
                            ("Uniqueid", "cc-1"), ("Linkedid", "cc-1")))
    driver.on_ami_event(msg(("Event", "OriginateResponse"), ("ActionID", "cc-orig-cc-1"), ("Response", "Success"),
                            ("Channel", "Local/5550100@sandbox-outbound-0001;1"), ("Uniqueid", "cc-1"),
                            ("Reason", "4")))
    assert events[-1] == LegAnswered("cc-1")
    ami.sent.clear()
    await driver.play_abandon("cc-1", "sorry")
    await driver.leave_message("cc-1", "custom/acme-message")
    chan = "Local/5550100@sandbox-outbound-0001;1"
    assert ami.sent == [
        ("Setvar", [("Channel", chan), ("Variable", "CC_PROMPT"), ("Value", "sorry")], None),
        ("Setvar", [("Channel", chan), ("Variable", "CC_BEEP_WAIT"), ("Value", "7")], None),
        ("Redirect", [("Channel", chan), ("Context", "callcenterd-outbound-abandon"), ("Exten", "s"),
                      ("Priority", "1")], None),
        ("Setvar", [("Channel", chan), ("Variable", "CC_PROMPT"), ("Value", "custom/acme-message")], None),
        ("Setvar", [("Channel", chan), ("Variable", "CC_BEEP_WAIT"), ("Value", "7")], None),
        ("Redirect", [("Channel", chan), ("Context", "callcenterd-outbound-machine"), ("Exten", "s"),
                      ("Priority", "1")], None),
    ]


@pytest.mark.parametrize("prompt", ["sorry,x", "a&b", "x)", "../etc/passwd", "", "a b", "${X}", "f:g"])
async def test_a_prompt_that_could_change_playback_arguments_is_refused(connected, prompt):
    driver, ami, _ = connected
    await driver.originate(customer())
    driver.on_ami_event(msg(("Event", "Newchannel"), ("Channel", "Local/x-1;1"), ("Uniqueid", "cc-1")))
    ami.sent.clear()
    with pytest.raises(UnsafeValue):
        await driver.play_abandon("cc-1", prompt)
    assert ami.sent == []


async def test_no_abandon_for_a_leg_never_seen(connected):
    driver, ami, _ = connected
    with pytest.raises(CommandFailed):
        await driver.play_abandon("nobody", "sorry")
