"""Queue and agent configuration as the ACD sees it: plain frozen dataclasses.

The config layer (YAML + pydantic) builds these; the ACD never reads a file.
Every field is checked in ``__post_init__`` so that a bad value fails at
load time with a message naming the queue or agent, not mid-call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from callcenterd.pbx.api import check_safe


class ConfigError(ValueError):
    """A queue or agent spec is inconsistent."""


EMPTY_POLICIES = ("yes", "no", "strict")


class Strategy(str, enum.Enum):
    """How a queue picks among free agents (app_queue / mod_callcenter names)."""

    RING_ALL = "ring-all"  # app_queue ringall, mod_callcenter ring-all
    LONGEST_IDLE = "longest-idle"  # mod_callcenter longest-idle-agent
    ROUND_ROBIN = "round-robin"  # app_queue rrmemory (memory per queue)
    FEWEST_CALLS = "fewest-calls"  # app_queue fewestcalls
    LEAST_TALK_TIME = "least-talk-time"  # mod_callcenter agent-with-least-talk-time
    LINEAR = "linear"  # app_queue linear, mod_callcenter top-down
    RANDOM = "random"  # app_queue random
    WEIGHTED_RANDOM = "weighted-random"  # app_queue wrandom (weight / penalty)
    RING_PROGRESSIVELY = "ring-progressively"  # mod_callcenter ring-progressively
    SKILLS = "skills"  # best proficiency on the caller's skill, then longest idle


def _check_skills(owner: str, skills: Mapping[str, int]) -> None:
    for name, level in skills.items():
        check_safe(name, f"{owner} skill name")
        if not name:
            raise ConfigError(f"{owner}: empty skill name")
        if not isinstance(level, int) or not 1 <= level <= 10:
            raise ConfigError(f"{owner}: skill {name!r} level must be an integer 1..10, got {level!r}")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue.

    Times are seconds.  ``skill_relax`` is a list of ``(after_s, drop)``
    steps: once a caller has waited ``after_s`` in this queue, every
    required skill level is lowered by ``drop`` (cumulative value, not
    incremental); a requirement that reaches 0 is dropped and any agent of
    the queue qualifies (app_queue penalty rules, mod_callcenter tiers).
    """

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_time: float = 15.0  # app_queue "timeout": ring one agent this long
    retry_delay: float = 5.0  # an agent that missed a caller is not re-offered THAT caller for this long
    busy_backoff: float = 10.0  # agent busy/rejected/congestion: no offer at all for this long
    wrapup_time: float = 0.0
    max_wait: float = 0.0  # 0 = wait forever
    max_callers: int = 0  # 0 = no limit (app_queue maxlen)
    # app_queue joinempty / leavewhenempty, as three levels:
    #   join_empty  "yes" always join; "no" refuse when no agent of the queue is
    #               logged in (paused ones count); "strict" refuse also when every
    #               logged-in agent is paused
    #   leave_empty "no" never leave; "yes" leave when no agent is logged in;
    #               "strict" leave also when every logged-in agent is paused
    # (True/False are accepted: join True = "yes", False = "strict";
    #  leave True = "strict", False = "no")
    join_empty: str = "yes"
    leave_empty: str = "no"
    overflow_queue: str = ""  # on timeout / full / empty: move the caller here ...
    overflow_destination: str = ""  # ... or redirect to this dialplan destination
    weight: int = 0  # app_queue weight: callers of heavier queues win shared agents
    moh_class: str = "default"
    announce_every: float = 0.0  # position / wait announcements; 0 = never
    skills: Mapping[str, int] = field(default_factory=dict)  # required skill -> min level
    skill_relax: tuple[tuple[float, int], ...] = ()
    progressive_every: float = 10.0  # ring-progressively: widen every N seconds ...
    progressive_initial: int = 1  # ... starting with this many agents ...
    progressive_add: int = 1  # ... adding this many each step
    talk_time_prior: float = 120.0  # mean talk time assumed before any call completed (counts as one call)

    def __post_init__(self) -> None:
        check_safe(self.name, "queue name")
        if not self.name:
            raise ConfigError("queue name must not be empty")
        try:
            object.__setattr__(self, "strategy", Strategy(self.strategy))
        except ValueError:
            names = ", ".join(s.value for s in Strategy)
            raise ConfigError(f"queue {self.name!r}: unknown strategy {self.strategy!r} (one of {names})") from None
        for attr in ("ring_time", "progressive_every", "talk_time_prior"):
            if not getattr(self, attr) > 0:
                raise ConfigError(f"queue {self.name!r}: {attr} must be > 0")
        for attr in ("retry_delay", "busy_backoff", "wrapup_time", "max_wait", "announce_every"):
            if getattr(self, attr) < 0:
                raise ConfigError(f"queue {self.name!r}: {attr} must be >= 0")
        for attr, if_true, if_false in (("join_empty", "yes", "strict"), ("leave_empty", "strict", "no")):
            value = getattr(self, attr)
            if isinstance(value, bool):
                object.__setattr__(self, attr, if_true if value else if_false)
            elif value not in EMPTY_POLICIES:
                raise ConfigError(f"queue {self.name!r}: {attr} must be one of {', '.join(EMPTY_POLICIES)}")
        if self.max_callers < 0:
            raise ConfigError(f"queue {self.name!r}: max_callers must be >= 0")
        if self.progressive_initial < 1 or self.progressive_add < 0:
            raise ConfigError(f"queue {self.name!r}: progressive_initial >= 1 and progressive_add >= 0")
        if self.overflow_queue == self.name:
            raise ConfigError(f"queue {self.name!r}: overflow_queue points to itself")
        check_safe(self.overflow_destination, "overflow destination")
        check_safe(self.moh_class, "music on hold class")
        _check_skills(f"queue {self.name!r}", self.skills)
        object.__setattr__(self, "skills", dict(self.skills))
        steps = tuple((float(a), int(d)) for a, d in self.skill_relax)
        if any(a < 0 or d < 1 for a, d in steps) or list(steps) != sorted(steps):
            raise ConfigError(f"queue {self.name!r}: skill_relax steps must be (after_s >= 0, drop >= 1) in order")
        object.__setattr__(self, "skill_relax", steps)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent: a person at a device on one PBX node.

    ``penalty`` maps queue -> app_queue penalty (lower is tried first,
    default 0).  ``weight`` feeds weighted-random.  ``wrapup_time`` (when
    set) beats the queue's.  ``max_missed`` consecutive missed offers pause
    the agent with reason "no-answer" (0 = never).
    """

    id: str
    device: str
    node: str = ""
    queues: tuple[str, ...] = ()
    skills: Mapping[str, int] = field(default_factory=dict)
    penalty: Mapping[str, int] = field(default_factory=dict)
    weight: float = 1.0
    wrapup_time: float | None = None
    max_concurrent: int = 1
    max_missed: int = 3
    busy_backoff: float | None = None  # beats the queue's busy_backoff when set

    def __post_init__(self) -> None:
        check_safe(self.id, "agent id")
        check_safe(self.device, "agent device")
        check_safe(self.node, "agent node")
        if not self.id or not self.device:
            raise ConfigError("agent id and device must not be empty")
        object.__setattr__(self, "queues", tuple(self.queues))
        if len(set(self.queues)) != len(self.queues):
            raise ConfigError(f"agent {self.id!r}: a queue is listed twice")
        _check_skills(f"agent {self.id!r}", self.skills)
        object.__setattr__(self, "skills", dict(self.skills))
        object.__setattr__(self, "penalty", dict(self.penalty))
        unknown = set(self.penalty) - set(self.queues)
        if unknown:
            raise ConfigError(f"agent {self.id!r}: penalty for queues it does not serve: {sorted(unknown)}")
        if not self.weight > 0:
            raise ConfigError(f"agent {self.id!r}: weight must be > 0")
        if self.wrapup_time is not None and self.wrapup_time < 0:
            raise ConfigError(f"agent {self.id!r}: wrapup_time must be >= 0")
        if self.max_concurrent < 1:
            raise ConfigError(f"agent {self.id!r}: max_concurrent must be >= 1")
        if self.busy_backoff is not None and self.busy_backoff < 0:
            raise ConfigError(f"agent {self.id!r}: busy_backoff must be >= 0")
        if self.max_missed < 0:
            raise ConfigError(f"agent {self.id!r}: max_missed must be >= 0")
