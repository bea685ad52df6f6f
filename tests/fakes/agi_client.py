"""A fake Asterisk for FastAGI tests.

It does what ``AGI(agi://127.0.0.1:<port>/script,...)`` does: connect to the
AGI server, write the agi_ environment, then read one command per line and
answer it from a script.  A reply is raw bytes, so a test can inject an
unsolicited ``HANGUP``, a 511, a multi-line 520, garbage, or hang up (EOF)
at any point.  Every byte the server sends is kept in :attr:`received`.

    fake = FakeAsterisk(server.port)
    await fake.connect()
    await fake.send_env(env_block(script="ivr"))
    await fake.play([Step("ANSWER", b"200 result=0\\n"), Step("STREAM FILE beep \\"\\"", eof=True)])
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from callcenterd.protocols.agi.codec import split_args

# Replies exactly as Asterisk 22 writes them (fixtures/asterisk-22/fastagi-*.txt).
HANGUP = b"HANGUP\n"
R510 = b"510 Invalid or unknown command\n"
R511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def ok(result: int | str = 0, data: str | None = None, endpos: int | None = None) -> bytes:
    """``200 result=<n>[ (data)][ endpos=<n>]``."""
    line = f"200 result={result}"
    if data is not None:
        line += f" ({data})"
    if endpos is not None:
        line += f" endpos={endpos}"
    return (line + "\n").encode()


def usage_520(*help_lines: str) -> bytes:
    """The multi-line usage error of res_agi.c agi_handle_command()."""
    lines = ["520-Invalid command syntax.  Proper usage follows:", *help_lines, "520 End of proper usage."]
    return "".join(f"{line}\n" for line in lines).encode()


def env_block(
    *,
    script: str = "ivr",
    channel: str = "Local/500@ivr-00000001;2",
    uniqueid: str = "1795396201.1",
    args: Sequence[str] = (),
    port: int = 4573,
    **extra: str,
) -> bytes:
    """An environment block shaped like the captured one (setup_env() order)."""
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:{port}/{script}",
        "agi_channel": channel,
        "agi_language": "en",
        "agi_type": channel.partition("/")[0],
        "agi_uniqueid": uniqueid,
        "agi_version": "22.10.1+dfsg+~cs6.17.60671434-1",
        "agi_callerid": "5551234",
        "agi_calleridname": "Caller",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "unknown",
        "agi_rdnis": "unknown",
        "agi_context": "ivr",
        "agi_extension": "500",
        "agi_priority": "1",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "139692022240960",
    }
    env.update({f"agi_{k}": v for k, v in extra.items()})
    env.update({f"agi_arg_{i}": a for i, a in enumerate(args, 1)})
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass(frozen=True)
class Step:
    """Read one command; check it (unless ``expect`` is None); then reply.

    ``eof=True`` hangs up the connection instead of replying (after sending
    ``reply`` if any, so a partial reply can be tested).
    """

    expect: str | None
    reply: bytes = b""
    eof: bool = False


@dataclass(frozen=True)
class Transcript:
    """A capture split into what each side sent."""

    env: bytes  # Asterisk's environment block, empty line included
    steps: list[Step]  # one per server command, with Asterisk's reply bytes
    server_bytes: bytes  # everything the server sent, in order


def load_transcript(path: Path | str) -> Transcript:
    """Parse a ``A> ``/``S> `` transcript (fixtures/asterisk-22/README.md)."""
    env = bytearray()
    server = bytearray()
    steps: list[tuple[str, bytearray]] = []
    for raw in Path(path).read_bytes().splitlines(keepends=True):
        who, payload = raw[:3], raw[3:]
        if who == b"S> ":
            server += payload
            steps.append((payload.rstrip(b"\n").decode(), bytearray()))
        elif who == b"A> ":
            (steps[-1][1] if steps else env).extend(payload)
        else:
            raise ValueError(f"bad transcript line: {raw[:20]!r}")
    return Transcript(bytes(env), [Step(cmd, bytes(reply)) for cmd, reply in steps], bytes(server))


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, io_timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.io_timeout = io_timeout
        self.received = bytearray()  # every byte the AGI server sent
        self.commands: list[str] = []  # the command lines, without "\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> FakeAsterisk:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def send(self, data: bytes) -> None:
        assert self._writer is not None, "connect() first"
        self._writer.write(data)
        await self._writer.drain()

    send_env = send  # the environment is just bytes; see env_block()

    async def read_command(self) -> str:
        """Next command line; AssertionError if the server closed or stalled."""
        assert self._reader is not None, "connect() first"
        line = await asyncio.wait_for(self._reader.readline(), self.io_timeout)
        self.received += line
        if not line.endswith(b"\n"):
            await self.hang_up()
            raise AssertionError(f"server closed the connection (partial {line!r})")
        command = line[:-1].decode()
        self.commands.append(command)
        return command

    @staticmethod
    def argv(command: str) -> list[str]:
        """The argv Asterisk would see (res_agi.c parse_args())."""
        return split_args(command)

    async def play(self, steps: Sequence[Step]) -> None:
        """Answer commands one by one from ``steps``."""
        for i, step in enumerate(steps):
            command = await self.read_command()
            if step.expect is not None and command != step.expect:
                raise AssertionError(f"step {i}: expected {step.expect!r}, got {command!r}")
            if step.reply:
                await self.send(step.reply)
            if step.eof:
                await self.hang_up()
                return

    async def serve(self, respond: Callable[[str], bytes | Awaitable[bytes]]) -> int:
        """Answer every command with ``respond(command)`` until the server closes.

        Returns how many commands were answered.
        """
        assert self._reader is not None, "connect() first"
        count = 0
        while True:
            line = await asyncio.wait_for(self._reader.readline(), self.io_timeout)
            self.received += line
            if not line.endswith(b"\n"):
                await self.hang_up()
                return count
            command = line[:-1].decode()
            self.commands.append(command)
            reply = respond(command)
            if not isinstance(reply, bytes):
                reply = await reply
            await self.send(reply)
            count += 1

    async def hang_up(self) -> None:
        """Close our side, as Asterisk does when the AGI call ends abruptly."""
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def wait_server_close(self) -> bytes:
        """Wait for EOF from the server; return whatever it still sent.

        Then close our side too, as Asterisk does once the AGI server is gone.
        """
        assert self._reader is not None, "connect() first"
        try:
            rest = await asyncio.wait_for(self._reader.read(), self.io_timeout)
        finally:
            await self.hang_up()
        self.received += rest
        return rest

    async def close(self) -> None:
        await self.hang_up()

    async def __aenter__(self) -> FakeAsterisk:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()
