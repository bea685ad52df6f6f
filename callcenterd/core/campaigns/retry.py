"""What happens to a lead after an attempt ends or an agent records a disposition.

Pure functions: a :class:`Lead` in, a new :class:`Lead` out (the input is
never changed).  The caller persists the result.

Conventions:

* ``lead.attempts`` already counts the attempt that just ended (the dialer
  counts an attempt when it dials, before the PBX is asked, so a crash can
  never give a lead one attempt more than its maximum).
* ``recent_attempts`` are the start times (epoch s) of this lead's attempts,
  including the one that just ended; only those of the last 30 days count
  against ``spec.max_attempts_30d``.  The store has them (its attempts
  table); the dialer keeps them for the leads it holds.
* when the 30-day cap is reached, the lead is not closed: its ``next_at``
  moves to when its oldest counted attempt leaves the 30 days.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from callcenterd.core.campaigns.model import (
    AttemptOutcome,
    CampaignSpec,
    Disposition,
    Lead,
    LeadState,
    RetryRule,
)

__all__ = [
    "DAYS_30",
    "DEFAULT_DISPOSITIONS",
    "DEFAULT_RETRY",
    "UnknownDisposition",
    "after_attempt",
    "after_disposition",
    "attempts_in_30d",
    "dispositions",
    "in_drop_guard",
    "rule_for",
]

DAYS_30 = 30 * 86400.0

# Used for any outcome the campaign's ``retry`` section does not name.
# CONNECTED is the delay after a non-final, non-callback disposition.
DEFAULT_RETRY: Mapping[AttemptOutcome, RetryRule] = {
    AttemptOutcome.BUSY: RetryRule(delay=600.0),
    AttemptOutcome.NO_ANSWER: RetryRule(delay=3600.0),
    AttemptOutcome.CONGESTION: RetryRule(delay=300.0),
    AttemptOutcome.MACHINE: RetryRule(delay=4 * 3600.0),
    AttemptOutcome.FAILED: RetryRule(delay=24 * 3600.0),
    AttemptOutcome.DROPPED: RetryRule(delay=3600.0),  # and then only with a reserved agent until the guard ends
    AttemptOutcome.HUNGUP: RetryRule(delay=3600.0),
    AttemptOutcome.CONNECTED: RetryRule(delay=24 * 3600.0),
}

# Always known, unless the campaign redefines a name.
DEFAULT_DISPOSITIONS: Mapping[str, Disposition] = {
    "sale": Disposition("sale"),
    "callback": Disposition("callback", final=False, callback=True),
    "not-interested": Disposition("not-interested"),
    "dnc": Disposition("dnc", dnc=True),
}


class UnknownDisposition(ValueError):
    """An agent sent a disposition the campaign does not define."""


def dispositions(spec: CampaignSpec) -> dict[str, Disposition]:
    """The campaign's dispositions: the defaults, overridden or extended by the spec."""
    return {**DEFAULT_DISPOSITIONS, **spec.dispositions}


def rule_for(spec: CampaignSpec, outcome: AttemptOutcome) -> RetryRule:
    return spec.retry.get(outcome) or DEFAULT_RETRY.get(outcome) or RetryRule(delay=3600.0)


def attempts_in_30d(recent_attempts: Sequence[float], now: float) -> list[float]:
    """Start times within the last 30 days, oldest first."""
    return sorted(t for t in recent_attempts if t > now - DAYS_30)


def in_drop_guard(spec: CampaignSpec, lead: Lead, now: float) -> bool:
    """True while a dropped number may be redialled only with an agent reserved first."""
    return lead.last_dropped_at is not None and now - lead.last_dropped_at < spec.drop_redial_guard


def _schedule(
    spec: CampaignSpec,
    lead: Lead,
    want_at: float,
    now: float,
    recent_attempts: Sequence[float],
    state: LeadState = LeadState.READY,
) -> Lead:
    """Reopen the lead for ``want_at``, unless its attempts are exhausted;
    pushed back while the 30-day cap is reached."""
    if lead.attempts >= spec.max_attempts:
        return replace(lead, state=LeadState.DONE, next_at=0.0)
    recent = attempts_in_30d(recent_attempts, now)
    over = len(recent) - spec.max_attempts_30d
    if over >= 0:
        want_at = max(want_at, recent[over] + DAYS_30)
    return replace(lead, state=state, next_at=want_at)


def after_attempt(
    spec: CampaignSpec,
    lead: Lead,
    outcome: AttemptOutcome,
    now: float,
    recent_attempts: Sequence[float] = (),
) -> Lead:
    """The lead after an attempt ended with ``outcome``.

    CONNECTED closes the lead (DONE) until the agent's disposition says
    otherwise (see :func:`after_disposition`).  Otherwise the outcome's
    retry rule gives the delay; a rule with ``retry: false``, or the last
    allowed attempt, closes the lead.  A DROPPED outcome stamps
    ``last_dropped_at``.
    """
    lead = replace(lead, last_outcome=outcome.value, callback_agent="")
    if outcome is AttemptOutcome.DROPPED:
        lead = replace(lead, last_dropped_at=now)
    if outcome is AttemptOutcome.CONNECTED:
        return replace(lead, state=LeadState.DONE, next_at=0.0)
    rule = rule_for(spec, outcome)
    if not rule.retry:
        return replace(lead, state=LeadState.DONE, next_at=0.0)
    return _schedule(spec, lead, now + rule.delay, now, recent_attempts)


def after_disposition(
    spec: CampaignSpec,
    lead: Lead,
    name: str,
    agent: str,
    callback_at: float | None,
    now: float,
    recent_attempts: Sequence[float] = (),
) -> Lead:
    """The lead after an agent recorded disposition ``name``.

    * ``dnc``: state DNC (the caller also adds the number to the DNC list);
    * ``callback``: state CALLBACK at ``callback_at`` (epoch s, required),
      remembering the agent; still bound by the attempt caps (a lead with
      no attempt left is DONE, its disposition says callback);
    * final: DONE; non-final: READY again after the CONNECTED retry delay.
    """
    disp = dispositions(spec).get(name)
    if disp is None:
        known = ", ".join(sorted(dispositions(spec)))
        raise UnknownDisposition(f"campaign {spec.name!r} has no disposition {name!r} (known: {known})")
    lead = replace(lead, disposition=name, callback_agent="")
    if disp.dnc:
        return replace(lead, state=LeadState.DNC, next_at=0.0)
    if disp.callback:
        if callback_at is None:
            raise ValueError(f"disposition {name!r} needs a callback time")
        return _schedule(
            spec, replace(lead, callback_agent=agent), callback_at, now, recent_attempts, LeadState.CALLBACK
        )
    if disp.final:
        return replace(lead, state=LeadState.DONE, next_at=0.0)
    return _schedule(spec, lead, now + rule_for(spec, AttemptOutcome.CONNECTED).delay, now, recent_attempts)
