"""Outbound (campaign) scenarios run unchanged against every PBX driver.

A campaign's customer leg is originated through the port
(``OriginateRequest(role=CUSTOMER)``) to a sandbox lead whose last digit
chooses its behaviour (the sandbox Asterisk's ``[sandbox-outbound]``, the
fake FreeSWITCH's ``sandbox-outbound`` leads, see docs/campaigns.md), and
the port events the driver emits for that leg are checked: both drivers
must report the same answers, AMD verdicts and normalised outcomes.
"""

from __future__ import annotations

import time

import pytest

from callcenterd.pbx.api import (
    AmdResult,
    AmdVerdict,
    Bridged,
    CallerId,
    LegAnswered,
    LegHungUp,
    LegRole,
    OriginateRequest,
    Outcome,
    UnsafeValue,
)

QUEUE = {"strategy": "linear", "wrapup_time": 0, "announce_frequency": 0}


def rig_for(pbx):
    """An idle call center (nobody logged in): the scenarios drive the port."""
    return pbx.rig(queues={"support": {**QUEUE, "ring_time": pbx.s(4)}},
                   agents={"1001": {"device": pbx.device("1001"), "queues": ["support"]}}, login=False)


async def test_a_person_who_answers_is_human_and_is_bridged_to_an_agent(pbx):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        customer, _ = await legs.originate(legs.lead("0"), amd=True)
        await legs.event(customer, LegAnswered)
        verdict = await legs.event(customer, AmdResult)
        assert verdict.verdict is AmdVerdict.HUMAN
        assert not legs.of(customer, LegHungUp)  # still there, waiting for an agent
        agent, _ = await legs.originate(pbx.device("1001"), role=LegRole.AGENT)
        await legs.event(agent, LegAnswered)
        await legs.driver.bridge(customer, agent)
        bridged = await legs.event(customer, Bridged)
        assert {bridged.leg_a, bridged.leg_b} == {customer, agent}
        assert rig.bridged_with(customer, agent)
        await legs.driver.hangup(agent)
        # the agent ended the call: the customer leg goes too, as answered
        ended = await legs.event(customer, LegHungUp)
        assert ended.outcome is Outcome.ANSWERED


@pytest.mark.parametrize("digit, outcome", [
    ("1", Outcome.BUSY),
    ("5", Outcome.CONGESTION),
    ("6", Outcome.FAILED),
])
async def test_unanswered_leads_are_normalised_identically(pbx, digit, outcome):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        customer, _ = await legs.originate(legs.lead(digit), amd=True)
        ended = await legs.event(customer, LegHungUp)
        assert ended.outcome is outcome
        await legs.settle()
        assert not legs.of(customer, LegAnswered) and not legs.of(customer, AmdResult)
        assert [type(e) for e in legs.of(customer) if isinstance(e, LegHungUp)] == [LegHungUp]


async def test_no_answer_rings_for_the_whole_ring_timeout(pbx):
    ring = pbx.s(4)
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        customer, started = await legs.originate(legs.lead("2"), ring=ring)
        ended = await legs.event(customer, LegHungUp, timeout=ring + 20)
        assert ended.outcome is Outcome.NO_ANSWER
        # the minimum ring time is the law: never torn down before it
        assert legs.at(customer, LegHungUp) - started >= ring * 0.95
        assert not legs.of(customer, LegAnswered)


async def test_a_machine_gets_machine_and_a_message_after_the_beep(pbx):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        customer, _ = await legs.originate(legs.lead("3"), amd=True)
        await legs.event(customer, LegAnswered)
        verdict = await legs.event(customer, AmdResult)
        assert verdict.verdict is AmdVerdict.MACHINE
        await legs.driver.leave_message(customer, "vm-goodbye")
        ended = await legs.event(customer, LegHungUp, timeout=40)
        assert ended.outcome is Outcome.ANSWERED
        assert legs.played(customer)[-1:] == ["vm-goodbye"]
        if pbx.kind == "asterisk":
            assert legs.waited_for_silence(customer)  # the greeting and the beep went by first
        else:
            assert ("beep" in verdict.cause) and rig.switch.played == [(customer, "vm-goodbye")]


async def test_a_person_who_hangs_up_during_the_greeting_is_answered_then_hung_up(pbx):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        customer, _ = await legs.originate(legs.lead("4"), amd=True)
        await legs.event(customer, LegAnswered)
        ended = await legs.event(customer, LegHungUp)
        assert ended.outcome is Outcome.ANSWERED
        await legs.settle()
        # nobody to judge: no HUMAN / MACHINE for a leg that is gone
        assert all(r.verdict is not AmdVerdict.HUMAN and r.verdict is not AmdVerdict.MACHINE
                   for r in legs.of(customer, AmdResult))


async def test_the_abandon_message_is_played_then_the_leg_hangs_up(pbx):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        # the person would stay 60 s (Asterisk) / 3 s (fake): the hangup must be ours
        customer, _ = await legs.originate(legs.lead("0"), amd=True, variables={"CC_TALK": "60"})
        await legs.event(customer, AmdResult)
        asked = time.monotonic()
        await legs.driver.play_abandon(customer, "sorry")
        ended = await legs.event(customer, LegHungUp, timeout=pbx.s(15) + 1)
        assert ended.outcome is Outcome.ANSWERED
        assert legs.at(customer, LegHungUp) - asked < pbx.s(15) + 1
        assert legs.played(customer) == ["sorry"]


HOSTILE_NAME = 'Lead; "Bob" {x} ^^ a,b|c)'


async def test_hostile_values_never_reach_the_pbx_unescaped(pbx):
    async with rig_for(pbx) as rig:
        legs = pbx.legs(rig)
        # lead data is refused as a customer leg variable, before any byte is sent
        for value in ("x,CC_AGENT=1001", "a;b", 'q"', "{x}", "}", "^^x", "a\r\nAction: Hangup"):
            with pytest.raises(UnsafeValue):
                OriginateRequest("cc-bad", legs.lead("0"), role=LegRole.CUSTOMER, variables={"CC_NOTE": value})
        with pytest.raises(UnsafeValue):
            CallerId("5551000", "Bob\r\nAction: Originate")
        # a hostile caller ID name is carried as one literal value
        customer, _ = await legs.originate(legs.lead("0"), caller_id=CallerId("5551000", HOSTILE_NAME),
                                           variables={"CC_TALK": "5"})
        await legs.event(customer, LegAnswered)
        if pbx.kind == "asterisk":
            (originate,) = [h for n, h in legs.sent if n == "Originate"]
            headers = dict(originate)
            # callerid.c would re-parse quotes and angle brackets: those are dropped, the rest is data
            assert headers["CallerID"] == '"Lead; Bob {x} ^^ a,b|c)" <5551000>'
            variables = [v for k, v in originate if k == "Variable"]
            assert sorted(v.split("=", 1)[0] for v in variables) == [
                "CC_AMD", "CC_CALL_ID", "CC_CUSTOMER_WAIT", "CC_ROLE", "CC_TALK"]
            assert await legs.driver.get_var(customer, "CALLERID(name)") == "Lead; Bob {x} ^^ a,b|c)"
            assert await legs.driver.get_var(customer, "CC_AGENT") is None
        else:
            from tests.fakes.esl_server import fs_separate_string

            (raw,) = [c for c in rig.switch.fake.received if c.startswith("bgapi originate")]
            line = raw.split("\n", 1)[0][len("bgapi originate "):]
            assert fs_separate_string(line, " ")[1:] == ["&park()"]  # one dial string, one app
            variables, endpoint = rig.switch.originates[-1]
            assert endpoint == legs.lead("0")
            assert variables["origination_caller_id_name"] == HOSTILE_NAME
            assert sorted(variables) == sorted([
                "origination_uuid", "cc_call_id", "origination_caller_id_number", "origination_caller_id_name",
                "originate_timeout", "ignore_early_media", "cc_role", "hangup_after_bridge", "park_timeout",
                "cc_talk"])
        assert not any("cc-bad" in repr(s) for s in legs.sent)
        await legs.driver.hangup(customer)
        await legs.event(customer, LegHungUp)
