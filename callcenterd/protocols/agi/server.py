"""FastAGI server: Asterisk connects to us, one TCP connection per call.

``AGI(agi://host:4573/script,arg1,arg2)`` makes Asterisk connect, write the
agi_ environment and then wait for commands.  :class:`FastAgiServer` reads the
environment (bounded in size and time), wraps the connection in an
:class:`AgiSession` and runs the handler with it.  Each connection is its own
task: a bad or dead one never touches the others.

AGI has no request ids: replies match commands only by order.  So a session
runs one command at a time, and a command that times out closes the session
(a late reply would otherwise answer the next command).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable, Mapping

import structlog

from callcenterd.pbx.api import UnsafeValue, check_safe
from callcenterd.protocols.agi.codec import (
    CODE_DEAD,
    CODE_SUCCESS,
    HANGUP_LINE,
    MAX_COMMAND_BYTES,
    AgiReply,
    ReplyDecoder,
    build_command,
    parse_env_line,
    quote,
)
from callcenterd.protocols.errors import ConnectionLost, ProtocolError, Timeout

__all__ = [
    "AgiCommandError",
    "AgiCommandFailed",
    "AgiError",
    "AgiHangup",
    "AgiReply",
    "AgiEnvironment",
    "AgiSession",
    "FastAgiServer",
    "read_environment",
]

log = structlog.get_logger(__name__)

# Asterisk writes the whole environment right after connecting (setup_env());
# a peer that dawdles longer than this is not Asterisk.
ENV_TIMEOUT = 5.0
# The real block is ~600 bytes plus the dialplan arguments.
ENV_MAX_BYTES = 16 * 1024
# Default deadline for one command.  Playback commands last as long as the
# prompt, so long prompts need a per-call ``timeout=``.
COMMAND_TIMEOUT = 60.0
# Longest single line we accept from Asterisk (StreamReader limit).
MAX_LINE_BYTES = 16 * 1024
# Longest 520 usage block (the longest real one is a few KiB).
MAX_USAGE_BYTES = 64 * 1024
# close(): how long handlers get to unwind once their sockets are closed.
CLOSE_GRACE = 2.0
# GET DATA with no timeout_ms: Asterisk waits its own default per digit.
GET_DATA_DEFAULT_DIGIT_WAIT = 10.0
GET_DATA_DEFAULT_MAX_DIGITS = 20

DTMF_DIGITS = frozenset("0123456789*#ABCD")

AgiHandler = Callable[["AgiSession"], Awaitable[None]]


# ------------------------------------------------------------------- errors
class AgiError(Exception):
    """An AGI command did not do what was asked.  ``reply`` is Asterisk's answer."""

    def __init__(self, message: str, reply: AgiReply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class AgiHangup(AgiError):
    """The channel is gone: 511, or a command returned -1 after ``HANGUP``."""


class AgiCommandError(AgiError):
    """Asterisk refused the command line: 510 (unknown) or 520 (usage).

    ``usage`` holds the 520 help text, '' for 510.
    """

    def __init__(self, message: str, reply: AgiReply) -> None:
        super().__init__(message, reply)
        self.code = reply.code
        self.usage = reply.text if reply.code == 520 else ""


class AgiCommandFailed(AgiError):
    """The command ran and returned -1 (or -2 for EXEC of an unknown app).

    For playback, -1 means "error or the channel was disconnected" and
    Asterisk does not say which (fastagi-caller-hangup.txt: the interrupted
    STREAM FILE returns -1 *before* the HANGUP line).  The next command tells.
    """


# -------------------------------------------------------------- environment
class AgiEnvironment(dict):
    """The ``agi_*`` block, first value of each key, and what looked forged.

    res_agi.c setup_env() writes caller data (``agi_calleridname``,
    ``agi_callerid``, ``agi_rdnis``...) with ``%s`` and no escaping, so a
    caller ID name holding LF can append lines of its own, such as
    ``agi_channel: <another call's channel>``.  Whatever the order of the
    keys, a repeated key never overrides the first one, and a line that is
    not ``agi_key: value`` after the block started is a continuation of the
    previous value.  Either marks the environment ``tampered``: its identity
    keys must then be checked against the channel itself.
    """

    def __init__(self) -> None:
        super().__init__()
        #: keys that came more than once, or that a stray line was glued to
        self.forged: list[str] = []

    @property
    def tampered(self) -> bool:
        return bool(self.forged)


async def read_environment(reader: asyncio.StreamReader, max_bytes: int) -> AgiEnvironment:
    """Read the agi_ block up to its empty line (see :class:`AgiEnvironment`).

    Raises ProtocolError (garbage before any agi_ line, too big) or
    ConnectionLost (EOF).
    """
    env = AgiEnvironment()
    size = 0
    last = ""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionLost(f"EOF after {size + len(exc.partial)} bytes of environment") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("environment line longer than the read limit") from None
        size += len(line)
        if size > max_bytes:
            raise ProtocolError(f"environment larger than {max_bytes} bytes")
        try:
            item = parse_env_line(line)
        except ProtocolError:
            if not last:
                raise
            # an LF inside a value (a caller ID name): keep it with that value
            env[last] += "\n" + line.rstrip(b"\n").decode("utf-8", errors="replace")
            env.forged.append(last)
            continue
        if item is None:
            return env
        key, value = item
        if key in env:
            env.forged.append(key)  # the first one is the one Asterisk wrote
            continue
        env[key] = value
        last = key


# ------------------------------------------------------------------ session
class AgiSession:
    """One FastAGI connection: the call's environment plus typed commands.

    Commands run one at a time (a lock serialises concurrent callers).  A
    reader task consumes everything Asterisk sends, so an unsolicited
    ``HANGUP`` sets :attr:`hung_up` even while the handler is idle, and EOF
    ends the session at once instead of being noticed (or spun on) later.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: Mapping[str, str],
        *,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.env: Mapping[str, str] = dict(env)
        #: keys whose lines looked forged by caller data (see AgiEnvironment)
        self.forged: tuple[str, ...] = tuple(getattr(env, "forged", ()))
        self.command_timeout = command_timeout
        self.hung_up = False
        self._reader = reader
        self._writer = writer
        self._decoder = ReplyDecoder(MAX_USAGE_BYTES)
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[AgiReply] | None = None
        self._closed = asyncio.Event()
        self._close_reason = ""
        self._reader_task: asyncio.Task[None] | None = None
        self.log = log.bind(channel=self.channel, uniqueid=self.uniqueid)

    # ---------------------------------------------------------- environment
    @property
    def tampered(self) -> bool:
        """Caller data added or repeated ``agi_`` lines: trust no identity key."""
        return bool(self.forged)

    @property
    def request(self) -> str:
        """``agi://127.0.0.1:4573/ivr`` as written in the dialplan."""
        return self.env.get("agi_request", "")

    @property
    def script(self) -> str:
        """The script part of the URL (``ivr``), which picks the flow."""
        if "agi_network_script" in self.env:
            return self.env["agi_network_script"]
        rest = self.request.partition("://")[2]
        return rest.partition("/")[2]

    @property
    def args(self) -> list[str]:
        """Dialplan arguments ``agi_arg_1..N`` (values may contain spaces)."""
        out: list[str] = []
        while (value := self.env.get(f"agi_arg_{len(out) + 1}")) is not None:
            out.append(value)
        return out

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def callerid(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("agi_calleridname", "")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start reading replies (the server calls this after the environment)."""
        if self._reader_task is None:
            self._reader_task = asyncio.create_task(
                self._read_loop(), name=f"agi-reader {self.channel}"
            )

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return once the connection is gone (EOF, error or close())."""
        await self._closed.wait()

    def abort(self, reason: str) -> None:
        """Close now: the pending command fails with ConnectionLost."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._close_reason = reason
        self._fail_pending(ConnectionLost(f"AGI connection closed: {reason}"))
        self._writer.close()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        """Close the connection and wait for the socket and reader to finish."""
        self.abort("closed by the server")
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    def _fail_pending(self, exc: BaseException) -> None:
        fut = self._pending
        if fut is not None and not fut.done():
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody may be waiting any more

    async def _read_loop(self) -> None:
        reason = "EOF from Asterisk"
        try:
            while True:
                try:
                    line = await self._reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # EOF: stop here, never read again
                except asyncio.LimitOverrunError:
                    raise ProtocolError(f"AGI line longer than {MAX_LINE_BYTES} bytes") from None
                item = self._decoder.feed(line)
                if item is None:
                    continue
                if item == HANGUP_LINE:
                    if not self.hung_up:
                        self.log.info("agi channel hung up")
                    self.hung_up = True
                    continue
                fut = self._pending
                if fut is None or fut.done():
                    raise ProtocolError(f"unsolicited AGI reply (code {item.code})")
                fut.set_result(item)
        except ProtocolError as exc:
            reason = str(exc)
            self.log.warning("agi protocol error, closing", error=reason)
            self._fail_pending(exc)
        except (ConnectionError, OSError) as exc:
            reason = f"socket error: {exc!r}"
        self.abort(reason)

    # ------------------------------------------------------------- commands
    async def command(self, text: str, *, timeout: float | None = None) -> AgiReply:
        """Send one raw command line (without ``\\n``) and return the reply.

        510/520 raise AgiCommandError, 511 raises AgiHangup.  The ``result``
        is not interpreted: that is what the typed methods are for.
        """
        check_safe(text, "AGI command")
        data = (text + "\n").encode("utf-8")
        if len(data) > MAX_COMMAND_BYTES:
            raise UnsafeValue(f"AGI command longer than {MAX_COMMAND_BYTES} bytes (res_agi.c AGI_BUF_LEN)")
        return await self._roundtrip(data, text.partition(" ")[0], timeout)

    async def _run(self, verb: str, *args: str | int, timeout: float | None = None) -> AgiReply:
        return await self._roundtrip(build_command(verb, *args), verb, timeout)

    async def _roundtrip(self, data: bytes, verb: str, timeout: float | None) -> AgiReply:
        deadline = self.command_timeout if timeout is None else timeout
        async with self._lock:
            if self._closed.is_set():
                raise ConnectionLost(f"AGI connection closed: {self._close_reason}")
            fut: asyncio.Future[AgiReply] = asyncio.get_running_loop().create_future()
            self._pending = fut
            try:
                async with asyncio.timeout(deadline):
                    self._writer.write(data)
                    await self._writer.drain()
                    reply = await fut
            except TimeoutError:
                # No ids on the wire: a late reply would answer the next command.
                self.abort(f"{verb} timed out")
                raise Timeout(f"AGI {verb} got no reply within {deadline:g}s") from None
            except (ConnectionError, OSError) as exc:
                self.abort(f"socket error: {exc!r}")
                raise ConnectionLost(f"AGI connection lost during {verb}") from None
            finally:
                self._pending = None
        return self._check(reply, verb)

    def _check(self, reply: AgiReply, verb: str) -> AgiReply:
        if reply.code == CODE_SUCCESS:
            return reply
        if reply.code == CODE_DEAD:
            self.hung_up = True
            raise AgiHangup(f"AGI {verb}: channel is hung up ({reply.text})", reply)
        first_line = reply.text.partition("\n")[0]
        raise AgiCommandError(f"AGI {verb} refused: {reply.code} {first_line}", reply)

    def _failed(self, reply: AgiReply, verb: str) -> AgiError:
        """The error for a ``result=-1``: a hangup if Asterisk told us so."""
        if self.hung_up:
            return AgiHangup(f"AGI {verb}: channel hung up", reply)
        return AgiCommandFailed(f"AGI {verb} failed (result={reply.raw_result})", reply)

    def _digit(self, reply: AgiReply, verb: str) -> str:
        """Playback-style result: 0 = no digit, >0 = ASCII of the digit, -1 = failed."""
        if reply.result is None or reply.result < 0:
            raise self._failed(reply, verb)
        return chr(reply.result) if reply.result else ""

    @staticmethod
    def _escape(digits: str) -> quote:
        if not set(digits) <= DTMF_DIGITS:
            raise ValueError(f"escape digits must be DTMF digits, got {digits!r}")
        return quote(digits)

    # --------------------------------------------------------- typed methods
    async def answer(self, *, timeout: float | None = None) -> None:
        reply = await self._run("ANSWER", timeout=timeout)
        if reply.result != 0:
            raise self._failed(reply, "ANSWER")

    async def hangup(self, channel: str | None = None, *, timeout: float | None = None) -> None:
        """Hang up our channel (or another one by name).  Asterisk keeps the
        AGI socket open afterwards; the next command sees ``HANGUP``."""
        args = () if channel is None else (channel,)
        reply = await self._run("HANGUP", *args, timeout=timeout)
        if reply.result != 1:
            raise AgiCommandFailed(f"AGI HANGUP: no such channel ({reply.raw_result})", reply)

    async def stream_file(
        self, name: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> str:
        """Play a prompt; return the escape digit pressed, or ''."""
        reply = await self._run("STREAM FILE", name, self._escape(escape_digits), timeout=timeout)
        return self._digit(reply, "STREAM FILE")

    async def get_data(
        self,
        prompt: str,
        timeout_ms: int | None = None,
        max_digits: int | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[str, bool]:
        """Play ``prompt`` and collect digits (``#`` ends input).

        Returns ``(digits, timed_out)``.  Digits stay a string: ``0123`` and
        ``12*`` are valid input.  The default deadline adds the whole
        digit-collection time to :attr:`command_timeout`.
        """
        args: list[str | int] = [prompt]
        if timeout_ms is not None or max_digits is not None:
            args.append(0 if timeout_ms is None else int(timeout_ms))  # 0: Asterisk's default
        if max_digits is not None:
            args.append(int(max_digits))
        if timeout is None:
            per_digit = timeout_ms / 1000 if timeout_ms else GET_DATA_DEFAULT_DIGIT_WAIT
            timeout = self.command_timeout + per_digit * (max_digits or GET_DATA_DEFAULT_MAX_DIGITS)
        reply = await self._run("GET DATA", *args, timeout=timeout)
        if reply.result is not None and reply.result < 0:
            raise self._failed(reply, "GET DATA")
        # handle_getdata(): "200 result=<digits> (timeout)", digits may be empty.
        return reply.raw_result or "", reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int = -1, *, timeout: float | None = None) -> str:
        """Wait for one DTMF digit; '' on timeout.

        With ``timeout_ms=-1`` (wait forever) pass a ``timeout=`` that suits,
        or the default command deadline ends the session.
        """
        if timeout is None and timeout_ms >= 0:
            timeout = self.command_timeout + timeout_ms / 1000
        reply = await self._run("WAIT FOR DIGIT", int(timeout_ms), timeout=timeout)
        return self._digit(reply, "WAIT FOR DIGIT")

    async def exec(self, app: str, *args: str, timeout: float | None = None) -> int:
        """Run a dialplan application; return its result.

        res_agi.c handle_exec() passes only argv[2] to the app, so the
        arguments are joined with ',' into one quoted argument.
        """
        params = [quote(",".join(args))] if args else []
        reply = await self._run("EXEC", app, *params, timeout=timeout)
        if reply.result == -2:
            raise AgiCommandFailed(f"AGI EXEC: no such application {app!r}", reply)
        if reply.result is None or (reply.result < 0 and self.hung_up):
            raise self._failed(reply, "EXEC")
        return reply.result

    async def set_variable(self, name: str, value: str, *, timeout: float | None = None) -> None:
        check_safe(value, f"variable {name}")
        await self._run("SET VARIABLE", name, quote(value), timeout=timeout)

    async def get_variable(self, name: str, *, timeout: float | None = None) -> str | None:
        """``200 result=1 (T-5678)`` -> 'T-5678'; ``200 result=0`` (unset) -> None.

        Works on a dead channel too (fastagi-caller-hangup.txt).
        """
        reply = await self._run("GET VARIABLE", name, timeout=timeout)
        return (reply.data or "") if reply.result == 1 else None

    async def get_full_variable(
        self, expr: str, channel: str | None = None, *, timeout: float | None = None
    ) -> str | None:
        """Evaluate ``${...}`` expressions in the channel, like the dialplan."""
        args = () if channel is None else (channel,)
        reply = await self._run("GET FULL VARIABLE", quote(expr), *args, timeout=timeout)
        return (reply.data or "") if reply.result == 1 else None

    async def say_number(
        self, number: int, escape_digits: str = "", *, timeout: float | None = None
    ) -> str:
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError("say_number() needs an int")
        reply = await self._run("SAY NUMBER", number, self._escape(escape_digits), timeout=timeout)
        return self._digit(reply, "SAY NUMBER")

    async def say_digits(
        self, digits: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> str:
        if not digits or not set(digits) <= DTMF_DIGITS:
            raise ValueError(f"say_digits() needs DTMF digits, got {digits!r}")
        reply = await self._run("SAY DIGITS", digits, self._escape(escape_digits), timeout=timeout)
        return self._digit(reply, "SAY DIGITS")

    async def set_context(self, context: str, *, timeout: float | None = None) -> None:
        await self._run("SET CONTEXT", context, timeout=timeout)

    async def set_extension(self, extension: str, *, timeout: float | None = None) -> None:
        await self._run("SET EXTENSION", extension, timeout=timeout)

    async def set_priority(self, priority: int | str, *, timeout: float | None = None) -> None:
        """A number or a priority label."""
        await self._run("SET PRIORITY", priority, timeout=timeout)

    async def verbose(self, message: str, level: int = 1, *, timeout: float | None = None) -> None:
        """Write to the Asterisk console/log at verbosity ``level`` (1-4)."""
        await self._run("VERBOSE", quote(message), int(level), timeout=timeout)

    async def channel_status(
        self, channel: str | None = None, *, timeout: float | None = None
    ) -> int:
        """ast_channel_state: 0 down ... 4 ring, 5 ringing, 6 up, 7 busy."""
        args = () if channel is None else (channel,)
        reply = await self._run("CHANNEL STATUS", *args, timeout=timeout)
        if reply.result is None or reply.result < 0:
            raise self._failed(reply, "CHANNEL STATUS")
        return reply.result

    async def set_music(
        self, on: bool, moh_class: str | None = None, *, timeout: float | None = None
    ) -> None:
        """Music on hold on (optionally with a class) or off."""
        args: tuple[str, ...] = ("on",) if on else ("off",)
        if on and moh_class:
            args += (moh_class,)
        await self._run("SET MUSIC", *args, timeout=timeout)


# ------------------------------------------------------------------- server
class FastAgiServer:
    """Listen for Asterisk's FastAGI connections and run ``handler`` per call.

    When the handler returns, the server closes the socket (Asterisk keeps
    it open even after the channel hung up).  A handler exception is logged
    with the call's channel and uniqueid and only ends that session.
    """

    def __init__(
        self,
        handler: AgiHandler,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        env_timeout: float = ENV_TIMEOUT,
        env_max_bytes: int = ENV_MAX_BYTES,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self.env_timeout = env_timeout
        self.env_max_bytes = env_max_bytes
        self.command_timeout = command_timeout
        self._server: asyncio.Server | None = None
        self._sessions: set[AgiSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=MAX_LINE_BYTES
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("fastagi listening", host=self._host, port=self.port)

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        return self._port

    @property
    def session_count(self) -> int:
        """Calls whose handler is running now."""
        return len(self._sessions)

    @property
    def sessions(self) -> tuple[AgiSession, ...]:
        return tuple(self._sessions)

    async def close(self) -> None:
        """Stop listening, close every session, let handlers unwind."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort("server shutting down")
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            env = await self._read_env(reader, peer)
            if env is not None:
                await self._run_session(reader, writer, env)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _read_env(self, reader: asyncio.StreamReader, peer: object) -> AgiEnvironment | None:
        try:
            return await asyncio.wait_for(
                read_environment(reader, self.env_max_bytes), self.env_timeout
            )
        except TimeoutError:
            log.warning("agi environment not received in time", peer=peer, timeout=self.env_timeout)
        except ProtocolError as exc:
            log.warning("agi environment refused", peer=peer, error=str(exc))
        except ConnectionLost as exc:
            log.info("agi connection closed during environment", peer=peer, error=str(exc))
        except (ConnectionError, OSError) as exc:
            log.info("agi socket error during environment", peer=peer, error=repr(exc))
        return None

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        session = AgiSession(reader, writer, env, command_timeout=self.command_timeout)
        self._sessions.add(session)
        session.start()
        session.log.info("agi session started", script=session.script)
        try:
            await self._handler(session)
        except (AgiHangup, ConnectionLost) as exc:
            # The caller went away mid-flow: normal life, not a bug.
            session.log.info("agi session ended by hangup", error=str(exc))
        except Exception:
            session.log.exception("agi handler failed")
        finally:
            self._sessions.discard(session)
            await session.close()
