"""queue_log lines, checked field by field against app_queue.c's ast_queue_log() formats."""

from __future__ import annotations

import pytest

from callcenterd.cdr.queue_log import format_fact
from callcenterd.core import facts as f

T = 1_700_000_000.75  # app_queue writes time(NULL): truncated, never rounded up


@pytest.mark.parametrize(
    "fact, expected",
    [
        (f.CallerEnqueued(T, "1700.1", "sales", position=2, caller_number="+4930111"),
         ["1700000000|1700.1|sales|NONE|ENTERQUEUE||+4930111|2"]),
        (f.CallerConnected(T, "1700.1", "sales", "1001", hold_s=12, agent_leg_id="1700.9", ring_s=3),
         ["1700000000|1700.1|sales|1001|CONNECT|12|1700.9|3"]),
        (f.CallCompleted(T, "1700.1", "sales", "1001", hold_s=12, talk_s=95, orig_position=2, by="caller"),
         ["1700000000|1700.1|sales|1001|COMPLETECALLER|12|95|2"]),
        (f.CallCompleted(T, "1700.1", "sales", "1001", hold_s=12, talk_s=95, orig_position=2, by="agent"),
         ["1700000000|1700.1|sales|1001|COMPLETEAGENT|12|95|2"]),
        (f.CallerAbandoned(T, "1700.1", "sales", position=1, orig_position=3, wait_s=40),
         ["1700000000|1700.1|sales|NONE|ABANDON|1|3|40"]),
        (f.CallerTimedOut(T, "1700.1", "sales", position=2, orig_position=4, wait_s=300, overflow_to="x"),
         ["1700000000|1700.1|sales|NONE|EXITWITHTIMEOUT|2|4|300"]),
        (f.CallerExitEmpty(T, "1700.1", "sales", position=1, orig_position=1, wait_s=7),
         ["1700000000|1700.1|sales|NONE|EXITEMPTY|1|1|7"]),
        (f.CallerRejected(T, "1700.1", "sales", reason="joinempty"),
         ["1700000000|1700.1|sales|NONE|JOINEMPTY|0|0|0"]),
        (f.CallerRejected(T, "1700.1", "sales", reason="full"),
         ["1700000000|1700.1|sales|NONE|FULL|0|0|0"]),
        (f.AgentRingNoAnswer(T, "1700.1", "sales", "1001", ring_ms=15000),
         ["1700000000|1700.1|sales|1001|RINGNOANSWER|15000"]),
        (f.AgentLoggedIn(T, "1001", ("sales", "support")),
         ["1700000000|NONE|sales|1001|ADDMEMBER|", "1700000000|NONE|support|1001|ADDMEMBER|"]),
        (f.AgentLoggedOut(T, "1001", ("sales",)), ["1700000000|NONE|sales|1001|REMOVEMEMBER|"]),
        (f.AgentPaused(T, "1001", ("sales",), reason="lunch"), ["1700000000|NONE|sales|1001|PAUSE|lunch"]),
        (f.AgentUnpaused(T, "1001", ("sales",)), ["1700000000|NONE|sales|1001|UNPAUSE|"]),
        (f.AgentPaused(T, "1001", (), reason="break"), ["1700000000|NONE|NONE|1001|PAUSEALL|break"]),
    ],
)
def test_line_formats(fact, expected):
    assert format_fact(fact) == [line + "\n" for line in expected]


@pytest.mark.parametrize(
    "fact",
    [
        f.CallStarted(T, "c", "l"),
        f.AgentOffered(T, "c", "q", "a", "l"),
        f.CallEnded(T, "c", "answered"),
        f.AgentStateChanged(T, "a", "available"),
        f.CallerEnqueued(T, "c", "q", position=1, readopted=True),  # its ENTERQUEUE was written before the restart
    ],
)
def test_facts_without_a_queue_log_line(fact):
    assert format_fact(fact) == []


def test_separator_and_newline_cannot_be_injected():
    (line,) = format_fact(f.CallerEnqueued(T, "c1", "sales", position=1, caller_number="12|X\nFAKE"))
    assert line.count("\n") == 1 and line.endswith("\n")
    assert line.split("|")[5:] == ["", "12_X FAKE", "1\n"]
