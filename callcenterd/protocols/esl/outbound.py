"""Outbound ESL: FreeSWITCH's ``socket`` dialplan app connects to us, one
TCP connection per call.

Per connection (mod_event_socket.c, outbound mode):

1. we send ``connect``; the reply is ONE header block: the call's channel data
   (a serialized CHANNEL_DATA event, URL-encoded, ``Reply-Text: %2BOK%0A``)
   followed by ``Socket-Mode: async|static`` and ``Control: full|single-channel``;
2. ``myevents <format>`` subscribes to this channel's events; ``linger`` asks
   FreeSWITCH to keep the socket after hangup so that CHANNEL_HANGUP_COMPLETE
   still reaches us (rejected with ``-ERR`` when the socket is not ``full``);
3. apps run with ``sendmsg`` / ``call-command: execute``.  We always add our
   own ``event-uuid``: FreeSWITCH copies it into ``Application-UUID`` of
   CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE, which is how :meth:`execute`
   knows that *its* app finished.
4. after hangup a lingering socket gets ``text/disconnect-notice`` with
   ``Content-Disposition: linger`` and is NOT closed by FreeSWITCH
   (``Linger-Time: -1``): we close it ourselves once CHANNEL_HANGUP_COMPLETE
   arrived (or after LINGER_DRAIN).  Without linger the notice says
   ``disconnect`` and FreeSWITCH closes the socket at once.

A handler that raises is logged and its connection closed; other calls are
not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid as uuidlib
from typing import Awaitable, Callable, Mapping

import structlog

from callcenterd.pbx.api import CommandFailed, UnsafeValue, check_safe
from callcenterd.protocols.errors import ConnectionLost, Timeout
from callcenterd.protocols.esl.codec import EslEvent, EslMessage, encode_sendmsg, esl_quote_arg
from callcenterd.protocols.esl.session import COMMAND_TIMEOUT, EVENT_QUEUE_SIZE, EslConnection, _EVENT_FORMATS

log = structlog.get_logger(__name__)

__all__ = [
    "CONNECT_REPLY_TIMEOUT",
    "APP_TIMEOUT",
    "LINGER_DRAIN",
    "EslOutboundCall",
    "EslOutboundServer",
    "multiset_arg",
]

CONNECT_REPLY_TIMEOUT = 5.0  # "connect" -> channel data
APP_TIMEOUT = 3600.0  # an app (playback, bridge...) may run long, but not forever
LINGER_DRAIN = 5.0  # after a linger notice, wait this long at most for HANGUP_COMPLETE
HANDLER_CLOSE_TIMEOUT = 5.0  # close(): how long running handlers get to finish

_APP_NAME = re.compile(r"[A-Za-z0-9_\-]+\Z")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_CAUSE = re.compile(r"[A-Z_]+\Z|\d{1,3}\Z")

Handler = Callable[["EslOutboundCall"], Awaitable[None]]


#: Delimiters tried for ``multiset``, in order.
_MULTISET_DELIMS = "|~;!"


def multiset_arg(values: Mapping[str, str]) -> str | None:
    """``^^<d>name=value<d>...`` for the ``multiset`` app, or None.

    mod_dptools.c multiset_function takes the character after ``^^`` as the
    delimiter and splits with switch_separate_string, which also strips
    quotes and backslashes and trims blanks (switch_utils.c
    cleanup_separated_string); each piece then goes through ``set``.  So a
    value must not hold the delimiter, a quote, a backslash or edge blanks;
    when none of the delimiters fits, the caller sets the variables one by one.
    """
    text = "".join(f"{k}={v}" for k, v in values.items())
    if any(c in text for c in "'\"") or any(v != v.strip() for v in values.values()):
        return None
    for d in _MULTISET_DELIMS:
        if d not in text:
            return f"^^{d}" + d.join(f"{k}={v}" for k, v in values.items())
    return None


class EslOutboundCall(EslConnection):
    """One call handed to us by the ``socket`` app."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        app_timeout: float = APP_TIMEOUT,
        event_queue_size: int = EVENT_QUEUE_SIZE,
        peer: str = "",
    ) -> None:
        super().__init__(reader, writer, command_timeout=command_timeout, event_queue_size=event_queue_size, peer=peer)
        self.app_timeout = app_timeout
        self.uuid = ""
        self.channel_data: dict[str, str] = {}
        self.socket_mode = ""  # async | static
        self.control = ""  # full | single-channel
        self.lingering = False
        self.hangup_event: EslEvent | None = None
        self.hangup_complete = asyncio.Event()
        self._apps: dict[str, asyncio.Future[EslEvent]] = {}
        self._linger_task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- setup
    async def _setup(self, event_format: str, linger: bool) -> None:
        self._start_reader()
        reply = await self.send("connect", timeout=CONNECT_REPLY_TIMEOUT)
        data = reply.decoded_headers()
        self.uuid = data.get("Unique-ID") or data.get("Channel-Unique-ID", "")
        if not self.uuid:
            raise CommandFailed("connect reply carries no Unique-ID")
        self.socket_mode = data.pop("Socket-Mode", "")
        self.control = data.pop("Control", "")
        for k in ("Content-Type", "Reply-Text"):
            data.pop(k, None)
        self.channel_data = data
        self._log = self._log.bind(uuid=self.uuid)
        await self.command(f"myevents {event_format}")
        if linger:
            try:
                await self.command("linger")
                self.lingering = True
            except CommandFailed:
                # not a "full" socket: FreeSWITCH answers -ERR command not found
                self._log.debug("esl linger refused", control=self.control)

    def variable(self, name: str, default: str | None = None) -> str | None:
        """A channel variable as of the ``connect`` reply."""
        return self.channel_data.get("variable_" + name, default)

    # ---------------------------------------------------------------- events
    def _on_event(self, msg: EslMessage) -> None:
        ev = msg.event
        assert ev is not None
        name = ev.name
        if name == "CHANNEL_EXECUTE_COMPLETE":
            fut = self._apps.pop(ev.get("Application-UUID", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        elif name == "CHANNEL_HANGUP" and ev.uuid == self.uuid:
            self.hangup_event = ev
        elif name == "CHANNEL_HANGUP_COMPLETE" and ev.uuid == self.uuid:
            self.hangup_complete.set()
        super()._on_event(msg)

    def _on_disconnect_notice(self, msg: EslMessage) -> None:
        super()._on_disconnect_notice(msg)
        if msg.headers.get("Content-Disposition") == "linger" and self._linger_task is None:
            # FreeSWITCH keeps a lingering socket open forever (Linger-Time: -1):
            # closing it is our job, once the last events are in.
            self._linger_task = asyncio.create_task(self._close_after_linger(), name="esl-linger-close")

    async def _close_after_linger(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_DRAIN):
                await self.hangup_complete.wait()
        self._shutdown(None)

    def _shutdown(self, reason: BaseException | None) -> None:
        if not self.closed:
            lost = ConnectionLost("ESL outbound socket closed before the app completed")
            for fut in self._apps.values():
                if not fut.done():
                    fut.set_exception(lost)
            self._apps.clear()
        super()._shutdown(reason)

    async def close(self) -> None:
        if self._linger_task is not None and self._linger_task is not asyncio.current_task():
            self._linger_task.cancel()
        await super().close()

    # -------------------------------------------------------------- commands
    async def execute(
        self,
        app: str,
        arg: str = "",
        *,
        event_lock: bool = False,
        timeout: float | None = None,
    ) -> EslEvent:
        """Run a dialplan app on this channel; return its CHANNEL_EXECUTE_COMPLETE.

        ``arg`` goes raw in ``execute-app-arg`` (no URL encoding, see
        switch_ivr.c switch_ivr_parse_event) and is variable-expanded by
        FreeSWITCH like any app data, so callers must not pass untrusted
        ``${...}``.
        """
        if not _APP_NAME.match(app):
            raise UnsafeValue(f"bad application name {app[:40]!r}")
        check_safe(arg, f"{app} argument")
        app_uuid = str(uuidlib.uuid4())
        done: asyncio.Future[EslEvent] = asyncio.get_running_loop().create_future()
        self._apps[app_uuid] = done  # registered before the command goes out
        headers = [("execute-app-name", app)]
        if arg:
            headers.append(("execute-app-arg", arg))
        if event_lock:
            headers.append(("event-lock", "true"))
        headers.append(("event-uuid", app_uuid))
        try:
            reply = await self._sendmsg("execute", headers)
            if not reply.ok:
                raise CommandFailed(f"execute {app}: {reply.reply_text}")
            deadline = self.app_timeout if timeout is None else timeout
            try:
                async with asyncio.timeout(deadline):
                    return await done
            except TimeoutError:
                raise Timeout(f"{app} did not complete within {deadline:.0f}s") from None
        finally:
            self._apps.pop(app_uuid, None)
            if not done.done():
                done.cancel()

    async def _sendmsg(self, call_command: str, headers: list[tuple[str, str]]) -> EslMessage:
        data = encode_sendmsg(self.uuid, call_command, headers)
        fut = self._send_nowait(data, f"sendmsg {call_command}")
        try:
            async with asyncio.timeout(self.command_timeout):
                await self._writer.drain()
                return await fut
        except TimeoutError:
            raise Timeout(f"no reply to sendmsg {call_command} within {self.command_timeout:.1f}s") from None
        finally:
            if not fut.done():
                fut.cancel()

    async def answer(self) -> EslEvent:
        return await self.execute("answer")

    async def playback(self, file: str, *, timeout: float | None = None) -> str:
        """Play one file/stream; returns Application-Response (``FILE PLAYED``...)."""
        ev = await self.execute("playback", file, timeout=timeout)
        return ev.get("Application-Response", "") or ""

    async def play_and_get_digits(
        self,
        file: str,
        *,
        min_digits: int = 1,
        max_digits: int = 1,
        tries: int = 3,
        timeout_ms: int = 5000,
        terminators: str = "#",
        invalid_file: str = "silence_stream://250",
        var_name: str = "callcenterd_digits",
        regexp: str = r"\d+",
        digit_timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """mod_dptools ``play_and_get_digits``; returns the digits ("" if none).

        The app stores the digits in ``var_name``, which comes back as
        ``variable_<var_name>`` on CHANNEL_EXECUTE_COMPLETE.  Its arguments are
        split on blanks (switch_separate_string), so file names are quoted.
        """
        if not _VAR_NAME.match(var_name):
            raise UnsafeValue(f"bad variable name {var_name[:40]!r}")
        if not (0 <= min_digits <= max_digits) or tries < 1 or timeout_ms < 0:
            raise ValueError("bad play_and_get_digits limits")
        if terminators and not re.fullmatch(r"[0-9*#]+", terminators):
            raise UnsafeValue("terminators must be DTMF digits")
        args = [
            str(min_digits),
            str(max_digits),
            str(tries),
            str(timeout_ms),
            terminators or "none",
            esl_quote_arg(file),
            esl_quote_arg(invalid_file),
            var_name,
            esl_quote_arg(regexp),
        ]
        if digit_timeout_ms is not None:
            args.append(str(digit_timeout_ms))
        ev = await self.execute("play_and_get_digits", " ".join(args), timeout=timeout)
        return ev.variable(var_name) or ""

    async def set_var(self, name: str, value: str) -> EslEvent:
        """``set name=value`` on this channel (app data is expanded, so ``${`` is refused)."""
        if not _VAR_NAME.match(name):
            raise UnsafeValue(f"bad variable name {name[:40]!r}")
        check_safe(value, f"variable {name}")
        if "${" in value:
            raise UnsafeValue(f"variable {name}: '${{' would be expanded by FreeSWITCH")
        return await self.execute("set", f"{name}={value}")

    async def set_vars(self, values: Mapping[str, str]) -> EslEvent | None:
        """Set all of ``values`` with one ``multiset`` application: one
        round trip on the channel (about 20 ms each in the captures) instead
        of one ``set`` per variable.  Falls back to one ``set`` each when no
        delimiter fits the values (see :func:`multiset_arg`)."""
        for name, value in values.items():
            if not _VAR_NAME.match(name):
                raise UnsafeValue(f"bad variable name {name[:40]!r}")
            check_safe(value, f"variable {name}")
            if "${" in value:
                raise UnsafeValue(f"variable {name}: '${{' would be expanded by FreeSWITCH")
        if not values:
            return None
        arg = multiset_arg(values)
        if arg is None:
            last = None
            for name, value in values.items():
                last = await self.set_var(name, value)
            return last
        return await self.execute("multiset", arg)

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> str:
        """``sendmsg`` / ``call-command: hangup`` with a cause name (or Q.850 number)."""
        if not _CAUSE.match(cause):
            raise UnsafeValue(f"bad hangup cause {cause[:40]!r}")
        reply = await self._sendmsg("hangup", [("hangup-cause", cause)])
        if not reply.ok:
            raise CommandFailed(f"hangup: {reply.reply_text}")
        return reply.reply_text


class EslOutboundServer:
    """Listens for FreeSWITCH ``socket`` connections; runs ``handler(call)`` for each."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        event_format: str = "json",
        linger: bool = True,
        command_timeout: float = COMMAND_TIMEOUT,
        app_timeout: float = APP_TIMEOUT,
    ) -> None:
        if event_format not in _EVENT_FORMATS:
            raise ValueError(f"event_format must be one of {_EVENT_FORMATS}")
        self._handler = handler
        self.host = host
        self._port = port
        self.event_format = event_format
        self.linger = linger
        self.command_timeout = command_timeout
        self.app_timeout = app_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls_handled = 0
        self.handler_errors = 0

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self._port)
        log.info("esl outbound server listening", host=self.host, port=self.port)

    async def close(self) -> None:
        """Stop listening, give running handlers a moment, then cut them off."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=HANDLER_CLOSE_TIMEOUT)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), HANDLER_CLOSE_TIMEOUT)
            self._server = None

    async def __aenter__(self) -> "EslOutboundServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        call = EslOutboundCall(
            reader,
            writer,
            command_timeout=self.command_timeout,
            app_timeout=self.app_timeout,
            peer=f"{peer[0]}:{peer[1]}" if peer else "",
        )
        try:
            try:
                await call._setup(self.event_format, self.linger)
            except (ConnectionLost, Timeout, CommandFailed) as exc:
                log.warning("esl outbound setup failed", error=f"{type(exc).__name__}: {exc}")
                return
            self.calls_handled += 1
            try:
                await self._handler(call)
            except ConnectionLost:
                log.debug("esl outbound handler ended by lost connection", uuid=call.uuid)
            except Exception:
                self.handler_errors += 1
                log.exception("esl outbound handler failed", uuid=call.uuid)
        finally:
            await call.close()
            self._tasks.discard(task)
