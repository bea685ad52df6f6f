"""Estimated wait: a pure model fed a compact view of one queue.

The engine gathers the view (who is ahead, who is ready, what each busy
agent is doing) and calls :func:`estimate_wait`; nothing here reads the
ACD's state or the clock.

The model, in short:

* Callers already being offered to an agent are not ahead: an agent is
  ringing for them.  With fewer callers ahead than ready agents the caller
  waits only for an agent to answer (the queue's mean answer delay).
* Otherwise the caller needs ``m = ahead - ready + 1`` agent releases.
  Each busy agent releases after what it still has to do: the rest of its
  talk (the expected *residual* of a lognormal talk time, given how long it
  has already talked), then its wrap-up; an agent in wrap-up releases
  exactly when it ends; a ringing agent has a whole call ahead.  After its
  first release an agent frees again every handle time (answer + talk +
  wrap-up).
* An agent shared with other queues gives this queue only a share of its
  releases, in proportion to the callers waiting in each of its queues.
* Callers ahead give up at the queue's observed abandon rate (abandons per
  second waited), which also brings the caller forward.
* ``Λ(t)`` = expected releases for this queue by ``t`` (the residual talk
  taken as exponential with the residual mean).  The estimate is where
  ``Λ(t) + abandons(t) = m - 1/3`` (the median of the m-th event of a
  Poisson stream; the median minimises the absolute error), plus the
  answer delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

#: EWMA weight of a new sample once warmed up; before that, a running mean
#: in which the configured prior counts as one sample.
STATS_ALPHA = 0.01
ABANDON_ALPHA = 0.002  # abandons are rarer than calls: a longer memory (about 500 callers)
TALK_CV_PRIOR = 1.0  # talk-time coefficient of variation assumed before data
ANSWER_PRIOR = 4.0  # seconds from offer to answer assumed before data
_CV_RANGE = (0.2, 3.0)
_MEDIAN_SHIFT = 1.0 / 3.0  # median of Gamma(m) ~ (m - 1/3) / rate
_SQRT2 = math.sqrt(2.0)


@dataclass(slots=True)
class HandleStats:
    """One queue's handle-time statistics: talk mean and spread, answer delay.

    ``samples`` counts completed calls; the configured prior counts as one.
    Kept in the store so a restart does not fall back to the prior.
    """

    talk_mean: float
    talk_sq_mean: float  # E[talk^2], for the spread (CV)
    answer_mean: float = ANSWER_PRIOR
    samples: int = 0
    answers: int = 0
    abandons: float = 0.0  # decayed count of callers who hung up while waiting ...
    waited: float = 0.0  # ... over the decayed seconds all callers waited: the abandon rate

    @classmethod
    def prior(cls, talk: float, cv: float = TALK_CV_PRIOR) -> HandleStats:
        return cls(talk, talk * talk * (1.0 + cv * cv))

    def add_talk(self, talk: float) -> None:
        self.samples += 1
        w = max(1.0 / (self.samples + 1), STATS_ALPHA)
        self.talk_mean += w * (talk - self.talk_mean)
        self.talk_sq_mean += w * (talk * talk - self.talk_sq_mean)

    def add_answer(self, delay: float, waited: float | None = None) -> None:
        """An agent answered ``delay`` s after the offer, for a caller who waited ``waited`` s."""
        if waited is not None:
            self.add_wait(waited, abandoned=False)
        self.answers += 1
        w = max(1.0 / (self.answers + 1), STATS_ALPHA)
        self.answer_mean += w * (delay - self.answer_mean)

    def add_wait(self, seconds: float, abandoned: bool) -> None:
        keep = 1.0 - ABANDON_ALPHA
        self.abandons = self.abandons * keep + (1.0 if abandoned else 0.0)
        self.waited = self.waited * keep + max(seconds, 0.0)

    @property
    def abandon_rate(self) -> float:
        """Per waiting caller, per second."""
        return self.abandons / self.waited if self.waited > 0 else 0.0

    @property
    def talk_cv(self) -> float:
        m = self.talk_mean
        var = self.talk_sq_mean - m * m
        cv = math.sqrt(var) / m if m > 0 and var > 0 else 0.0
        return min(max(cv, _CV_RANGE[0]), _CV_RANGE[1])

    def to_dict(self) -> dict[str, float | int]:
        return {"talk_mean": self.talk_mean, "talk_sq_mean": self.talk_sq_mean, "answer_mean": self.answer_mean,
                "samples": self.samples, "answers": self.answers, "abandons": self.abandons, "waited": self.waited}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandleStats:
        s = cls(float(data["talk_mean"]), float(data["talk_sq_mean"]), float(data["answer_mean"]),
                int(data["samples"]), int(data["answers"]), float(data.get("abandons", 0.0)),
                float(data.get("waited", 0.0)))
        if not (s.talk_mean > 0 and s.talk_sq_mean > 0 and s.answer_mean >= 0 and s.samples >= 0
                and s.abandons >= 0 and s.waited >= 0):
            raise ValueError(f"invalid handle-time statistics: {dict(data)!r}")
        return s


@dataclass(frozen=True, slots=True)
class BusyAgent:
    """A staffed agent that cannot take a caller now.

    * talking: ``talk_elapsed`` seconds into a call, ``then`` = wrap-up after it;
    * ringing (being offered): ``ringing`` True, a whole call then ``then``;
    * otherwise (wrap-up, back-off, busy device): free in ``then`` seconds.

    ``share`` is the part of its next callers that come from this queue.
    """

    then: float = 0.0
    talk_elapsed: float | None = None
    ringing: bool = False
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class QueueView:
    """What the estimate needs to know about one queue, right now."""

    ahead: int  # callers ahead of this one, not counting those being offered
    ready: int  # agents that could take a caller now
    busy: Sequence[BusyAgent]
    wrapup: float  # the queue's wrap-up time, for the agents' later calls
    stats: HandleStats


def residual_talk(mean: float, cv: float, elapsed: float) -> float:
    """Expected remaining talk of a lognormal call already ``elapsed`` seconds long."""
    if elapsed <= 0:
        return mean
    s2 = math.log1p(cv * cv)
    s = math.sqrt(s2)
    mu = math.log(mean) - s2 / 2
    z = (mu - math.log(elapsed)) / s
    survive = _phi(z)
    if survive < 1e-12:  # far in the tail: the remaining talk grows ~ elapsed * s^2 / ln(elapsed)
        return max(elapsed * s2 / max(math.log(elapsed) - mu, 1.0), 1.0)
    return max(mean * _phi(z + s) / survive - elapsed, 0.5)


def estimate_wait(view: QueueView) -> float:
    """Seconds until the caller described by ``view`` is connected to an agent."""
    st = view.stats
    answer = st.answer_mean
    if view.ahead < view.ready:
        return answer
    talk, cv = st.talk_mean, st.talk_cv
    handle = answer + talk + view.wrapup
    # each server: (share, deterministic delay, exponential mean) of its first release
    servers = [(1.0, answer + view.wrapup, talk)] * view.ready
    for b in view.busy:
        if b.ringing:
            servers.append((b.share, answer + b.then, talk))
        elif b.talk_elapsed is not None:
            servers.append((b.share, b.then, residual_talk(talk, cv, b.talk_elapsed)))
        else:
            servers.append((b.share, b.then, 0.0))
    target = view.ahead - view.ready + 1 - _MEDIAN_SHIFT
    capacity = sum(s for s, _, _ in servers)
    theta = st.abandon_rate
    if capacity <= 0 and theta <= 0:
        return answer + target * handle
    # step forward in time: releases to this queue, plus callers ahead who give up meanwhile
    ahead = view.ahead - view.ready
    step = (target * handle / capacity if capacity > 0 else 1.0 / theta) / 100
    if theta > 0:  # at most about 5 % of the callers ahead give up within one step
        step = min(step, 0.05 / theta)
    step = max(0.5, step)
    t, done, gone = 0.0, 0.0, 0.0
    for _ in range(100_000):
        if done + gone >= target:
            break
        nt = t + step
        nd = _releases(servers, nt, handle)
        # callers ahead decay exponentially within the step: never more than are left
        ng = gone - math.expm1(-theta * step) * max(0.0, ahead - done - gone)
        if nd + ng >= target:  # interpolate inside the step
            t += step * (target - done - gone) / max(nd + ng - done - gone, 1e-9)
            break
        t, done, gone = nt, nd, ng
    return t + answer


def _releases(servers: list[tuple[float, float, float]], t: float, handle: float) -> float:
    """Expected releases for the queue by ``t``: first release, then one per handle time."""
    total = 0.0
    for share, delay, mean in servers:
        x = t - delay
        if x < 0:
            continue
        if mean > 0:
            p = -math.expm1(-x / mean)
            area = x - mean * p  # integral of P(released by s) over [delay, t]
        else:
            p, area = 1.0, x
        total += share * (p + area / handle)
    return total


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def naive_wait(position: int, mean_talk: float, agents: int) -> float | None:
    """The naive formula the estimate is judged against: position x mean talk / agents."""
    return None if agents <= 0 else position * mean_talk / agents
