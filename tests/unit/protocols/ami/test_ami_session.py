"""AmiSession against the fake AMI server (real captures + injected faults)."""

import asyncio
import json
from collections import Counter

import pytest

from callcenterd.pbx.api import CommandFailed, UnsafeValue
from callcenterd.protocols.ami.codec import AmiDecoder
from callcenterd.protocols.ami.session import AmiActionError, AmiSession
from callcenterd.protocols.errors import ConnectionLost, LoginFailed, ProtocolError, Timeout
from tests.fakes.ami_server import FIXTURES, FakeAmiServer, Script

USER, SECRET = "callcenterd", "s3cret"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


async def connect(server: FakeAmiServer, **kw) -> AmiSession:
    kw.setdefault("keepalive_interval", None)
    kw.setdefault("action_timeout", 2.0)
    return await AmiSession.connect(server.host, server.port, USER, kw.pop("secret", SECRET), **kw)


def without_action_id(msg):
    return [(k, v) for k, v in msg.pairs if k != "ActionID"]


def client_actions(capture: str):
    return AmiDecoder(expect_banner=False).feed((FIXTURES / capture).read_bytes())


# -------------------------------------------------------------------- login
async def test_plain_login_bytes_match_the_capture():
    async with FakeAmiServer("ami-login-success.txt") as server:
        session = await connect(server)
        assert session.banner == "Asterisk Call Manager/11.0.0"
        pong = await session.action("Ping")
        assert pong.get("Ping") == "Pong"
        await session.close()
    sent = server.received
    captured = client_actions("ami-login-success.client.txt")
    assert [m.name for m in sent] == ["Login", "Ping", "Logoff"]
    for ours, theirs in zip(sent, captured):
        assert without_action_id(ours) == without_action_id(theirs)
    ids = [m.action_id for m in sent]
    assert all(ids) and len(set(ids)) == 3


async def test_md5_login_bytes_match_the_capture():
    async with FakeAmiServer("ami-login-md5.txt") as server:
        session = await connect(server, md5=True)
        await session.close()
    captured = client_actions("ami-login-md5.client.txt")
    assert [m.name for m in server.received] == ["Challenge", "Login", "Logoff"]
    # Same challenge replayed => our Key must be md5(challenge + "s3cret") byte for byte.
    for ours, theirs in zip(server.received, captured):
        assert without_action_id(ours) == without_action_id(theirs)
    assert "Secret" not in server.received[1]


async def test_md5_login_against_the_native_server():
    async with FakeAmiServer(challenge="424242") as server:
        session = await connect(server, md5=True, events=["call", "agent", "user", "cdr"])
        assert server.received[1].get("Events") == "call,agent,user,cdr"
        await session.close()


async def test_refused_login_is_loginfailed_without_the_secret():
    async with FakeAmiServer("ami-login-failure.txt") as server:
        with pytest.raises(LoginFailed) as err:
            await connect(server, secret="wrong-secret")
    assert "wrong-secret" not in str(err.value)
    assert "Authentication failed" in str(err.value)
    assert not isinstance(err.value, CommandFailed)


@pytest.mark.parametrize("md5", [False, True])
async def test_native_login_checks_the_secret(md5):
    async with FakeAmiServer() as server:
        with pytest.raises(LoginFailed) as err:
            await connect(server, secret="hunter2", md5=md5)
        assert "hunter2" not in str(err.value)
        await server.wait_for(lambda: not server.live())  # server hangs up like Asterisk


async def test_connection_refused_is_connection_lost():
    server = await FakeAmiServer().start()
    port = server.port
    await server.stop()
    with pytest.raises(ConnectionLost):
        await AmiSession.connect("127.0.0.1", port, USER, SECRET, connect_timeout=1)


async def test_no_banner_is_a_timeout():
    async with FakeAmiServer(send_banner=False) as server:
        with pytest.raises(Timeout):
            await connect(server, connect_timeout=0.2)


async def test_a_non_ami_peer_is_a_protocol_error():
    async def ssh(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(ssh, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(ProtocolError, match="not an AMI server"):
            await AmiSession.connect("127.0.0.1", port, USER, SECRET, connect_timeout=1)


# ----------------------------------------------------------- lists, command
def capture_segment(script: Script, action_id: str):
    seg = next(s for s in script.segments if s.action.action_id == action_id)
    items = [m for m in seg.messages[1:] if m.action_id == action_id and m.event_list != "Complete"]
    return seg, items


@pytest.fixture
async def lists_server():
    async with FakeAmiServer("ami-lists-while-call-up.txt") as server:
        yield server


async def test_list_actions_collect_items_until_complete(lists_server):
    script = lists_server.script
    session = await connect(lists_server)
    await session.action("Originate", [("Channel", "Local/support@inbound/n"), ("Async", "true")])
    await session.action("Originate", [("Channel", "Local/abandon@inbound/n"), ("Async", "true")])
    sizes = []
    for capture_aid in ("lists-while-call-up-4", "lists-while-call-up-5", "lists-while-call-up-6"):
        seg, expected = capture_segment(script, capture_aid)
        reply, items = await session.action_list("QueueStatus", seg.action.pairs[2:])
        assert reply.event_list == "start"
        assert [without_action_id(m) for m in items] == [without_action_id(m) for m in expected]
        assert all(m.action_id == reply.action_id for m in items)
        sizes.append(len(items))
    assert sizes[2] == 0 and sizes[0] > sizes[1] > 0  # nosuchqueue: empty list, no error
    # List items never leak into the event stream.
    names = set()
    while not session._queue.empty():
        names.add(session._queue.get_nowait().name)
    assert not names & {"QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete"}
    await session.close()


async def test_core_show_channels_and_status_lists(lists_server):
    session = await connect(lists_server)
    _, channels = await session.action_list("CoreShowChannels")
    _, expected = capture_segment(lists_server.script, "lists-while-call-up-9")
    assert len(channels) == len(expected) == 8
    assert {c.name for c in channels} == {"CoreShowChannel"}
    # Status of a channel that does not exist: the capture answered Error.
    await session.action_list("Status")  # consumes the capture's first Status
    await session.action_list("Status", [("Channel", "x")])
    with pytest.raises(AmiActionError):
        await session.action_list("Status", [("Channel", "Local/nosuch-00000000;1")])
    await session.close()


async def test_command_returns_output_lines(lists_server):
    session = await connect(lists_server)
    version = await session.command("core show version")
    assert len(version) == 1 and version[0].startswith("Asterisk 22.10.1")
    queue = await session.command("queue show support")
    assert queue[0].startswith("support has 0 calls") and queue[-2:] == ["", ""]
    channels = await session.command("core show channels concise")
    assert len(channels) == 8 and all(line.count("!") == 13 for line in channels)
    with pytest.raises(AmiActionError, match="No such command 'no such command'") as err:
        await session.command("no such command")
    assert isinstance(err.value, CommandFailed)
    await session.close()


async def test_error_response_raises_unless_raw(lists_server):
    session = await connect(lists_server)
    with pytest.raises(AmiActionError, match="Invalid/unknown command: NoSuchAction"):
        await session.action("NoSuchAction")
    reply = await session.action("NoSuchAction", raw=True)  # native server answers the same way
    assert reply.name == "Error"
    await session.close()


# ------------------------------------------------------------------ events
async def test_capture_events_reach_the_event_stream():
    async with FakeAmiServer("ami-queue-answered.txt") as server:
        session = await connect(server)
        reply = await session.action("Originate", [("Channel", "Local/support@inbound/n"), ("Async", "true")])
        assert reply.message == "Originate successfully queued"
        expected = MANIFEST["files"]["ami-queue-answered.txt"]["event_counts"]
        seen = Counter()
        async with asyncio.timeout(2):
            async for event in session.events():
                seen[event.name] += 1
                if sum(seen.values()) == sum(expected.values()):
                    break
        assert dict(seen) == expected
        await session.close()


async def test_events_iteration_ends_when_the_session_closes():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.emit(("Event", "Hangup"), ("Channel", "Local/1001@agents-1;1"), ("Cause", "16"))
        await session.action("Ping")
        names = []

        async def consume():
            async for event in session.events():
                names.append(event.name)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await session.close()
        await asyncio.wait_for(task, 1)
        assert names == ["FullyBooted", "Hangup"]
        assert server.actions("Logoff")  # closed politely


async def test_full_event_queue_drops_oldest_and_never_blocks_the_reader():
    async with FakeAmiServer() as server:
        session = await connect(server, event_queue_size=5)
        for n in range(20):
            server.emit(("Event", "VarSet"), ("Value", str(n)))
        await session.action("Ping")  # replies flow even though nobody reads events
        assert session.events_dropped == 16  # FullyBooted + 15 VarSets
        kept = []
        async for event in session.events():
            kept.append(event.get("Value"))
            if len(kept) == 5:
                break
        assert kept == ["15", "16", "17", "18", "19"]
        await session.close()


async def test_on_event_callback_instead_of_the_queue():
    got = []
    async with FakeAmiServer() as server:
        session = await connect(server, on_event=got.append)
        server.emit(("Event", "DialEnd"), ("DialStatus", "ANSWER"))
        await session.action("Ping")
        assert [(e.name, e.get("DialStatus")) for e in got] == [("FullyBooted", None), ("DialEnd", "ANSWER")]
        await session.close()


# ------------------------------------------------------------------ faults
async def test_every_action_times_out_and_a_late_reply_is_dropped():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.mute()
        with pytest.raises(Timeout):
            await session.action("Ping", timeout=0.1)
        late_id = server.received[-1].action_id
        server.mute(False)
        server.send_raw(f"Response: Success\r\nActionID: {late_id}\r\nPing: Pong\r\n\r\n".encode())
        assert (await session.action("Ping")).get("Ping") == "Pong"
        assert not session.closed
        assert session._queue.qsize() == 1  # only FullyBooted: the late reply is not an event
        await session.close()


async def test_items_of_a_timed_out_list_do_not_leak_into_events():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.mute()
        with pytest.raises(Timeout):
            await session.action_list("QueueStatus", timeout=0.1)
        aid = server.received[-1].action_id
        server.mute(False)
        server.send_raw(
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
            f"Event: QueueParams\r\nQueue: support\r\nActionID: {aid}\r\n\r\n"
            f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\nListItems: 1\r\n\r\n".encode()
        )
        server.emit(("Event", "Hangup"), ("ActionID", aid))  # same id, not a list item: an event
        await session.action("Ping")
        names = [session._queue.get_nowait().name for _ in range(session._queue.qsize())]
        assert names == ["FullyBooted", "Hangup"]
        await session.close()


async def test_keepalive_detects_a_silent_server_and_fails_pending_actions():
    async with FakeAmiServer() as server:
        session = await connect(server, keepalive_interval=0.05, keepalive_deadline=0.1)
        await server.wait_action("Ping")  # keepalive runs
        server.mute()
        pending = asyncio.create_task(session.action("Originate", [("Channel", "Local/1@x")], timeout=30))
        reason = await asyncio.wait_for(session.wait_closed(), 1.0)
        assert isinstance(reason, Timeout) and "keepalive" in str(reason)
        with pytest.raises(ConnectionLost):
            await pending


async def test_drop_mid_action_fails_with_connection_lost_and_is_not_resent():
    async with FakeAmiServer() as server:
        server.drop_on("Originate")
        session = await connect(server)
        with pytest.raises(ConnectionLost):
            await session.action("Originate", [("Channel", "Local/support@inbound/n")])
        assert isinstance(await session.wait_closed(), ConnectionLost)
        with pytest.raises(ConnectionLost):
            await session.action("Ping")
        assert len(server.actions("Originate")) == 1


async def test_truncated_frame_then_eof_closes_with_protocol_error():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.mute()
        pending = asyncio.create_task(session.action("Ping", timeout=30))
        await server.wait_action("Ping")
        server.send_raw(b"Response: Success\r\nActionID: ")
        await asyncio.sleep(0.05)
        server.drop_all()
        reason = await asyncio.wait_for(session.wait_closed(), 1)
        assert isinstance(reason, ProtocolError) and "middle of a frame" in str(reason)
        with pytest.raises(ConnectionLost):
            await pending


async def test_garbage_frame_is_skipped_and_the_session_survives():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.send_raw(b"\x00\xff\xfe\x16\x03\x01 junk\r\n\r\n")
        server.emit(("Event", "Hangup"), ("Cause", "17"))
        assert (await session.action("Ping")).get("Ping") == "Pong"
        assert session._decoder.skipped == 1
        events = []
        async for e in session.events():
            events.append(e.name)
            if e.name == "Hangup":
                break
        assert events == ["FullyBooted", "Hangup"]
        await session.close()


async def test_garbage_without_frame_end_closes_instead_of_growing():
    async with FakeAmiServer() as server:
        session = await connect(server, max_frame=4096)
        server.send_raw(b"\x01" * 10_000)
        reason = await asyncio.wait_for(session.wait_closed(), 1)
        assert isinstance(reason, ProtocolError)
        assert session._reader_task.done()  # no spinning reader left behind


async def test_slow_reader_server_still_gets_a_big_originate():
    async with FakeAmiServer(slow_reader=True) as server:
        session = await connect(server)
        variables = [("Variable", f"CC_V{n}={'x' * 50}") for n in range(40)]
        headers = [("Channel", "Local/support@inbound/n"), ("Application", "Wait"), ("Data", "1")] + variables
        reply = await session.action("Originate", headers, raw=True)
        assert reply.name == "Error"  # native server does not know Originate, but it read it all
        sent = server.actions("Originate")[0]
        assert sent.get_all("Variable") == [v for _, v in variables]
        await session.close()


async def test_caller_chosen_action_id_is_used_and_must_be_unique():
    async with FakeAmiServer() as server:
        session = await connect(server)
        server.mute()
        first = asyncio.create_task(session.action("Originate", action_id="cc-orig-leg-1", raw=True))
        await server.wait_action("Originate")
        assert server.received[-1].action_id == "cc-orig-leg-1"
        with pytest.raises(ValueError):
            await session.action("Ping", action_id="cc-orig-leg-1")
        with pytest.raises(UnsafeValue):
            await session.action("Ping", action_id="x\r\nAction: Hangup")
        server.mute(False)
        server.send_raw(b"Response: Success\r\nActionID: cc-orig-leg-1\r\nMessage: Originate successfully queued\r\n\r\n")
        assert (await first).message == "Originate successfully queued"
        await session.close()


async def test_header_injection_is_refused_before_sending():
    async with FakeAmiServer() as server:
        session = await connect(server)
        before = len(server.received)
        with pytest.raises(UnsafeValue):
            await session.action("Setvar", [("Variable", "X"), ("Value", "1\r\nAction: Hangup\r\nChannel: all")])
        await session.action("Ping")
        assert [m.name for m in server.received[before:]] == ["Ping"]
        await session.close()
