"""EslSession and EslSupervisor against the capture-built fake FreeSWITCH."""

import asyncio
from collections import Counter

import pytest

from callcenterd.pbx.api import CommandFailed, UnsafeValue
from callcenterd.protocols.errors import ConnectionLost, LoginFailed, ProtocolError, Timeout
from callcenterd.protocols.esl.session import EslSession, RudeRejection
from callcenterd.protocols.esl.supervisor import EslSupervisor, SupervisorState
from tests.fakes.esl_server import SHUTDOWN, FakeFreeSwitch, captured_events, originate_uuid_map


@pytest.fixture
async def fs():
    async with FakeFreeSwitch() as server:
        yield server


async def _connect(fs, **kw):
    kw.setdefault("keepalive_interval", 0)
    kw.setdefault("command_timeout", 2.0)
    return await EslSession.connect("127.0.0.1", fs.port, "ClueCon", **kw)


async def _collect(session, n, timeout=2.0):
    out = []
    async with asyncio.timeout(timeout):
        async for ev in session.events():
            out.append(ev)
            if len(out) == n:
                break
    return out


async def test_auth_and_api_bodies_verbatim(fs):
    s = await _connect(fs)
    try:
        status = await s.api("status")
        assert status.startswith("UP 0 years") and status.endswith("Current Stack Size/Max 240K/8192K\n")
        assert await s.api("expr 2+3*4") == "14"  # no trailing newline, as captured
        assert await s.api("db insert/realm/k2/v2") == "+OK"
        assert await s.api("global_getvar switchname") == "-ERR no reply\n"  # -ERR body returned, not raised
        assert fs.commands()[:2] == ["auth ***", "event json BACKGROUND_JOB"]
    finally:
        await s.close()
    assert fs.commands()[-1] == "exit"


async def test_wrong_password_is_login_failed_without_the_password(fs):
    with pytest.raises(LoginFailed) as err:
        await EslSession.connect("127.0.0.1", fs.port, "WrongPassword", keepalive_interval=0)
    assert "WrongPassword" not in str(err.value)
    assert "-ERR invalid" in str(err.value)
    assert not isinstance(err.value, RudeRejection)


async def test_rude_rejection(fs):
    fs.rude_rejection = True
    with pytest.raises(RudeRejection, match="Access Denied"):
        await _connect(fs)


async def test_password_with_newline_refused_before_connecting(fs):
    with pytest.raises(UnsafeValue):
        await EslSession.connect("127.0.0.1", fs.port, "ClueCon\napi status", keepalive_interval=0)
    assert fs.connections == 0


async def test_bgapi_job_event_before_its_reply(fs):
    fs.bgapi_event_first = True
    s = await _connect(fs)
    try:
        assert (await s.bgapi("version")).startswith("FreeSWITCH Version 1.10.12")
        sent = await fs.wait_for_command("bgapi version")
        assert "\nJob-UUID: " in sent
        result = await s.bgapi("originate {a=b}loopback/1000/default &park")
        assert result == f"+OK {originate_uuid_map(fs)['bf5fc8dc-c5c9-42c6-96a0-2aec30eb8499']}\n"
        # the session is still in step: FIFO not disturbed by the early events
        assert await s.api("expr 2+3*4") == "14"
    finally:
        await s.close()


async def test_bgapi_unknown_command_returns_err_body(fs):
    s = await _connect(fs)
    try:
        assert await s.bgapi("no_such_command_xyz") == "-ERR no_such_command_xyz Command not found!\n"
    finally:
        await s.close()


async def test_originate_events_replayed_with_new_uuids(fs):
    s = await _connect(fs)
    try:
        await s.subscribe("ALL")
        await s.bgapi("originate {origination_caller_id_name='Test Caller'}loopback/1000/default &park")
        want = [h for h, _ in captured_events("inbound-events-json-originate")]
        events = await _collect(s, len(want) - 1)  # the BACKGROUND_JOB is consumed by bgapi
        names = Counter(e.name for e in events)
        assert names["CHANNEL_STATE"] == 13 and names["CHANNEL_HANGUP_COMPLETE"] == 2
        assert "BACKGROUND_JOB" not in names
        fresh = set(originate_uuid_map(fs).values())
        assert {e.uuid for e in events if e.uuid} <= fresh
        seqs = [e.sequence for e in events]
        assert seqs != sorted(seqs)  # wire order kept, not re-sorted
    finally:
        await s.close()


async def test_fifo_survives_a_timed_out_command(fs):
    fs.reply_delays["api status"] = 0.3
    s = await _connect(fs)
    try:
        with pytest.raises(Timeout):
            await s.api("status", timeout=0.05)
        # the late status reply must not be handed to the next command
        assert await s.api("expr 2+3*4") == "14"
        assert await s.api("hash select/realm/k1") == "some value"
    finally:
        await s.close()


async def test_fifo_survives_a_cancelled_command(fs):
    fs.reply_delays["api version"] = 0.2
    s = await _connect(fs)
    try:
        task = asyncio.create_task(s.api("version"))
        await fs.wait_for_command("api version")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await s.api("expr 2+3*4") == "14"
    finally:
        await s.close()


async def test_keepalive_detects_a_silent_server(fs):
    s = await _connect(fs, keepalive_interval=0.05, keepalive_deadline=0.1)
    fs.silent = True
    reason = await asyncio.wait_for(s.wait_closed(), 2.0)
    assert isinstance(reason, ConnectionLost) and "keepalive" in str(reason)
    assert any(c == "api status" for c in fs.commands())
    with pytest.raises(ConnectionLost):
        await s.api("status")


async def test_disconnect_mid_command_is_connection_lost_and_not_resent(fs):
    fs.drop_on = "bgapi originate"
    s = await _connect(fs)
    with pytest.raises(ConnectionLost):
        await s.bgapi("originate loopback/1000/default &park")
    await s.wait_closed()
    fs.drop_on = None
    s2 = await _connect(fs)
    try:
        await s2.api("status")
    finally:
        await s2.close()
    assert sum(c.startswith("bgapi originate") for c in fs.commands()) == 1


async def test_disconnect_notice_closes_cleanly_and_fails_pending(fs):
    fs.reply_delays["api status"] = 5.0
    s = await _connect(fs)
    pending = asyncio.create_task(s.api("status"))
    await fs.wait_for_command("api status")
    fs.disconnect_all()
    with pytest.raises(ConnectionLost):
        await pending
    assert await s.wait_closed() is None  # a goodbye, not an error
    assert s.disconnect_notice.text.startswith("Disconnected, goodbye.")


async def test_shutdown_with_calls_up_ends_event_stream(fs):
    s = await _connect(fs)
    await s.subscribe("ALL")
    await s.bgapi("originate loopback/1000/default &park")
    fs.shutdown()
    events = []
    async with asyncio.timeout(2):
        async for ev in s.events():
            events.append(ev)
    assert events  # what arrived before the notice is still delivered
    assert s.disconnect_notice.body == SHUTDOWN


async def test_garbage_bytes_are_a_protocol_error(fs):
    s = await _connect(fs)
    fs.send_raw(b"\x00\xffnot esl at all\n\n")
    reason = await asyncio.wait_for(s.wait_closed(), 2)
    assert isinstance(reason, ProtocolError)


async def test_server_that_never_sends_auth_request_times_out():
    async def mute(reader, writer):
        await reader.read()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(Timeout):
            await EslSession.connect("127.0.0.1", port, "ClueCon", keepalive_interval=0, auth_timeout=0.1)
    finally:
        server.close()


async def test_subscribe_filter_nixevent_noevents_wire(fs):
    s = await _connect(fs)
    try:
        await s.subscribe(["CHANNEL_ANSWER", "CUSTOM", "callcenter::info"])
        await s.filter("Unique-ID", "abc")
        await s.nixevent(["CHANNEL_ANSWER"])
        await s.noevents()
        with pytest.raises(UnsafeValue):
            await s.filter("Event-Name", "X\nexit")
        with pytest.raises(CommandFailed):
            await s.command("bogus_esl_command")
    finally:
        await s.close()
    assert fs.commands()[2:9] == [
        "event json CHANNEL_ANSWER CUSTOM callcenter::info",
        "filter Event-Name BACKGROUND_JOB",  # or bgapi results would be filtered out
        "filter Unique-ID abc",
        "nixevent CHANNEL_ANSWER",
        "noevents",
        "event json BACKGROUND_JOB",
        "bogus_esl_command",
    ]


async def test_full_event_queue_drops_oldest(fs):
    s = await _connect(fs, event_queue_size=5)
    try:
        await s.subscribe("ALL")
        await s.bgapi("originate loopback/1000/default &park")
        await asyncio.sleep(0.1)
        assert s.events_dropped > 0
        got = await _collect(s, 5)
        assert got[-1].name == "CHANNEL_STATE"  # the newest survived (last captured event)
    finally:
        await s.close()


async def test_plain_format_subscription(fs):
    s = await _connect(fs, event_format="plain")
    try:
        await s.subscribe(["CHANNEL_CREATE"])
        await s.bgapi("originate loopback/1000/default &park")
        evs = await _collect(s, 2)
        assert [e.format for e in evs] == ["plain", "plain"]
        assert {e.name for e in evs} == {"CHANNEL_CREATE"}
    finally:
        await s.close()


# ---------------------------------------------------------------- supervisor
async def test_supervisor_reconnects_and_calls_back(fs):
    seen = []

    async def on_connected(session):
        seen.append(("up", await session.api("expr 2+3*4")))

    sup = EslSupervisor(
        "127.0.0.1", fs.port, "ClueCon",
        on_connected=on_connected, on_disconnected=lambda r: seen.append(("down", type(r).__name__)),
        backoff_initial=0.01, keepalive_interval=0,
    )  # fmt: skip
    sup.start()
    try:
        first = await sup.wait_connected(2)
        assert sup.state is SupervisorState.CONNECTED
        fs.send_raw(b"junk\n\n")
        await first.wait_closed()
        second = await sup.wait_connected(2)
        assert second is not first and sup.connects == 2
        assert seen[:3] == [("up", "14"), ("down", "ProtocolError"), ("up", "14")]
    finally:
        await sup.stop()
    assert sup.state is SupervisorState.STOPPED


async def test_supervisor_login_failure_uses_long_backoff(fs):
    sup = EslSupervisor(
        "127.0.0.1", fs.port, "bad", backoff_initial=0.01, login_failed_backoff=30.0, keepalive_interval=0
    )
    sup.start()
    try:
        async with asyncio.timeout(2):
            while sup.state is not SupervisorState.LOGIN_FAILED:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert fs.connections == 1  # waiting ~30 s, not hammering
        assert "bad" not in repr(sup)
    finally:
        await sup.stop()


def test_backoff_grows_with_jitter_and_caps():
    sup = EslSupervisor("h", 1, "p", backoff_initial=1.0, backoff_max=8.0, rng=lambda: 1.0)
    delays = []
    for n in range(1, 7):
        sup.attempts = n
        delays.append(sup.next_delay())
    assert delays == [1.3, 2.6, 5.2, 10.4, 10.4, 10.4]  # x2 each time, +30 % jitter, capped at 8 (+30 %)
    sup2 = EslSupervisor("h", 1, "p", backoff_initial=1.0, rng=lambda: 0.0)
    sup2.attempts = 1
    assert sup2.next_delay() == pytest.approx(0.7)
    assert sup2.next_delay(login_failed=True) == pytest.approx(60.0 * 0.7)
