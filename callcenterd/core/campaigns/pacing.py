"""The pacing interface: how many new lines to dial now.

The dialer builds a :class:`PacingInput` on every tick and asks its
:class:`Pacer`.  The predictive pacer and its simulator plug in here, so the
daemon and the simulator run the very same code.  Every pacer's answer is
bounded by :func:`ceiling`: no line when no agent of the pool is active (all
logged out or paused), none once the abandonment budget is spent in either
window, and never more than ``max_lines`` lines up at once.

Counting conventions (all per campaign):

* agents: ``agents_ready`` are free now and not reserved by the dialer for a
  callback or a guarded redial; ``agents_staffed`` = ready + in wrap-up +
  on a call (paused and logged-out agents are not staffed);
* lines in flight: dialled and not yet with an agent (ringing, answered
  while AMD listens, answered and waiting for an agent), excluding lines
  that already have a reserved agent;
* ``lines_up``: every live line of the campaign, reserved or connected too;
  this is what ``max_lines`` bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from callcenterd.core.campaigns.model import CampaignSpec, DialMode

__all__ = [
    "Pacer",
    "PacingInput",
    "PowerPacer",
    "PreviewPacer",
    "ProgressivePacer",
    "ceiling",
    "pacer_for",
]


@dataclass(frozen=True, slots=True)
class PacingInput:
    now: float
    agents_staffed: int
    agents_ready: int
    agents_in_wrapup: int
    agents_on_call: int
    lines_ringing: int  # dialled, not yet answered (unreserved)
    answered_waiting: int  # answered humans not yet with an agent (unreserved)
    max_lines: int
    lines_up: int  # every live line of the campaign
    cap: float  # abandonment cap, a fraction
    budget_ok: bool  # False: the cap is reached in the 24 h or the 30-day window
    headroom_24h: int  # drops still allowed in each window
    headroom_30d: int
    rate_24h: float  # measured abandonment
    rate_30d: float
    lines_answering: int = 0  # answered, AMD still listening (unreserved)
    talk_elapsed: tuple[float, ...] = ()  # per agent on a call: seconds talked so far
    wrapup_remaining: tuple[float, ...] = ()  # per agent in wrap-up: seconds left (0 = unknown)
    answer_rate: float | None = None  # live answers per completed dial; None: no data yet
    machine_rate: float | None = None  # machines per completed dial
    answer_samples: int = 0  # completed dials behind the rates
    mean_time_to_answer: float | None = None  # s from dial to answer, answered calls
    # for the predictive pacer (optional: a pacer must cope without them)
    ringing_elapsed: tuple[float, ...] = ()  # per unreserved line not yet answered: s since dialled
    answer_delays: tuple[float, ...] = ()  # recent dial-to-answer delays, sorted
    talk_mean: float | None = None  # s, recent completed talks
    talk_cv: float | None = None
    talk_samples: int = 0
    wrapup_mean: float | None = None  # s, recent wrap-ups

    @property
    def lines_in_flight(self) -> int:
        return self.lines_ringing + self.lines_answering + self.answered_waiting

    @property
    def line_room(self) -> int:
        return max(0, self.max_lines - self.lines_up)


@runtime_checkable
class Pacer(Protocol):
    def lines_to_dial(self, inp: PacingInput) -> int:
        """New lines to dial now (>= 0); the dialer also clamps it with :func:`ceiling`."""
        ...


def ceiling(inp: PacingInput) -> int:
    """The most any pacer may dial now."""
    if inp.agents_staffed <= 0 or inp.agents_ready + inp.agents_in_wrapup + inp.agents_on_call <= 0:
        return 0
    if not inp.budget_ok:
        return 0
    return inp.line_room


class PreviewPacer:
    """Preview: agents pull leads themselves; the pacer never dials."""

    def lines_to_dial(self, inp: PacingInput) -> int:
        return 0


class ProgressivePacer:
    """One line per free agent: ready agents minus the lines already in flight."""

    def lines_to_dial(self, inp: PacingInput) -> int:
        return max(0, min(ceiling(inp), inp.agents_ready - inp.lines_in_flight))


class PowerPacer:
    """A fixed ratio: floor(ready agents x ratio) minus the lines in flight."""

    def __init__(self, ratio: float) -> None:
        if not (ratio > 0 and math.isfinite(ratio)):
            raise ValueError(f"power ratio must be a positive number, not {ratio!r}")
        self.ratio = ratio

    def lines_to_dial(self, inp: PacingInput) -> int:
        want = math.floor(inp.agents_ready * self.ratio + 1e-9) - inp.lines_in_flight
        return max(0, min(ceiling(inp), want))


def pacer_for(spec: CampaignSpec) -> Pacer:
    """The pacer of a campaign's dial mode."""
    if spec.mode is DialMode.PREVIEW:
        return PreviewPacer()
    if spec.mode is DialMode.POWER:
        return PowerPacer(spec.power_ratio)
    if spec.mode is DialMode.PREDICTIVE:
        from callcenterd.core.pacer.predictive import PredictivePacer

        return PredictivePacer()
    return ProgressivePacer()
