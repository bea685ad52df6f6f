"""AMI -> port events, replayed from the real Asterisk 22 captures."""

from pathlib import Path

import pytest

from callcenterd.pbx.api import Bridged, LegAnswered, LegHungUp, LegRinging, Outcome, Unbridged
from callcenterd.pbx.asterisk.translate import AmiTranslator, device_key
from callcenterd.protocols.ami.codec import AmiDecoder
from tests.fakes.ami_server import FIXTURES  # one place that finds them ($CALLCENTERD_AST_FIXTURES)


def _messages(name: str):
    return AmiDecoder().feed((FIXTURES / name).read_bytes())


def _leg_of_action(messages, action_id: str, dial: str) -> str | None:
    """Uniqueid of the ;1 channel Asterisk created for one Originate.

    In production the driver sets ``ChannelId`` to its own leg id; in the
    capture only orig-answer did, so the test binds the others the same way
    Asterisk would have: the first ``;1`` Local channel for that dial string
    after the action's response.
    """
    prefix = dial.rsplit("/n", 1)[0] + "-"
    seen_response = False
    for msg in messages:
        if msg.is_response and msg.action_id == action_id:
            seen_response = True
        elif seen_response and msg.name == "Newchannel":
            channel = msg.get("Channel") or ""
            if channel.startswith(prefix) and channel.endswith(";1"):
                return msg.get("Uniqueid")
    return None


ORIGINATES = {
    "orig-answer": ("Local/1001@agents/n", [LegAnswered, Outcome.ANSWERED]),
    "orig-busy": ("Local/2002@agents/n", [Outcome.BUSY]),
    "orig-congestion": ("Local/2003@agents/n", [Outcome.CONGESTION]),
    "orig-noanswer": ("Local/2001@agents/n", [LegRinging, Outcome.NO_ANSWER]),
    "orig-rejected": ("Local/2004@agents/n", [Outcome.REJECTED]),
    "orig-noexten": ("Local/9999@agents/n", [Outcome.FAILED]),
    "orig-badtech": ("NoSuchTech/foo", [Outcome.FAILED]),
    "orig-cancel": ("Local/2001@agents/n", [LegRinging, Outcome.CANCELLED]),
}


def test_originate_outcomes_from_the_capture():
    messages = _messages("ami-originate-reasons.txt")
    tr = AmiTranslator()
    legs = {}
    for action_id, (dial, _) in ORIGINATES.items():
        leg = _leg_of_action(messages, action_id, dial) or f"never-created-{action_id}"
        legs[action_id] = leg
    assert legs["orig-answer"] == "cc-orig-answer-1"  # ChannelId became the Uniqueid
    got: dict[str, list] = {a: [] for a in ORIGINATES}
    by_leg = {leg: a for a, leg in legs.items()}
    for msg in messages:
        if msg.is_response and msg.action_id in ORIGINATES:
            tr.originating(msg.action_id, legs[msg.action_id])
            if msg.action_id == "orig-cancel":
                tr.hanging_up(legs["orig-cancel"])  # the capture hung it up by AMI
        for ev in tr.feed(msg):
            action = by_leg.get(getattr(ev, "leg_id", None))
            if action is None:
                continue
            got[action].append(ev.outcome if isinstance(ev, LegHungUp) else type(ev))
    for action_id, (_, expected) in ORIGINATES.items():
        assert got[action_id] == expected, action_id


def test_busy_local_leg_reports_busy_not_its_cause_zero():
    # The ;1 half of a busy Local channel hangs up with cause 0 *before* the
    # OriginateResponse (Reason 5) arrives; cause 0 alone would say "cancelled".
    messages = _messages("ami-originate-reasons.txt")
    leg = _leg_of_action(messages, "orig-busy", "Local/2002@agents/n")
    causes = [m.get("Cause") for m in messages if m.name == "Hangup" and m.get("Uniqueid") == leg]
    assert causes == ["0"]
    tr = AmiTranslator()
    events = []
    for msg in messages:
        if msg.is_response and msg.action_id == "orig-busy":
            tr.originating("orig-busy", leg)
        events += [e for e in tr.feed(msg) if getattr(e, "leg_id", None) == leg]
    assert events == [LegHungUp(leg, Outcome.BUSY, 0)]


def test_untracked_channels_produce_nothing():
    tr = AmiTranslator()
    assert [e for m in _messages("ami-queue-answered.txt") for e in tr.feed(m)] == []


def test_bridge_and_hangup_of_tracked_legs():
    messages = _messages("ami-queue-answered.txt")
    enters = [m for m in messages if m.name == "BridgeEnter"]
    assert len(enters) >= 2
    a, b = enters[0].get("Uniqueid"), enters[1].get("Uniqueid")
    tr = AmiTranslator()
    tr.track(a)
    tr.track(b)
    events = [e for m in messages for e in tr.feed(m)]
    assert Bridged(a, b) in events
    assert any(isinstance(e, Unbridged) for e in events)
    hung = [e for e in events if isinstance(e, LegHungUp)]
    assert {e.leg_id for e in hung} == {a, b}
    assert all(e.outcome is Outcome.ANSWERED for e in hung)
    assert len(hung) == 2  # exactly once per leg


@pytest.mark.parametrize(
    "device,key",
    [("Local/1001@agents/n", "Local/1001@agents"), ("PJSIP/1001", "PJSIP/1001"), ("Local/1001@agents", "Local/1001@agents")],
)
def test_device_key(device, key):
    assert device_key(device) == key


def _m(*pairs):
    from callcenterd.protocols.ami.codec import Message

    return Message.from_pairs(pairs)


@pytest.mark.parametrize("order", ["request-first", "response-first", "hangup-first"])
def test_rejected_whatever_the_event_order(order):
    # Asterisk 22 sends these three in varying orders for Hangup(21) before answer
    new = _m(("Event", "Newchannel"), ("Channel", "Local/2004@agents-1;1"), ("Uniqueid", "leg-r"))
    request = _m(("Event", "HangupRequest"), ("Uniqueid", "leg-r"), ("Cause", "21"))
    response = _m(("Event", "OriginateResponse"), ("ActionID", "a-r"), ("Response", "Failure"),
                  ("Reason", "0"), ("Uniqueid", "leg-r"))
    hangup = _m(("Event", "Hangup"), ("Uniqueid", "leg-r"), ("Cause", "21"))
    sequence = {
        "request-first": [request, response, hangup],
        "response-first": [response, request, hangup],
        "hangup-first": [request, hangup, response],
    }[order]
    tr = AmiTranslator()
    tr.originating("a-r", "leg-r")
    events = [e for m in [new, *sequence] for e in tr.feed(m)]
    assert events == [LegHungUp("leg-r", Outcome.REJECTED, 21)]
    assert "leg-r" not in tr.legs  # nothing left behind


def test_a_failed_originate_does_not_teach_a_channel_name():
    """Reason 0 with no channel ever created (unknown technology): the
    failure is reported at once, not held back for a Hangup that never comes."""
    from callcenterd.pbx.api import LegHungUp
    from callcenterd.pbx.asterisk.translate import AmiTranslator
    from callcenterd.protocols.ami.codec import Message

    t = AmiTranslator()
    t.originating("orig-1", "leg-1")
    events = t.feed(Message.from_pairs([("Event", "OriginateResponse"), ("ActionID", "orig-1"),
                                        ("Response", "Failure"), ("Channel", "NoSuchTech/foo"),
                                        ("Uniqueid", "leg-1"), ("Reason", "0")]))
    assert [type(e) for e in events] == [LegHungUp] and t.known_channel("leg-1") is None
