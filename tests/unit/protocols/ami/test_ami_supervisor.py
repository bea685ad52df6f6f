"""AmiSupervisor: state, reconnect, backoff, never re-sending an action."""

import asyncio
import random

import pytest
from structlog.testing import capture_logs

from callcenterd.protocols.ami.supervisor import AmiSupervisor, Backoff, State
from callcenterd.protocols.errors import ConnectionLost, LoginFailed
from tests.fakes.ami_server import FakeAmiServer

FAST = dict(backoff_initial=0.01, backoff_max=0.02, keepalive_interval=None, action_timeout=2.0)


def supervisor(server, **kw) -> AmiSupervisor:
    opts = {**FAST, **kw}
    secret = opts.pop("secret", "s3cret")
    return AmiSupervisor(server.host, server.port, "callcenterd", secret, rng=random.Random(7), **opts)


async def test_connects_and_awaits_on_connected_before_events_flow():
    order = []
    async with FakeAmiServer() as server:

        async def on_connected(session):
            order.append("on_connected start")
            server.emit(("Event", "Newchannel"), ("Channel", "Local/1@x-1;1"))
            await session.action("Ping")  # the event has arrived by now...
            await asyncio.sleep(0.02)
            order.append("on_connected end")  # ...but is not delivered yet

        sup = supervisor(server, on_connected=on_connected, on_event=lambda e: order.append(e.name))
        sup.start()
        await sup.wait_state(State.CONNECTED, 2)
        await asyncio.sleep(0.05)
        assert order == ["on_connected start", "on_connected end", "FullyBooted", "Newchannel"]
        assert (await sup.action("Ping")).get("Ping") == "Pong"
        await sup.stop()
        assert sup.state is State.STOPPED
        assert server.actions("Logoff")


async def test_reconnects_after_a_drop_and_reports_it():
    reasons = []
    async with FakeAmiServer() as server:
        sup = supervisor(server, on_disconnected=reasons.append)
        sup.start()
        await sup.wait_state(State.CONNECTED, 2)
        server.drop_all()
        await sup.wait_state(State.DISCONNECTED, 2)
        await sup.wait_state(State.CONNECTED, 2)
        assert len(server.connections) == 2
        assert len(reasons) == 1 and isinstance(reasons[0], ConnectionLost)
        await sup.stop()
        assert len(reasons) == 2 and reasons[1] is None  # the stop itself


async def test_action_dropped_mid_flight_is_never_resent_after_reconnect():
    async with FakeAmiServer() as server:
        server.drop_on("Originate")
        sup = supervisor(server)
        sup.start()
        await sup.wait_state(State.CONNECTED, 2)
        with pytest.raises(ConnectionLost):
            await sup.action("Originate", [("Channel", "Local/5550011@customers/n"), ("Async", "true")])
        await server.wait_for(lambda: len(server.connections) == 2)
        await sup.wait_state(State.CONNECTED, 2)
        await sup.action("Ping")
        await sup.stop()
    originates = server.actions("Originate")
    assert len(originates) == 1
    names_on_second = [m.name for m, c in zip(server.received, server.received_on) if c == 1]
    assert names_on_second == ["Login", "Ping", "Logoff"]


async def test_action_while_disconnected_fails_at_once():
    server = await FakeAmiServer().start()
    port = server.port
    await server.stop()
    sup = AmiSupervisor("127.0.0.1", port, "callcenterd", "s3cret", **FAST)
    sup.start()
    await asyncio.sleep(0.05)
    assert sup.state in (State.DISCONNECTED, State.CONNECTING)
    with pytest.raises(ConnectionLost, match="Originate"):
        await asyncio.wait_for(sup.action("Originate", [("Channel", "Local/1@x")]), 0.1)
    await sup.stop()


async def test_refused_login_waits_the_longer_login_backoff():
    async with FakeAmiServer() as server:
        sup = supervisor(server, secret="wrong", login_backoff_initial=10.0)
        sup.start()
        await server.wait_for(lambda: len(server.connections) == 1)
        await asyncio.sleep(0.3)  # 30 ordinary backoffs would fit in here
        assert len(server.connections) == 1
        assert isinstance(sup.last_error, LoginFailed)
        assert "wrong" not in str(sup.last_error)
        assert sup.state is State.DISCONNECTED
        await sup.stop()


async def test_failing_on_connected_starts_over():
    calls = []
    async with FakeAmiServer() as server:

        async def on_connected(session):
            calls.append(session)
            if len(calls) == 1:
                raise RuntimeError("snapshot failed")

        sup = supervisor(server, on_connected=on_connected)
        sup.start()
        await sup.wait_state(State.CONNECTED, 2)
        assert len(calls) == 2 and calls[0].closed and not calls[1].closed
        await sup.stop()


async def test_repeated_failures_are_logged_once_at_warning():
    server = await FakeAmiServer().start()
    port = server.port
    await server.stop()
    with capture_logs() as logs:
        sup = AmiSupervisor("127.0.0.1", port, "callcenterd", "s3cret", **FAST)
        sup.start()
        await asyncio.sleep(0.3)
        await sup.stop()
    failures = [e for e in logs if e["event"] == "ami connect failed"]
    assert len(failures) >= 3
    assert [e["log_level"] for e in failures][0] == "warning"
    assert all(e["log_level"] == "debug" for e in failures[1:])
    assert failures[-1]["repeated"] == len(failures) - 1


def test_backoff_is_exponential_jittered_and_capped():
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 1.0
