"""Waiting callers: ordering per (node, queue) (the estimated wait is in estimate.py).

Order inside a queue is ``(-priority, enqueued_at, seq)``: higher priority
first, then longest waiting.  Across the queues an agent serves, the queue
weight comes first (app_queue ``weight``): ``(-weight, -priority,
enqueued_at, seq)``.  ``enqueued_at`` is the time the caller *first*
queued; it survives a daemon restart (stamped on the leg) and an overflow
move, so a caller never loses its place.

Routable callers are also grouped by skill requirement, so a freed agent
checks its skills once per distinct requirement of a queue, not once per
waiting caller: callers it cannot serve cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenterd.core.acd.index import SortedBag
from callcenterd.pbx.api import CallerId

@dataclass(slots=True, eq=False)
class CallerEntry:
    call_id: str
    leg_id: str
    node: str
    queue: str
    priority: int
    caller_id: CallerId
    skills: dict[str, int]
    enqueued_at: float  # first time queued anywhere: ordering
    entered_at: float  # time it entered the current queue: max_wait, hold time, relaxation
    seq: int
    orig_position: int = 0
    estimate: float | None = None
    rings: dict[str, str] = field(default_factory=dict)  # agent leg -> agent id
    excluded: dict[str, float] = field(default_factory=dict)  # agent id -> retry_delay end
    agent_leg: str | None = None
    agent_id: str | None = None
    connected_at: float = 0.0
    relax_step: int = 0
    requirement: dict[str, int] = field(default_factory=dict)  # skills after relaxation
    primary: str | None = None  # the skill that ranks proficiency
    covers_base: bool = False  # requirement >= the queue's own levels: only agents fit for the queue qualify
    visited: list[str] = field(default_factory=list)  # queues, for overflow loops
    in_line: bool = False
    routable_in: bool = False
    # an answered outbound customer: it waits where the PBX has it (no Hold,
    # no announcements), for at most ``max_wait`` s, and never overflows:
    # the campaign decides what a person who got no agent hears
    outbound: bool = False
    max_wait: float | None = None
    routable_sig: tuple = ()  # the requirement group it is filed under while routable
    # (-priority, enqueued_at, seq, call_id): the ordering key, fixed at creation
    key: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = (-self.priority, self.enqueued_at, self.seq, self.call_id)


class WaitingLine:
    """Callers of one (node, queue): all of them, and those needing an agent now.

    ``groups`` maps a requirement (sorted ``(skill, level)`` pairs) to the
    routable callers that have it, each group in caller order.
    """

    __slots__ = ("waiting", "groups")

    def __init__(self) -> None:
        self.waiting = SortedBag()  # every caller not yet connected
        self.groups: dict[tuple, SortedBag] = {}  # routable callers, by requirement

    def position(self, call: CallerEntry) -> int:
        return self.waiting.rank(call.key) + 1

    def add_routable(self, call: CallerEntry) -> None:
        sig = call.routable_sig = tuple(sorted(call.requirement.items()))
        bag = self.groups.get(sig)
        if bag is None:
            bag = self.groups[sig] = SortedBag()
        bag.add(call.key)

    def discard_routable(self, call: CallerEntry) -> None:
        bag = self.groups.get(call.routable_sig)
        if bag is not None:
            bag.discard(call.key)
            if not bag:
                del self.groups[call.routable_sig]


@dataclass(slots=True)
class StaffStats:
    """Per (node, queue): staffed agents (the estimate asks _busy_agents who is busy)."""

    staffed: int = 0
