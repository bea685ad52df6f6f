"""Compliance rules: the abandonment ledger and the minimum ring time.

**Abandonment rate** (the FTC TSR and Ofcom definition):

    rate = dropped / live answers

where a *live answer* is a call answered by a person (AMD said human, or
AMD is off), and a *dropped* call is a live answer that no agent took
within ``abandon_after`` (2 s) of the greeting: the person heard the
abandon message.  Dropped calls are live answers too, so the denominator
is ``connected + dropped``.  A person who hangs up during their own
greeting, before the 2 s are up, is counted in neither (conservative: it
would only lower the rate).  Machines are not live answers.

The rate is enforced over the campaign's last 24 h (Ofcom) and last 30 days
(FTC); the cap (default 3 %) must hold in both.  With no live answer yet the
rate is 0.

The ledger keeps per-minute counts, so memory stays bounded (at most
43,200 buckets) however many calls a campaign makes; a bucket counts in a
window while any of its minute does, so a count may include events up to a
minute older than the window (the conservative side for drops).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterable, Iterator

from callcenterd.core.campaigns.model import CampaignSpec

__all__ = [
    "CONNECTED",
    "DAY",
    "DROPPED",
    "MONTH",
    "AbandonLedger",
    "may_hang_up_ringing",
    "ring_timeout",
]

DAY = 86400.0
MONTH = 30 * DAY
CONNECTED = "connected"  # a live answer that reached an agent
DROPPED = "dropped"  # a live answer that got the abandon message
_KINDS = (CONNECTED, DROPPED)


class _Window:
    """Per-minute [connected, dropped] buckets over a rolling span."""

    __slots__ = ("span", "buckets", "connected", "dropped")

    def __init__(self, span: float) -> None:
        self.span = span
        self.buckets: deque[list[int]] = deque()  # [minute, connected, dropped]
        self.connected = 0
        self.dropped = 0

    def add(self, minute: int, kind: str, n: int = 1) -> None:
        if self.buckets and self.buckets[-1][0] >= minute:
            b = self.buckets[-1]  # late or same-minute event: the newest bucket
        else:
            b = [minute, 0, 0]
            self.buckets.append(b)
        if kind == CONNECTED:
            b[1] += n
            self.connected += n
        else:
            b[2] += n
            self.dropped += n

    def expire(self, now: float) -> None:
        oldest = math.floor((now - self.span) / 60)  # a bucket counts while any of its minute does
        while self.buckets and self.buckets[0][0] < oldest:
            _, c, d = self.buckets.popleft()
            self.connected -= c
            self.dropped -= d


class AbandonLedger:
    """Rolling live answers and drops over the last 24 h and 30 days.

    Restore it from the store with :meth:`from_events` (the attempts of the
    last 30 days whose outcome is connected or dropped), export it with
    :meth:`events_since`.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._day = _Window(DAY)
        self._month = _Window(MONTH)

    @classmethod
    def from_events(cls, events: Iterable[tuple[float, str]], clock: Callable[[], float]) -> "AbandonLedger":
        """A ledger holding ``(at, kind)`` events, kind ``"connected"`` or ``"dropped"``."""
        ledger = cls(clock)
        for at, kind in sorted(events):
            ledger.record(kind, at)
        ledger._expire()
        return ledger

    def record(self, kind: str, at: float | None = None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"abandonment ledger: unknown event kind {kind!r} (connected or dropped)")
        at = self._clock() if at is None else at
        minute = math.floor(at / 60)
        self._day.add(minute, kind)
        self._month.add(minute, kind)

    def record_connected(self, at: float | None = None) -> None:
        self.record(CONNECTED, at)

    def record_dropped(self, at: float | None = None) -> None:
        self.record(DROPPED, at)

    def _expire(self) -> None:
        now = self._clock()
        self._day.expire(now)
        self._month.expire(now)

    def events_since(self, t: float) -> Iterator[tuple[float, str]]:
        """``(at, kind)`` events of buckets from ``t`` on, one per event,
        ``at`` being the bucket's minute."""
        self._expire()
        floor_minute = math.floor(t / 60)
        for minute, c, d in self._month.buckets:
            if minute < floor_minute:
                continue
            for _ in range(c):
                yield (minute * 60.0, CONNECTED)
            for _ in range(d):
                yield (minute * 60.0, DROPPED)

    # ----------------------------------------------------------- figures
    def counts_24h(self) -> tuple[int, int]:
        """(live answers, dropped) over the last 24 h."""
        self._expire()
        return self._day.connected + self._day.dropped, self._day.dropped

    def counts_30d(self) -> tuple[int, int]:
        self._expire()
        return self._month.connected + self._month.dropped, self._month.dropped

    @staticmethod
    def _rate(answered: int, dropped: int) -> float:
        return dropped / answered if answered else 0.0

    def rate_24h(self) -> float:
        return self._rate(*self.counts_24h())

    def rate_30d(self) -> float:
        return self._rate(*self.counts_30d())

    @staticmethod
    def _headroom(answered: int, dropped: int, cap: float) -> int:
        """Drops still allowed: the largest k with (d + k) / (a + k) <= cap."""
        if cap >= 1.0:
            return 1 << 30
        k = math.floor((cap * answered - dropped) / (1.0 - cap) + 1e-9)
        return max(0, k)

    def headroom_24h(self, cap: float) -> int:
        return self._headroom(*self.counts_24h(), cap)

    def headroom_30d(self, cap: float) -> int:
        return self._headroom(*self.counts_30d(), cap)

    def headroom(self, cap: float) -> int:
        """How many more drops keep the rate within ``cap`` in both windows."""
        return min(self.headroom_24h(cap), self.headroom_30d(cap))

    def allows_dial(self, cap: float) -> bool:
        """False once the budget is spent in either window: the measured
        rate has reached the cap (and there was a drop)."""
        for answered, dropped in (self.counts_24h(), self.counts_30d()):
            if dropped and dropped / answered >= cap:
                return False
        return True


# ------------------------------------------------------------ minimum ring
def ring_timeout(spec: CampaignSpec) -> float:
    """The ring timeout a Dial carries: never shorter than the minimum ring."""
    return max(spec.ring_timeout, spec.min_ring)


def may_hang_up_ringing(spec: CampaignSpec, ringing_since: float, now: float) -> bool:
    """The dialer never hangs up a ringing leg before it has rung ``min_ring`` seconds."""
    return now - ringing_since >= spec.min_ring
