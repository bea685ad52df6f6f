"""Campaign customer legs on the FreeSWITCH driver: avmd events -> AmdResult,
the originate it sends, abandon / machine messages (against the fake of
tests/contract/fs_switch.py)."""

from __future__ import annotations

import pytest

from callcenterd.pbx.api import (
    AmdResult,
    AmdVerdict,
    CallerId,
    LegAnswered,
    LegHungUp,
    LegRole,
    OriginateRequest,
    Outcome,
    UnsafeValue,
)
from callcenterd.pbx.freeswitch.translate import FsTranslator
from callcenterd.protocols.esl.codec import EslEvent
from tests.contract.fs_switch import FsSwitch
from tests.fakes.esl_server import fs_separate_string
from tests.unit.pbx.freeswitch.test_fs_driver import Rig


def custom(subclass: str, uuid: str, **headers: str) -> EslEvent:
    return EslEvent({"Event-Name": "CUSTOM", "Event-Subclass": subclass, "Unique-ID": uuid,
                     "Call-command": "avmd", **headers})


def answered(t: FsTranslator, leg: str = "L1") -> None:
    t.originating(leg)
    t.feed(EslEvent({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": leg}))


def test_a_beep_is_one_machine_verdict_and_is_remembered():
    t = FsTranslator()
    answered(t)
    assert t.feed(custom("avmd::beep", "L1", **{"Beep-Status": "DETECTED"})) == [
        AmdResult("L1", AmdVerdict.MACHINE, "beep")]
    assert t.beeped("L1")
    assert t.feed(custom("avmd::beep", "L1")) == [] and t.amd_window_over("L1") == []


def test_no_beep_within_the_window_is_human_and_a_late_beep_changes_nothing():
    t = FsTranslator()
    answered(t)
    assert t.amd_window_over("L1") == [AmdResult("L1", AmdVerdict.HUMAN, "no-beep")]
    assert t.feed(custom("avmd::beep", "L1")) == []
    assert t.beeped("L1")  # kept for leave_message


@pytest.mark.parametrize("event", [
    custom("avmd::stop", "L1", **{"Beep-Status": "NOTDETECTED"}),
    custom("avmd::timeout", "L1"),
])
def test_avmd_giving_up_is_notsure(event):
    t = FsTranslator()
    answered(t)
    assert t.feed(event) == [AmdResult("L1", AmdVerdict.NOTSURE, "timeout")]


def test_no_verdict_for_a_leg_that_ended_or_never_answered_or_is_not_ours():
    t = FsTranslator()
    t.originating("L2")
    assert t.amd_window_over("L2") == []  # still ringing
    answered(t, "L3")
    t.feed(EslEvent({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "L3", "Hangup-Cause": "NORMAL_CLEARING",
                     "variable_answer_epoch": "1700000000"}))
    assert t.amd_window_over("L3") == [] and t.feed(custom("avmd::beep", "L3")) == []
    assert t.feed(custom("avmd::beep", "stranger")) == []
    assert t.feed(custom("avmd::stop", "L2", **{"Beep-Status": "DETECTED"})) == []


@pytest.fixture
async def rig():
    switch = FsSwitch()
    r = await Rig(switch).start()
    r.driver.amd_window = 0.3
    try:
        yield r
    finally:
        await r.stop()


def lead(digit: str) -> str:
    return f"loopback/555010{digit}/sandbox-outbound"


def request(leg: str, digit: str, **kw) -> OriginateRequest:
    return OriginateRequest(leg_id=leg, endpoint=lead(digit), role=LegRole.CUSTOMER, ring_timeout=5, amd=True,
                            call_id="call-1", caller_id=CallerId("5551000", "Acme, {Sales} 'x'"), **kw)


async def test_customer_leg_originate_carries_ids_and_one_quoted_caller_name(rig):
    await rig.driver.originate(request("cc-1", "0"))
    await rig.wait(lambda: rig.of(LegAnswered))
    variables, endpoint = rig.switch.originates[-1]
    assert endpoint == lead("0")
    assert variables["origination_caller_id_name"] == "Acme, {Sales} 'x'"
    assert variables["cc_role"] == "customer" and variables["hangup_after_bridge"] == "true"
    assert variables["park_timeout"] == "30"  # nobody comes (callcenterd died): the lead is not parked for ever
    assert "cc_agent" not in variables
    raw = next(c for c in rig.switch.fake.received if c.startswith("bgapi originate"))
    assert fs_separate_string(raw.split("\n", 1)[0][len("bgapi originate "):], " ")[1:] == ["&park()"]


async def test_person_is_human_after_the_window_and_avmd_is_stopped(rig):
    await rig.driver.originate(request("cc-2", "0"))
    await rig.wait(lambda: rig.of(AmdResult))
    assert rig.of(AmdResult) == [AmdResult("cc-2", AmdVerdict.HUMAN, "no-beep")]
    await rig.wait(lambda: ("cc-2", "stop") in rig.switch.avmd_commands)
    assert rig.switch.avmd_commands == [("cc-2", "start"), ("cc-2", "stop")]


async def test_without_mod_avmd_the_verdict_is_notsure_at_once():
    switch = FsSwitch()
    switch.avmd_loaded = False
    r = await Rig(switch).start()
    try:
        await r.driver.originate(request("cc-3", "0"))
        await r.wait(lambda: r.of(AmdResult))
        assert r.of(AmdResult) == [AmdResult("cc-3", AmdVerdict.NOTSURE, "avmd-unavailable")]
        assert not any(c.startswith("api avmd") for c in switch.fake.commands())
    finally:
        await r.stop()


async def test_machine_message_is_played_after_the_beep_then_hung_up(rig):
    await rig.driver.originate(request("cc-4", "3"))
    await rig.wait(lambda: rig.of(AmdResult))
    assert rig.of(AmdResult)[0].verdict is AmdVerdict.MACHINE
    await rig.driver.leave_message("cc-4", "ivr/ivr-leave_message.wav")
    await rig.wait(lambda: rig.of(LegHungUp))
    assert "api uuid_transfer cc-4 playback:ivr/ivr-leave_message.wav,hangup:NORMAL_CLEARING inline" \
        in rig.switch.fake.commands()
    assert rig.of(LegHungUp) == [LegHungUp("cc-4", Outcome.ANSWERED, 16, "NORMAL_CLEARING")]


async def test_abandon_message_then_hangup(rig):
    await rig.driver.originate(request("cc-5", "0"))
    await rig.wait(lambda: rig.of(AmdResult))
    await rig.driver.play_abandon("cc-5", "ivr/ivr-all_agents_busy.wav")
    await rig.wait(lambda: rig.of(LegHungUp))
    assert rig.switch.played == [("cc-5", "ivr/ivr-all_agents_busy.wav")]


@pytest.mark.parametrize("prompt", ["a,hangup", "x:y", "a b", "${x}", "../x", "'q'"])
async def test_prompts_that_would_add_inline_apps_are_refused(rig, prompt):
    with pytest.raises(UnsafeValue):
        await rig.driver.play_abandon("cc-6", prompt)
    assert not any(c.startswith("api uuid_transfer") for c in rig.switch.fake.commands())
