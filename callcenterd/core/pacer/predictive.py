"""The predictive pacer.

On every tick it predicts, for a call dialled now, how many agents will be
free when that call would be answered, and how many answered people will be
competing for them; then it dials the largest number of new lines whose
expected abandonment stays within its internal target.

The model (all from :class:`~callcenterd.core.campaigns.pacing.PacingInput`):

* **horizon** ``h``: the mean time from dial to answer, plus the
  ``abandon_after`` grace (an answered person waits that long for an agent);
* **supply** by ``h``: agents ready now (certain), agents in wrap-up whose
  remaining wrap-up is under ``h``, and agents on a call who finish their
  talk and their wrap-up by ``h``: P(T <= e + h - w | T > e) for elapsed
  talk ``e`` under a lognormal fitted to the live talk times (no talk data:
  nobody on a call is counted, the conservative side);
* **demand** by ``h``: answered people waiting, lines AMD is listening to
  (a person with probability p/(p+m)), lines ringing (a person with the
  probability of still answering given how long they have rung, from the
  live answer delays) and the ``n`` new lines (p each);
* **uncertainty**: p and m are Beta posteriors of the completed dials; the
  pacer uses the upper ``z`` quantile of p (fewer samples: fewer lines) and
  adds the posterior variance, shared by every line, to the demand variance;
* **drops**: expected excess of demand over supply, E[(D - S)+], with D - S
  approximated as normal; the new lines' abandonment is
  (E[drops with n] - E[drops without]) / (n p).

Guards, on top of :func:`~callcenterd.core.campaigns.pacing.ceiling`:

* the internal ``target`` (the one tunable: aggressiveness) is lowered for
  small teams (x sqrt(staffed / small_team) below ``small_team`` agents),
  where variance dominates;
* closed loop: the target is scaled down linearly as the measured 24 h or
  30-day abandonment climbs from ``(1 - guard_band) x cap`` to the cap, and
  the expected drops of the new lines never exceed half the drops the
  ledger still allows (``headroom``) in either window;
* no answer-rate data yet (fewer than ``min_samples`` completed dials):
  progressive pace, not a guess;
* no agent active: zero lines (the ceiling).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callcenterd.core.campaigns.pacing import PacingInput, ceiling

__all__ = ["PacerDecision", "PredictivePacer", "TalkTracker", "lognormal_params"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def expected_excess(mean: float, var: float) -> float:
    """E[max(0, X)] for X ~ N(mean, var)."""
    if var <= 1e-12:
        return max(0.0, mean)
    sd = math.sqrt(var)
    z = mean / sd
    return sd * _phi(z) + mean * _cdf(z)


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and coefficient of variation."""
    s2 = math.log1p(cv * cv)
    return math.log(mean) - s2 / 2.0, math.sqrt(s2)


@dataclass(frozen=True, slots=True)
class PacerDecision:
    """What the pacer saw and decided on its last tick (for campaign status)."""

    at: float
    lines: int
    mode: str  # "predictive", "progressive" (no data yet), "stopped"
    target: float  # the effective internal target after the guards
    answer_rate: float  # the conservative answer rate used
    free_agents_predicted: float  # agents free by the horizon
    humans_predicted: float  # answered people competing for them (new lines included)
    drops_predicted: float  # expected drops among the new lines
    horizon: float


class TalkTracker:
    """Completed talk and wrap-up durations, learnt from successive pool views.

    Feed it ``on_call`` (agent -> seconds talked) and ``wrapup`` (agent ->
    seconds left) on each tick; an agent who leaves ``on_call`` completed a
    talk of the last elapsed seen, an agent first seen in wrap-up starts one
    of the remaining seen.  Feeding the same view twice changes nothing.
    """

    def __init__(self, keep: int = 300) -> None:
        self.keep = keep
        self._talking: dict[str, float] = {}
        self._wrapping: set[str] = set()
        self.talks: list[float] = []
        self.wrapups: list[float] = []
        self._stats: tuple | None = None  # cached (talk mean, cv, n, wrap-up mean)

    def observe(self, on_call: Mapping[str, float], wrapup: Mapping[str, float]) -> None:
        for agent in [a for a in self._talking if a not in on_call]:
            self._add(self.talks, self._talking.pop(agent))
        self._talking.update(on_call)
        for agent, left in wrapup.items():
            if agent not in self._wrapping and left > 0:
                self._add(self.wrapups, left)
        self._wrapping = set(wrapup)

    def _add(self, into: list[float], value: float) -> None:
        if value > 0:
            self._stats = None
            into.append(value)
            if len(into) > self.keep:
                del into[: len(into) - self.keep]

    @staticmethod
    def _mean_cv(xs: Iterable[float]) -> tuple[float | None, float | None]:
        xs = list(xs)
        if not xs:
            return None, None
        m = sum(xs) / len(xs)
        if len(xs) < 2 or m <= 0:
            return m, None
        var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
        return m, math.sqrt(var) / m

    def _cached(self) -> tuple:
        if self._stats is None:
            m, cv = self._mean_cv(self.talks)
            self._stats = (m, cv, len(self.talks), self._mean_cv(self.wrapups)[0])
        return self._stats

    def talk_stats(self) -> tuple[float | None, float | None, int]:
        """(mean, coefficient of variation, samples) of the recent completed talks."""
        return self._cached()[:3]

    def wrapup_mean(self) -> float | None:
        return self._cached()[3]


class PredictivePacer:
    """Model-based look-ahead pacing; see the module docstring.

    ``target``: the internal abandonment target for new lines (a fraction),
    the one knob of aggressiveness.  The rest are safety settings.
    """

    def __init__(
        self,
        target: float = 0.03,
        *,
        small_team: int = 25,
        guard_band: float = 0.25,
        min_samples: int = 30,
        z: float = 1.0,
        grace: float = 2.0,
        min_talk_samples: int = 20,
        default_time_to_answer: float = 10.0,
    ) -> None:
        if not (0.0 <= target < 1.0 and math.isfinite(target)):
            raise ValueError(f"predictive target must be a fraction in [0, 1), not {target!r}")
        if not 0.0 < guard_band <= 1.0:
            raise ValueError(f"guard_band must be in (0, 1], not {guard_band!r}")
        self.target = target
        self.small_team = small_team
        self.guard_band = guard_band
        self.min_samples = min_samples
        self.z = z
        self.grace = grace
        self.min_talk_samples = min_talk_samples
        self.default_time_to_answer = default_time_to_answer
        self.last: PacerDecision | None = None

    # ------------------------------------------------------------ pieces
    def effective_target(self, inp: PacingInput) -> float:
        """The internal target after the small-team and closed-loop guards."""
        t = self.target
        if 0 < inp.agents_staffed < self.small_team:
            t *= math.sqrt(inp.agents_staffed / self.small_team)
        cap = inp.cap
        if cap > 0:
            band = self.guard_band * cap
            for rate in (inp.rate_24h, inp.rate_30d):
                t *= min(1.0, max(0.0, (cap - rate) / band))
        return t

    def answer_rate_bounds(self, inp: PacingInput) -> tuple[float, float, float]:
        """(conservative p, posterior sd of p, mean machine rate)."""
        n = inp.answer_samples
        k = (inp.answer_rate or 0.0) * n
        a, b = k + 1.0, n - k + 1.0
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
        km = (inp.machine_rate or 0.0) * n
        m = (km + 1.0) / (n + 2.0)
        return min(1.0, mean + self.z * sd), sd, m

    def supply(self, inp: PacingInput, horizon: float) -> tuple[float, float]:
        """(mean, variance) of the agents free by ``horizon`` seconds from now."""
        mean = float(inp.agents_ready)
        var = 0.0
        for left in inp.wrapup_remaining:
            q = 0.5 if left <= 0 else (1.0 if left <= horizon else 0.0)
            mean += q
            var += q * (1.0 - q)
        if inp.talk_samples < self.min_talk_samples or not inp.talk_mean or inp.talk_elapsed == ():
            return mean, var
        mu, sigma = lognormal_params(inp.talk_mean, max(0.05, inp.talk_cv or 1.0))
        wrap = inp.wrapup_mean or 0.0
        for e in inp.talk_elapsed:
            limit = e + horizon - wrap
            if limit <= e:
                continue
            s_e = 1.0 - _cdf((math.log(max(e, 1e-3)) - mu) / sigma)
            if s_e <= 1e-9:
                q = 1.0
            else:
                s_l = 1.0 - _cdf((math.log(limit) - mu) / sigma)
                q = max(0.0, 1.0 - s_l / s_e)
            mean += q
            var += q * (1.0 - q)
        return mean, var

    def still_answers(self, inp: PacingInput, p: float, m: float, elapsed: float) -> float:
        """P(a line ringing ``elapsed`` s is a person who answers)."""
        delays = inp.answer_delays
        if not delays:
            return p
        later = 1.0 - bisect_right(delays, elapsed) / len(delays)
        pa = min(1.0, p + m)
        denom = 1.0 - pa * (1.0 - later)
        return p * later / denom if denom > 1e-9 else 0.0

    # ------------------------------------------------------------ decision
    def lines_to_dial(self, inp: PacingInput) -> int:
        top = ceiling(inp)
        if top <= 0:
            self._note(inp, 0, "stopped", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            return 0
        if inp.answer_rate is None or inp.answer_samples < self.min_samples:
            n = max(0, min(top, inp.agents_ready - inp.lines_in_flight))
            self._note(inp, n, "progressive", 0.0, 0.0, float(inp.agents_ready), float(inp.lines_in_flight), 0.0, 0.0)
            return n
        p, sd, m = self.answer_rate_bounds(inp)
        horizon = (inp.mean_time_to_answer or self.default_time_to_answer) + self.grace
        s_mean, s_var = self.supply(inp, horizon)
        # demand from lines already up
        d_mean = float(inp.answered_waiting)
        d_var = 0.0
        lines_uncertain = 0.0
        if inp.lines_answering:
            q = p / (p + m) if p + m > 0 else 1.0
            d_mean += inp.lines_answering * q
            d_var += inp.lines_answering * q * (1.0 - q)
        ringing = inp.ringing_elapsed
        if len(ringing) == inp.lines_ringing:
            for e in ringing:
                q = self.still_answers(inp, p, m, e)
                d_mean += q
                d_var += q * (1.0 - q)
                lines_uncertain += q / p if p > 0 else 0.0
        else:
            d_mean += inp.lines_ringing * p
            d_var += inp.lines_ringing * p * (1.0 - p)
            lines_uncertain += inp.lines_ringing
        mu0 = d_mean - s_mean
        var0 = d_var + s_var + (lines_uncertain * sd) ** 2 + 0.25
        base = expected_excess(mu0, var0)
        target = self.effective_target(inp)
        headroom = min(inp.headroom_24h, inp.headroom_30d)
        allowance = 0.5 * max(0.0, headroom - base) + 0.02
        n = 0
        drops = 0.0
        while n < top:
            k = n + 1
            mean_k = mu0 + k * p
            var_k = var0 + k * p * (1.0 - p) + ((lines_uncertain + k) ** 2 - lines_uncertain**2) * sd * sd
            extra = expected_excess(mean_k, var_k) - base
            if extra > target * k * p or extra > allowance:
                break
            n, drops = k, extra
        self._note(inp, n, "predictive", target, p, s_mean, d_mean + n * p, drops, horizon)
        return n

    def _note(self, inp, n, mode, target, p, free, humans, drops, horizon) -> None:
        self.last = PacerDecision(inp.now, n, mode, target, p, free, humans, drops, horizon)

    def status(self) -> dict:
        """The last decision, for campaign status: the pacer's ratio and prediction."""
        d = self.last
        if d is None:
            return {"pacer": "predictive", "target": self.target}
        return {
            "pacer": "predictive",
            "mode": d.mode,
            "target": self.target,
            "effective_target": round(d.target, 5),
            "lines_last_tick": d.lines,
            "answer_rate_used": round(d.answer_rate, 4),
            "free_agents_predicted": round(d.free_agents_predicted, 2),
            "humans_predicted": round(d.humans_predicted, 2),
            "drops_predicted": round(d.drops_predicted, 4),
            "horizon_s": round(d.horizon, 1),
        }
