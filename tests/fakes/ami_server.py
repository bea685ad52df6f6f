"""A fake Asterisk Manager Interface server on 127.0.0.1:0, for tests.

It replays a real capture from ``../shared/fixtures/asterisk-22`` in answer to
the client's actions, records everything the client sends, and injects
faults.  Reusable by anyone testing code on top of the AMI client::

    async with FakeAmiServer(capture="ami-login-success.txt") as server:
        session = await AmiSession.connect(server.host, server.port, "callcenterd", "s3cret")
        ...
        assert [a.name for a in server.received] == ["Login", ...]

Replay: the capture's ``.client.txt`` gives the actions Asterisk answered, in
order; response *i* of the ``.txt`` answers action *i* (one AMI session
handles its actions serially).  Response *i* plus the events that followed
it, up to response *i+1*, form segment *i*.  When the client sends an action,
the server plays the next unused segment of an action with the same name,
rewriting the capture's ActionIDs to the client's.  Actions with no segment
left get a built-in answer: Login/Challenge (checks ``username``/``secret``,
plain or MD5), Ping, Logoff; anything else gets ``Response: Error``.  The
script restarts on every connection.

Faults: :meth:`drop_on` (close when an action arrives, without answering),
:meth:`mute` (read and record, never answer), :meth:`send_raw` (garbage,
truncated frames), :meth:`drop_all`, ``slow_reader=True`` (read the client
one byte at a time), ``send_banner=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from callcenterd.protocols.ami.codec import AmiDecoder, Message, encode_message

FIXTURES = Path(
    os.environ.get(
        "CALLCENTERD_AST_FIXTURES",
        Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "asterisk-22",
    )
)
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN_FAILURE_CLOSE_DELAY = 0.05  # Asterisk waits 1.0 s; tests need not


@dataclass
class Segment:
    action: Message  # what the capture's client sent
    messages: list[Message]  # response first, then the events that followed it


@dataclass
class Script:
    preamble: list[Message] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def from_capture(cls, name: str | Path) -> "Script":
        """Load ``ami-x.txt`` and its ``ami-x.client.txt``."""
        path = Path(name)
        if not path.is_absolute():
            path = FIXTURES / path
        server = AmiDecoder().feed(path.read_bytes())
        client_path = path.with_name(path.name.replace(".txt", ".client.txt"))
        actions = AmiDecoder(expect_banner=False).feed(client_path.read_bytes())
        starts = [i for i, m in enumerate(server) if m.is_response]
        if len(starts) > len(actions):
            raise ValueError(f"{path.name}: {len(starts)} responses for {len(actions)} actions")
        script = cls(preamble=server[: starts[0]] if starts else server)
        for n, start in enumerate(starts):
            action = actions[n]
            end = starts[n + 1] if n + 1 < len(starts) else len(server)
            reply_aid = server[start].action_id
            if reply_aid is not None and reply_aid != action.action_id:
                raise ValueError(f"{path.name}: response {n} is for {reply_aid}, action is {action.action_id}")
            script.segments.append(Segment(action, server[start:end]))
        return script


class _Conn:
    def __init__(self, server: "FakeAmiServer", reader, writer, index: int) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.index = index
        self.decoder = AmiDecoder(expect_banner=False)
        self.used = [False] * len(server.script.segments) if server.script else []
        self.aid_map: dict[str, str] = {}
        self.challenge = ""
        self.raw = bytearray()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def abort(self) -> None:
        self.writer.transport.abort()

    def send_message(self, msg: Message) -> None:
        pairs = msg.pairs
        if self.aid_map:
            pairs = [(k, self.aid_map.get(v, v) if k == "ActionID" else v) for k, v in pairs]
        self.send(encode_message(pairs))


class FakeAmiServer:
    def __init__(
        self,
        capture: str | Path | Script | None = None,
        *,
        username: str = "callcenterd",
        secret: str = "s3cret",
        slow_reader: bool = False,
        send_banner: bool = True,
        challenge: str = "149886024",
    ) -> None:
        if isinstance(capture, Script) or capture is None:
            self.script = capture
        else:
            self.script = Script.from_capture(capture)
        self.username = username
        self.secret = secret
        self.slow_reader = slow_reader
        self.send_banner = send_banner
        self.challenge = challenge
        self.received: list[Message] = []  # every action, every connection, in order
        self.received_on: list[int] = []  # connection index of each received action
        self.connections: list[_Conn] = []
        self.muted = False
        self._drop_on: dict[str, int] = {}
        self._server: asyncio.base_events.Server | None = None
        self._changed = asyncio.Condition()
        self.host = "127.0.0.1"
        self.port = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> "FakeAmiServer":
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in self.connections:
                conn.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> "FakeAmiServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --------------------------------------------------------------- faults
    def drop_on(self, action: str, times: int = 1) -> None:
        """Abort the connection (no reply) the next ``times`` times ``action`` arrives."""
        self._drop_on[action.lower()] = times

    def mute(self, muted: bool = True) -> None:
        """Keep reading and recording, never answer (a half-open peer)."""
        self.muted = muted

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to every live connection."""
        for conn in self.live():
            conn.send(data)

    def emit(self, *pairs: tuple[str, str]) -> None:
        """Send one event (``("Event", "Hangup"), ("Channel", ...)``) to every live connection."""
        self.send_raw(encode_message(pairs))

    def drop_all(self) -> None:
        for conn in self.live():
            conn.abort()

    def live(self) -> list[_Conn]:
        return [c for c in self.connections if not c.writer.is_closing()]

    # ------------------------------------------------------------- waiting
    def actions(self, name: str) -> list[Message]:
        return [m for m in self.received if m.name.lower() == name.lower()]

    async def wait_for(self, predicate, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def wait_action(self, name: str, count: int = 1, timeout: float = 2.0) -> Message:
        await self.wait_for(lambda: len(self.actions(name)) >= count, timeout)
        return self.actions(name)[count - 1]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------- serving
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer, len(self.connections))
        self.connections.append(conn)
        await self._notify()
        if self.send_banner:
            conn.send(BANNER)
            if self.script:
                for msg in self.script.preamble:
                    conn.send_message(msg)
        try:
            while True:
                data = await reader.read(1 if self.slow_reader else 65536)
                if not data:
                    break
                conn.raw += data
                for action in conn.decoder.feed(data):
                    self.received.append(action)
                    self.received_on.append(conn.index)
                    await self._answer(conn, action)
                    await self._notify()
                if writer.is_closing():
                    break
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            await self._notify()

    async def _answer(self, conn: _Conn, action: Message) -> None:
        name = action.name.lower()
        if self._drop_on.get(name, 0) > 0:
            self._drop_on[name] -= 1
            conn.abort()
            return
        if self.muted or conn.writer.is_closing():
            return
        aid = action.action_id
        if self.script:
            for n, seg in enumerate(self.script.segments):
                if not conn.used[n] and seg.action.name.lower() == name:
                    conn.used[n] = True
                    if seg.action.action_id and aid:
                        conn.aid_map[seg.action.action_id] = aid
                    for msg in seg.messages:
                        conn.send_message(msg)
                    if name == "login" and seg.messages[0].name == "Error":
                        self._close_later(conn)
                    if name == "logoff":
                        conn.writer.close()
                    return
        self._native(conn, action, name, aid)

    def _close_later(self, conn: _Conn) -> None:
        # manager.c: after a failed login Asterisk sleeps 1 s and hangs up.
        asyncio.get_running_loop().call_later(LOGIN_FAILURE_CLOSE_DELAY, conn.writer.close)

    def _native(self, conn: _Conn, action: Message, name: str, aid: str | None) -> None:
        head = [("Response", "Success")] + ([("ActionID", aid)] if aid is not None else [])
        if name == "ping":
            conn.send(encode_message(head + [("Ping", "Pong"), ("Timestamp", "1795396038.748141")]))
        elif name == "challenge":
            conn.challenge = self.challenge
            conn.send(encode_message(head + [("Challenge", self.challenge)]))
        elif name == "login":
            if action.get("AuthType", "").lower() == "md5":
                expected = hashlib.md5((conn.challenge + self.secret).encode()).hexdigest()
                ok = bool(conn.challenge) and action.get("Key") == expected
            else:
                ok = action.get("Secret") == self.secret
            ok = ok and action.get("Username") == self.username
            if ok:
                conn.send(encode_message(head + [("Message", "Authentication accepted")]))
                conn.send(
                    encode_message(
                        [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")]
                    )
                )
            else:
                head[0] = ("Response", "Error")
                conn.send(encode_message(head + [("Message", "Authentication failed")]))
                self._close_later(conn)
        elif name == "logoff":
            conn.send(encode_message([("Response", "Goodbye")] + head[1:] + [("Message", "Thanks for all the fish.")]))
            conn.writer.close()
        else:
            head[0] = ("Response", "Error")
            text = f"Invalid/unknown command: {action.name}. Use Action: ListCommands to show available commands."
            conn.send(encode_message(head + [("Message", text)]))
