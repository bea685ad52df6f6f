"""The journey: one record per call, from arrival to hang-up.

Pure data.  Times are epoch seconds (float, the injected clock's), durations
are seconds (float, rounded to the millisecond).  ``to_dict`` is the JSON
Lines shape documented in docs/cdr.md; ``from_dict`` reads it back (the
``report`` command and the writers' de-duplication use it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

# Journey.outcome values the builder produces itself; CallEnded may carry others.
OUTCOMES = (
    "answered",
    "abandoned",
    "timeout",
    "empty",
    "joinempty",
    "full",
    "rejected",
    "pbx-restart",  # the PBX restarted under the call (ends when we last heard from it)
    "pbx-shutdown",  # hung up by the PBX shutting down gracefully: not an abandon
    "interrupted",  # callcenterd restarted and the call was gone
    "ended",  # left before any queue (IVR hang-up, ...)
)

# QueueSegment.result values
SEGMENT_RESULTS = ("waiting", "answered", "abandoned", "timeout", "empty", "joinempty", "full", "ended")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(slots=True)
class AgentAttempt:
    """One offer of the caller to one agent leg (queue_log has RINGNOANSWER/CONNECT)."""

    agent: str
    leg_id: str
    queue: str
    ring_start: float
    ring_end: float | None = None
    result: str = "ringing"  # answered | no-answer | busy | rejected | ... | cancelled
    rule: str = ""

    @property
    def ring_s(self) -> float | None:
        return None if self.ring_end is None else _ms(self.ring_end - self.ring_start)


@dataclass(slots=True)
class QueueSegment:
    """The caller's stay in one queue; an overflow opens the next segment."""

    queue: str
    entered_at: float
    position: int = 0  # position at entry (app_queue's origposition)
    priority: int = 0
    wait_estimate: float | None = None
    left_at: float | None = None
    exit_position: int | None = None
    result: str = "waiting"
    overflow_to: str = ""
    staffed: int | None = None  # agents staffed in the queue on entry (for the naive estimate)

    @property
    def wait_s(self) -> float | None:
        return None if self.left_at is None else _ms(self.left_at - self.entered_at)


@dataclass(slots=True)
class Journey:
    """Everything callcenterd knows about one call, closed on CallEnded."""

    call_id: str
    node: str = ""
    caller_number: str = ""
    caller_name: str = ""
    dnis: str = ""
    started_at: float = 0.0
    enqueued_at: float | None = None
    queue: str = ""  # first queue
    final_queue: str = ""  # last queue (differs after an overflow)
    priority: int = 0
    position_at_entry: int | None = None
    wait_estimate: float | None = None  # seconds, announced/estimated at first entry
    wait_actual: float | None = None  # seconds from first enqueue to answer / leaving the queues
    estimate_error: float | None = None  # wait_actual - wait_estimate, answered calls only
    answered_at: float | None = None
    agent: str = ""
    agent_leg_id: str = ""
    ring_attempts: int = 0
    hold_s: float | None = None  # wait until connect (answered calls)
    talk_s: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    outcome: str = ""
    completed_by: str = ""  # caller | agent (answered calls)
    readopted: bool = False
    queues: list[QueueSegment] = field(default_factory=list)
    attempts: list[AgentAttempt] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)  # filled by a later stage
    ivr: list[dict[str, Any]] = field(default_factory=list)  # filled by a later stage
    pbx_uniqueid: str = ""  # caller leg's PBX id: Master.csv uniqueid / CEL uniqueid
    pbx_linkedid: str = ""  # Master.csv / CEL linkedid
    caller_name_raw: str = ""  # escaped original caller name when caller_name had to be cleaned
    staffed_at_entry: int | None = None  # agents staffed in the first queue on entry
    direction: str = "inbound"  # inbound | outbound
    campaign: str = ""  # outbound: the campaign that dialled
    lead_id: int | None = None  # outbound: the lead dialled
    amd: str = ""  # outbound with AMD: human | machine | notsure

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines object (stable key order, see docs/cdr.md)."""
        out = asdict(self)
        out["queues"] = [dict(asdict(s), wait_s=s.wait_s) for s in self.queues]
        out["attempts"] = [dict(asdict(a), ring_s=a.ring_s) for a in self.attempts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Journey:
        """Rebuild a journey from :meth:`to_dict` output; unknown keys are ignored."""
        if not isinstance(data, Mapping) or not isinstance(data.get("call_id"), str):
            raise ValueError("journey object needs a string 'call_id'")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        seg_names = {f.name for f in fields(QueueSegment)}
        att_names = {f.name for f in fields(AgentAttempt)}
        kwargs["queues"] = [
            QueueSegment(**{k: v for k, v in s.items() if k in seg_names})
            for s in data.get("queues") or ()
        ]
        kwargs["attempts"] = [
            AgentAttempt(**{k: v for k, v in a.items() if k in att_names})
            for a in data.get("attempts") or ()
        ]
        kwargs["transfers"] = list(data.get("transfers") or ())
        kwargs["ivr"] = list(data.get("ivr") or ())
        return cls(**kwargs)
