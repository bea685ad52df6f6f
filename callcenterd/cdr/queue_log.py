"""Asterisk-compatible queue_log: ``epoch|callid|queue|agent|EVENT|data...``.

Field orders follow apps/app_queue.c (Asterisk 13..22) ``ast_queue_log()``
calls, and main/logger.c writes ``"%ld|%s|%s|%s|%s|%s\\n"`` with
``time(NULL)``: the epoch is an integer (truncated), and the data part is
always present, so an event without data still ends with ``|``
(``ADDMEMBER|``).  Agent is ``NONE`` where app_queue writes NONE (caller
events before connect); callid is ``NONE`` for member events, as
set_member_paused() does.

    ENTERQUEUE       url|callerid|position          queue_exec()
    CONNECT          holdtime|bridged_uniqueid|ringtime   try_calling()
    COMPLETECALLER   holdtime|calltime|origposition handle_hangup()
    COMPLETEAGENT    holdtime|calltime|origposition handle_hangup()
    ABANDON          position|origposition|waittime queue_exec() stop:
    EXITWITHTIMEOUT  position|origposition|waittime queue_exec()
    EXITEMPTY        position|origposition|waittime queue_exec() leavewhenempty
    RINGNOANSWER     ringtime_ms                    rna()
    ADDMEMBER        (empty)                        aqm_exec()/manager
    REMOVEMEMBER     (empty)                        rqm_exec()/manager
    PAUSE / UNPAUSE  reason                         set_member_paused()
    PAUSEALL / UNPAUSEALL (queue NONE)              pause with no queue named

Our extensions (app_queue only sets QUEUESTATUS for these, it logs nothing):
JOINEMPTY and FULL with ``position|origposition|waittime`` = ``0|0|0``, the
shape of EXITEMPTY, so parsers that handle EXITEMPTY read them too.

A re-adopted caller (CallerEnqueued.readopted) gets no second ENTERQUEUE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callcenterd.cdr.rotating import RotatingFile
from callcenterd.core import facts as f

NONE = "NONE"


def _field(value: object) -> str:
    # '|' is the separator and '\n' the record end: neither may leak from a value.
    return str(value).replace("|", "_").replace("\r", " ").replace("\n", " ")


def _line(at: float, callid: str, queue: str, agent: str, event: str, *data: object) -> str:
    head = [str(int(at)), _field(callid) or NONE, _field(queue) or NONE, _field(agent) or NONE, event]
    return "|".join(head + [_field(d) for d in (data or ("",))]) + "\n"


def format_fact(fact: f.Fact) -> list[str]:
    """The queue_log lines for one fact (most facts give one line, some none)."""
    if isinstance(fact, f.CallerEnqueued):
        if fact.readopted:
            return []
        return [_line(fact.at, fact.call_id, fact.queue, NONE, "ENTERQUEUE", "", fact.caller_number, fact.position)]
    if isinstance(fact, f.CallerConnected):
        return [_line(fact.at, fact.call_id, fact.queue, fact.agent, "CONNECT", fact.hold_s, fact.agent_leg_id, fact.ring_s)]
    if isinstance(fact, f.CallCompleted):
        event = "COMPLETEAGENT" if fact.by == "agent" else "COMPLETECALLER"
        return [_line(fact.at, fact.call_id, fact.queue, fact.agent, event, fact.hold_s, fact.talk_s, fact.orig_position)]
    if isinstance(fact, f.CallerAbandoned):
        return [_line(fact.at, fact.call_id, fact.queue, NONE, "ABANDON", fact.position, fact.orig_position, fact.wait_s)]
    if isinstance(fact, f.CallerTimedOut):
        return [_line(fact.at, fact.call_id, fact.queue, NONE, "EXITWITHTIMEOUT", fact.position, fact.orig_position, fact.wait_s)]
    if isinstance(fact, f.CallerExitEmpty):
        return [_line(fact.at, fact.call_id, fact.queue, NONE, "EXITEMPTY", fact.position, fact.orig_position, fact.wait_s)]
    if isinstance(fact, f.CallerRejected):
        event = "FULL" if fact.reason == "full" else "JOINEMPTY"
        return [_line(fact.at, fact.call_id, fact.queue, NONE, event, 0, 0, 0)]
    if isinstance(fact, f.AgentRingNoAnswer):
        return [_line(fact.at, fact.call_id, fact.queue, fact.agent, "RINGNOANSWER", fact.ring_ms)]
    if isinstance(fact, f.AgentLoggedIn):
        return [_line(fact.at, NONE, q, fact.agent, "ADDMEMBER") for q in fact.queues]
    if isinstance(fact, f.AgentLoggedOut):
        return [_line(fact.at, NONE, q, fact.agent, "REMOVEMEMBER") for q in fact.queues]
    if isinstance(fact, f.AgentPaused):
        if not fact.queues:
            return [_line(fact.at, NONE, NONE, fact.agent, "PAUSEALL", fact.reason)]
        return [_line(fact.at, NONE, q, fact.agent, "PAUSE", fact.reason) for q in fact.queues]
    if isinstance(fact, f.AgentUnpaused):
        if not fact.queues:
            return [_line(fact.at, NONE, NONE, fact.agent, "UNPAUSEALL")]
        return [_line(fact.at, NONE, q, fact.agent, "UNPAUSE") for q in fact.queues]
    # CallStarted, AgentOffered, CallEnded, AgentStateChanged: app_queue has no line
    return []


class QueueLogWriter:
    """queue_log-YYYY-MM-DD (daily) or queue_log (size)."""

    def __init__(self, directory: Path, **file_options: Any) -> None:
        self.file = RotatingFile(directory, "queue_log", "", **file_options)

    def write(self, fact: f.Fact) -> bool:
        lines = format_fact(fact)
        if not lines:
            return False
        self.file.write("".join(lines).encode("utf-8"), fact.at)
        return True

    def sync(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()
