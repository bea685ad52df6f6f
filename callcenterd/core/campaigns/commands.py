"""Commands the campaign dialer emits; the service executes them in order.

Order matters: a :class:`RecordAttempt` (and the :class:`UpdateLead` that
marks the lead DIALLING with its attempt counted) always comes before the
:class:`Dial` of that attempt; the service persists them before it
originates, so an attempt is never dialled without its record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union

from callcenterd.core.campaigns.model import AttemptOutcome, AttemptRecord, Lead
from callcenterd.pbx.api import CallerId, OriginateRequest


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    """Persist a new attempt (before dialling it)."""

    attempt: AttemptRecord


@dataclass(frozen=True, slots=True)
class Dial:
    """Originate the attempt's leg.  ``endpoint`` is the campaign's dial
    template with only the lead's validated E.164 digits in it."""

    attempt_id: str
    lead: Lead
    endpoint: str
    caller_id: CallerId
    variables: Mapping[str, str] = field(default_factory=dict)
    ring_timeout: float = 25.0
    amd: bool = False
    node: str = ""

    def request(self) -> OriginateRequest:
        """The PBX port's request: leg id and call id are the attempt id."""
        return OriginateRequest(
            leg_id=self.attempt_id,
            endpoint=self.endpoint,
            caller_id=self.caller_id,
            ring_timeout=self.ring_timeout,
            variables=dict(self.variables),
            amd=self.amd,
            call_id=self.attempt_id,
        )


@dataclass(frozen=True, slots=True)
class ConnectToPool:
    """Enter the answered leg into the ACD: an agent within ``max_wait`` s,
    or the ACD reports back (the dialer's ``no_agent``).  ``reserved_agent``:
    that agent only (a callback to its agent, a guarded redial, preview)."""

    attempt_id: str
    queue: str
    skills: Mapping[str, int]
    priority: int
    max_wait: float
    reserved_agent: str = ""


@dataclass(frozen=True, slots=True)
class PlayAbandonMessage:
    attempt_id: str
    prompt: str


@dataclass(frozen=True, slots=True)
class LeaveMachineMessage:
    """Wait for the beep, play ``prompt``, hang up."""

    attempt_id: str
    prompt: str


@dataclass(frozen=True, slots=True)
class HangupAttempt:
    attempt_id: str
    cause: int = 16


@dataclass(frozen=True, slots=True)
class UpdateLead:
    """Persist the lead (state, attempts, next_at, ...)."""

    lead: Lead


@dataclass(frozen=True, slots=True)
class CloseAttempt:
    attempt_id: str
    outcome: AttemptOutcome
    ended_at: float
    agent: str = ""


@dataclass(frozen=True, slots=True)
class RecordDisposition:
    attempt_id: str
    agent: str
    disposition: str
    callback_at: float | None = None


@dataclass(frozen=True, slots=True)
class AddDnc:
    number: str  # E.164
    reason: str


@dataclass(frozen=True, slots=True)
class ReserveAgent:
    """Hold a ready agent for this attempt: the ACD must not offer the agent
    any other call until :class:`ReleaseAgent` (or the attempt reaches it)."""

    agent: str
    attempt_id: str


@dataclass(frozen=True, slots=True)
class ReleaseAgent:
    agent: str
    attempt_id: str


CampaignCommand = Union[
    RecordAttempt,
    Dial,
    ConnectToPool,
    PlayAbandonMessage,
    LeaveMachineMessage,
    HangupAttempt,
    UpdateLead,
    CloseAttempt,
    RecordDisposition,
    AddDnc,
    ReserveAgent,
    ReleaseAgent,
]
