"""A fake FreeSWITCH built from the real ESL captures (../shared/fixtures/freeswitch).

Two halves:

* :class:`FakeFreeSwitch` -- the inbound ESL server (port 8021 side).  It
  answers like the captures: ``auth`` (``-ERR command not found`` before auth,
  ``-ERR invalid`` + disconnect notice on a bad password), ``event``/
  ``nixevent``/``noevents``/``filter``, ``api`` with the captured bodies
  (trailing newline or not, exactly as recorded), ``bgapi`` (echoes our
  Job-UUID), ``exit``.  ``api|bgapi originate`` answers with the captured
  reply and then replays the captured originate events in the subscribed
  format (plain/json/xml) with every channel uuid rewritten to fresh ones,
  so their odd orders (API event after higher sequences, BACKGROUND_JOB in the
  middle) come through unchanged.
  Faults: rude rejection, silent server, reply delays, drop the socket on a
  command, disconnect notice / shutdown with calls up, garbage bytes,
  BACKGROUND_JOB before its command/reply.
* :class:`FakeOutboundChannel` -- plays FreeSWITCH's ``socket`` app: it
  connects to our outbound server, answers ``connect`` with the captured
  channel data, runs ``sendmsg`` execute/hangup by emitting CHANNEL_EXECUTE /
  CHANNEL_EXECUTE_COMPLETE / CHANNEL_HANGUP built from the captured events,
  and lingers after hangup without ever closing (as FreeSWITCH does).
  ``app_delay`` models the time each application takes on the channel's
  session thread (about 20 ms per app in the 2026-11-29 captures: one timer
  tick between a sendmsg and its CHANNEL_EXECUTE_COMPLETE).  When a
  ``uuid_bridge`` takes the channel (:meth:`FakeOutboundChannel.bridge_started`)
  the ``socket`` app returns but the socket stays open, with no disconnect
  notice; after the bridge the dialplan lines that follow ``socket`` run
  (:meth:`FakeOutboundChannel.dialplan_runs`), as in
  esl-outbound-after-bridge-ends-outbound.txt.

Everything the client sends is recorded in ``received`` (one string per
command block).  Reusable by the FreeSWITCH driver's contract tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid as uuidlib
from pathlib import Path
from typing import Callable

from callcenterd.protocols.esl.codec import (
    EslDecoder,
    EslEvent,
    encode_event_json,
    encode_event_plain,
    encode_frame,
)

FIXTURES = Path(os.environ.get("CALLCENTERD_FS_FIXTURES", Path(__file__).resolve().parents[3] / "shared/fixtures/freeswitch"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/freeswitch")

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
SHUTDOWN = b"The system is being shut down.\n"
RUDE = b"Access Denied, go away.\n"
_UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CL_RE = re.compile(rb"^Content-Length: (\d+)$", re.M)
_CT_RE = re.compile(rb"^Content-Type: (\S+)$", re.M)


# ----------------------------------------------------------- capture access
def load_capture(name: str) -> bytes:
    """Raw server-side bytes of ``esl-<name>.txt``."""
    return (FIXTURES / f"esl-{name}.txt").read_bytes()


def load_client(name: str) -> bytes:
    return (FIXTURES / f"esl-{name}.client.txt").read_bytes()


def split_frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """(header block, body) per top-level frame.  Deliberately independent of
    the codec under test: a regex on the header block, nothing more."""
    out, i = [], 0
    while i < len(data):
        j = data.index(b"\n\n", i)
        head = data[i:j]
        m = _CL_RE.search(head)
        n = int(m.group(1)) if m else 0
        out.append((head, data[j + 2 : j + 2 + n]))
        i = j + 2 + n
    return out


def split_commands(data: bytes) -> list[str]:
    """Client commands of a ``.client.txt`` (blocks ending with a blank line;
    a ``content-length`` body is kept with its command)."""
    out, i = [], 0
    while i < len(data):
        j = data.find(b"\n\n", i)
        if j < 0:
            break
        head = data[i:j]
        m = re.search(rb"^content-length: (\d+)$", head, re.M | re.I)
        n = int(m.group(1)) if m else 0
        out.append((head + b"\n\n" + data[j + 2 : j + 2 + n]).decode())
        i = j + 2 + n
    return out


def frame(head: bytes, body: bytes) -> bytes:
    if body:
        head = _CL_RE.sub(b"Content-Length: %d" % len(body), head) if _CL_RE.search(head) else head + b"\nContent-Length: %d" % len(body)
    return head + b"\n\n" + body


def captured_api_replies() -> dict[str, bytes]:
    """``api`` command -> captured body, paired in order from the captures."""
    table: dict[str, bytes] = {}
    for name in ("inbound-auth-api", "inbound-misc-commands", "callcenter-plain-filtered"):
        cmds = [c.split("\n", 1)[0][4:] for c in split_commands(load_client(name)) if c.startswith("api ")]
        bodies = [b for h, b in split_frames(load_capture(name)) if b"Content-Type: api/response" in h]
        assert len(cmds) == len(bodies), name
        table.update(zip(cmds, bodies))
    return table


def captured_events(name: str) -> list[tuple[bytes, bytes]]:
    return [(h, b) for h, b in split_frames(load_capture(name)) if b"Content-Type: text/event-" in h]


def rewrite_uuids(frames: list[tuple[bytes, bytes]], mapping: dict[bytes, bytes]) -> list[bytes]:
    """Replace uuids in event bodies; re-frame (Content-Length recomputed)."""
    out = []
    for head, body in frames:
        body = _UUID_RE.sub(lambda m: mapping.get(m.group(0), m.group(0)), body)
        out.append(frame(head, body))
    return out


def _event_of(head: bytes, body: bytes) -> EslEvent:
    ct = _CT_RE.search(head).group(1).decode()  # type: ignore[union-attr]
    if ct.endswith("json"):
        return EslEvent.from_json(body)
    if ct.endswith("xml"):
        return EslEvent.from_xml(body)
    return EslEvent.from_plain(body)


# ------------------------------------------- model of FreeSWITCH's splitters
# Written after switch_utils.c (separate_string_char_delim,
# separate_string_blank_delim, cleanup_separated_string, unescape_char) and
# switch_event.c (switch_find_end_paren, switch_event_create_brackets) of the
# 1.10 branch.  The fake uses it to parse app arguments the way FreeSWITCH
# does, and the quoting tests use it as their oracle.
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def fs_cleanup(s: str, delim: str) -> str:
    """cleanup_separated_string(): quotes removed, escapes resolved, blanks trimmed."""
    i = 0
    while i < len(s) and s[i] == " ":
        i += 1
    out: list[str] = []
    end: int | None = None
    inside = False
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            e = s[i + 1]
            if e in ("'", '"', "\\") or (delim and e == delim) or e in _UNESCAPE:
                out.append(_UNESCAPE.get(e, e) if e not in ("'", '"', "\\", delim) else e)
                end = len(out)
                i += 2
                continue
        if ch == "'" and (inside or "'" in s[i + 1 :]):
            inside = not inside
            if inside:
                end = len(out)
        else:
            out.append(ch)
            if ch != " " or inside:
                end = len(out)
        i += 1
    return "".join(out[:end]) if end is not None else "".join(out)


def fs_separate_string(buf: str, delim: str, arraylen: int = 1024) -> list[str]:
    """switch_separate_string(), including the leading ``^^X`` custom delimiter."""
    if buf.startswith("^^") and len(buf) > 3:
        delim, buf = buf[2], buf[3:]
    pieces: list[str] = []
    if delim == " ":
        i, n = 0, len(buf)
        while i < n and len(pieces) < arraylen:
            start = i
            inside = False
            while i < n and buf[i] == " ":
                i += 1
            while i < n:
                ch = buf[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "'":
                    inside = not inside
                elif ch == " " and not inside and len(pieces) + 1 < arraylen:
                    break
                i += 1
            pieces.append(buf[start:i])
            while i < n and buf[i] == " ":
                i += 1
        return [fs_cleanup(p, "") for p in pieces]
    i, n, start = 0, len(buf), 0
    inside = False
    if not buf:
        return []
    while i < n:
        ch = buf[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "'" and (inside or "'" in buf[i + 1 :]):
            inside = not inside
        elif ch == delim and not inside and len(pieces) + 1 < arraylen:
            pieces.append(buf[start:i])
            start = i + 1
        i += 1
    if start < n:  # a trailing delimiter starts no new piece (the C loop stops at NUL)
        pieces.append(buf[start:])
    return [fs_cleanup(p, delim) for p in pieces]


def fs_find_end_paren(s: str, open_: str, close: str) -> int:
    """switch_find_end_paren(): index of the matching close, -1 if none (quotes ignored)."""
    depth = 0
    for i, ch in enumerate(s):
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i
    return -1


def fs_parse_brackets(dial: str, open_: str = "{", close: str = "}") -> tuple[dict[str, str], str]:
    """switch_event_create_brackets(): ``{k=v,...}rest`` -> (vars, rest)."""
    if not dial.startswith(open_):
        return {}, dial
    end = fs_find_end_paren(dial, open_, close)
    if end < 0:
        raise ValueError("no closing bracket")
    inner, rest = dial[1:end], dial[end + 1 :]
    out: dict[str, str] = {}
    for piece in fs_separate_string(inner, ","):
        kv = fs_separate_string(piece, "=", 2)
        if len(kv) == 2:
            out[kv[0]] = kv[1]
    return out, rest


# ------------------------------------------------------------ inbound fake
class _Conn:
    """One client connection as the fake sees it."""

    def __init__(self, server: "FakeFreeSwitch", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authed = False
        self.format: str | None = None  # None = no events
        self.names: set[str] = set()
        self.filters: list[tuple[str, str]] = []

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def reply(self, text: str, extra: str = "") -> None:
        self.write(f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode())

    def api_response(self, body: bytes) -> None:
        self.write(b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body)

    def notice(self, body: bytes = GOODBYE, extra: str = "") -> None:
        self.write(f"Content-Type: text/disconnect-notice\n{extra}Content-Length: {len(body)}\n\n".encode() + body)

    def wants(self, ev: EslEvent) -> bool:
        if self.format is None:
            return False
        if self.filters and not any(ev.get(h) == v for h, v in self.filters):
            return False
        if "ALL" in self.names:
            return True
        if ev.name == "CUSTOM":
            return "CUSTOM" in self.names and (ev.subclass in self.names or not any("::" in n for n in self.names))
        return ev.name in self.names

    def send_event(self, ev: EslEvent) -> None:
        if not self.wants(ev):
            return
        if self.format == "json":
            body, ct = encode_event_json(ev.headers, ev.body), "text/event-json"
        else:
            body, ct = encode_event_plain(ev.headers, ev.body), "text/event-plain"
        self.write(f"Content-Length: {len(body)}\nContent-Type: {ct}\n\n".encode() + body)

    def send_captured(self, frames: list[bytes]) -> None:
        """Captured event frames (already rewritten), filtered by subscription."""
        for raw in frames:
            head, _, body = raw.partition(b"\n\n")
            if self.wants(_event_of(head, body)):
                self.write(raw)


class FakeFreeSwitch:
    """Inbound ESL server on 127.0.0.1:0 that behaves like the captures."""

    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.api_replies = captured_api_replies()
        self.received: list[str] = []
        self.connections = 0
        self.conns: list[_Conn] = []
        # faults / behaviour knobs (change them at any time)
        self.rude_rejection = False
        self.silent = False  # read commands, never answer (after auth)
        self.bgapi_event_first = False  # BACKGROUND_JOB before the bgapi command/reply
        self.reply_delays: dict[str, float] = {}  # command prefix -> delay before its reply
        self.drop_on: str | None = None  # command prefix: close the socket instead of replying
        self.on_command: Callable[[_Conn, str], bool] | None = None  # return True if handled
        self.originated: list[dict[bytes, bytes]] = []  # uuid mappings of each originate
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 10_000

    # ---------------------------------------------------------------- admin
    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in self.conns:
            c.writer.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> "FakeFreeSwitch":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def commands(self) -> list[str]:
        """First line of every command received (``auth`` masked)."""
        return [("auth ***" if c.startswith("auth ") else c.split("\n", 1)[0]) for c in self.received]

    async def wait_for_command(self, prefix: str, timeout: float = 2.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for c in self.received:
                    if c.startswith(prefix):
                        return c
                await asyncio.sleep(0.005)

    # --------------------------------------------------------------- faults
    def disconnect_all(self, body: bytes = GOODBYE) -> None:
        """Disconnect notice to every client, then close (mid-call goodbye)."""
        for c in self.conns:
            c.notice(body)
            c.writer.close()

    def shutdown(self) -> None:
        """``fsctl shutdown`` with calls up: the shutdown notice, then close."""
        self.disconnect_all(SHUTDOWN)

    def send_raw(self, data: bytes) -> None:
        for c in self.conns:
            c.write(data)

    def emit(self, ev: EslEvent) -> None:
        for c in self.conns:
            c.send_event(ev)

    def next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    # ------------------------------------------------------------- protocol
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = _Conn(self, reader, writer)
        self.conns.append(conn)
        try:
            if self.rude_rejection:
                # mod_event_socket: ACL refused -> rude rejection, close
                writer.write(b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n" % len(RUDE) + RUDE)
                await writer.drain()
                return
            writer.write(b"Content-Type: auth/request\n\n")
            while True:
                cmd = await self._read_command(reader)
                if cmd is None:
                    return
                self.received.append(cmd)
                if not await self._handle(conn, cmd):
                    return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.conns.remove(conn)
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _read_command(reader: asyncio.StreamReader) -> str | None:
        try:
            head = await reader.readuntil(b"\n\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        m = re.search(rb"^content-length: (\d+)$", head, re.M | re.I)
        body = await reader.readexactly(int(m.group(1))) if m else b""
        return (head + body).decode("utf-8", "replace")

    async def _handle(self, c: _Conn, cmd: str) -> bool:
        """Answer one command; False = close the connection."""
        line = cmd.split("\n", 1)[0]
        if self.drop_on is not None and line.startswith(self.drop_on):
            return False
        if self.on_command is not None and self.on_command(c, cmd):
            return True
        if not c.authed:
            if line.startswith("auth "):
                if line[5:] == self.password:
                    c.authed = True
                    c.reply("+OK accepted")
                    return True
                c.reply("-ERR invalid")
                c.notice()
                return False
            c.reply("-ERR command not found")
            return True
        if self.silent:
            return True
        for prefix, delay in self.reply_delays.items():
            if line.startswith(prefix):
                await asyncio.sleep(delay)
        verb, _, rest = line.partition(" ")
        if verb == "api":
            c.api_response(self._api(c, rest))
        elif verb == "bgapi":
            self._bgapi(c, rest, cmd)
        elif verb == "event":
            fmt, _, names = rest.partition(" ")
            c.format = fmt
            c.names.update(names.split())
            c.reply(f"+OK event listener enabled {fmt}")
        elif verb == "nixevent":
            c.names.difference_update(rest.split())
            c.reply("+OK events nixed")
        elif verb == "noevents":
            c.format, c.names = None, set()
            c.reply("+OK no longer listening for events")
        elif verb == "filter":
            if rest.startswith("delete "):
                h, _, v = rest[7:].partition(" ")
                c.filters = [f for f in c.filters if f != (h, v)]
                c.reply(f"+OK filter deleted. [{h}][{v}]")
            else:
                h, _, v = rest.partition(" ")
                c.filters.append((h, v))
                c.reply(f"+OK filter added. [{h}]=[{v}]")
        elif verb == "exit":
            c.reply("+OK bye")
            c.notice()
            return False
        else:
            c.reply("-ERR command not found")
        return True

    def _api(self, c: _Conn, cmd: str) -> bytes:
        if cmd.startswith("originate "):
            return self._originate(c, job_uuid=None)
        if cmd in self.api_replies:
            return self.api_replies[cmd]
        name = cmd.split(" ", 1)[0]
        return f"-ERR {name} Command not found!\n".encode()

    def _bgapi(self, c: _Conn, cmd: str, block: str) -> None:
        m = re.search(r"^Job-UUID: (\S+)$", block, re.M)
        job = m.group(1) if m else str(uuidlib.uuid4())
        ack = lambda: c.reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n")  # noqa: E731
        if cmd.startswith("originate "):
            if self.bgapi_event_first:
                # the job event overtakes the reply; the channel events follow
                frames = self._originate_frames(c, job)
                jobs = [f for f in frames if b"BACKGROUND_JOB" in f]
                c.send_captured(jobs)
                ack()
                c.send_captured([f for f in frames if f not in jobs])
            else:
                ack()
                c.send_captured(self._originate_frames(c, job))
            return
        body = self.api_replies.get(cmd) or f"-ERR {cmd.split(' ', 1)[0]} Command not found!\n".encode()
        ev = EslEvent(
            {
                "Event-Name": "BACKGROUND_JOB",
                "Core-UUID": "33a83c6e-4bed-4afa-98db-bb24377c06be",
                "Event-Calling-File": "mod_event_socket.c",
                "Event-Calling-Function": "api_exec",
                "Event-Sequence": self.next_seq(),
                "Job-UUID": job,
                "Job-Command": cmd.split(" ", 1)[0],
                **({"Job-Command-Arg": cmd.split(" ", 1)[1]} if " " in cmd else {}),
            },
            body.decode(),
        )
        if self.bgapi_event_first:
            c.send_event(ev)
            ack()
        else:
            ack()
            c.send_event(ev)

    def _originate_frames(self, c: _Conn, job_uuid: str | None) -> list[bytes]:
        """The captured originate events in ``c``'s format, uuids rewritten."""
        name = {"json": "inbound-events-json-originate", "xml": "inbound-events-xml-originate"}.get(
            c.format or "plain", "inbound-events-plain-originate"
        )
        frames = captured_events(name)
        mapping: dict[bytes, bytes] = {}
        for head, body in frames:
            ev = _event_of(head, body)
            for key in ("Unique-ID", "Other-Leg-Unique-ID", "variable_other_loopback_leg_uuid"):
                v = ev.get(key)
                if v and v.encode() not in mapping:
                    mapping[v.encode()] = str(uuidlib.uuid4()).encode()
            if ev.name == "BACKGROUND_JOB" and job_uuid:
                mapping[ev.job_uuid.encode()] = job_uuid.encode()
        self.originated.append(mapping)
        return rewrite_uuids(frames, mapping)

    def _originate(self, c: _Conn, job_uuid: str | None) -> bytes:
        """Sync ``api originate``: the reply names the new A leg; events follow."""
        frames = self._originate_frames(c, job_uuid)
        mapping = self.originated[-1]
        a_leg = next(iter(mapping.values())).decode()
        loop = asyncio.get_running_loop()
        loop.call_soon(c.send_captured, [f for f in frames if b"BACKGROUND_JOB" not in f])
        return f"+OK {a_leg}\n".encode()


# ----------------------------------------------------------- outbound fake
def _outbound_templates() -> tuple[bytes, dict[str, EslEvent], str]:
    """Connect reply block, one captured event per name, the captured call uuid."""
    frames = split_frames(load_capture("outbound-async-full"))
    connect_head = frames[0][0]
    events: dict[str, EslEvent] = {}
    for head, body in frames[1:]:
        if b"text/event-plain" in head:
            ev = EslEvent.from_plain(body)
            events.setdefault(ev.name, ev)
    uuid = EslEvent.from_plain(connect_head + b"\n\n").uuid
    return connect_head, events, uuid


class FakeOutboundChannel:
    """FreeSWITCH's ``socket 127.0.0.1:PORT async full`` for one call."""

    def __init__(
        self,
        port: int,
        *,
        full: bool = True,
        async_mode: bool = True,
        digits: str = "",
        caller: str = "15551239999",
        dnis: str = "2000",
    ) -> None:
        self.port = port
        self.full = full
        self.async_mode = async_mode
        self.digits = digits  # what the caller "presses" in play_and_get_digits
        self.caller = caller
        self.dnis = dnis
        self.uuid = str(uuidlib.uuid4())
        self.received: list[str] = []
        self.format = "plain"
        self.lingering = False
        self.app_delay = 0.0  # seconds per executed application (see the module docstring)
        self.playing: str = ""  # event-uuid of the endless_playback that runs, if any
        self.socket_app_returned = False
        self.hung_up = asyncio.Event()
        self.peer_closed = asyncio.Event()  # our client closed the socket
        self.closed = asyncio.Event()  # the socket is gone, whoever closed it
        self._seq = 700
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connect_head, self._templates, self._captured_uuid = _outbound_templates()

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer = writer
        self._task = asyncio.create_task(self._run(reader, writer))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def commands(self) -> list[str]:
        return [c.split("\n", 1)[0] for c in self.received]

    # ------------------------------------------------------------- protocol
    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                cmd = await FakeFreeSwitch._read_command(reader)
                if cmd is None:
                    self.peer_closed.set()
                    return
                self.received.append(cmd)
                if self.app_delay and "\ncall-command: execute" in cmd:
                    # the +OK is immediate; the app itself runs on the session thread
                    self._reply("+OK")
                    await writer.drain()
                    await asyncio.sleep(self.app_delay)
                    headers = dict(re.findall(r"^([\w-]+): (.*)$", cmd, re.M))
                    if not self._execute(headers):
                        writer.close()
                        return
                    continue
                if not self._handle(cmd):
                    writer.close()
                    return
                await writer.drain()
        except ConnectionError:
            self.peer_closed.set()
        finally:
            self.closed.set()

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        if not self._writer.is_closing():
            self._writer.write(data)

    def _reply(self, text: str) -> None:
        self._write(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def _connect_reply(self) -> bytes:
        head = self._connect_head.replace(self._captured_uuid.encode(), self.uuid.encode())
        head = re.sub(rb"(?m)^(Channel-|Caller-)?(Caller-ID-Number|ANI): .*$", lambda m: m.group(0).split(b": ")[0] + b": " + self.caller.encode(), head)
        head = re.sub(rb"(?m)^(Channel-|Caller-)Destination-Number: .*$", lambda m: m.group(0).split(b": ")[0] + b": " + self.dnis.encode(), head)
        head = head.replace(b"Socket-Mode: async", b"Socket-Mode: " + (b"async" if self.async_mode else b"static"))
        head = head.replace(b"Control: full", b"Control: " + (b"full" if self.full else b"single-channel"))
        return head + b"\n\n"

    def _event(self, name: str, template: str, **headers: str) -> None:
        ev = self._templates[template]
        h = {k: v.replace(self._captured_uuid, self.uuid) for k, v in ev.headers.items()}
        for k in ("Application", "Application-Data", "Application-Response", "Application-UUID", "Content-Length"):
            h.pop(k, None)
        self._seq += 1
        h["Event-Name"] = name
        h["Event-Sequence"] = str(self._seq)
        h.update(headers)
        if self.format == "json":
            body, ct = encode_event_json(h), "text/event-json"
        else:
            body, ct = encode_event_plain(h), "text/event-plain"
        self._write(f"Content-Length: {len(body)}\nContent-Type: {ct}\n\n".encode() + body)

    def _handle(self, cmd: str) -> bool:
        line = cmd.split("\n", 1)[0]
        headers = dict(re.findall(r"^([\w-]+): (.*)$", cmd, re.M))
        verb, _, rest = line.partition(" ")
        if verb == "connect":
            self._write(self._connect_reply())
        elif verb == "myevents":
            self.format = rest or "plain"
            self._reply("+OK Events Enabled")
        elif verb == "linger":
            if self.full and not rest:
                self.lingering = True
                self._reply("+OK will linger")
            else:
                self._reply("-ERR command not found")  # as in esl-outbound-sync
        elif verb == "api":
            if not self.full:
                self._reply("-ERR command not found")
            else:
                body = captured_api_replies().get(rest, b"\n0 total.\n" if rest == "show channels count" else b"-ERR unknown\n")
                self._write(b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body)
        elif verb == "sendmsg":
            self._reply("+OK")
            if headers.get("call-command") == "hangup":
                return self._hangup(headers.get("hangup-cause", "NORMAL_CLEARING"))
            if headers.get("call-command") == "execute":
                return self._execute(headers)
        elif verb == "exit":
            self._reply("+OK bye")
            return False
        else:
            self._reply("-ERR command not found")
        return True

    def _execute(self, h: dict[str, str]) -> bool:
        app, arg, app_uuid = h.get("execute-app-name", ""), h.get("execute-app-arg", ""), h.get("event-uuid", "")
        common = {"Application": app, "Application-UUID": app_uuid}
        if arg:
            common["Application-Data"] = arg
        self._event("CHANNEL_EXECUTE", "CHANNEL_EXECUTE", **common)
        if app == "hangup":
            return self._hangup(arg or "NORMAL_CLEARING")
        extra: dict[str, str] = {}
        response = "_none_"
        if app == "answer":
            self._event("CHANNEL_ANSWER", "CHANNEL_ANSWER", **{"Answer-State": "answered"})
        elif app == "playback":
            response = "FILE PLAYED"
        elif app == "play_and_get_digits":
            argv = fs_separate_string(arg, " ")
            var = argv[7] if len(argv) > 7 else "digits"
            if self.digits:
                extra[f"variable_{var}"] = self.digits
            response = "FILE PLAYED"
        elif app == "set":
            name, _, value = arg.partition("=")
            extra[f"variable_{name}"] = value
        elif app == "multiset":
            # mod_dptools.c multiset_function: "^^<d>" picks the delimiter,
            # then switch_separate_string and one set per piece
            for piece in fs_separate_string(arg, " "):
                name, _, value = piece.partition("=")
                extra[f"variable_{name}"] = value
        elif app == "endless_playback":
            self.playing = app_uuid
            return True  # runs until the channel is taken away (bridge, hangup)
        self._event("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE_COMPLETE", **common, **{"Application-Response": response}, **extra)
        return True

    def _hangup(self, cause: str) -> bool:
        self._event("CHANNEL_HANGUP", "CHANNEL_HANGUP", **{"Hangup-Cause": cause, "Answer-State": "hangup"})
        self.hung_up.set()
        notice = f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {self.uuid}\n"
        if self.lingering:
            self._event("CHANNEL_HANGUP_COMPLETE", "CHANNEL_HANGUP_COMPLETE", **{"Hangup-Cause": cause})
            # Linger-Time -1: FreeSWITCH keeps the socket open; closing is the client's job
            self._write(
                f"{notice}Content-Disposition: linger\nChannel-Name: loopback/2000-b\nLinger-Time: -1\nContent-Length: 0\n\n".encode()
            )
            return True
        self._write(f"{notice}Content-Disposition: disconnect\nContent-Length: {len(GOODBYE)}\n\n".encode() + GOODBYE)
        return False

    def bridge_started(self, peer: str) -> None:
        """A ``uuid_bridge`` took the channel (esl-outbound-after-bridge-ends-outbound):
        the music and then the ``socket`` app itself complete with
        ``PLAYBACK ERROR``, the channel unparks and bridges.  The socket stays
        open and no disconnect notice is sent."""
        if self._writer is None or self._writer.is_closing():
            self.socket_app_returned = True
            return
        if self.playing:
            self._event("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE_COMPLETE", Application="endless_playback",
                        **{"Application-UUID": self.playing, "Application-Response": "PLAYBACK ERROR"})
            self.playing = ""
        self._event("CHANNEL_UNPARK", "CHANNEL_EXECUTE")
        if not self.socket_app_returned:
            self.socket_app_returned = True
            self._event("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE_COMPLETE", Application="socket", **{
                "Application-Data": f"127.0.0.1:{self.port} async full", "Application-Response": "PLAYBACK ERROR",
                "Application-UUID": str(uuidlib.uuid4())})
        self._event("CHANNEL_EXECUTE", "CHANNEL_EXECUTE", Application="uuid_bridge", **{"Application-Data": peer})
        self._event("CHANNEL_BRIDGE", "CHANNEL_EXECUTE", **{"Other-Leg-Unique-ID": peer})

    def bridge_ended(self, peer: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._event("CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE", **{"Other-Leg-Unique-ID": peer})

    def dialplan_runs(self, app: str, arg: str, variables: dict[str, str], *, completes: bool = True) -> None:
        """The channel runs a dialplan line after ``socket``: its events still
        reach a socket that was not closed (nothing else does)."""
        if self._writer is None or self._writer.is_closing():
            return
        common = {"Application": app, "Application-Data": arg, "Application-UUID": str(uuidlib.uuid4())}
        self._event("CHANNEL_EXECUTE", "CHANNEL_EXECUTE", **common)
        if completes:
            extra = {f"variable_{k}": v for k, v in variables.items()}
            self._event("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE_COMPLETE", **common,
                        **{"Application-Response": "_none_"}, **extra)

    def remote_hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The caller hangs up on their own."""
        if not self._hangup(cause) and self._writer is not None:
            self._writer.close()


def originate_uuid_map(fake: FakeFreeSwitch) -> dict[str, str]:
    """Last originate's captured-uuid -> fresh-uuid map, as str."""
    return {k.decode(): v.decode() for k, v in fake.originated[-1].items()}


__all__ = [
    "FIXTURES",
    "GOODBYE",
    "SHUTDOWN",
    "FakeFreeSwitch",
    "FakeOutboundChannel",
    "captured_api_replies",
    "captured_events",
    "load_capture",
    "load_client",
    "split_frames",
    "split_commands",
    "rewrite_uuids",
    "originate_uuid_map",
    "fs_cleanup",
    "fs_separate_string",
    "fs_find_end_paren",
    "fs_parse_brackets",
    "EslDecoder",
    "encode_frame",
]
