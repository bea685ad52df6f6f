"""The outbound vocabulary shared by the campaign core, its store and its config.

Plain frozen dataclasses and enums, no I/O.  The config loader turns a
campaign YAML file into a :class:`CampaignSpec`; the list importer and the
store deal in :class:`Lead` and :class:`AttemptRecord`; the dialer core
(``callcenterd.core.campaigns.dialer``) reads them and emits commands.

Times are epoch seconds (float) from the injected clock, except the calling
window, which is in the lead's local wall-clock time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, time
from typing import Mapping


class DialMode(str, enum.Enum):
    PREVIEW = "preview"  # the agent sees the lead first, accepts or skips
    PROGRESSIVE = "progressive"  # one line per free agent
    POWER = "power"  # a fixed number of lines per free agent
    PREDICTIVE = "predictive"  # the model-based pacer (core/pacer)


class AttemptOutcome(str, enum.Enum):
    """How one dial attempt ended, as far as the network and AMD tell.

    The keys of a campaign's ``retry`` rules are these values.
    """

    CONNECTED = "connected"  # a person answered and reached an agent
    DROPPED = "dropped"  # a person answered, no agent within 2 s: abandon message, counts as abandoned
    MACHINE = "machine"  # AMD said machine (hung up, or message left)
    BUSY = "busy"
    NO_ANSWER = "no-answer"  # rang out (after at least the minimum ring time)
    CONGESTION = "congestion"
    FAILED = "failed"  # the PBX refused or the number is invalid / unreachable
    HUNGUP = "hungup"  # answered, then the callee hung up during the greeting / AMD


RETRYABLE_OUTCOMES = (
    AttemptOutcome.BUSY,
    AttemptOutcome.NO_ANSWER,
    AttemptOutcome.CONGESTION,
    AttemptOutcome.MACHINE,
    AttemptOutcome.FAILED,
    AttemptOutcome.DROPPED,
    AttemptOutcome.HUNGUP,
)


class LeadState(str, enum.Enum):
    READY = "ready"  # may be dialled once its window, retry time and caps allow
    DIALLING = "dialling"  # one attempt in flight (at most one, ever)
    PREVIEW = "preview"  # offered to an agent in preview mode
    CALLBACK = "callback"  # an agent scheduled a callback (callback_at)
    DONE = "done"  # final disposition, or attempts exhausted
    DNC = "dnc"  # on a do-not-call list


class MachineAction(str, enum.Enum):
    HANGUP = "hangup"
    MESSAGE = "message"  # leave a message after the beep


@dataclass(frozen=True, slots=True)
class RetryRule:
    delay: float  # seconds before the lead may be dialled again
    retry: bool = True  # False: this outcome closes the lead


@dataclass(frozen=True, slots=True)
class DayWindow:
    """Local wall-clock interval, start inclusive, end exclusive."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class CallingWindows:
    """When a lead may be called, in the lead's local time.

    ``weekdays[0]`` is Monday.  An empty tuple for a day means no calls.
    ``holidays`` names a country (and optionally a subdivision) for the
    ``holidays`` package; ``closed_dates`` adds exception dates.
    """

    weekdays: tuple[tuple[DayWindow, ...], ...]  # 7 entries, Monday first
    holiday_country: str = ""
    holiday_subdiv: str = ""
    closed_dates: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class Disposition:
    """What an agent may record at the end of a call."""

    name: str
    final: bool = True  # the lead is done
    dnc: bool = False  # add the number to the internal DNC
    callback: bool = False  # needs a local callback time


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    name: str
    mode: DialMode
    queue: str  # the agent pool: a queue's agents (answered calls enter it)
    skills: Mapping[str, int] = field(default_factory=dict)  # skills answered calls require
    node: str = ""  # the PBX node that dials
    caller_id_number: str = ""
    caller_id_name: str = ""
    dial_string: str = ""  # e.g. "PJSIP/{number}@trunk" ; {number} is E.164 without '+' unless {e164}
    max_lines: int = 10
    power_ratio: float = 1.0
    windows: CallingWindows | None = None
    retry: Mapping[AttemptOutcome, RetryRule] = field(default_factory=dict)
    max_attempts: int = 5
    max_attempts_30d: int = 10
    amd: bool = False
    machine_action: MachineAction = MachineAction.HANGUP
    machine_message: str = ""  # prompt played after the beep
    abandon_message: str = ""  # prompt played to a dropped person
    abandon_after: float = 2.0  # s after the greeting with no agent -> dropped
    abandon_cap: float = 0.03  # fraction, over 24 h and over 30 days
    min_ring: float = 15.0  # s: never give up ringing before this
    ring_timeout: float = 25.0  # s: no-answer after this
    drop_redial_guard: float = 72 * 3600.0  # s: no redial of a dropped number unless an agent is reserved
    dispositions: Mapping[str, Disposition] = field(default_factory=dict)
    default_region: str = "US"  # for E.164 normalisation of the list
    priority: int = 100  # priority of answered calls in the pool's queue


@dataclass(slots=True)
class Lead:
    lead_id: int
    campaign: str
    phone: str  # E.164, with '+'
    name: str = ""
    zones: tuple[str, ...] = ()  # IANA zones the number may be in; all must be inside the window
    postal_code: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # custom fields shown to the agent
    state: LeadState = LeadState.READY
    attempts: int = 0
    next_at: float = 0.0  # not before (retry delay, callback time)
    last_outcome: str = ""
    last_dropped_at: float | None = None
    callback_agent: str = ""  # the agent who asked for the callback
    disposition: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt_id: str  # also the call id of the attempt's journey
    campaign: str
    lead_id: int
    phone: str
    started_at: float
    ended_at: float | None = None
    outcome: str = ""  # an AttemptOutcome value once ended
    agent: str = ""
    disposition: str = ""
