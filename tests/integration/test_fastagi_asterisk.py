"""Our FastAGI server against the real sandbox Asterisk 22.

The sandbox dialplan (callcenterd/sandbox/conf/extensions.conf, [ivr]) runs
``AGI(agi://127.0.0.1:${CC_AGI_PORT}/ivr,first arg,second)`` on 500 and
``.../hangup-test`` on 501, then reports ``UserEvent(AGIResult, ...)``.  The
"customer" is the ;1 half of a Local/5xx@ivr/n Originate: it presses keys
([customer-script] with SendDTMF) or hangs up after ``Wait(n)``.  We drive
the calls over our own AMI session and read the outcome from AMI events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator

import pytest

from callcenterd.protocols.agi.server import (
    AgiCommandFailed,
    AgiError,
    AgiHangup,
    AgiSession,
    FastAgiServer,
)
from callcenterd.protocols.ami.codec import Message
from callcenterd.protocols.ami.session import AmiSession
from callcenterd.protocols.errors import ConnectionLost
from callcenterd.sandbox.asterisk import SandboxAsterisk

pytestmark = pytest.mark.asterisk

CALL_WAIT = 10.0  # one IVR call end to end
IDLE_WAIT = 5.0
PROMPT = "vm-intro"  # ~5.7 s (en_US_f_Allison/vm-intro.gsm, 9339 bytes of 33-byte/20 ms GSM)


def _channel_count(asterisk: SandboxAsterisk) -> int:
    out = asterisk.cli("core show channels count")
    match = re.search(r"(\d+) active channels?", out)
    assert match, f"unexpected CLI output: {out!r}"
    return int(match.group(1))


@pytest.fixture(autouse=True)
def hang_up_everything(asterisk: SandboxAsterisk) -> Iterator[None]:
    if not asterisk.is_running():
        asterisk.start()
    yield
    if not asterisk.is_running():
        return
    asterisk.cli("channel request hangup all")
    deadline = time.monotonic() + IDLE_WAIT
    while _channel_count(asterisk) and time.monotonic() < deadline:
        time.sleep(0.1)


class AmiEvents:
    """Our AMI session plus every event it received, waitable."""

    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.events: list[Message] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for msg in self.session.events():
            self.events.append(msg)
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = CALL_WAIT,
                       what: str = "event"):
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(predicate)
            except TimeoutError:
                pytest.fail(f"{what} not seen within {timeout}s; last events "
                            f"{[m.name for m in self.events[-30:]]}")
        return predicate()

    def user_events(self, name: str) -> list[Message]:
        return [m for m in self.events if m.name == "UserEvent" and m.get("UserEvent") == name]


@contextlib.asynccontextmanager
async def ami(asterisk: SandboxAsterisk):
    session = await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user,
                                       asterisk.ami_secret, keepalive_interval=None)
    events = AmiEvents(session)
    try:
        yield events
    finally:
        await session.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(events._task, 2.0)


@contextlib.asynccontextmanager
async def agi_server(asterisk: SandboxAsterisk, handler):
    """Our server where the sandbox dialplan's CC_AGI_PORT points."""
    server = FastAgiServer(handler, asterisk.agi_host, asterisk.agi_port, command_timeout=10.0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def _wait_idle(server: FastAgiServer, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while server.session_count:
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------- IVR
async def test_ivr_collects_dtmf_sent_by_the_caller_and_sets_the_choice(asterisk):
    seen: dict[str, object] = {}
    done = asyncio.Event()

    async def ivr(agi: AgiSession) -> None:
        try:
            seen["script"], seen["args"], seen["channel"] = agi.script, agi.args, agi.channel
            await agi.answer()
            seen["ticket"] = await agi.get_variable("CC_TICKET")  # set by the dialplan
            seen["unset"] = await agi.get_variable("CC_IT_NEVER_SET")
            seen["digits"] = await agi.get_data("beep", 5000, 4)
            await agi.set_variable("IVR_CHOICE", seen["digits"][0])
            seen["state"] = await agi.channel_status()
        finally:
            done.set()

    async with agi_server(asterisk, ivr) as server, ami(asterisk) as calls:
        # the customer: ;1 half in [customer-script] presses 1 2 3 # after 1.5 s
        await calls.session.action("Originate", [
            ("Channel", "Local/500@ivr/n"), ("Context", "customer-script"), ("Exten", "s"),
            ("Priority", "1"), ("Timeout", "10000"), ("CallerID", '"Caller" <5551234>'),
            ("Variable", "CC_DTMF=123#"), ("Variable", "CC_DTMF_DELAY=1.5"),
            ("Variable", "CC_HOLD=5"), ("Async", "true")])
        result = await calls.wait_for(lambda: calls.user_events("AGIResult"),
                                      what="UserEvent AGIResult")
        assert done.is_set()
        assert seen["script"] == "ivr"
        assert seen["args"] == ["first arg", "second"]
        assert seen["ticket"] == "T-5678"
        assert seen["unset"] is None
        assert seen["digits"] == ("123", False)  # '#' ends input and is not returned
        assert seen["state"] == 6  # AST_STATE_UP
        # the dialplan sees what the handler set, after the AGI returned
        assert result[0].get("AGISTATUS") == "SUCCESS"
        assert result[0].get("IVR_CHOICE") == "123"
        # the same digits as AMI saw them on the AGI channel
        digits = "".join(m.get("Digit") for m in calls.events
                         if m.name == "DTMFEnd" and m.get("Channel") == seen["channel"]
                         and m.get("Direction") == "Received")
        assert digits == "123#"
        await _wait_idle(server)


# -------------------------------------------------------- caller hangs up
async def test_caller_hangup_during_stream_file_ends_the_session_and_server_keeps_serving(asterisk):
    outcomes: list[dict[str, object]] = []
    sessions: list[AgiSession] = []

    async def handler(agi: AgiSession) -> None:
        sessions.append(agi)
        record: dict[str, object] = {"channel": agi.channel}
        outcomes.append(record)
        if len(outcomes) == 2:  # the second call: a short, normal session
            await agi.answer()
            record["ticket"] = await agi.get_variable("CC_TICKET")
            return
        await agi.answer()
        started = time.monotonic()
        try:
            await agi.stream_file(PROMPT, timeout=15)
        except (AgiError, ConnectionLost) as exc:
            record["first"] = exc
        record["interrupted_after"] = time.monotonic() - started
        try:
            await agi.stream_file(PROMPT, timeout=15)
        except (AgiError, ConnectionLost) as exc:
            record["second"] = exc
        record["hung_up_flag"] = agi.hung_up
        # GET VARIABLE still works on a dead channel (res_agi.c: dead-safe)
        record["status"] = await agi.get_variable("AGISTATUS")
        # let the server see the hangup exception, as a real flow would
        await agi.stream_file("beep", timeout=5)

    async with agi_server(asterisk, handler) as server, ami(asterisk) as calls:
        # the customer answers, stays 1 s, hangs up: mid-prompt (~5.7 s long)
        await calls.session.action("Originate", [
            ("Channel", "Local/501@ivr/n"), ("Application", "Wait"), ("Data", "1"),
            ("Timeout", "10000"), ("CallerID", '"Caller" <5554321>'), ("Async", "true")])
        async with asyncio.timeout(CALL_WAIT):
            while not (sessions and sessions[0].closed):
                await asyncio.sleep(0.05)
        first = outcomes[0]
        assert isinstance(first.get("first"), (AgiCommandFailed, AgiHangup, ConnectionLost)), first
        assert first["interrupted_after"] < 4.0, "STREAM FILE played on after the caller left"
        assert isinstance(first.get("second"), AgiHangup), first  # 511 on the dead channel
        assert first["hung_up_flag"] is True
        assert first["status"] is None  # AGISTATUS is set only once the AGI returns
        await _wait_idle(server)

        # the same server takes the next call
        await calls.session.action("Originate", [
            ("Channel", "Local/501@ivr/n"), ("Application", "Wait"), ("Data", "5"),
            ("Timeout", "10000"), ("Async", "true")])
        result = await calls.wait_for(
            lambda: [m for m in calls.user_events("AGIResult") if m.get("AGISTATUS") == "SUCCESS"],
            what="AGIResult SUCCESS of the second call")
        assert len(outcomes) == 2 and outcomes[1]["channel"] != first["channel"]
        assert result
        await _wait_idle(server)
        assert sessions[1].closed
