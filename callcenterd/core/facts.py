"""Facts: what happened in the contact center, as the core records it.

The ACD emits these; the journey builder folds them into one record per
call, the queue_log writer turns each into one Asterisk-style line, and the
KPIs are computed from the closed journeys.  ``at`` is always the injected
clock's epoch time in seconds (float).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call entered callcenterd (before IVR / queue)."""

    at: float
    call_id: str
    leg_id: str
    caller_number: str = ""
    caller_name: str = ""
    dnis: str = ""
    node: str = ""
    pbx_uniqueid: str = ""  # the caller leg's own id in the PBX (Asterisk UNIQUEID, FreeSWITCH uuid)
    pbx_linkedid: str = ""  # Asterisk LINKEDID / FreeSWITCH call uuid: joins Master.csv and CEL
    caller_name_raw: str = ""  # the name as the trunk sent it, escaped, when it had to be cleaned
    direction: str = "inbound"  # inbound | outbound (a campaign's dial attempt)
    campaign: str = ""  # outbound: the campaign
    lead_id: int | None = None  # outbound: the lead dialled


@dataclass(frozen=True, slots=True)
class CallerEnqueued:
    """queue_log ENTERQUEUE|url|callerid"""

    at: float
    call_id: str
    queue: str
    position: int
    priority: int = 0
    caller_number: str = ""
    wait_estimate: float | None = None  # seconds, the estimate given on entry
    readopted: bool = False  # True when re-adopted after a restart
    staffed: int | None = None  # agents staffed (logged in, not paused) in the queue on entry


@dataclass(frozen=True, slots=True)
class AgentOffered:
    """An agent leg is being dialled for a caller (queue_log has no line)."""

    at: float
    call_id: str
    queue: str
    agent: str
    leg_id: str
    rule: str = ""  # the routing rule that chose the agent


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer:
    """queue_log RINGNOANSWER|ringtime_ms ; reason: no-answer/busy/rejected/..."""

    at: float
    call_id: str
    queue: str
    agent: str
    ring_ms: int
    reason: str = "no-answer"


@dataclass(frozen=True, slots=True)
class CallerConnected:
    """queue_log CONNECT|holdtime|bridged_uniqueid|ringtime"""

    at: float
    call_id: str
    queue: str
    agent: str
    hold_s: int
    agent_leg_id: str
    ring_s: int


@dataclass(frozen=True, slots=True)
class CallCompleted:
    """queue_log COMPLETECALLER / COMPLETEAGENT |holdtime|calltime|origposition"""

    at: float
    call_id: str
    queue: str
    agent: str
    hold_s: int
    talk_s: int
    orig_position: int
    by: str  # "caller" | "agent"


@dataclass(frozen=True, slots=True)
class CallerAbandoned:
    """queue_log ABANDON|position|origposition|waittime"""

    at: float
    call_id: str
    queue: str
    position: int
    orig_position: int
    wait_s: int


@dataclass(frozen=True, slots=True)
class CallerTimedOut:
    """queue_log EXITWITHTIMEOUT|position|origposition|waittime; then overflow."""

    at: float
    call_id: str
    queue: str
    position: int
    orig_position: int
    wait_s: int
    overflow_to: str = ""  # queue name or "dialplan:<dest>" or ""


@dataclass(frozen=True, slots=True)
class CallerExitEmpty:
    """queue_log EXITEMPTY|position|origposition|waittime (leave-when-empty)."""

    at: float
    call_id: str
    queue: str
    position: int
    orig_position: int
    wait_s: int
    overflow_to: str = ""


@dataclass(frozen=True, slots=True)
class CallerRejected:
    """Caller not admitted: queue_log JOINEMPTY or FULL (app_queue writes these too)."""

    at: float
    call_id: str
    queue: str
    reason: str  # "joinempty" | "full"
    overflow_to: str = ""


@dataclass(frozen=True, slots=True)
class AmdDetected:
    """Answering-machine detection said what answered an outbound call."""

    at: float
    call_id: str
    verdict: str  # human | machine | notsure


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call left callcenterd entirely: the journey closes."""

    at: float
    call_id: str
    outcome: str  # answered | abandoned | timeout | empty | rejected | pbx-restart | ...


@dataclass(frozen=True, slots=True)
class AgentLoggedIn:
    """queue_log ADDMEMBER (one line per queue the agent serves)."""

    at: float
    agent: str
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentLoggedOut:
    """queue_log REMOVEMEMBER"""

    at: float
    agent: str
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentPaused:
    """queue_log PAUSE|reason"""

    at: float
    agent: str
    queues: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentUnpaused:
    """queue_log UNPAUSE"""

    at: float
    agent: str
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """Every agent state transition, for live status and occupancy."""

    at: float
    agent: str
    state: str  # logged-out | available | ringing | on-call | wrap-up | paused
    reason: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


Fact = Union[
    CallStarted,
    CallerEnqueued,
    AgentOffered,
    AgentRingNoAnswer,
    CallerConnected,
    CallCompleted,
    CallerAbandoned,
    CallerTimedOut,
    CallerExitEmpty,
    CallerRejected,
    AmdDetected,
    CallEnded,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentUnpaused,
    AgentStateChanged,
]
