"""FastAgiServer / AgiSession against a fake Asterisk: failures and edge cases."""

import asyncio
import contextlib

import pytest
import structlog

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.agi import (
    AgiCommandError,
    AgiCommandFailed,
    AgiError,
    AgiHangup,
    AgiSession,
    FastAgiServer,
)
from callcenterd.protocols.agi.server import read_environment
from callcenterd.protocols.errors import ConnectionLost, ProtocolError, Timeout
from tests.fakes.agi_client import (
    HANGUP,
    R511,
    FakeAsterisk,
    Step,
    env_block,
    ok,
    usage_520,
)


@contextlib.asynccontextmanager
async def serving(handler, **options):
    server = FastAgiServer(handler, port=0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class Recorder:
    """A handler running ``flow``; every session's return value or exception
    lands in a queue the test reads."""

    def __init__(self, flow=None):
        self.flow = flow or (lambda session: asyncio.sleep(0))
        self.outcomes: asyncio.Queue = asyncio.Queue()
        self.started = 0

    async def __call__(self, session: AgiSession) -> None:
        self.started += 1
        try:
            result = await self.flow(session)
        except BaseException as exc:
            self.outcomes.put_nowait((session, exc))
            raise
        self.outcomes.put_nowait((session, result))

    async def next(self, timeout: float = 2.0):
        return await asyncio.wait_for(self.outcomes.get(), timeout)


async def until(condition, timeout: float = 2.0) -> None:
    """Poll ``condition()`` (the machine is small and noisy: no fixed sleeps)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def dial():
    """``await dial(server, **env)``: a fake Asterisk call that has sent its
    environment.  Every fake is hung up at teardown."""
    fakes: list[FakeAsterisk] = []

    async def connect(server, **env) -> FakeAsterisk:
        fake = await FakeAsterisk(server.port).connect()
        fakes.append(fake)
        await fake.send(env_block(port=server.port, **env))
        return fake

    yield connect
    for fake in fakes:
        await fake.hang_up()


# ------------------------------------------------------------ environment
async def test_env_is_exposed_and_port_zero_binds(dial):
    async def flow(s):
        return (s.script, s.request, s.args, s.channel, s.uniqueid, s.callerid, s.calleridname,
                s.extension, s.context, s.env["agi_accountcode"])

    rec = Recorder(flow)
    async with serving(rec) as server:
        assert server.port not in (0, 4573)
        fake = await dial(server, script="sales", args=["first arg", "", "third  with  spaces"],
                             channel="PJSIP/trunk-0000001", uniqueid="1700000000.7")
        _, result = await rec.next()
        assert await fake.wait_server_close() == b""  # handler returned: server closes
    assert result == ("sales", f"agi://127.0.0.1:{server.port}/sales", ["first arg", "", "third  with  spaces"],
                      "PJSIP/trunk-0000001", "1700000000.7", "5551234", "Caller", "500", "ivr", "")


async def test_eof_during_env_never_starts_a_handler_and_server_keeps_serving(dial):
    rec = Recorder()
    async with serving(rec) as server:
        fake = await FakeAsterisk(server.port).connect()
        await fake.send(env_block()[:100])
        await fake.hang_up()
        await asyncio.sleep(0.05)
        assert rec.started == 0 and server.session_count == 0
        good = await dial(server)
        await rec.next()
        assert await good.wait_server_close() == b""
    assert rec.started == 1


async def test_oversize_env_is_refused():
    rec = Recorder()
    async with serving(rec, env_max_bytes=1024) as server:
        fake = await FakeAsterisk(server.port).connect()
        await fake.send(b"".join(b"agi_arg_%d: %s\n" % (i, b"x" * 50) for i in range(1, 40)))
        assert await fake.wait_server_close() == b""
        assert rec.started == 0


async def test_env_line_without_newline_beyond_the_read_limit_is_refused():
    rec = Recorder()
    async with serving(rec) as server:
        fake = await FakeAsterisk(server.port).connect()
        with contextlib.suppress(ConnectionError):
            await fake.send(b"agi_arg_1: " + b"y" * 40_000)
        with contextlib.suppress(ConnectionError):
            assert await fake.wait_server_close() == b""
        assert rec.started == 0


async def test_slow_env_times_out():
    rec = Recorder()
    async with serving(rec, env_timeout=0.2) as server:
        fake = await FakeAsterisk(server.port).connect()
        await fake.send(b"agi_network: yes\n")  # ...and then nothing
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await fake.wait_server_close() == b""
        assert 0.15 < loop.time() - t0 < 1.5
        assert rec.started == 0


async def test_garbage_env_is_refused():
    rec = Recorder()
    async with serving(rec) as server:
        fake = await FakeAsterisk(server.port).connect()
        await fake.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await fake.wait_server_close() == b""
        assert rec.started == 0


# ---------------------------------------------------------------- EOF / loss
async def test_eof_mid_command_ends_the_session_cleanly(dial):
    rec = Recorder(lambda s: s.stream_file("welcome"))
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step('STREAM FILE welcome ""', eof=True)])
        session, exc = await rec.next()
        assert isinstance(exc, ConnectionLost)
        await until(lambda: server.session_count == 0)
        assert session.closed
        assert session._reader_task.done()  # the reader stopped at EOF: no spinning


async def test_eof_in_the_middle_of_a_reply_line(dial):
    rec = Recorder(lambda s: s.get_variable("X"))
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step("GET VARIABLE X", reply=b"200 resu", eof=True)])
        _, exc = await rec.next()
        assert isinstance(exc, ConnectionLost)


async def test_eof_while_idle_is_noticed_without_a_command(dial):
    gone = asyncio.Event()

    async def flow(s):
        await s.wait_closed()
        gone.set()
        await s.answer()  # the next command fails fast

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await until(lambda: server.session_count == 1)
        await fake.hang_up()
        _, exc = await rec.next()
        assert gone.is_set() and isinstance(exc, ConnectionLost)


async def test_eof_on_one_session_leaves_three_others_working(dial):
    async def flow(s):
        values = []
        for i in range(5):
            values.append(await s.get_variable(f"V{i}"))
            await asyncio.sleep(0.01)
        return values

    rec = Recorder(flow)
    async with serving(rec) as server:
        fakes = [await dial(server, uniqueid=f"1.{n}") for n in range(4)]
        await until(lambda: server.session_count == 4)

        def answer(command):
            return ok(1, f"{command.split()[-1]}-value")

        workers = [asyncio.create_task(f.serve(answer)) for f in fakes[1:]]
        await fakes[0].play([Step("GET VARIABLE V0", eof=True)])
        outcomes = {}
        for _ in range(4):
            session, result = await rec.next()
            outcomes[session.uniqueid] = result
        assert await asyncio.gather(*workers) == [5, 5, 5]
    assert isinstance(outcomes.pop("1.0"), ConnectionLost)
    assert outcomes == {f"1.{n}": [f"V{i}-value" for i in range(5)] for n in (1, 2, 3)}


# --------------------------------------------------------------- bad replies
async def test_garbage_reply_is_a_protocol_error_and_closes_the_session(dial):
    rec = Recorder(lambda s: s.answer())
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step("ANSWER", reply=b"hello there\n")])
        session, exc = await rec.next()
        assert isinstance(exc, ProtocolError) and session.closed
        assert await fake.wait_server_close() == b""


async def test_unsolicited_reply_while_idle_closes_the_session(dial):
    async def flow(s):
        await s.wait_closed()
        await s.answer()

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.send(ok(0))
        _, exc = await rec.next()
        assert isinstance(exc, ConnectionLost)
        assert await fake.wait_server_close() == b""


async def test_520_usage_block_then_the_session_goes_on(dial):
    async def flow(s):
        with pytest.raises(AgiCommandError) as err:
            await s.command("SAY NUMBER")
        assert isinstance(err.value, AgiError)
        return err.value.code, err.value.usage, await s.say_number(42)

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        help_text = ["Say a given number, returning early if any of the given DTMF digits are received.",
                     "  <literal>-1</literal> on error/hangup."]
        await fake.play([Step("SAY NUMBER", usage_520(*help_text)),
                         Step('SAY NUMBER 42 ""', ok(0))])
        _, result = await rec.next()
    code, usage, said = result
    assert code == 520 and said == ""
    assert usage.splitlines() == ["Invalid command syntax.  Proper usage follows:", *help_text,
                                  "End of proper usage."]


async def test_hangup_line_then_511(dial):
    async def flow(s):
        assert not s.hung_up
        with pytest.raises(AgiHangup) as err:
            await s.stream_file("beep")
        return s.hung_up, err.value.reply.code

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step('STREAM FILE beep ""', HANGUP + R511)])
        _, result = await rec.next()
    assert result == (True, 511)


async def test_minus_one_after_hangup_is_a_hangup_not_a_failure(dial):
    async def flow(s):
        with pytest.raises(AgiHangup):
            await s.wait_for_digit(1000)
        return s.hung_up

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step("WAIT FOR DIGIT 1000", HANGUP + ok(-1))])
        assert (await rec.next())[1] is True


async def test_hangup_line_while_idle_sets_hung_up(dial):
    async def flow(s):
        for _ in range(100):
            if s.hung_up:
                return await s.get_variable("AGISTATUS")
            await asyncio.sleep(0.01)
        return "never hung up"

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.send(HANGUP)
        await fake.play([Step("GET VARIABLE AGISTATUS", ok(1, "HANGUP"))])
        assert (await rec.next())[1] == "HANGUP"


# ---------------------------------------------------------- argument safety
async def test_values_with_spaces_quotes_and_backslashes_arrive_as_one_argument(dial):
    value = 'Dear "VIP" \\ customer,  welcome'

    async def flow(s):
        await s.set_variable("GREETING", value)
        await s.exec("Playback", "custom/hello world", "noanswer")
        await s.verbose(value, 3)

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step(None, ok(1)), Step(None, ok(0)), Step(None, ok(1))])
        await rec.next()
    assert [fake.argv(c) for c in fake.commands] == [
        ["SET", "VARIABLE", "GREETING", value],
        ["EXEC", "Playback", "custom/hello world,noanswer"],
        ["VERBOSE", value, "3"],
    ]


@pytest.mark.parametrize("bad", ["evil\nEXEC System rm", "a\rb", "nul\x00"])
async def test_cr_lf_nul_are_refused_before_anything_is_sent(bad, dial):
    async def flow(s):
        refused = []
        for attempt in (lambda: s.set_variable("X", bad), lambda: s.get_variable(bad),
                        lambda: s.stream_file(bad), lambda: s.command(f"VERBOSE {bad}"),
                        lambda: s.exec("NoOp", bad)):
            with pytest.raises(UnsafeValue):
                await attempt()
            refused.append(True)
        with pytest.raises(UnsafeValue):  # res_agi.c AGI_BUF_LEN: would be split in two
            await s.verbose("x" * 3000)
        await s.answer()
        return len(refused)

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([Step("ANSWER", ok(0))])
        assert (await rec.next())[1] == 5
        assert await fake.wait_server_close() == b""
    assert bytes(fake.received) == b"ANSWER\n"


# --------------------------------------------------------- typed results
async def test_get_data_variants(dial):
    async def flow(s):
        return [await s.get_data("enter-account"), await s.get_data("pin", max_digits=4),
                await s.get_data("pin", 3000, 6), await s.get_data("pin", 3000)]

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([
            Step("GET DATA enter-account", ok("0123")),  # leading zero kept
            Step("GET DATA pin 0 4", ok("12*")),
            Step("GET DATA pin 3000 6", ok("12", "timeout")),
            Step("GET DATA pin 3000", ok("", "timeout")),  # handle_getdata(): "200 result= (timeout)"
        ])
        assert (await rec.next())[1] == [("0123", False), ("12*", False), ("12", True), ("", True)]


async def test_digits_and_failures(dial):
    async def flow(s):
        out = [await s.stream_file("menu", "123#"), await s.wait_for_digit(5000),
               await s.say_digits("4711"), await s.channel_status()]
        with pytest.raises(AgiCommandFailed):
            await s.exec("NoSuchApp")
        with pytest.raises(ValueError):
            await s.stream_file("menu", "x")
        await s.set_music(True, "default")
        await s.set_music(False)
        await s.set_context("support")
        await s.set_extension("s")
        await s.set_priority(1)
        await s.hangup("PJSIP/agent-0001")
        return out

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        await fake.play([
            Step('STREAM FILE menu "123#"', ok(ord("2"), endpos=1600)),
            Step("WAIT FOR DIGIT 5000", ok(0)),
            Step('SAY DIGITS 4711 ""', ok(ord("#"))),
            Step("CHANNEL STATUS", ok(6)),
            Step("EXEC NoSuchApp", ok(-2)),
            Step("SET MUSIC on default", ok(0)),
            Step("SET MUSIC off", ok(0)),
            Step("SET CONTEXT support", ok(0)),
            Step("SET EXTENSION s", ok(0)),
            Step("SET PRIORITY 1", ok(0)),
            Step("HANGUP PJSIP/agent-0001", ok(1)),
        ])
        session, result = await rec.next()
    assert result == ["2", "", "#", 6]


async def test_concurrent_commands_on_one_session_are_serialised(dial):
    async def flow(s):
        return await asyncio.gather(*(s.get_variable(f"V{i}") for i in range(5)))

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        worker = asyncio.create_task(fake.serve(lambda c: ok(1, c.split()[-1].lower())))
        assert (await rec.next())[1] == ["v0", "v1", "v2", "v3", "v4"]
        assert await worker == 5


# ------------------------------------------------- timeouts and lifecycle
async def test_command_timeout_closes_the_session(dial):
    async def flow(s):
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(Timeout):
            await s.answer()
        elapsed = asyncio.get_running_loop().time() - t0
        with pytest.raises(ConnectionLost):  # a late reply must never answer this
            await s.get_variable("X")
        return elapsed

    rec = Recorder(flow)
    async with serving(rec, command_timeout=0.2) as server:
        fake = await dial(server)
        assert await fake.read_command() == "ANSWER"  # ... and never answer
        _, elapsed = await rec.next()
        assert 0.15 < elapsed < 1.5
        assert await fake.wait_server_close() == b""


async def test_per_call_timeout_overrides_the_default(dial):
    async def flow(s):
        with pytest.raises(Timeout):
            await s.stream_file("long-prompt", timeout=0.1)

    rec = Recorder(flow)
    async with serving(rec, command_timeout=30) as server:
        fake = await dial(server)
        await fake.read_command()
        _, exc = await rec.next(timeout=1.0)
        assert exc is None


async def test_handler_exception_is_logged_with_the_call_and_others_carry_on(dial):
    async def flow(s):
        if s.uniqueid == "9.1":
            raise RuntimeError("bug in the IVR flow")
        return await s.get_variable("X")

    rec = Recorder(flow)
    with structlog.testing.capture_logs() as logs:
        async with serving(rec) as server:
            bad = await dial(server, uniqueid="9.1", channel="Local/1@ivr-1;2")
            good = await dial(server, uniqueid="9.2")
            await good.play([Step("GET VARIABLE X", ok(1, "fine"))])
            outcomes = {(await rec.next())[0].uniqueid: None for _ in range(2)}
            assert await bad.wait_server_close() == b""
            assert await good.wait_server_close() == b""
    assert set(outcomes) == {"9.1", "9.2"}
    failures = [e for e in logs if e["event"] == "agi handler failed"]
    assert len(failures) == 1
    assert failures[0]["uniqueid"] == "9.1" and failures[0]["channel"] == "Local/1@ivr-1;2"
    assert failures[0]["log_level"] == "error"


async def test_server_close_ends_every_session(dial):
    async def flow(s):
        await s.stream_file("hold-music-forever")

    rec = Recorder(flow)
    server = FastAgiServer(rec, port=0)
    await server.start()
    fakes = [await dial(server, uniqueid=f"2.{n}") for n in range(3)]
    for fake in fakes:
        await fake.read_command()
    assert server.session_count == 3
    await asyncio.wait_for(server.close(), 3)
    assert server.session_count == 0
    for fake in fakes:
        assert await fake.wait_server_close() == b""
    excs = [(await rec.next())[1] for _ in range(3)]
    assert all(isinstance(e, ConnectionLost) for e in excs)
    with pytest.raises(OSError):
        await FakeAsterisk(fakes[0].port).connect()


# ------------------------------------------------- caller data in the env
# res_agi.c setup_env() writes agi_calleridname with %s, unescaped: a name
# holding LF adds lines of its own.  Seen on the real Asterisk pulling another
# call's channel into our bridge.
async def _env_of(raw: bytes) -> "object":
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return await read_environment(reader, 65536)


async def test_a_caller_name_cannot_override_the_channel_whatever_the_key_order():
    forged = env_block(channel="PJSIP/trunk-00000001", uniqueid="1700000000.1",
                       calleridname="Mallory\nagi_channel: PJSIP/victim-00000009\nagi_uniqueid: 1700000000.9")
    env = await _env_of(forged)
    assert env["agi_channel"] == "PJSIP/trunk-00000001" and env["agi_uniqueid"] == "1700000000.1"
    assert env.tampered and set(env.forged) == {"agi_channel", "agi_uniqueid"}
    # the forged line coming FIRST (a key order where the name precedes the
    # channel) still marks the session: the identity must then be verified
    first = b"agi_calleridname: x\nagi_channel: PJSIP/victim-9\n" + env_block(channel="PJSIP/trunk-1")
    env = await _env_of(first)
    assert env.tampered and "agi_channel" in env.forged


async def test_a_stray_line_from_a_caller_name_joins_the_value_and_marks_the_session():
    env = await _env_of(env_block(calleridname="Bob\nhello world"))
    assert env["agi_calleridname"] == "Bob\nhello world"
    assert env.forged == ["agi_calleridname"]
    assert env["agi_callingpres"] == "0"  # the block goes on after it


async def test_an_honest_environment_is_not_tampered(dial):
    async def flow(s):
        return s.tampered, s.forged

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server)
        _, result = await rec.next()
        assert await fake.wait_server_close() == b""
    assert result == (False, ())


async def test_the_session_reports_the_forged_keys(dial):
    async def flow(s):
        return s.tampered, s.channel

    rec = Recorder(flow)
    async with serving(rec) as server:
        fake = await dial(server, channel="PJSIP/a-1", calleridname="M\nagi_channel: PJSIP/b-2")
        _, result = await rec.next()
        assert await fake.wait_server_close() == b""
    assert result == (True, "PJSIP/a-1")
