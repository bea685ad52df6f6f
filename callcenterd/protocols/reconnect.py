"""Pieces shared by the reconnect supervisors (AMI, ESL inbound).

* :class:`Backoff`: capped exponential delays with jitter, so that many
  daemons restarted together do not reconnect to the PBX in lockstep.  A
  refused login gets its own, longer ``Backoff`` (see :func:`login_backoff`):
  a wrong secret will not fix itself in half a second, and hammering the PBX
  only fills its security log (and may trip fail2ban).
* :class:`RepeatLog`: the same failure repeated for an hour (PBX down) is one
  warning, then debug lines that carry a repeat count.
* :func:`call_back`: await a callback that may or may not be a coroutine.

Each supervisor keeps its own state enum and loop: the two protocols do not
move through the same states (AMI logs in after connecting, ESL's
``EslSession.connect`` does both), and their states are part of their API.
"""

from __future__ import annotations

import inspect
import random
from typing import Any, Callable, Hashable

__all__ = ["BACKOFF_FACTOR", "Backoff", "RepeatLog", "call_back", "login_backoff"]

BACKOFF_FACTOR = 2.0


class Backoff:
    """Exponential backoff ``min(maximum, initial * factor**attempt)``, jittered.

    ``jitter=None`` is "equal jitter", a delay in [d/2, d]; a fraction such as
    0.3 spreads the delay over d +- 30 %.  ``rng`` is a :class:`random.Random`
    (or the :mod:`random` module) or a zero-argument callable returning [0, 1).
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = BACKOFF_FACTOR,
        rng: Any = random,
        *,
        jitter: float | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0
        self._random: Callable[[], float] = getattr(rng, "random", rng)

    def delay(self, attempt: int) -> float:
        """The jittered delay for the ``attempt``-th retry (0 = first); no side effect."""
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        if self.jitter is None:
            return ceiling / 2 + self._random() * ceiling / 2
        return ceiling * (1.0 + self.jitter * (2.0 * self._random() - 1.0))

    def next(self) -> float:
        """The delay before the next retry; each call backs off further."""
        delay = self.delay(self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """After a good connection: the next failure retries quickly again."""
        self.attempt = 0


def login_backoff(initial: float, maximum: float | None = None, rng: Any = random, *,
                  jitter: float | None = None) -> Backoff:
    """The slower backoff after a refused login; a fixed delay when no ``maximum``."""
    return Backoff(initial, initial if maximum is None else maximum, rng=rng, jitter=jitter)


class RepeatLog:
    """Log a failure at warning the first time, at debug (with a count) while it repeats.

    Repeats are recognised by ``key``, by default the event and its fields;
    pass a key when a field (an attempt number) changes every time.  When the
    failure ends (:meth:`flush`, or a different one) an info line says how
    often it repeated, unless ``summarize=False``.
    """

    def __init__(self, logger: Any, *, summarize: bool = True) -> None:
        self._log = logger
        self._summarize = summarize
        self._last: Hashable | None = None
        self._event = ""
        self.repeats = 0

    def warning(self, event: str, *, key: Hashable = None, again: str | None = None, **kw: Any) -> None:
        """``again`` names the debug event for repeats (default: ``event``)."""
        if key is None:
            key = (event, tuple(sorted((k, str(v)) for k, v in kw.items())))
        if key == self._last:
            self.repeats += 1
            self._log.debug(again or event, repeated=self.repeats, **kw)
            return
        self.flush()
        self._last, self._event = key, event
        self._log.warning(event, **kw)

    def flush(self) -> None:
        """The failure is over: say how often it repeated, then forget it."""
        if self._summarize and self._last is not None and self.repeats:
            self._log.info("previous message repeated", event_repeated=self._event, times=self.repeats)
        self._last = None
        self.repeats = 0


async def call_back(callback: Callable[..., Any] | None, *args: Any) -> None:
    """Call ``callback(*args)`` and await the result if it is awaitable."""
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
