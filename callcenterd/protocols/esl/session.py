"""One ESL connection: auth, FIFO reply matching, bgapi jobs, keepalive, events.

What this layer guarantees:

* mod_event_socket answers the commands of one socket strictly in order, each
  with one ``command/reply`` or ``api/response``.  Replies are matched FIFO.
  A command that times out or is cancelled leaves its slot in the queue, so
  the late reply is swallowed there instead of being handed to the next
  command;
* every command has a deadline (:class:`Timeout`); a command is NEVER re-sent:
  when the connection drops, pending commands and bgapi jobs fail with
  :class:`ConnectionLost`;
* ``bgapi`` sends our own ``Job-UUID`` header and registers the job before the
  command goes out, so a BACKGROUND_JOB that overtakes its command/reply is
  still matched; BACKGROUND_JOB is subscribed automatically;
* ``api status`` is sent every ``keepalive_interval`` and must be answered
  within ``keepalive_deadline``, else the connection is dropped.  Replies are
  FIFO, so a long *synchronous* ``api`` in flight delays the keepalive: use
  ``bgapi`` for slow work (originate);
* events go to a bounded queue; when it is full the OLDEST is dropped
  (counted in ``events_dropped``), the reader never blocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid as uuidlib
from typing import AsyncIterator, Iterable, Mapping

import structlog

from callcenterd.pbx.api import CommandFailed, UnsafeValue, check_safe
from callcenterd.protocols.errors import ConnectionLost, LoginFailed, ProtocolError, Timeout
from callcenterd.protocols.esl.codec import (
    CT_API_RESPONSE,
    CT_AUTH_REQUEST,
    CT_COMMAND_REPLY,
    CT_DISCONNECT_NOTICE,
    CT_LOG_DATA,
    CT_RUDE_REJECTION,
    EslDecoder,
    EslEvent,
    EslMessage,
    encode_command,
)

log = structlog.get_logger(__name__)

__all__ = [
    "CONNECT_TIMEOUT",
    "AUTH_TIMEOUT",
    "COMMAND_TIMEOUT",
    "JOB_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "KEEPALIVE_DEADLINE",
    "KEEPALIVE_COMMAND",
    "EVENT_QUEUE_SIZE",
    "RudeRejection",
    "EslConnection",
    "EslSession",
]

CONNECT_TIMEOUT = 5.0  # TCP connect
AUTH_TIMEOUT = 5.0  # auth/request banner, then the reply to "auth"
COMMAND_TIMEOUT = 10.0  # default deadline of every command's reply
JOB_TIMEOUT = 120.0  # bgapi result (an originate rings up to its own timeout)
KEEPALIVE_INTERVAL = 15.0  # an "api status" every 15 s ...
KEEPALIVE_DEADLINE = 5.0  # ... answered within 5 s, or the socket is declared dead
KEEPALIVE_COMMAND = "status"  # mod_commands "status": cheap, always loaded
EVENT_QUEUE_SIZE = 10_000
READ_CHUNK = 256 * 1024
DROP_WARN_INTERVAL = 5.0  # at most one "events dropped" warning per 5 s
CLOSE_TIMEOUT = 1.0  # a polite "exit" on close never waits longer

_EVENT_FORMATS = ("json", "plain", "xml")
_CLOSED = object()  # queue sentinel


class RudeRejection(LoginFailed):
    """FreeSWITCH refused the connection by ACL (``text/rude-rejection``)."""


class _Slot:
    """One command waiting for its reply, in wire order."""

    __slots__ = ("future", "command")

    def __init__(self, future: asyncio.Future[EslMessage], command: str) -> None:
        self.future = future
        self.command = command


def _verb(command: str) -> str:
    """The part of a command that is safe to log (never ``auth <password>``)."""
    head = command.split(" ", 2)
    if head[0] in ("api", "bgapi") and len(head) > 1:
        return f"{head[0]} {head[1]}"
    return head[0]


class EslConnection:
    """Reply matching, jobs and events over one ESL stream (inbound or outbound)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        event_queue_size: int = EVENT_QUEUE_SIZE,
        peer: str = "",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = EslDecoder()
        self.command_timeout = command_timeout
        self._slots: collections.deque[_Slot] = collections.deque()
        self._jobs: dict[str, asyncio.Future[EslEvent]] = {}
        self._events: asyncio.Queue[object] = asyncio.Queue(maxsize=event_queue_size)
        self.events_dropped = 0
        self._last_drop_warn = 0.0
        self._closed = asyncio.get_running_loop().create_future()
        self.close_reason: BaseException | None = None
        self.disconnect_notice: EslMessage | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._log = log.bind(peer=peer)

    # ------------------------------------------------------------ lifecycle
    def _start_reader(self) -> None:
        self._read_task = asyncio.create_task(self._read_loop(), name="esl-reader")

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is gone; return why (None = clean close)."""
        return await asyncio.shield(self._closed)

    async def close(self) -> None:
        """Drop the connection now.  Pending commands get ConnectionLost."""
        self._shutdown(None)
        if self._read_task is not None and self._read_task is not asyncio.current_task():
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)

    def _shutdown(self, reason: BaseException | None) -> None:
        if self._closed.done():
            return
        self.close_reason = reason
        self._closed.set_result(reason)
        lost = ConnectionLost(f"ESL connection closed: {reason}" if reason else "ESL connection closed")
        while self._slots:
            slot = self._slots.popleft()
            if not slot.future.done():
                slot.future.set_exception(lost)
        for fut in self._jobs.values():
            if not fut.done():
                fut.set_exception(lost)
        self._jobs.clear()
        with contextlib.suppress(Exception):
            self._writer.close()
        self._put_event(_CLOSED)
        if reason is not None and not isinstance(reason, (ConnectionLost, asyncio.CancelledError)):
            self._log.warning("esl connection closed", reason=str(reason), error=type(reason).__name__)
        else:
            self._log.debug("esl connection closed", reason=str(reason) if reason else "")

    # --------------------------------------------------------------- reading
    async def _read_loop(self) -> None:
        reason: BaseException | None = ConnectionLost("peer closed the socket")
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    if self.disconnect_notice is not None:
                        reason = None  # the goodbye we were told about
                    break
                for msg in self._decoder.feed(data):
                    self._dispatch(msg)
        except asyncio.CancelledError:
            reason = None
            raise
        except (ProtocolError, LoginFailed) as exc:
            reason = exc
        except (OSError, ConnectionError) as exc:
            reason = ConnectionLost(f"socket error: {exc}")
        finally:
            self._shutdown(reason)

    def _dispatch(self, msg: EslMessage) -> None:
        ct = msg.content_type
        if ct == CT_COMMAND_REPLY or ct == CT_API_RESPONSE:
            self._on_reply(msg)
        elif msg.is_event:
            self._on_event(msg)
        elif ct == CT_DISCONNECT_NOTICE:
            self._on_disconnect_notice(msg)
        elif ct == CT_RUDE_REJECTION:
            raise RudeRejection(f"FreeSWITCH rejected the connection: {msg.text.strip()[:80]}")
        elif ct == CT_LOG_DATA:
            self._log.debug("esl log line ignored", size=len(msg.body))
        elif ct == CT_AUTH_REQUEST:
            self._on_auth_request(msg)
        else:
            self._log.warning("esl frame of unknown type ignored", content_type=ct[:60])

    def _on_reply(self, msg: EslMessage) -> None:
        if not self._slots:
            raise ProtocolError(f"{msg.content_type} with no command waiting")
        slot = self._slots.popleft()
        if slot.future.done():  # timed out or cancelled: its placeholder eats the late reply
            self._log.debug("esl late reply dropped", command=_verb(slot.command))
        else:
            slot.future.set_result(msg)

    def _on_event(self, msg: EslMessage) -> None:
        ev = msg.event
        assert ev is not None
        if ev.name == "BACKGROUND_JOB":
            fut = self._jobs.pop(ev.job_uuid, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(ev)
                return
        self._put_event(ev)

    def _on_disconnect_notice(self, msg: EslMessage) -> None:
        # mod_event_socket sends it before closing (exit, bad auth, shutdown,
        # outbound hangup).  With "linger" FreeSWITCH keeps the socket open
        # (Content-Disposition: linger) and still sends the hangup events.
        self.disconnect_notice = msg
        self._log.info(
            "esl disconnect notice",
            disposition=msg.headers.get("Content-Disposition", ""),
            text=msg.text.strip()[:80],
        )

    def _on_auth_request(self, msg: EslMessage) -> None:
        raise ProtocolError("unexpected auth/request")

    def _put_event(self, item: object) -> None:
        q = self._events
        while q.full():
            q.get_nowait()  # drop the oldest: the reader must never block
            self.events_dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warn > DROP_WARN_INTERVAL:
                self._last_drop_warn = now
                self._log.warning("esl event queue full, oldest dropped", dropped_total=self.events_dropped)
        q.put_nowait(item)

    async def events(self) -> AsyncIterator[EslEvent]:
        """Events in wire order, until the connection closes."""
        while True:
            item = await self._events.get()
            if item is _CLOSED:
                self._events.put_nowait(_CLOSED)  # let other iterators end too
                return
            yield item  # type: ignore[misc]

    # --------------------------------------------------------------- writing
    def _send_nowait(self, data: bytes, command: str) -> asyncio.Future[EslMessage]:
        """Queue the reply slot and write, with no await in between: the
        slot order is the wire order."""
        if self._closed.done():
            raise ConnectionLost("ESL connection is closed")
        fut: asyncio.Future[EslMessage] = asyncio.get_running_loop().create_future()
        self._slots.append(_Slot(fut, command))
        self._writer.write(data)
        return fut

    async def send(
        self,
        command: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: str | bytes = b"",
        *,
        timeout: float | None = None,
    ) -> EslMessage:
        """Send one command and wait for its command/reply or api/response."""
        data = encode_command(command, headers, body)
        fut = self._send_nowait(data, command)
        deadline = self.command_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(deadline):
                await self._writer.drain()
                return await fut
        except TimeoutError:
            fut.cancel()  # the slot stays queued as a placeholder
            raise Timeout(f"no reply to {_verb(command)!r} within {deadline:.1f}s") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"write failed: {exc}") from None
        finally:
            if not fut.done():
                fut.cancel()  # caller cancelled us: keep the placeholder

    async def command(self, command: str, *, timeout: float | None = None) -> str:
        """A command answered by command/reply; returns Reply-Text, raises
        :class:`CommandFailed` on ``-ERR``."""
        reply = await self.send(command, timeout=timeout)
        if not reply.ok:
            raise CommandFailed(f"{_verb(command)}: {reply.reply_text}")
        return reply.reply_text

    async def api(self, cmd: str, *, timeout: float | None = None) -> str:
        """``api <cmd>``: the body, verbatim (trailing newline or not, as the
        command wrote it).  A ``-ERR`` body is returned, not raised: some
        commands answer ``-ERR no reply`` for an unset value."""
        check_safe(cmd, "api command")
        reply = await self.send(f"api {cmd}", timeout=timeout)
        if reply.content_type != CT_API_RESPONSE:  # e.g. "-ERR command not found" before auth
            raise CommandFailed(f"api {cmd.split(' ', 1)[0]}: {reply.reply_text}")
        return reply.text

    async def bgapi(
        self,
        cmd: str,
        *,
        timeout: float | None = None,
        job_timeout: float = JOB_TIMEOUT,
    ) -> str:
        """``bgapi <cmd>`` with our own Job-UUID; returns the BACKGROUND_JOB body."""
        job = await self.bgapi_start(cmd, timeout=timeout)
        try:
            async with asyncio.timeout(job_timeout):
                ev = await job
        except TimeoutError:
            raise Timeout(f"no BACKGROUND_JOB for bgapi {cmd.split(' ', 1)[0]!r} within {job_timeout:.0f}s") from None
        finally:
            if not job.done():
                job.cancel()
        return ev.body

    async def bgapi_start(self, cmd: str, *, timeout: float | None = None) -> asyncio.Future[EslEvent]:
        """Send ``bgapi`` and return the future of its BACKGROUND_JOB event.

        The job is registered before the command is written, so a job event
        that overtakes the command/reply is not lost.
        """
        check_safe(cmd, "bgapi command")
        job_uuid = str(uuidlib.uuid4())
        job: asyncio.Future[EslEvent] = asyncio.get_running_loop().create_future()
        self._jobs[job_uuid] = job
        job.add_done_callback(lambda _f, j=job_uuid: self._jobs.pop(j, None))
        try:
            reply = await self.send(f"bgapi {cmd}", [("Job-UUID", job_uuid)], timeout=timeout)
        except BaseException:
            if not job.done():
                job.cancel()
            raise
        if not reply.ok:
            job.cancel()
            raise CommandFailed(f"bgapi {cmd.split(' ', 1)[0]}: {reply.reply_text}")
        return job


class EslSession(EslConnection):
    """Inbound ESL client (we connect to FreeSWITCH's port 8021)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        keepalive_deadline: float = KEEPALIVE_DEADLINE,
        event_format: str = "json",
        event_queue_size: int = EVENT_QUEUE_SIZE,
        peer: str = "",
    ) -> None:
        if event_format not in _EVENT_FORMATS:
            raise ValueError(f"event_format must be one of {_EVENT_FORMATS}")
        super().__init__(reader, writer, command_timeout=command_timeout, event_queue_size=event_queue_size, peer=peer)
        self.event_format = event_format
        self.keepalive_interval = keepalive_interval
        self.keepalive_deadline = keepalive_deadline
        self._auth_request: asyncio.Future[EslMessage] = asyncio.get_running_loop().create_future()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._filtered = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        password: str,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        keepalive_deadline: float = KEEPALIVE_DEADLINE,
        event_format: str = "json",
        event_queue_size: int = EVENT_QUEUE_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
    ) -> "EslSession":
        """Connect, authenticate, subscribe to BACKGROUND_JOB, start keepalive.

        Raises :class:`LoginFailed` (wrong password), :class:`RudeRejection`
        (ACL), :class:`Timeout`, :class:`ConnectionLost`.
        """
        check_safe(password, "ESL password")
        if " " in password:
            raise UnsafeValue("ESL password contains a space")
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise Timeout(f"ESL connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise ConnectionLost(f"ESL connect to {host}:{port} failed: {exc}") from None
        session = cls(
            reader,
            writer,
            command_timeout=command_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_deadline=keepalive_deadline,
            event_format=event_format,
            event_queue_size=event_queue_size,
            peer=f"{host}:{port}",
        )
        try:
            await session._login(password, auth_timeout)
            await session.subscribe(["BACKGROUND_JOB"])
        except BaseException:
            await session.close()
            raise
        if keepalive_interval > 0:
            session._keepalive_task = asyncio.create_task(session._keepalive(), name="esl-keepalive")
        return session

    async def _login(self, password: str, auth_timeout: float) -> None:
        self._start_reader()
        try:
            async with asyncio.timeout(auth_timeout):
                await asyncio.wait({self._auth_request, self._closed}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise Timeout("no auth/request from FreeSWITCH") from None
        if not self._auth_request.done():
            reason = self.close_reason
            if isinstance(reason, LoginFailed):
                raise reason
            raise ConnectionLost(f"closed before auth/request: {reason or 'peer closed'}")
        reply = await self.send(f"auth {password}", timeout=auth_timeout)
        if not reply.ok:
            # "-ERR invalid", then a disconnect notice and the socket closes.
            raise LoginFailed(f"FreeSWITCH refused the ESL password ({reply.reply_text})")
        self._log.info("esl authenticated")

    def _on_auth_request(self, msg: EslMessage) -> None:
        if self._auth_request.done():
            raise ProtocolError("second auth/request")
        self._auth_request.set_result(msg)

    async def close(self) -> None:
        if self._keepalive_task is not None and self._keepalive_task is not asyncio.current_task():
            self._keepalive_task.cancel()
        if not self.closed:
            with contextlib.suppress(Exception):
                # polite goodbye, never waited for long; not a re-send of anything
                await self.send("exit", timeout=CLOSE_TIMEOUT)
        await super().close()

    async def _keepalive(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.keepalive_interval)
            if self.closed:
                return
            try:
                await self.send(f"api {KEEPALIVE_COMMAND}", timeout=self.keepalive_deadline)
            except Timeout:
                self._shutdown(ConnectionLost(f"keepalive unanswered within {self.keepalive_deadline:.1f}s"))
                return
            except ConnectionLost:
                return

    # ---------------------------------------------------------- subscriptions
    async def subscribe(self, names: Iterable[str] | str = "ALL") -> str:
        """``event <format> <names>``.  Subscriptions add up (mod_event_socket)."""
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            check_safe(n, "event name")
            if " " in n or not n:
                raise UnsafeValue("event name with a blank")
        return await self.command(f"event {self.event_format} {' '.join(names)}")

    async def nixevent(self, names: Iterable[str]) -> str:
        names = list(names)
        for n in names:
            check_safe(n, "event name")
        if "BACKGROUND_JOB" in names:
            raise ValueError("BACKGROUND_JOB is needed by bgapi and stays subscribed")
        return await self.command(f"nixevent {' '.join(names)}")

    async def noevents(self) -> str:
        """Drop every subscription, then take BACKGROUND_JOB back (bgapi needs it)."""
        text = await self.command("noevents")
        await self.subscribe(["BACKGROUND_JOB"])
        return text

    async def filter(self, header: str, value: str) -> str:
        """``filter <header> <value>``.  Once any filter exists only matching
        events pass, so the first call also lets BACKGROUND_JOB through."""
        check_safe(header, "filter header")
        check_safe(value, "filter value")
        if not header or " " in header:
            raise UnsafeValue("filter header name with a blank")
        if not self._filtered:
            await self.command("filter Event-Name BACKGROUND_JOB")
            self._filtered = True
        return await self.command(f"filter {header} {value}")

    async def filter_delete(self, header: str, value: str = "") -> str:
        check_safe(header, "filter header")
        check_safe(value, "filter value")
        return await self.command(f"filter delete {header} {value}".rstrip())
