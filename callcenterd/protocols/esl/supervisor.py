"""Keep one inbound ESL session up: reconnect with jittered backoff.

State machine (explicit, observable in :attr:`EslSupervisor.state`)::

    STOPPED -> CONNECTING -> CONNECTED -> (connection lost) -> BACKOFF -> CONNECTING ...
                         \\-> (wrong password / ACL)   -> LOGIN_FAILED (longer backoff) -> CONNECTING ...
    any state -> STOPPED on stop()

Nothing is ever re-sent by the supervisor: commands that were in flight when
the connection dropped failed with ConnectionLost in the old session; the
``on_connected`` callback is where the driver resubscribes and resyncs.
Repeated identical failures are logged once at WARNING, then at DEBUG, and a
single INFO line says how many attempts it took when the link comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from typing import Any, Awaitable, Callable

import structlog

from callcenterd.protocols.errors import ConnectionLost, LoginFailed, ProtocolError, Timeout
from callcenterd.protocols.esl.session import EslSession
from callcenterd.protocols.reconnect import Backoff, RepeatLog, call_back, login_backoff

log = structlog.get_logger(__name__)

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "BACKOFF_FACTOR",
    "BACKOFF_JITTER",
    "LOGIN_FAILED_BACKOFF",
    "SupervisorState",
    "EslSupervisor",
]

BACKOFF_INITIAL = 0.5  # first retry after ~0.5 s
BACKOFF_MAX = 30.0  # never wait longer than 30 s between attempts
BACKOFF_FACTOR = 2.0
BACKOFF_JITTER = 0.3  # +-30 %: many daemons restarting must not reconnect in lockstep
LOGIN_FAILED_BACKOFF = 60.0  # a wrong password will not fix itself in 0.5 s
STABLE_AFTER = 10.0  # a session that lived this long resets the backoff


class SupervisorState(str, enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    LOGIN_FAILED = "login-failed"


Callback = Callable[..., Awaitable[None] | None]


class EslSupervisor:
    """Owns the reconnect loop; ``session`` is the live session or None."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        on_connected: Callback | None = None,
        on_disconnected: Callback | None = None,
        connect: Callable[..., Awaitable[EslSession]] | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        login_failed_backoff: float = LOGIN_FAILED_BACKOFF,
        rng: Callable[[], float] = random.random,
        **session_options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self._password = password
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._connect = connect or EslSession.connect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.login_failed_backoff = login_failed_backoff
        self._rng = rng
        self._session_options = session_options
        self.state = SupervisorState.STOPPED
        self.session: EslSession | None = None
        self.attempts = 0  # consecutive failed attempts
        self.connects = 0  # successful sessions so far
        self._task: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._log = log.bind(peer=f"{host}:{port}")

    def __repr__(self) -> str:  # never shows the password
        return f"<EslSupervisor {self.host}:{self.port} {self.state.value}>"

    # --------------------------------------------------------------- control
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"esl-supervisor-{self.host}:{self.port}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.state = SupervisorState.STOPPED
        self._connected_event.clear()

    async def wait_connected(self, timeout: float | None = None) -> EslSession:
        """Wait for a live session (for start-up and tests)."""
        async with asyncio.timeout(timeout):
            while True:
                await self._connected_event.wait()
                if self.session is not None and not self.session.closed:
                    return self.session
                await asyncio.sleep(0)

    def next_delay(self, login_failed: bool = False) -> float:
        """Backoff before the next attempt (attempts already counted); no side effect."""
        if login_failed:
            return login_backoff(self.login_failed_backoff, rng=self._rng, jitter=BACKOFF_JITTER).delay(0)
        backoff = Backoff(self.backoff_initial, self.backoff_max, BACKOFF_FACTOR, self._rng, jitter=BACKOFF_JITTER)
        return backoff.delay(max(0, self.attempts - 1))

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        repeat = RepeatLog(self._log, summarize=False)  # "esl reconnected" below says it
        loop = asyncio.get_running_loop()
        while True:
            self.state = SupervisorState.CONNECTING
            login_failed = False
            try:
                session = await self._connect(self.host, self.port, self._password, **self._session_options)
            except LoginFailed as exc:
                login_failed = True
                err = f"{type(exc).__name__}: {exc}"
            except (ConnectionLost, Timeout, ProtocolError, OSError) as exc:
                err = f"{type(exc).__name__}: {exc}"
            else:
                if self.attempts:
                    self._log.info("esl reconnected", failed_attempts=self.attempts)
                self.attempts = 0
                repeat.flush()
                self.session = session
                self.connects += 1
                self.state = SupervisorState.CONNECTED
                started = loop.time()
                try:
                    await call_back(self._on_connected, session)
                except Exception:
                    self._log.exception("esl on_connected callback failed; dropping the session")
                    await session.close()
                self._connected_event.set()
                reason = await session.wait_closed()
                self._connected_event.clear()
                self.session = None
                self._log.warning("esl session lost", reason=str(reason) if reason else "closed")
                try:
                    await call_back(self._on_disconnected, reason)
                except Exception:
                    self._log.exception("esl on_disconnected callback failed")
                if loop.time() - started < STABLE_AFTER:
                    self.attempts += 1  # flapping: keep backing off
                delay = self.next_delay() if self.attempts else 0.0
                self.state = SupervisorState.BACKOFF
                await asyncio.sleep(delay)
                continue
            self.attempts += 1
            # The attempt number changes every time: a repeat is the same error.
            repeat.warning("esl connect failed", key=err, again="esl connect failed again",
                           error=err, attempt=self.attempts)
            self.state = SupervisorState.LOGIN_FAILED if login_failed else SupervisorState.BACKOFF
            await asyncio.sleep(self.next_delay(login_failed))
