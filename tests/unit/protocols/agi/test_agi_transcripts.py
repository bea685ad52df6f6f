"""Replay the real Asterisk 22 FastAGI captures against FastAgiServer.

The fake plays the ``A>`` side byte for byte; the handler issues the same
commands through the typed API.  The server must send exactly the ``S>``
bytes, read the same results and close the socket at the end (Asterisk
does not: fastagi-ivr.md).
"""

import asyncio
import contextlib
from pathlib import Path

from callcenterd.protocols.agi import (
    AgiCommandError,
    AgiCommandFailed,
    AgiHangup,
    AgiSession,
    FastAgiServer,
)
from tests.fakes.agi_client import FakeAsterisk, load_transcript

FIXTURES = Path("/work/shared/fixtures/asterisk-22")
if not FIXTURES.is_dir():
    FIXTURES = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "asterisk-22"


@contextlib.asynccontextmanager
async def running(handler):
    server = FastAgiServer(handler, port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def replay(name, flow):
    """Run ``flow(session, seen)`` against the capture; return (seen, fake, transcript)."""
    transcript = load_transcript(FIXTURES / name)
    seen: list = []
    finished = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        try:
            await flow(session, seen)
        except BaseException as exc:  # make a failing flow visible to the test
            seen.append(("handler raised", repr(exc)))
            raise
        finally:
            finished.set()

    async with running(handler) as server:
        fake = await FakeAsterisk(server.port).connect()
        await fake.send(transcript.env)
        await fake.play(transcript.steps)
        assert await fake.wait_server_close() == b"", "server sent more than the capture"
        await asyncio.wait_for(finished.wait(), 2)
        assert server.session_count == 0
    return seen, fake, transcript


async def test_replay_fastagi_ivr():
    async def flow(s: AgiSession, seen: list) -> None:
        seen.append(("env", s.script, s.request, s.args, s.channel, s.uniqueid, s.callerid,
                     s.calleridname, s.extension, s.context))
        seen.append(("answer", await s.answer()))
        seen.append(("verbose", await s.verbose("callcenterd fixture IVR started", 1)))
        seen.append(("get CC_TICKET", await s.get_variable("CC_TICKET")))
        seen.append(("get DOES_NOT_EXIST", await s.get_variable("DOES_NOT_EXIST")))
        seen.append(("full", await s.get_full_variable("${CALLERID(num)}-${CC_TICKET}")))
        seen.append(("stream", await s.stream_file("hello-world")))
        seen.append(("get data", await s.get_data("beep", 8000, 4)))
        seen.append(("set", await s.set_variable("IVR_CHOICE", "123")))
        seen.append(("get IVR_CHOICE", await s.get_variable("IVR_CHOICE")))
        seen.append(("status", await s.channel_status()))
        seen.append(("exec", await s.exec("NoOp", "fastagi was here")))
        try:
            await s.stream_file("this-file-does-not-exist")
        except AgiCommandFailed as exc:
            seen.append(("missing file", exc.reply.result, exc.reply.endpos))
        try:
            await s.command("NO SUCH COMMAND")
        except AgiCommandError as exc:
            seen.append(("unknown", exc.code, exc.usage))
        try:
            await s.command("STREAM FILE")
        except AgiCommandError as exc:
            seen.append(("usage", exc.code, exc.usage.splitlines()[0], exc.usage.splitlines()[-1]))
        seen.append(("hangup", await s.hangup(), s.hung_up))
        seen.append(("get after hangup", await s.get_variable("IVR_CHOICE"), s.hung_up))
        try:
            await s.stream_file("beep")
        except AgiHangup as exc:
            seen.append(("dead", exc.reply.code))

    seen, fake, transcript = await replay("fastagi-ivr.txt", flow)
    assert seen == [
        ("env", "ivr", "agi://127.0.0.1:4573/ivr", ["first arg", "second"], "Local/500@ivr-00000029;2",
         "1795396201.83", "5551234", "Caller", "500", "ivr"),
        ("answer", None),
        ("verbose", None),
        ("get CC_TICKET", "T-5678"),
        ("get DOES_NOT_EXIST", None),
        ("full", "5551234-T-5678"),
        ("stream", ""),
        ("get data", ("123", False)),
        ("set", None),
        ("get IVR_CHOICE", "123"),
        ("status", 6),
        ("exec", 0),
        ("missing file", -1, 0),
        ("unknown", 510, ""),
        ("usage", 520, "Invalid command syntax.  Proper usage follows:", "End of proper usage."),
        ("hangup", None, False),
        ("get after hangup", "123", True),  # the HANGUP line came first
        ("dead", 511),
    ]
    assert bytes(fake.received) == transcript.server_bytes


async def test_replay_fastagi_caller_hangup():
    async def flow(s: AgiSession, seen: list) -> None:
        seen.append(("env", s.script, s.args, s.channel, s.uniqueid, s.callerid))
        await s.answer()
        try:
            await s.stream_file("vm-intro")
        except AgiCommandFailed as exc:  # -1 arrives before Asterisk says HANGUP
            seen.append(("interrupted", exc.reply.result, exc.reply.endpos, s.hung_up))
        try:
            await s.stream_file("vm-intro")
        except AgiHangup as exc:
            seen.append(("hangup seen", exc.reply.code, s.hung_up))
        seen.append(("AGISTATUS", await s.get_variable("AGISTATUS")))
        try:
            await s.stream_file("beep")
        except AgiHangup:
            seen.append(("still dead",))
        raise AgiHangup("flows end like this when the caller is gone")

    seen, fake, transcript = await replay("fastagi-caller-hangup.txt", flow)
    assert seen == [
        ("env", "hangup-test", [], "Local/501@ivr-0000002a;2", "1795396210.85", "5554321"),
        ("interrupted", -1, 20000, False),
        ("hangup seen", 511, True),
        ("AGISTATUS", None),
        ("still dead",),
        ("handler raised", "AgiHangup('flows end like this when the caller is gone')"),
    ]
    assert bytes(fake.received) == transcript.server_bytes
