"""The 2026-11-29 captures replayed, event by event and in wire order,
through the pure translator: what the driver reports must follow the
channels, whatever the originate job says."""

from __future__ import annotations

import pytest

from callcenterd.pbx.api import Bridged, LegAnswered, LegHungUp, Outcome, Unbridged
from callcenterd.pbx.freeswitch.translate import FsTranslator
from tests.fakes.esl_server import _event_of, load_capture, load_client, split_commands, split_frames


def _uuids(name: str) -> tuple[str, str, str]:
    """(caller C, agent A, the agent's Job-UUID) from the capture's client side."""
    cmds = split_commands(load_client(name))
    caller = next(c for c in cmds if c.startswith("api originate")).split("origination_uuid=")[1].split(",")[0]
    bg = next(c for c in cmds if c.startswith("bgapi originate"))
    agent = bg.split("origination_uuid=")[1].split("}")[0]
    job = bg.split("Job-UUID: ")[1].strip()
    return caller, agent, job


def replay(name: str) -> tuple[list, list[str], str, str]:
    """Feed the capture to a translator that tracks C (a caller) and
    originated A; returns (port events, wire log, C, A)."""
    caller, agent, job = _uuids(name)
    tr = FsTranslator()
    tr.track(caller)
    tr.originating(agent)
    out: list = []
    wire: list[str] = []
    for head, body in split_frames(load_capture(name)):
        if b"text/event-" not in head:
            if b"api/response" in head and body.strip() == f"+OK {agent}".encode():
                wire.append("uuid_bridge reply")
            continue
        ev = _event_of(head, body)
        if ev.name == "BACKGROUND_JOB" and ev.get("Job-UUID") == job:
            wire.append(f"job {ev.body.strip()}")
            got = tr.job_result(agent, ev.body)
        else:
            got = tr.feed(ev)
            if ev.name in ("CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE") and ev.uuid in (caller, agent):
                wire.append(f"{ev.name} {'A' if ev.uuid == agent else 'C'}")
        out.extend(got)
    return out, wire, caller, agent


@pytest.mark.parametrize("name, job", [
    ("bridge-before-originate-job", "job -ERR ORIGINATOR_CANCEL"),
    ("bridge-after-originate-job", "job +OK"),
])
def test_the_agent_leg_lives_until_its_own_hangup_whatever_the_job_said(name, job):
    events, wire, caller, agent = replay(name)
    # the captured order, as the README of the captures describes it
    assert wire.index("CHANNEL_ANSWER A") < wire.index("uuid_bridge reply")
    assert wire.index("uuid_bridge reply") < wire.index("CHANNEL_BRIDGE C")
    assert any(w.startswith(job) for w in wire)
    if name == "bridge-before-originate-job":
        assert wire.index("uuid_bridge reply") < wire.index("job -ERR ORIGINATOR_CANCEL") < wire.index("CHANNEL_BRIDGE C")
    # what the core hears: answered, bridged, and ended only by the agent's hang-up
    assert events == [
        LegAnswered(agent),
        Bridged(caller, agent),
        Unbridged(agent, caller),
        LegHungUp(agent, Outcome.ANSWERED, 16, "NORMAL_CLEARING"),
        LegHungUp(caller, Outcome.ANSWERED, 16, "NORMAL_CLEARING"),
    ]


def test_a_job_error_before_answer_still_ends_the_leg():
    tr = FsTranslator()
    tr.originating("leg-1")
    assert tr.job_result("leg-1", "-ERR USER_BUSY\n") == [LegHungUp("leg-1", Outcome.BUSY, 17, "USER_BUSY")]
