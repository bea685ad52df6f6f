"""Keeps one AMI session alive: reconnect with jittered backoff, explicit state.

State machine::

    DISCONNECTED -> CONNECTING -> LOGGING_IN -> CONNECTED
          ^             |             |            |
          +---- backoff +-------------+------------+   (any failure / drop)
    stop() from anywhere -> STOPPED

* A refused login is reported as :class:`LoginFailed` and waits much longer
  (``LOGIN_BACKOFF_*``): hammering Asterisk with a wrong secret only fills its
  security log and may trip fail2ban.
* ``on_connected(session)`` is awaited BEFORE events are delivered, so the
  driver can take a snapshot (CoreShowChannels, QueueStatus) and resync; events
  that arrive meanwhile wait in the session's bounded queue.
* ``on_ready(session)`` is awaited once the state is CONNECTED (actions are
  accepted) and just before the first event is delivered: the moment a
  driver may tell the core that the PBX is up.
* Actions are never re-sent: while not CONNECTED, :meth:`AmiSupervisor.action`
  raises :class:`ConnectionLost` at once, and actions pending on a dropped
  session fail with ConnectionLost too.
* The same failure repeated (Asterisk down for an hour) is logged once at
  warning, then at debug with a repeat count.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from typing import Any, Awaitable, Callable, Sequence

import structlog

from callcenterd.protocols.ami.codec import Headers, Message
from callcenterd.protocols.ami.session import AmiSession
from callcenterd.protocols.errors import ConnectionLost, LoginFailed, ProtocolError, Timeout
from callcenterd.protocols.reconnect import Backoff, RepeatLog, call_back, login_backoff

log = structlog.get_logger(__name__)

__all__ = ["AmiSupervisor", "State"]

BACKOFF_INITIAL = 0.5  # first retry after 0.25-0.5 s
BACKOFF_MAX = 30.0
BACKOFF_FACTOR = 2.0
LOGIN_BACKOFF_INITIAL = 10.0  # wrong secret / ACL: retry slowly
LOGIN_BACKOFF_MAX = 300.0
STOP_TIMEOUT = 2.0


class State(str, enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGGING_IN = "logging-in"
    CONNECTED = "connected"
    STOPPED = "stopped"


RepeatFilter = RepeatLog  # the name this module used before protocols.reconnect
OnConnected = Callable[[AmiSession], Awaitable[None]]
OnDisconnected = Callable[[BaseException | None], Any]
OnEvent = Callable[[Message], Any]


class AmiSupervisor:
    """Owns the AMI connection to one Asterisk node."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        md5: bool = False,
        events: str | Sequence[str] = "on",
        on_connected: OnConnected | None = None,
        on_ready: OnConnected | None = None,
        on_disconnected: OnDisconnected | None = None,
        on_event: OnEvent | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        login_backoff_initial: float = LOGIN_BACKOFF_INITIAL,
        login_backoff_max: float = LOGIN_BACKOFF_MAX,
        rng: random.Random | None = None,
        **session_kwargs: Any,
    ) -> None:
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._md5 = md5
        self._events = events
        self._on_connected = on_connected
        self._on_ready = on_ready
        self._on_disconnected = on_disconnected
        self._on_event = on_event
        self._session_kwargs = session_kwargs
        rng = rng or random.Random()
        self._backoff = Backoff(backoff_initial, backoff_max, BACKOFF_FACTOR, rng=rng)
        self._login_backoff = login_backoff(login_backoff_initial, login_backoff_max, rng=rng)
        self._state = State.DISCONNECTED
        self._session: AmiSession | None = None
        self._task: asyncio.Task | None = None
        self._state_changed: asyncio.Condition | None = None
        self.last_error: BaseException | None = None
        self.connects = 0
        self._log = log.bind(peer=f"{host}:{port}")
        self._repeat = RepeatLog(self._log)

    # ------------------------------------------------------------ lifecycle
    @property
    def state(self) -> State:
        return self._state

    @property
    def session(self) -> AmiSession | None:
        """The live session when CONNECTED, else None."""
        return self._session if self._state is State.CONNECTED else None

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("AmiSupervisor already started")
        self._state_changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ami-supervisor {self.host}")

    async def stop(self) -> None:
        """Close the session (polite Logoff) and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, STOP_TIMEOUT)
        await self._set_state(State.STOPPED)

    async def wait_state(self, state: State, timeout: float | None = None) -> None:
        """Wait until the supervisor reaches ``state`` (handy for tests and startup)."""
        if self._state_changed is None:
            raise RuntimeError("start() the supervisor first")
        async with asyncio.timeout(timeout):
            async with self._state_changed:
                await self._state_changed.wait_for(lambda: self._state is state)

    async def _set_state(self, state: State) -> None:
        if state is self._state:
            return
        self._log.debug("ami state", old=self._state.value, new=state.value)
        self._state = state
        if self._state_changed is not None:
            async with self._state_changed:
                self._state_changed.notify_all()

    # -------------------------------------------------------------- actions
    def _live(self, name: str) -> AmiSession:
        session = self.session
        if session is None or session.closed:
            raise ConnectionLost(f"{name}: AMI {self.host}:{self.port} is {self._state.value}")
        return session

    async def action(
        self,
        name: str,
        headers: Headers = (),
        *,
        timeout: float | None = None,
        raw: bool = False,
        action_id: str | None = None,
    ) -> Message:
        return await self._live(name).action(name, headers, timeout=timeout, raw=raw, action_id=action_id)

    async def action_list(
        self, name: str, headers: Headers = (), *, timeout: float | None = None
    ) -> tuple[Message, list[Message]]:
        return await self._live(name).action_list(name, headers, timeout=timeout)

    async def command(self, cli: str, *, timeout: float | None = None) -> list[str]:
        return await self._live("Command").command(cli, timeout=timeout)

    # ----------------------------------------------------------- the loop
    async def _run(self) -> None:
        try:
            while True:
                delay = await self._connect_once()
                if delay is None:
                    continue
                self._log.debug("ami reconnect scheduled", delay=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            session, self._session = self._session, None
            if session is not None:
                await asyncio.shield(self._close_quietly(session))

    async def _connect_once(self) -> float | None:
        """One connection's life.  Returns the delay before the next attempt."""
        await self._set_state(State.CONNECTING)
        session: AmiSession | None = None
        try:
            session = self._session = await AmiSession.open(self.host, self.port, **self._session_kwargs)
            await self._set_state(State.LOGGING_IN)
            await session.login(self._username, self._secret, md5=self._md5, events=self._events)
        except LoginFailed as exc:
            await self._failed(session, exc)
            return self._login_backoff.next()
        except (ConnectionLost, Timeout, ProtocolError, OSError) as exc:
            await self._failed(session, exc)
            return self._backoff.next()

        if self._on_connected is not None:
            try:
                await self._on_connected(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the driver's resync failed: start over
                self._log.exception("ami on_connected failed, reconnecting")
                await self._failed(session, exc)
                return self._backoff.next()
        await self._set_state(State.CONNECTED)
        self.connects += 1
        self._repeat.flush()
        self._backoff.reset()
        self._login_backoff.reset()
        self._log.info("ami connected", connects=self.connects)
        if self._on_ready is not None:
            # actions are accepted from here on; events start right after
            try:
                await call_back(self._on_ready, session)
            except Exception:
                self._log.exception("ami on_ready failed")
        pump = None
        if self._on_event is not None:  # else the driver reads session.events() itself
            pump = asyncio.get_running_loop().create_task(self._pump(session), name="ami-events")
        try:
            reason = await session.wait_closed()
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
        self._session = None  # on cancellation _run() still sees it and closes it
        self.last_error = reason
        await self._set_state(State.DISCONNECTED)
        self._repeat.warning("ami connection lost", reason=str(reason), error=type(reason).__name__)
        await self._notify_disconnected(reason)
        return self._backoff.next()

    async def _failed(self, session: AmiSession | None, exc: BaseException) -> None:
        self.last_error = exc
        self._session = None
        if session is not None:
            await self._close_quietly(session)
        await self._set_state(State.DISCONNECTED)
        event = "ami login refused" if isinstance(exc, LoginFailed) else "ami connect failed"
        self._repeat.warning(event, reason=str(exc), error=type(exc).__name__)

    async def _pump(self, session: AmiSession) -> None:
        async for event in session.events():
            try:
                await call_back(self._on_event, event)
            except Exception:
                self._log.exception("ami on_event failed", event=event.name)

    async def _notify_disconnected(self, reason: BaseException | None) -> None:
        try:
            await call_back(self._on_disconnected, reason)
        except Exception:
            self._log.exception("ami on_disconnected failed")

    async def _close_quietly(self, session: AmiSession) -> None:
        was_connected = not session.closed and self._state is State.CONNECTED
        with contextlib.suppress(Exception):
            await session.close()
        if was_connected:
            await self._notify_disconnected(None)
