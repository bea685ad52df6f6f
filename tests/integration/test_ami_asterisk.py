"""Our AMI client (session + supervisor) against the real sandbox Asterisk 22.

Every call is made of Local channels (callcenterd/sandbox/conf/extensions.conf,
context [agents]): 1XXX answers, 2001 rings forever, 2002 Busy(), 2003
Congestion(), 2004 Hangup(21).  Originate outcomes go through the driver's
pure AmiTranslator, so these tests also pin its reading of real event order.

The sandbox AMI account has the product's least privileges
(dialplan/asterisk/manager_callcenterd.conf: no ``command`` write class), so
the Command test adds a CLI-capable account to this running instance only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callcenterd.pbx.api import LegAnswered, LegHungUp, Outcome, PbxEvent
from callcenterd.pbx.asterisk.translate import AmiTranslator
from callcenterd.protocols.ami.codec import Message
from callcenterd.protocols.ami.session import AmiActionError, AmiSession
from callcenterd.protocols.ami.supervisor import AmiSupervisor, State
from callcenterd.protocols.errors import ConnectionLost, LoginFailed
from callcenterd.sandbox.asterisk import SandboxAsterisk

pytestmark = pytest.mark.asterisk

EVENT_WAIT = 8.0  # longest wait for one call outcome (2001's ring timeout is 1.5 s)
RESTART_WAIT = 60.0  # core restart + reconnect
IDLE_WAIT = 5.0  # channels gone after "channel request hangup all"
NOT_RESENT_WINDOW = 1.5  # how long we watch for a replayed Originate


# ------------------------------------------------------------------ helpers
def _channel_count(asterisk: SandboxAsterisk) -> int:
    out = asterisk.cli("core show channels count")
    match = re.search(r"(\d+) active channels?", out)
    assert match, f"unexpected CLI output: {out!r}"
    return int(match.group(1))


@pytest.fixture(autouse=True)
def hang_up_everything(asterisk: SandboxAsterisk) -> Iterator[None]:
    """Leave the PBX idle for the next test, whatever this one did."""
    if not asterisk.is_running():
        asterisk.start()
    yield
    if not asterisk.is_running():
        return
    asterisk.cli("channel request hangup all")
    deadline = time.monotonic() + IDLE_WAIT
    while _channel_count(asterisk) and time.monotonic() < deadline:
        time.sleep(0.1)


async def _connect(asterisk: SandboxAsterisk, **kwargs) -> AmiSession:
    return await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user,
                                    asterisk.ami_secret, keepalive_interval=None, **kwargs)


def _leg_id(tag: str) -> str:
    return f"cc-it-{tag}-{secrets.token_hex(4)}"


class CallWatcher:
    """Feeds every AMI event of a session to an AmiTranslator and keeps both
    the raw messages and the port events, so a test can wait for either."""

    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.translator = AmiTranslator()
        self.messages: list[Message] = []
        self.port_events: list[PbxEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(), name="test-ami-events")

    async def _pump(self) -> None:
        async for msg in self.session.events():
            self.messages.append(msg)
            self.port_events.extend(self.translator.feed(msg))
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = EVENT_WAIT,
                       what: str = "condition"):
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(predicate)
            except TimeoutError:
                names = [m.name for m in self.messages[-30:]]
                pytest.fail(f"{what} not seen within {timeout}s; port events {self.port_events}, "
                            f"last AMI events {names}")
        return predicate()

    def hung_up(self, leg_id: str) -> LegHungUp | None:
        return next((e for e in self.port_events if isinstance(e, LegHungUp) and e.leg_id == leg_id), None)

    def answered(self, leg_id: str) -> bool:
        return any(isinstance(e, LegAnswered) and e.leg_id == leg_id for e in self.port_events)

    async def originate(self, leg_id: str, channel: str, *, timeout_ms: int = 10_000,
                        app: str = "Wait", data: str = "1",
                        variables: tuple[tuple[str, str], ...] = ()) -> Message:
        """Async Originate the way the driver does it: translator told first,
        our ActionID, ``ChannelId`` = the leg id."""
        action_id = self.session.next_action_id()
        self.translator.originating(action_id, leg_id)
        headers = [("Channel", channel), ("Application", app), ("Data", data),
                   ("Timeout", str(timeout_ms)), ("CallerID", '"Dialer" <7000>'),
                   ("ChannelId", leg_id), ("Async", "true")]
        headers += [("Variable", f"{k}={v}") for k, v in variables]
        return await self.session.action("Originate", headers, action_id=action_id)

    async def close(self) -> None:
        await self.session.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 2.0)


@contextlib.asynccontextmanager
async def watched_session(asterisk: SandboxAsterisk):
    watcher = CallWatcher(await _connect(asterisk))
    try:
        yield watcher
    finally:
        await watcher.close()


# -------------------------------------------------------------------- login
async def test_login_plain_sees_fully_booted_and_ping_works(asterisk):
    session = await _connect(asterisk)
    try:
        assert session.banner and session.banner.startswith("Asterisk Call Manager/")
        # manager.c sends FullyBooted to every session that logs in once booted
        async with asyncio.timeout(3):
            async for event in session.events():
                if event.name == "FullyBooted":
                    break
        pong = await session.action("Ping", timeout=3)
        assert pong.name == "Success"
        assert pong.get("Ping") == "Pong"
    finally:
        await session.close()
    assert session.closed and session.close_reason is None  # we closed it, politely


async def test_login_with_wrong_secret_is_login_failed_without_the_secret(asterisk):
    wrong = f"wrong-{secrets.token_hex(8)}"
    started = time.monotonic()
    with pytest.raises(LoginFailed) as refused:
        await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, wrong,
                                 keepalive_interval=None)
    message = str(refused.value)
    assert "Authentication failed" in message  # Asterisk's own words, passed on
    assert asterisk.ami_user in message
    assert wrong not in message and asterisk.ami_secret not in message
    # manager.c sleeps 1 s before "Authentication failed" (then closes at
    # once); we fail with that reply, not with a login timeout (5 s)
    assert time.monotonic() - started < 3.0


async def test_login_md5_challenge(asterisk):
    session = await _connect(asterisk, md5=True)
    try:
        pong = await session.action("Ping", timeout=3)
        assert pong.get("Ping") == "Pong"
    finally:
        await session.close()


async def test_md5_login_with_wrong_secret_is_login_failed(asterisk):
    wrong = f"wrong-{secrets.token_hex(8)}"
    with pytest.raises(LoginFailed) as refused:
        await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, wrong,
                                 md5=True, keepalive_interval=None)
    assert wrong not in str(refused.value)


# ---------------------------------------------------------------- originate
async def test_originate_answered_then_hung_up_normally(asterisk):
    leg = _leg_id("answer")
    async with watched_session(asterisk) as calls:
        reply = await calls.originate(leg, "Local/1001@agents/n", data="1")
        assert reply.get("Message") == "Originate successfully queued"
        await calls.wait_for(lambda: calls.answered(leg), what=f"LegAnswered({leg})")
        # Wait(1) on our ;1 leg ends, the leg hangs up by itself
        ended = await calls.wait_for(lambda: calls.hung_up(leg), what=f"LegHungUp({leg})")
        assert ended.outcome is Outcome.ANSWERED
        answered_at = next(i for i, e in enumerate(calls.port_events) if isinstance(e, LegAnswered))
        assert answered_at < calls.port_events.index(ended)


@pytest.mark.parametrize(
    ("case", "channel", "timeout_ms", "outcome"),
    [
        ("busy", "Local/2002@agents/n", 10_000, Outcome.BUSY),
        ("congestion", "Local/2003@agents/n", 10_000, Outcome.CONGESTION),
        ("noanswer", "Local/2001@agents/n", 1_500, Outcome.NO_ANSWER),
        # the usual real order is HangupRequest(;1, Cause 21) -> OriginateResponse
        # (Reason 0) -> Hangup(;1): the cause must be kept from the request
        ("rejected", "Local/2004@agents/n", 10_000, Outcome.REJECTED),
        ("noexten", "Local/9999@agents/n", 10_000, Outcome.FAILED),
        ("badtech", "NoSuchTech/foo", 10_000, Outcome.FAILED),
    ],
)
async def test_originate_failure_is_mapped_to_its_outcome(asterisk, case, channel, timeout_ms, outcome):
    leg = _leg_id(case)
    async with watched_session(asterisk) as calls:
        started = time.monotonic()
        # async Originate is "successfully queued" even for NoSuchTech/foo
        reply = await calls.originate(leg, channel, timeout_ms=timeout_ms)
        assert reply.name == "Success"
        ended = await calls.wait_for(lambda: calls.hung_up(leg), what=f"LegHungUp({leg})")
        assert ended.outcome is outcome, f"{case}: {ended}"
        assert not calls.answered(leg)
        response = next(m for m in calls.messages if m.name == "OriginateResponse")
        assert response.get("Response") == "Failure"
        if case == "noanswer":  # the ring timeout, not an earlier failure
            assert time.monotonic() - started >= timeout_ms / 1000 - 0.2
        # exactly one hang-up report, even when the ;1 Hangup comes later
        await asyncio.sleep(0.3)
        assert sum(isinstance(e, LegHungUp) for e in calls.port_events) == 1


# --------------------------------------------------- lists while calls are up
async def _two_calls_up(calls: CallWatcher, marker: str) -> list[str]:
    legs = [_leg_id("up1"), _leg_id("up2")]
    for leg in legs:
        await calls.originate(leg, "Local/1001@agents/n", data="30", variables=(("CC_PROBE", marker),))
    await calls.wait_for(lambda: all(calls.answered(leg) for leg in legs), what="both calls answered")
    return legs


async def test_core_show_channels_lists_the_calls_and_a_ping_interleaves(asterisk):
    marker = secrets.token_hex(4)
    async with watched_session(asterisk) as calls:
        legs = await _two_calls_up(calls, marker)
        (response, items), pong = await asyncio.gather(
            calls.session.action_list("CoreShowChannels", timeout=5),
            calls.session.action("Ping", timeout=5),
        )
        assert response.get("EventList") == "start"
        assert pong.get("Ping") == "Pong"
        assert len(items) >= 4  # two Local pairs
        assert {i.name for i in items} == {"CoreShowChannel"}
        assert set(legs) <= {i.get("Uniqueid") for i in items}
        assert all(i.action_id == response.action_id for i in items)
        # list items never leak into the event stream
        assert not [m for m in calls.messages if m.name == "CoreShowChannel"]


async def test_status_with_variables_returns_variable_lines(asterisk):
    marker = secrets.token_hex(4)
    async with watched_session(asterisk) as calls:
        legs = await _two_calls_up(calls, marker)
        _, items = await calls.session.action_list(
            "Status", [("Variables", "CC_PROBE,CC_NOT_SET")], timeout=5)
        by_leg = {i.get("Uniqueid"): i for i in items if i.name == "Status"}
        assert set(legs) <= set(by_leg)
        for leg in legs:
            variables = by_leg[leg].get_all("Variable")
            assert f"CC_PROBE={marker}" in variables, variables
            assert any(v.startswith("CC_NOT_SET=") for v in variables), variables


async def test_queue_status_list_works(asterisk):
    async with watched_session(asterisk) as calls:
        await _two_calls_up(calls, "q")
        response, items = await calls.session.action_list("QueueStatus", timeout=5)
        assert response.name == "Success"
        assert {i.name for i in items} <= {"QueueParams", "QueueMember", "QueueEntry"}
        queues = {i.get("Queue") for i in items if i.name == "QueueParams"}
        assert "support" in queues  # sandbox queues.conf
        # a queue that does not exist: an empty list, no error
        _, none = await calls.session.action_list("QueueStatus", [("Queue", "nosuchqueue")], timeout=5)
        assert none == []


async def test_command_refused_for_the_least_privileged_account(asterisk):
    """The product account has no ``command`` write class: a clear error."""
    async with watched_session(asterisk) as calls:
        with pytest.raises(AmiActionError, match="Permission denied"):
            await calls.session.command("core show channels", timeout=5)


@pytest.fixture
def cli_account(asterisk: SandboxAsterisk) -> Iterator[tuple[str, str]]:
    """A second AMI account with ``command`` rights, on this instance only
    (the instance's manager.conf is restored afterwards)."""
    conf = Path(asterisk.host_instance_dir) / "etc" / "manager.conf"
    original = conf.read_text()
    user, secret = "cc-it-cli", secrets.token_hex(16)
    conf.write_text(original + f"\n[{user}]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\n"
                    f"permit = 127.0.0.1/255.255.255.255\nread = system,call\n"
                    f"write = command,call,reporting\n")
    asterisk.cli("manager reload")
    try:
        yield user, secret
    finally:
        conf.write_text(original)
        asterisk.cli("manager reload")


async def test_command_returns_output_lines(asterisk, cli_account):
    user, secret = cli_account
    operator = await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, user, secret,
                                        keepalive_interval=None)
    try:
        async with watched_session(asterisk) as calls:
            legs = await _two_calls_up(calls, "cmd")
            lines = await operator.command("core show channels", timeout=5)
            text = "\n".join(lines)
            assert any(re.match(r"\d+ active channels?", line) for line in lines), text
            active = int(re.search(r"(\d+) active channel", text).group(1))
            assert active >= 4
            assert text.count("Local/1001@agents-") >= 4
            calls_line = await operator.command("core show channels concise", timeout=5)
            assert set(legs) <= {line.split("!")[-1] for line in calls_line if line}
            with pytest.raises(AmiActionError):
                await operator.command("no such cli command", timeout=5)
    finally:
        await operator.close()


# ------------------------------------------------------------- supervisor
async def _local_2001_channels(asterisk: SandboxAsterisk) -> set[str]:
    out = await asyncio.to_thread(asterisk.cli, "core show channels concise")
    names = (line.split("!")[0] for line in out.splitlines())
    return {n for n in names if n.startswith("Local/2001@agents-") and n.endswith(";1")}


async def test_supervisor_reconnects_after_core_restart_and_never_replays(asterisk):
    sessions: list[AmiSession] = []
    refused_while_down: list[BaseException] = []
    disconnected = asyncio.Event()

    async def on_connected(session: AmiSession) -> None:
        sessions.append(session)

    async def on_disconnected(reason: BaseException | None) -> None:
        # while DISCONNECTED an action fails at once, it is not queued
        try:
            await supervisor.action("Ping", timeout=1)
        except ConnectionLost as exc:
            refused_while_down.append(exc)
        disconnected.set()

    supervisor = AmiSupervisor(
        asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret,
        on_connected=on_connected, on_disconnected=on_disconnected, on_event=lambda m: None,
        backoff_initial=0.2, backoff_max=1.0, keepalive_interval=None, connect_timeout=2.0)
    supervisor.start()
    try:
        await supervisor.wait_state(State.CONNECTED, timeout=10)
        first = supervisor.session
        assert first is not None and sessions == [first]

        # A synchronous Originate of a never-answering agent is in flight in
        # Asterisk's manager thread when the restart begins.
        leg = _leg_id("inflight")
        in_flight = asyncio.create_task(supervisor.action(
            "Originate", [("Channel", "Local/2001@agents/n"), ("Application", "Wait"),
                          ("Data", "1"), ("Timeout", "30000"), ("ChannelId", leg),
                          ("Async", "false")], timeout=40))
        deadline = time.monotonic() + 5
        while not await _local_2001_channels(asterisk):
            assert time.monotonic() < deadline, "the in-flight Originate never rang"
            await asyncio.sleep(0.1)

        restart = asyncio.create_task(asyncio.to_thread(asterisk.restart_core))
        # Asterisk 22 hangs up every channel and answers what it can before it
        # re-execs ("Originate failed"); either way the action FAILS.
        with pytest.raises((ConnectionLost, AmiActionError)):
            await asyncio.wait_for(in_flight, 15)
        await asyncio.wait_for(disconnected.wait(), 15)
        assert refused_while_down and "disconnected" in str(refused_while_down[0])
        await asyncio.wait_for(restart, RESTART_WAIT)

        async with asyncio.timeout(RESTART_WAIT):
            while not (supervisor.state is State.CONNECTED and len(sessions) == 2):
                await asyncio.sleep(0.05)
        second = supervisor.session
        assert second is not None and second is not first and first.closed
        assert isinstance(first.close_reason, ConnectionLost)
        assert supervisor.connects == 2

        pong = await supervisor.action("Ping", timeout=5)
        assert pong.get("Ping") == "Pong"
        _, channels = await supervisor.action_list("CoreShowChannels", timeout=5)
        assert leg not in {c.get("Uniqueid") for c in channels}
        # and it stays that way: nothing re-dials the in-flight Originate
        await asyncio.sleep(NOT_RESENT_WINDOW)
        assert await _local_2001_channels(asterisk) == set()
    finally:
        await supervisor.stop()
    assert supervisor.state is State.STOPPED


def _asterisk_pid(asterisk: SandboxAsterisk) -> int:
    """The sandbox Asterisk's pid (started by this test session), checked
    against its command line so we never signal anything else."""
    proc = getattr(asterisk, "_proc", None)
    if proc is None or proc.poll() is not None:
        pytest.fail("sandbox Asterisk is not running")
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert asterisk.asterisk_conf.encode() in cmdline, cmdline
    return proc.pid


async def test_action_pending_when_the_connection_dies_fails_and_is_not_resent(asterisk):
    """A frozen Asterisk (SIGSTOP) never answers: the keepalive declares the
    connection dead, the pending Originate fails with ConnectionLost, and the
    supervisor reconnects without re-sending it.  Asterisk had the bytes
    already, so after SIGCONT it dials exactly ONCE: the reason we never replay.
    """
    sessions: list[AmiSession] = []

    async def on_connected(session: AmiSession) -> None:
        sessions.append(session)

    supervisor = AmiSupervisor(
        asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret,
        on_connected=on_connected, on_event=lambda m: None, backoff_initial=0.2, backoff_max=1.0,
        keepalive_interval=0.5, keepalive_deadline=0.5, connect_timeout=2.0)
    supervisor.start()
    pid = _asterisk_pid(asterisk)
    stopped = False
    try:
        await supervisor.wait_state(State.CONNECTED, timeout=10)
        os.kill(pid, signal.SIGSTOP)
        stopped = True
        # no ChannelId: a replay would create a second, distinct Local/2001 pair
        with pytest.raises(ConnectionLost, match="not answered"):
            await supervisor.action(
                "Originate", [("Channel", "Local/2001@agents/n"), ("Application", "Wait"),
                              ("Data", "1"), ("Timeout", "5000"), ("Async", "true")], timeout=10)
        os.kill(pid, signal.SIGCONT)
        stopped = False

        async with asyncio.timeout(15):
            while not (supervisor.state is State.CONNECTED and len(sessions) == 2):
                await asyncio.sleep(0.05)
        assert (await supervisor.action("Ping", timeout=5)).get("Ping") == "Pong"

        seen: set[str] = set()
        deadline = time.monotonic() + NOT_RESENT_WINDOW
        while time.monotonic() < deadline:
            seen |= await _local_2001_channels(asterisk)
            await asyncio.sleep(0.1)
        assert len(seen) == 1, f"the Originate was dialled {len(seen)} times: {seen}"
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        await supervisor.stop()
