"""Agent runtime state.

An agent's displayed state is *computed* from a few facts (logged in,
paused, legs it holds, wrap-up and back-off deadlines) rather than stored,
so it can never disagree with them:

    logged-out -> available <-> ringing -> on-call -> wrap-up -> available
                     \\-> paused (reason) <-/        (paused wins after wrap-up)

Pause and logout take effect for routing at once; the display follows the
call (an agent paused or logging out during a call shows on-call until it
ends, like app_queue).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from callcenterd.core.acd.specs import AgentSpec


class AgentState(str, enum.Enum):
    LOGGED_OUT = "logged-out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


@dataclass(slots=True, eq=False)
class AgentLeg:
    """A leg we originated towards an agent's device for one caller."""

    leg_id: str
    agent_id: str
    call_id: str
    node: str
    queue: str
    started_at: float
    idle_before: float = 0.0  # the agent's idle_since when offered: restored if we withdraw
    answered_at: float | None = None


@dataclass(slots=True, eq=False)
class AgentRuntime:
    spec: AgentSpec
    order: int  # position in the config: linear / round-robin order, final tie-break
    logged_in: bool = False
    logout_pending: bool = False  # logged out during a call: effective when it ends
    paused: bool = False
    pause_reason: str = ""
    legs: dict[str, AgentLeg] = field(default_factory=dict)  # ringing or connected
    wrapup_until: float = 0.0
    backoff_until: float = 0.0
    missed: int = 0  # consecutive missed offers
    idle_since: float = 0.0
    calls_taken: dict[str, int] = field(default_factory=dict)  # per queue
    talk_time: dict[str, float] = field(default_factory=dict)  # per queue, seconds
    reserved_for: str = ""  # a campaign attempt holds this agent: offered no other call
    # bookkeeping of what the indexes currently believe about this agent
    indexed_staffed: bool = False
    indexed_ready: bool = False
    key_dirty: bool = False
    reported: tuple[str, str] = (AgentState.LOGGED_OUT.value, "")
    id: str = field(init=False)  # spec.id, read on every routing step

    def __post_init__(self) -> None:
        self.id = self.spec.id

    @property
    def staffed(self) -> bool:
        """Logged in and not paused: counts as staff for join/leave-empty and estimates."""
        return self.logged_in and not self.logout_pending and not self.paused

    def connected(self) -> bool:
        return any(leg.answered_at is not None for leg in self.legs.values())

    def display(self, now: float) -> tuple[str, str]:
        """(state, reason) as shown to people and in AgentStateChanged."""
        if not self.logged_in:
            return AgentState.LOGGED_OUT.value, ""
        if self.legs:
            if self.connected():
                return AgentState.ON_CALL.value, ""
            return AgentState.RINGING.value, ""
        if self.wrapup_until > now:
            return AgentState.WRAP_UP.value, ""
        if self.paused:
            return AgentState.PAUSED.value, self.pause_reason
        return AgentState.AVAILABLE.value, ""
