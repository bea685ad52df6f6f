"""The campaign dialer: one per campaign, a pure state machine.

Inputs are method calls (lifecycle, the pool view on each tick, the hopper
refill, leg and ACD events, dispositions, preview actions); every call
returns the commands (``callcenterd.core.campaigns.commands``) the service
executes in order.  No I/O, no asyncio; time comes from the injected clock.

Rules it keeps:

* a lead has at most one attempt in flight, even when offered twice, and
  never more attempts than ``max_attempts`` (nor more than
  ``max_attempts_30d`` in 30 days);
* a lead is dialled only when every zone of its number is inside the
  calling window, checked at the moment of dialling;
* ``RecordAttempt`` and the ``UpdateLead`` that counts the attempt come
  before the ``Dial``;
* no more than ``max_lines`` lines up at once;
* no new line while no agent of the pool is active (all paused or logged
  out), nor once the abandonment budget is spent in the 24 h or 30-day
  window; lines already ringing go on (a person who answers gets the
  abandon message if no agent takes them);
* a dropped number is redialled within ``drop_redial_guard`` only with a
  ready agent reserved for it first, or in preview;
* a due callback goes to its agent (reserved) when that agent is ready, to
  any ready agent (reserved) after ``callback_grace``;
* a ringing leg is never hung up before ``min_ring`` (only ``stop`` hangs up
  ringing legs).
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Sequence

from callcenterd.core.campaigns import commands as c
from callcenterd.core.campaigns.compliance import (
    AbandonLedger,
    may_hang_up_ringing,
    ring_timeout,
)
from callcenterd.core.campaigns.model import (
    AttemptOutcome,
    AttemptRecord,
    CampaignSpec,
    DialMode,
    Lead,
    LeadState,
    MachineAction,
)
from callcenterd.core.campaigns.pacing import Pacer, PacingInput, ceiling, pacer_for
from callcenterd.core.campaigns.retry import (
    UnknownDisposition,
    after_attempt,
    after_disposition,
    attempts_in_30d,
    dispositions,
    in_drop_guard,
)
from callcenterd.core.campaigns.windows import may_call
from callcenterd.core.pacer.predictive import TalkTracker
from callcenterd.pbx.api import AmdVerdict, CallerId, check_safe

__all__ = [
    "CampaignDialer",
    "DialerError",
    "DialerState",
    "PoolView",
    "PreviewError",
    "UnknownAttempt",
]

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
AWAIT_DISPOSITION = 12 * 3600.0  # a connected attempt accepts a late disposition this long
_KNOWN_LEADS = 50_000  # leads remembered to refuse stale copies from the store
_RATE_SAMPLES = 500  # completed dials behind the answer-rate estimate


class DialerState(str, enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"


class DialerError(ValueError):
    """A request the dialer refuses; the message says why."""


class UnknownAttempt(DialerError, LookupError):
    pass


class PreviewError(DialerError):
    pass


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the ACD says about the campaign's agent pool right now.

    ``ready``: free now, in the ACD's order of preference; ``wrapup``: agent
    -> seconds of wrap-up left (0 if unknown); ``on_call``: agent -> seconds
    talked so far; ``paused``: logged in but paused.  Logged-out agents are
    absent.
    """

    ready: tuple[str, ...] = ()
    wrapup: Mapping[str, float] = field(default_factory=dict)
    on_call: Mapping[str, float] = field(default_factory=dict)
    paused: tuple[str, ...] = ()

    def active(self) -> set[str]:
        return set(self.ready) | set(self.wrapup) | set(self.on_call)


@dataclass(slots=True)
class _Attempt:
    attempt_id: str
    lead: Lead  # as dialled (DIALLING, attempt counted); after the end: the updated lead
    started_at: float
    reserved_agent: str = ""
    ringing_since: float | None = None
    answered_at: float | None = None
    amd_pending: bool = False
    waiting: bool = False  # handed to the ACD, no agent yet
    human: bool = False
    machine: bool = False
    connected: bool = False
    dropped: bool = False
    agent: str = ""
    hangup_sent: bool = False
    ended_at: float | None = None
    disposition: tuple[str, str, float | None] | None = None  # (agent, name, callback_at)


class CampaignDialer:
    """One campaign's dialer.  See the module docstring for its rules.

    ``new_id`` makes attempt ids (they are also leg and call ids): the
    service should pass one that stays unique across restarts (uuid4).
    """

    def __init__(
        self,
        spec: CampaignSpec,
        clock: Callable[[], float],
        *,
        ledger: AbandonLedger | None = None,
        pacer: Pacer | None = None,
        new_id: Callable[[], str] | None = None,
        hopper_size: int | None = None,
        callback_grace: float = 300.0,
    ) -> None:
        if "{number}" not in spec.dial_string and "{e164}" not in spec.dial_string:
            raise ValueError(
                f"campaign {spec.name!r}: dial_string must contain {{number}} or {{e164}}, got {spec.dial_string!r}"
            )
        if spec.max_lines < 1:
            raise ValueError(f"campaign {spec.name!r}: max_lines must be at least 1")
        self.spec = spec
        self._clock = clock
        self.ledger = ledger or AbandonLedger(clock)
        self.pacer: Pacer = pacer or pacer_for(spec)
        if new_id is None:
            seq = itertools.count(1)
            stamp = int(clock() * 1000)
            new_id = lambda: f"{spec.name}-{stamp}-{next(seq)}"  # noqa: E731
        self._new_id = new_id
        self.hopper_size = hopper_size or max(4, 2 * spec.max_lines)
        self.callback_grace = callback_grace
        self.state = DialerState.STOPPED
        self._caller_id = CallerId(spec.caller_id_number, spec.caller_id_name)
        self._pool = PoolView()
        self._hopper: dict[int, Lead] = {}
        self._live: dict[str, _Attempt] = {}
        self._by_lead: dict[int, str] = {}  # lead id -> live attempt id
        self._awaiting: OrderedDict[str, _Attempt] = OrderedDict()  # ended, connected, no disposition yet
        self._history: dict[int, list[float]] = {}  # lead id -> attempt start times
        self._known: OrderedDict[int, tuple[int, bool]] = OrderedDict()  # lead id -> (attempts, closed)
        self._reserved: dict[str, str] = {}  # agent -> attempt id
        self._preview: dict[str, Lead] = {}  # agent -> the lead on their screen
        self._skipped: dict[int, set[str]] = {}  # lead id -> agents who skipped it
        # figures for status and pacing
        self.counts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.disposition_counts: Counter[str] = Counter()
        self._results: deque[tuple[bool, bool]] = deque(maxlen=_RATE_SAMPLES)  # (live answer, machine)
        self._answer_delays: deque[float] = deque(maxlen=_RATE_SAMPLES)
        self._dial_times: deque[float] = deque()
        self._finish_times: deque[float] = deque()
        self._talk = TalkTracker()  # completed talks and wrap-ups, for the predictive pacer

    # ------------------------------------------------------------ lifecycle
    def start(self) -> list[c.CampaignCommand]:
        self.state = DialerState.RUNNING
        return []

    def resume(self) -> list[c.CampaignCommand]:
        if self.state is DialerState.PAUSED:
            self.state = DialerState.RUNNING
        return []

    def pause(self) -> list[c.CampaignCommand]:
        """No new line; lines in flight go on."""
        if self.state is DialerState.RUNNING:
            self.state = DialerState.PAUSED
        return []

    def stop(self) -> list[c.CampaignCommand]:
        """No new line, hopper and previews released; ringing legs are hung
        up once they have rung ``min_ring`` (now or on a later tick);
        answered legs go on."""
        self.state = DialerState.STOPPED
        self._hopper.clear()
        self._preview.clear()
        self._skipped.clear()
        return self._hang_up_ringing(self._clock())

    # --------------------------------------------------------------- hopper
    def why_not(self, lead: Lead, now: float | None = None) -> str | None:
        """Why ``lead`` may not be dialled now (None: it may)."""
        now = self._clock() if now is None else now
        spec = self.spec
        if lead.campaign != spec.name:
            return f"lead of campaign {lead.campaign!r}"
        if lead.lead_id in self._by_lead:
            return "an attempt is in flight"
        if lead.state not in (LeadState.READY, LeadState.CALLBACK):
            return f"state {lead.state.value}"
        if lead.attempts >= spec.max_attempts:
            return "attempts exhausted"
        known = self._known.get(lead.lead_id)
        if known is not None and (lead.attempts < known[0] or (lead.attempts == known[0] and known[1])):
            return "stale copy (the dialer has seen a later state)"
        if len(attempts_in_30d(self._history.get(lead.lead_id, ()), now)) >= spec.max_attempts_30d:
            return "30-day attempt cap"
        if lead.next_at > now:
            return "not due yet"
        if not E164.fullmatch(lead.phone):
            return "number is not E.164"
        if not may_call(spec.windows, lead.zones, now):
            return "outside the calling window" if lead.zones else "no time zone"
        return None

    def offer_leads(
        self, leads: Iterable[Lead], recent_attempts: Mapping[int, Sequence[float]] | None = None
    ) -> list[c.CampaignCommand]:
        """The hopper refill: leads the store says may be due.

        ``recent_attempts``: lead id -> start times of its attempts in the
        last 30 days (for the 30-day cap).  Leads the dialer may not dial
        now are ignored (a fresher copy of a held lead that may not be
        dialled removes it from the hopper).
        """
        if self.state is DialerState.STOPPED:
            return []
        now = self._clock()
        for lead in leads:
            lid = lead.lead_id
            if recent_attempts and lid in recent_attempts and lid not in self._by_lead:
                self._history[lid] = sorted(set(self._history.get(lid, ())) | set(recent_attempts[lid]))
            if self.why_not(lead, now) is not None:
                if lid not in self._by_lead:
                    self._hopper.pop(lid, None)
                continue
            if any(p.lead_id == lid for p in self._preview.values()):
                continue
            if lid in self._hopper or len(self._hopper) < self.hopper_size:
                self._hopper[lid] = lead
        return []

    def hopper_room(self) -> int:
        """How many more leads the hopper takes."""
        return max(0, self.hopper_size - len(self._hopper))

    def held_lead_ids(self) -> frozenset[int]:
        """Leads in the hopper, in flight or on a preview screen (the store's
        refill query may skip them)."""
        return frozenset(self._hopper) | frozenset(self._by_lead) | {p.lead_id for p in self._preview.values()}

    def _ordered_hopper(self) -> list[Lead]:
        """Due callbacks first (oldest first), then the rest in offer order."""
        callbacks = sorted((ld for ld in self._hopper.values() if ld.state is LeadState.CALLBACK), key=lambda ld: ld.next_at)
        return callbacks + [ld for ld in self._hopper.values() if ld.state is not LeadState.CALLBACK]

    # ----------------------------------------------------------------- tick
    def tick(self, pool: PoolView) -> list[c.CampaignCommand]:
        """The ACD's view of the pool changed, or time passed: dial what the
        pacer allows.  Call it on every pool change and about every second."""
        now = self._clock()
        self._pool = pool
        out: list[c.CampaignCommand] = []
        present = pool.active() | set(pool.paused)
        for agent, aid in list(self._reserved.items()):
            if agent not in pool.active():  # paused or logged out: the line goes to the pool
                del self._reserved[agent]
                self._live[aid].reserved_agent = ""
                out.append(c.ReleaseAgent(agent, aid))
        for agent in [a for a in self._preview if a not in present]:  # logged out with a lead on screen
            lead = self._preview.pop(agent)
            if self.state is not DialerState.STOPPED:
                self._hopper.setdefault(lead.lead_id, lead)
        self._prune(now)
        if self.state is DialerState.STOPPED:
            out += self._hang_up_ringing(now)
            return out
        if self.state is not DialerState.RUNNING:
            return out
        for lead in list(self._hopper.values()):
            if self.why_not(lead, now) is not None:
                del self._hopper[lead.lead_id]
        if self.spec.mode is DialMode.PREVIEW:
            return out
        inp = self.pacing_input(now)
        # A spent abandonment budget never stops the campaign dead (no dial
        # means no answer, so the rate could never come down): each lead is
        # then dialled with a ready agent reserved for it, which cannot drop.
        out += self._dial_reserved(now, every_lead=not inp.budget_ok)
        inp = self.pacing_input(now)
        n = min(self.pacer.lines_to_dial(inp), ceiling(inp))
        for lead in self._ordered_hopper():
            if n <= 0:
                break
            if self._needs_reservation(lead, now):
                continue
            out += self._dial(lead, now)
            n -= 1
        return out

    def _needs_reservation(self, lead: Lead, now: float) -> bool:
        return lead.state is LeadState.CALLBACK or in_drop_guard(self.spec, lead, now)

    def _free_agents(self) -> list[str]:
        held = set(self._reserved) | set(self._preview)
        return [a for a in self._pool.ready if a not in held]

    def _dial_reserved(self, now: float, every_lead: bool = False) -> list[c.CampaignCommand]:
        """Callbacks and guarded redials (``every_lead``: all leads), each
        with a ready agent reserved first: such a call cannot be dropped, so
        the abandonment budget does not limit it."""
        out: list[c.CampaignCommand] = []
        free = self._free_agents()
        room = ceiling(replace(self.pacing_input(now), budget_ok=True))
        for lead in self._ordered_hopper():
            if room <= 0 or not free:
                break
            if not every_lead and not self._needs_reservation(lead, now):
                continue
            if lead.state is LeadState.CALLBACK and lead.callback_agent:
                if lead.callback_agent in free:
                    agent = lead.callback_agent
                elif now >= lead.next_at + self.callback_grace:
                    agent = free[0]
                else:
                    continue  # wait for its agent a little longer
            else:
                agent = free[0]
            free.remove(agent)
            out += self._dial(lead, now, reserved_agent=agent)
            room -= 1
        return out

    def _endpoint(self, phone: str) -> str:
        """The dial template with only the validated digits of the number."""
        if not E164.fullmatch(phone):
            raise DialerError(f"number of lead is not E.164: {phone!r}")
        endpoint = self.spec.dial_string.replace("{e164}", phone).replace("{number}", phone[1:])
        return check_safe(endpoint, "dial endpoint")

    def _dial(self, lead: Lead, now: float, reserved_agent: str = "") -> list[c.CampaignCommand]:
        spec = self.spec
        endpoint = self._endpoint(lead.phone)
        aid = self._new_id()
        check_safe(aid, "attempt id")
        lid = lead.lead_id
        self._hopper.pop(lid, None)
        self._skipped.pop(lid, None)
        dialling = replace(lead, state=LeadState.DIALLING, attempts=lead.attempts + 1)
        self._history.setdefault(lid, []).append(now)
        self._remember(dialling, closed=False)
        self._live[aid] = _Attempt(aid, dialling, now, reserved_agent=reserved_agent)
        self._by_lead[lid] = aid
        self.counts["dialled"] += 1
        self._dial_times.append(now)
        out: list[c.CampaignCommand] = [
            c.RecordAttempt(AttemptRecord(aid, spec.name, lid, lead.phone, now, agent=reserved_agent)),
            c.UpdateLead(dialling),
        ]
        if reserved_agent:
            self._reserved[reserved_agent] = aid
            out.append(c.ReserveAgent(reserved_agent, aid))
        out.append(
            c.Dial(
                attempt_id=aid,
                lead=dialling,
                endpoint=endpoint,
                caller_id=self._caller_id,
                variables={"CC_CAMPAIGN": spec.name, "CC_LEAD_ID": str(lid), "CC_ATTEMPT_ID": aid},
                ring_timeout=ring_timeout(spec),
                amd=spec.amd,
                node=spec.node,
            )
        )
        return out

    def _remember(self, lead: Lead, closed: bool) -> None:
        self._known[lead.lead_id] = (lead.attempts, closed)
        self._known.move_to_end(lead.lead_id)
        while len(self._known) > _KNOWN_LEADS:
            self._known.popitem(last=False)

    def _hang_up_ringing(self, now: float) -> list[c.CampaignCommand]:
        out: list[c.CampaignCommand] = []
        for att in self._live.values():
            if att.answered_at is not None or att.hangup_sent or att.ringing_since is None:
                continue  # a leg not reported ringing ends by the PBX's ring timeout (>= min_ring)
            if may_hang_up_ringing(self.spec, att.ringing_since, now):
                att.hangup_sent = True
                out.append(c.HangupAttempt(att.attempt_id))
        return out

    def _prune(self, now: float) -> None:
        while self._awaiting:
            aid, att = next(iter(self._awaiting.items()))
            if att.ended_at is not None and now - att.ended_at < AWAIT_DISPOSITION:
                break
            del self._awaiting[aid]
            self._settle(att.lead, now)  # no disposition came: the lead stays done
        keep = set(self._hopper) | set(self._by_lead) | {a.lead.lead_id for a in self._awaiting.values()}
        keep |= {p.lead_id for p in self._preview.values()}
        for lid in [k for k in self._history if k not in keep]:
            del self._history[lid]
        for times in (self._dial_times, self._finish_times):
            while times and times[0] < now - 3600:
                times.popleft()

    # --------------------------------------------------------------- pacing
    def pacing_input(self, now: float | None = None) -> PacingInput:
        now = self._clock() if now is None else now
        pool = self._pool
        unreserved = [a for a in self._live.values() if not a.reserved_agent]
        results = list(self._results)
        n = len(results)
        cap = self.spec.abandon_cap
        self._talk.observe(pool.on_call, pool.wrapup)
        talk_mean, talk_cv, talk_n = self._talk.talk_stats()
        return PacingInput(
            now=now,
            agents_staffed=len(pool.active()),
            agents_ready=len(self._free_agents()),
            agents_in_wrapup=len(pool.wrapup),
            agents_on_call=len(pool.on_call),
            lines_ringing=sum(1 for a in unreserved if a.answered_at is None),
            lines_answering=sum(1 for a in unreserved if a.amd_pending),
            answered_waiting=sum(1 for a in unreserved if a.waiting),
            max_lines=self.spec.max_lines,
            lines_up=len(self._live),
            cap=cap,
            budget_ok=self.ledger.allows_dial(cap),
            headroom_24h=self.ledger.headroom_24h(cap),
            headroom_30d=self.ledger.headroom_30d(cap),
            rate_24h=self.ledger.rate_24h(),
            rate_30d=self.ledger.rate_30d(),
            talk_elapsed=tuple(sorted(pool.on_call.values())),
            wrapup_remaining=tuple(sorted(pool.wrapup.values())),
            answer_rate=(sum(1 for h, _ in results if h) / n) if n else None,
            machine_rate=(sum(1 for _, m in results if m) / n) if n else None,
            answer_samples=n,
            mean_time_to_answer=(sum(self._answer_delays) / len(self._answer_delays)) if self._answer_delays else None,
            ringing_elapsed=tuple(now - a.started_at for a in unreserved if a.answered_at is None),
            answer_delays=tuple(sorted(self._answer_delays)),
            talk_mean=talk_mean,
            talk_cv=talk_cv,
            talk_samples=talk_n,
            wrapup_mean=self._talk.wrapup_mean(),
        )

    # ----------------------------------------------------------- leg events
    def leg_ringing(self, attempt_id: str) -> list[c.CampaignCommand]:
        att = self._live.get(attempt_id)
        if att is not None and att.ringing_since is None:
            att.ringing_since = self._clock()
        return []

    def leg_answered(self, attempt_id: str, at: float | None = None) -> list[c.CampaignCommand]:
        """The callee answered.  Without AMD a person is assumed: to the pool at once."""
        att = self._live.get(attempt_id)
        if att is None or att.answered_at is not None:
            return []
        att.answered_at = self._clock() if at is None else at
        self._answer_delays.append(max(0.0, att.answered_at - att.started_at))
        if self.spec.amd:
            att.amd_pending = True
            return []
        return self._to_pool(att)

    def _to_pool(self, att: _Attempt) -> list[c.CampaignCommand]:
        att.amd_pending = False
        att.human = True
        att.waiting = True
        self.counts["human"] += 1
        spec = self.spec
        return [
            c.ConnectToPool(
                att.attempt_id, spec.queue, dict(spec.skills), spec.priority, spec.abandon_after, att.reserved_agent
            )
        ]

    def amd_result(self, attempt_id: str, verdict: AmdVerdict | str) -> list[c.CampaignCommand]:
        """AMD's verdict; not sure counts as a person (never hang up on one)."""
        att = self._live.get(attempt_id)
        if att is None or not att.amd_pending:
            return []
        if AmdVerdict(verdict) is not AmdVerdict.MACHINE:
            return self._to_pool(att)
        att.amd_pending = False
        att.machine = True
        self.counts["machine"] += 1
        out = self._release(att)
        if self.spec.machine_action is MachineAction.MESSAGE and self.spec.machine_message:
            out.append(c.LeaveMachineMessage(attempt_id, self.spec.machine_message))
        else:
            att.hangup_sent = True
            out.append(c.HangupAttempt(attempt_id))
        return out

    def agent_connected(self, attempt_id: str, agent: str) -> list[c.CampaignCommand]:
        att = self._live.get(attempt_id)
        if att is None or att.connected or att.dropped:
            return []
        att.connected = True
        att.waiting = False
        att.agent = agent
        self.counts["connected"] += 1
        self.ledger.record_connected(self._clock())
        return self._release(att)

    def no_agent(self, attempt_id: str) -> list[c.CampaignCommand]:
        """No agent within ``abandon_after``: the abandon message; a drop."""
        att = self._live.get(attempt_id)
        if att is None or att.connected or att.dropped or not att.human:
            return []
        att.dropped = True
        att.waiting = False
        self.counts["abandoned"] += 1
        self.ledger.record_dropped(self._clock())
        return self._release(att) + [c.PlayAbandonMessage(attempt_id, self.spec.abandon_message)]

    def _release(self, att: _Attempt) -> list[c.CampaignCommand]:
        agent = att.reserved_agent
        if agent and self._reserved.get(agent) == att.attempt_id:
            del self._reserved[agent]
            att.reserved_agent = ""
            return [c.ReleaseAgent(agent, att.attempt_id)]
        return []

    def _resolve(self, att: _Attempt, reported: AttemptOutcome) -> AttemptOutcome:
        """What the dialer saw overrides the PBX's view of an answered leg."""
        if att.dropped:
            return AttemptOutcome.DROPPED
        if att.connected:
            return AttemptOutcome.CONNECTED
        if att.machine:
            return AttemptOutcome.MACHINE
        if att.answered_at is not None:
            return AttemptOutcome.HUNGUP
        return reported

    def leg_ended(self, attempt_id: str, outcome: AttemptOutcome) -> list[c.CampaignCommand]:
        """The attempt's leg is gone; ``outcome`` is the PBX's view (busy,
        no-answer, congestion, failed...) when it never answered."""
        att = self._live.pop(attempt_id, None)
        if att is None:
            return []
        now = self._clock()
        lid = att.lead.lead_id
        del self._by_lead[lid]
        att.ended_at = now
        final = self._resolve(att, AttemptOutcome(outcome))
        self.outcomes[final.value] += 1
        self._results.append((final in (AttemptOutcome.CONNECTED, AttemptOutcome.DROPPED) or att.human, att.machine))
        out = self._release(att)
        out.append(c.CloseAttempt(attempt_id, final, now, att.agent))
        history = self._history.get(lid, ())
        lead = after_attempt(self.spec, att.lead, final, now, history)
        if final is AttemptOutcome.CONNECTED and att.disposition is not None:
            agent, name, callback_at = att.disposition
            lead = after_disposition(self.spec, lead, name, agent, callback_at, now, history)
            if dispositions(self.spec)[name].dnc:
                out.append(c.AddDnc(lead.phone, f"disposition {name} by agent {agent}"))
        elif final is AttemptOutcome.CONNECTED:
            att.lead = lead
            self._awaiting[attempt_id] = att
            self._remember(lead, closed=False)  # closed for real once the disposition says so
            out.append(c.UpdateLead(lead))
            return out
        self._settle(lead, now)
        out.append(c.UpdateLead(lead))
        return out

    def _settle(self, lead: Lead, now: float) -> None:
        closed = lead.state in (LeadState.DONE, LeadState.DNC)
        self._remember(lead, closed)
        if closed:
            self._finish_times.append(now)

    # ---------------------------------------------------------- dispositions
    def disposition(
        self, attempt_id: str, agent: str, name: str, callback_at: float | None = None
    ) -> list[c.CampaignCommand]:
        """An agent's disposition for an attempt (during the call or in wrap-up).

        Raises :class:`~callcenterd.core.campaigns.retry.UnknownDisposition`
        for a name the campaign lacks, ``ValueError`` for a callback without
        a time, :class:`UnknownAttempt` for an attempt the dialer does not
        hold (ended long ago, never connected, or before a restart: the
        service then applies ``retry.after_disposition`` to the stored lead).
        """
        disp = dispositions(self.spec).get(name)
        if disp is None:
            known = ", ".join(sorted(dispositions(self.spec)))
            raise UnknownDisposition(f"campaign {self.spec.name!r} has no disposition {name!r} (known: {known})")
        if disp.callback and callback_at is None:
            raise ValueError(f"disposition {name!r} needs a callback time")
        record = c.RecordDisposition(attempt_id, agent, name, callback_at)
        live = self._live.get(attempt_id)
        if live is not None:
            live.disposition = (agent, name, callback_at)
            self.disposition_counts[name] += 1
            return [record]
        att = self._awaiting.pop(attempt_id, None)
        if att is None:
            raise UnknownAttempt(f"campaign {self.spec.name!r} holds no connected attempt {attempt_id!r}")
        now = self._clock()
        self.disposition_counts[name] += 1
        lead = after_disposition(self.spec, att.lead, name, agent, callback_at, now, self._history.get(att.lead.lead_id, ()))
        out: list[c.CampaignCommand] = [record]
        if disp.dnc:
            out.append(c.AddDnc(lead.phone, f"disposition {name} by agent {agent}"))
        self._settle(lead, now)
        out.append(c.UpdateLead(lead))
        return out

    # --------------------------------------------------------------- preview
    def preview_next(self, agent: str) -> Lead | None:
        """The next lead for ``agent`` to preview (held for them until they
        accept or skip it), or None.  Only in preview mode, while running."""
        if self.state is not DialerState.RUNNING or self.spec.mode is not DialMode.PREVIEW:
            return None
        if agent in self._preview:
            return replace(self._preview[agent], state=LeadState.PREVIEW)
        now = self._clock()
        for lead in self._ordered_hopper():
            if self.why_not(lead, now) is not None:
                continue
            if agent in self._skipped.get(lead.lead_id, ()):
                continue
            if (
                lead.state is LeadState.CALLBACK
                and lead.callback_agent
                and lead.callback_agent != agent
                and now < lead.next_at + self.callback_grace
            ):
                continue
            del self._hopper[lead.lead_id]
            self._preview[agent] = lead
            return replace(lead, state=LeadState.PREVIEW)
        return None

    def previewing(self, agent: str) -> Lead | None:
        """The lead on ``agent``'s preview screen, if any."""
        return self._preview.get(agent)

    def _held(self, agent: str, lead_id: int) -> Lead:
        lead = self._preview.get(agent)
        if lead is None or lead.lead_id != lead_id:
            raise PreviewError(f"agent {agent!r} has no preview of lead {lead_id}")
        return lead

    def preview_accept(self, agent: str, lead_id: int) -> list[c.CampaignCommand]:
        """Dial the previewed lead with ``agent`` reserved for it (so even a
        guarded redial or a spent abandonment budget allows it)."""
        lead = self._held(agent, lead_id)
        now = self._clock()
        if self.state is not DialerState.RUNNING:
            raise PreviewError(f"campaign {self.spec.name!r} is {self.state.value}")
        if len(self._live) >= self.spec.max_lines:
            raise PreviewError(f"campaign {self.spec.name!r} has all {self.spec.max_lines} lines busy")
        if agent in self._reserved:
            raise PreviewError(f"agent {agent!r} already waits for a call")
        del self._preview[agent]
        reason = self.why_not(lead, now)
        if reason is not None:
            raise PreviewError(f"lead {lead_id} may not be dialled now: {reason}")
        return self._dial(lead, now, reserved_agent=agent)

    def preview_skip(self, agent: str, lead_id: int) -> list[c.CampaignCommand]:
        """Put the lead back (last in the hopper); this agent will not see it again."""
        lead = self._held(agent, lead_id)
        del self._preview[agent]
        self._skipped.setdefault(lead_id, set()).add(agent)
        self._hopper.pop(lead_id, None)
        self._hopper[lead_id] = lead
        return []

    # ---------------------------------------------------------------- status
    def in_flight(self) -> int:
        return len(self._live)

    def status(self, remaining: int | None = None) -> dict:
        """Figures for ``campaign status``.  ``remaining``: leads the store
        still has to finish; the time to exhaust the list comes from the
        leads finished in the last hour (or, with none, the dial rate)."""
        now = self._clock()
        self._prune(now)
        a24, d24 = self.ledger.counts_24h()
        a30, d30 = self.ledger.counts_30d()
        per_hour_dials = len(self._dial_times)
        per_hour_done = len(self._finish_times)
        rate = per_hour_done or per_hour_dials
        eta = None
        if remaining is not None and rate:
            eta = remaining / rate * 3600.0
        return {
            "campaign": self.spec.name,
            "mode": self.spec.mode.value,
            "state": self.state.value,
            "dialled": self.counts["dialled"],
            "human_answers": self.counts["human"],
            "machines": self.counts["machine"],
            "connected": self.counts["connected"],
            "abandoned": self.counts["abandoned"],
            "abandoned_24h": {"count": d24, "live_answers": a24, "pct": round(100.0 * d24 / a24, 2) if a24 else 0.0},
            "abandoned_30d": {"count": d30, "live_answers": a30, "pct": round(100.0 * d30 / a30, 2) if a30 else 0.0},
            "abandon_cap_pct": round(100.0 * self.spec.abandon_cap, 2),
            "in_flight": len(self._live),
            "hopper": len(self._hopper),
            "reserved_agents": len(self._reserved),
            "previews": len(self._preview),
            "outcomes": dict(self.outcomes),
            "dispositions": dict(self.disposition_counts),
            "remaining": remaining,
            "dials_last_hour": per_hour_dials,
            "leads_finished_last_hour": per_hour_done,
            "eta_seconds": eta,
        }
