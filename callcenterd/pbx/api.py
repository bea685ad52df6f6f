"""The PBX port: typed commands and typed events shared by every PBX driver.

The core never sees an AMI header or an ESL event.  A driver turns its
protocol into the events below and implements :class:`PbxPort`.  Every
command is async, has a deadline and raises :class:`ConnectionLost` or
:class:`Timeout` instead of hanging.  A command is never re-sent by itself
after a reconnect: a replayed originate dials a customer twice.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, Union, runtime_checkable

from callcenterd.protocols.errors import ConnectionLost, Timeout

__all__ = ["ConnectionLost", "Timeout"]  # re-exported: the port's errors


# --------------------------------------------------------------------- errors
class PbxError(Exception):
    """Base class of the errors a PBX command can raise besides
    ConnectionLost and Timeout (which come from the protocol layer)."""


class CommandFailed(PbxError):
    """The PBX answered, and said no (unknown channel, bad argument...)."""


class UnsafeValue(PbxError, ValueError):
    """A value would inject protocol syntax (CR, LF, NUL...) and was refused."""


# ------------------------------------------------------------------ outcomes
class Outcome(str, enum.Enum):
    """Normalised end of a leg, the same on every PBX.

    Asterisk hangup causes / OriginateResponse reasons and FreeSWITCH
    hangup causes all map onto this list.
    """

    ANSWERED = "answered"  # the leg was answered and later ended normally
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CONGESTION = "congestion"
    REJECTED = "rejected"
    FAILED = "failed"  # bad endpoint, no route, unknown technology...
    CANCELLED = "cancelled"  # we (or the other party) hung up before answer


# Q.850 cause codes shared by Asterisk (causes.h) and FreeSWITCH
# (switch_types.h switch_call_cause_t).
_Q850_OUTCOME = {
    16: Outcome.ANSWERED,  # normal clearing
    17: Outcome.BUSY,  # user busy
    18: Outcome.NO_ANSWER,  # no user responding
    19: Outcome.NO_ANSWER,  # no answer
    20: Outcome.FAILED,  # subscriber absent
    21: Outcome.REJECTED,  # call rejected
    1: Outcome.FAILED,  # unallocated number
    3: Outcome.FAILED,  # no route to destination
    27: Outcome.FAILED,  # destination out of order
    28: Outcome.FAILED,  # invalid number format
    31: Outcome.ANSWERED,  # normal, unspecified
    34: Outcome.CONGESTION,  # no circuit available
    38: Outcome.CONGESTION,  # network out of order
    41: Outcome.CONGESTION,  # temporary failure
    42: Outcome.CONGESTION,  # switching equipment congestion
    44: Outcome.CONGESTION,  # requested channel not available
    47: Outcome.CONGESTION,  # resource unavailable
    58: Outcome.FAILED,  # bearer capability not available
    66: Outcome.FAILED,  # channel type not implemented
    88: Outcome.FAILED,  # incompatible destination
    102: Outcome.NO_ANSWER,  # recovery on timer expiry
    127: Outcome.FAILED,  # interworking
    487: Outcome.CANCELLED,  # FreeSWITCH ORIGINATOR_CANCEL
}


def outcome_from_q850(cause: int, answered: bool) -> Outcome:
    """Map a Q.850 hangup cause to an outcome.

    A leg that was answered ended as ``ANSWERED`` whatever the clearing
    cause; before answer, cause 0/16 means nobody picked up and somebody
    gave up (``CANCELLED``).
    """
    if answered:
        return Outcome.ANSWERED
    if cause in (0, 16, 31):
        return Outcome.CANCELLED
    return _Q850_OUTCOME.get(cause, Outcome.FAILED)


# -------------------------------------------------------------------- values
_FORBIDDEN = ("\r", "\n", "\x00")


def check_safe(value: str, what: str = "value") -> str:
    """Refuse a value that carries CR, LF or NUL; return it unchanged otherwise.

    Every driver calls this on every caller-, CRM- or CSV-supplied string
    before it reaches the wire.  The message never echoes the value (it may
    be a secret or hostile).
    """
    if not isinstance(value, str):
        raise UnsafeValue(f"{what} must be a string, not {type(value).__name__}")
    for ch in _FORBIDDEN:
        if ch in value:
            raise UnsafeValue(f"{what} contains a forbidden control character ({ch!r})")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_caller_text(value: str) -> str:
    """Caller data from a trunk, safe for every protocol: each control
    character (C0, DEL) becomes ``?``.  Drivers call this at the boundary,
    so a hostile name never fails a call nor reaches a wire."""
    return _CONTROL.sub("?", value)


def escape_caller_text(value: str) -> str:
    """The raw text, kept for the journey: backslash escapes for control
    characters and the backslash itself, printable otherwise."""
    def esc(m: re.Match[str]) -> str:
        ch = m.group(0)
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}.get(ch, f"\\x{ord(ch):02x}")

    return re.sub(r"[\x00-\x1f\x7f\\]", esc, value)


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        check_safe(self.number, "caller ID number")
        check_safe(self.name, "caller ID name")


_TOKEN = re.compile(r"[A-Za-z0-9_.:@+#*/-]*\Z")
_PROMPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")


def check_token(value: str, what: str = "value") -> str:
    """Refuse anything but a plain token (letters, digits, ``_.:@+#*/-``).

    The values a customer leg carries to the PBX are ids, never lead data:
    a plain token cannot add an AMI variable (``,``), end a dialplan
    argument (``)`` ``,`` ``|``), open an ESL variable block (``{`` ``}``)
    or expand anything (``${`` ``^^``).  The message never echoes the value.
    """
    check_safe(value, what)
    if not _TOKEN.match(value):
        raise UnsafeValue(f"{what} must be a plain token (letters, digits, _.:@+#*/-)")
    return value


def check_prompt(prompt: str, what: str = "prompt") -> str:
    """A sound file name as both PBXs take it (``vm-goodbye``,
    ``ivr/ivr-thank_you.wav``, ``/var/lib/sounds/abandon``): no blanks,
    separators (``,`` ``&`` ``!`` ``:``) or expansions."""
    check_safe(prompt, what)
    if not _PROMPT.match(prompt) or ".." in prompt:
        raise UnsafeValue(f"{what} must be a sound file name (letters, digits, _./-)")
    return prompt


class LegRole(str, enum.Enum):
    """What an originated leg is for."""

    AGENT = "agent"  # an agent's phone, bridged to a waiting caller on answer
    CUSTOMER = "customer"  # a campaign's call to a lead: AMD, then waits for an agent


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """Ask the PBX to create a new leg.

    ``leg_id`` is chosen by the caller (the core) so that events about the
    leg can be matched before the PBX has answered the request.
    ``endpoint`` is a device string as the PBX understands it
    (``PJSIP/1001``, ``Local/1001@agents/n``, ``user/1001``).

    A ``CUSTOMER`` leg (a campaign's call) rings for ``ring_timeout``; once
    answered it runs AMD when ``amd`` (reported as :class:`AmdResult`), then
    waits, answered and silent, for :meth:`PbxPort.bridge` with it as
    ``leg_a`` (or :meth:`PbxPort.play_abandon` / :meth:`PbxPort.leave_message`).
    Lead data never goes to the PBX with it: its ``variables`` must be plain
    tokens (:func:`check_token`) and only the caller ID is free text.
    """

    leg_id: str
    endpoint: str
    caller_id: CallerId = CallerId()
    ring_timeout: float = 20.0
    variables: Mapping[str, str] = field(default_factory=dict)
    amd: bool = False
    call_id: str = ""  # the journey this leg belongs to
    role: LegRole = LegRole.AGENT

    def __post_init__(self) -> None:
        check_safe(self.leg_id, "leg id")
        check_safe(self.endpoint, "endpoint")
        check_safe(self.call_id, "call id")
        for k, v in self.variables.items():
            check_safe(k, "variable name")
            check_safe(v, f"variable {k}")
        if self.role is LegRole.CUSTOMER:
            check_token(self.leg_id, "leg id")
            check_token(self.call_id, "call id")
            for k, v in self.variables.items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                    raise UnsafeValue("customer leg variable names must be plain identifiers")
                check_token(v, f"variable {k}")


@dataclass(frozen=True, slots=True)
class HoldSpec:
    """Park a caller on hold: music plus periodic position announcements."""

    moh_class: str = "default"
    announce_every: float = 0.0  # seconds; 0 = never announce
    position: int = 0
    wait_estimate: float | None = None  # seconds


# -------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class CallArrived:
    """A new inbound call was handed to callcenterd (FastAGI / outbound ESL).

    ``leg_id`` is the PBX's own id of the caller leg (Asterisk UNIQUEID,
    FreeSWITCH uuid); ``linked_id`` joins it with the PBX's CDR/CEL.
    ``caller_raw`` is set only when the caller ID had to be cleaned
    (:func:`clean_caller_text`): the original name, escaped.
    """

    leg_id: str
    caller_id: CallerId
    dnis: str
    variables: Mapping[str, str] = field(default_factory=dict)
    node: str = ""
    linked_id: str = ""
    caller_raw: str = ""


@dataclass(frozen=True, slots=True)
class CallHeld:
    """A caller reached the PBX's hold context without a decision of ours
    (its FastAGI session failed or timed out, the daemon was busy or down):
    the core adopts it, in its stamped order, so nobody waits unserved."""

    node: str
    call: "WaitingCall"


@dataclass(frozen=True, slots=True)
class LegRinging:
    leg_id: str


@dataclass(frozen=True, slots=True)
class LegAnswered:
    leg_id: str


@dataclass(frozen=True, slots=True)
class LegHungUp:
    leg_id: str
    outcome: Outcome
    cause: int = 0  # raw Q.850 cause, for the record
    cause_text: str = ""


@dataclass(frozen=True, slots=True)
class Dtmf:
    leg_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class Bridged:
    leg_a: str
    leg_b: str


@dataclass(frozen=True, slots=True)
class Unbridged:
    leg_a: str
    leg_b: str


class AmdVerdict(str, enum.Enum):
    HUMAN = "human"
    MACHINE = "machine"
    NOTSURE = "notsure"


@dataclass(frozen=True, slots=True)
class AmdResult:
    leg_id: str
    verdict: AmdVerdict
    cause: str = ""


class DeviceStatus(str, enum.Enum):
    NOT_INUSE = "not-inuse"
    INUSE = "inuse"
    BUSY = "busy"
    RINGING = "ringing"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DeviceState:
    device: str
    status: DeviceStatus


def format_skills(skills: Mapping[str, int]) -> str:
    """``{"sales": 5, "fr": 3}`` -> ``fr:3,sales:5``: how drivers stamp a
    caller's skill requirement on a channel variable."""
    return ",".join(f"{name}:{level}" for name, level in sorted(skills.items()))


def parse_skills(text: str) -> dict[str, int]:
    """The inverse of :func:`format_skills`; malformed items are dropped."""
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, level = item.partition(":")
        try:
            out[name] = int(level)
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A caller found on hold in the PBX, as seen at (re)connect time."""

    leg_id: str
    queue: str
    enqueued_at: float  # epoch seconds, as stamped on the call when it first queued
    priority: int = 0
    call_id: str = ""
    caller_id: CallerId = CallerId()
    skills: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveAgentLeg:
    """An agent leg (stamped ``CC_AGENT``) the PBX still has up at (re)connect time.

    ``bridged_to`` is the caller leg it talks to, or ``""`` when it is not
    bridged (still ringing, or answered and waiting for a bridge that the
    daemon will never send: an orphan to hang up).
    """

    leg_id: str
    agent: str
    call_id: str = ""
    bridged_to: str = ""
    queue: str = ""


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    """What a driver sees right after (re)connecting, for the core to resync.

    A driver reports :class:`PbxUp` only once this snapshot is complete:
    logged in, every agent device's state read (``devices``), and the live
    agent legs and bridges known (``agent_legs``).  Routing on a half-read
    snapshot double-books agents.
    """

    legs: frozenset[str] = frozenset()  # every leg the PBX still has up
    waiting: Sequence[WaitingCall] = ()
    restarted: bool = False  # True when the PBX itself restarted (calls lost)
    devices: Mapping[str, DeviceStatus] = field(default_factory=dict)  # device -> state, as the PBX names it
    agent_legs: Sequence[LiveAgentLeg] = ()


@dataclass(frozen=True, slots=True)
class PbxUp:
    node: str
    snapshot: PbxSnapshot


@dataclass(frozen=True, slots=True)
class PbxDown:
    node: str
    reason: str


PbxEvent = Union[
    CallArrived,
    CallHeld,
    LegRinging,
    LegAnswered,
    LegHungUp,
    Dtmf,
    Bridged,
    Unbridged,
    AmdResult,
    DeviceState,
    PbxUp,
    PbxDown,
]


# ---------------------------------------------------------------------- port
@runtime_checkable
class PbxPort(Protocol):
    """What the core may ask of a PBX.  Implemented by every driver."""

    node: str

    async def originate(self, request: OriginateRequest) -> None:
        """Start dialling a leg; the result arrives as LegAnswered / LegHungUp."""

    async def bridge(self, leg_a: str, leg_b: str) -> None: ...

    async def hangup(self, leg_id: str, cause: int = 16) -> None: ...

    async def play(self, leg_id: str, prompts: Sequence[str]) -> None: ...

    async def play_and_collect(
        self,
        leg_id: str,
        prompts: Sequence[str],
        max_digits: int,
        timeout: float,
        terminators: str = "#",
    ) -> str: ...

    async def hold(self, call: WaitingCall, spec: HoldSpec) -> None:
        """Put a caller on hold; the driver stamps ``call`` on the leg in the PBX
        so that it comes back in :meth:`snapshot` after our restart."""

    async def update_hold(self, leg_id: str, spec: HoldSpec) -> None:
        """Refresh position / estimated wait announced to a held caller."""

    async def moh(self, leg_id: str, on: bool, moh_class: str = "default") -> None: ...

    async def play_abandon(self, leg_id: str, prompt: str) -> None:
        """A campaign's answered customer leg that no agent took in time:
        play ``prompt`` (:func:`check_prompt`) to the person, then hang up
        (reported as LegHungUp ``ANSWERED``).  Returns once the PBX took it."""

    async def leave_message(self, leg_id: str, prompt: str) -> None:
        """A customer leg AMD called a machine: wait for the end of the
        greeting (the beep, then silence), play ``prompt``, hang up."""

    async def redirect(self, leg_id: str, destination: str) -> None:
        """Send a leg to a PBX destination (``context,exten,priority`` / extension)."""

    async def record(self, leg_id: str, on: bool, path: str = "") -> None: ...

    async def set_var(self, leg_id: str, name: str, value: str) -> None: ...

    async def get_var(self, leg_id: str, name: str) -> str | None: ...

    async def snapshot(self) -> PbxSnapshot: ...
