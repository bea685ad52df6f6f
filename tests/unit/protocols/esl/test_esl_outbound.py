"""EslOutboundServer with the fake FreeSWITCH ``socket`` app on the other side."""

import asyncio

import pytest

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.errors import ConnectionLost
from callcenterd.protocols.esl.outbound import EslOutboundServer
from tests.fakes.esl_server import FakeOutboundChannel


async def _run_call(handler, *, channel_kw=None, server_kw=None, wait_close=True):
    results = {}

    async def wrapped(call):
        results["call"] = call
        results["value"] = await handler(call)

    async with EslOutboundServer(wrapped, **(server_kw or {})) as server:
        ch = FakeOutboundChannel(server.port, **(channel_kw or {}))
        await ch.start()
        try:
            if wait_close:
                await asyncio.wait_for(ch.closed.wait(), 3)
        finally:
            await ch.close()
    return ch, results, server


async def test_ivr_flow_answer_play_digits_hangup_and_we_close_the_lingering_socket():
    async def handler(call):
        assert call.socket_mode == "async" and call.control == "full"
        assert call.channel_data["Caller-Caller-ID-Number"] == "15551230042"
        assert call.channel_data["Caller-Destination-Number"] == "2000"
        assert call.variable("current_application_data") == "127.0.0.1:8084 async full"
        await call.answer()
        played = await call.playback("tone_stream://%(100,0,440)")
        digits = await call.play_and_get_digits("ivr/menu main.wav", max_digits=4, var_name="choice")
        await call.set_var("cc_queue", "support line")
        await call.hangup("NORMAL_CLEARING")
        await call.hangup_complete.wait()
        return played, digits

    ch, res, _ = await _run_call(handler, channel_kw={"digits": "1234", "caller": "15551230042"})
    call = res["call"]
    assert res["value"] == ("FILE PLAYED", "1234")
    assert call.uuid == ch.uuid
    assert call.lingering and ch.lingering
    assert ch.peer_closed.is_set()
    # FreeSWITCH never closes a lingering socket: our side did (peer_closed), after the notice
    assert call.disconnect_notice.headers["Content-Disposition"] == "linger"
    cmds = ch.commands()
    assert cmds[:3] == ["connect", "myevents json", "linger"]
    blocks = [c for c in ch.received if c.startswith("sendmsg")]
    assert "execute-app-name: play_and_get_digits" in blocks[2]
    assert "execute-app-arg: 1 4 3 5000 # 'ivr/menu main.wav' silence_stream://250 choice" in blocks[2]
    assert all("event-uuid: " in b for b in blocks[:4])
    assert "call-command: hangup\nhangup-cause: NORMAL_CLEARING" in blocks[4]


async def test_handler_returning_closes_a_lingering_socket_even_without_hangup():
    async def handler(call):
        await call.answer()

    ch, _res, server = await _run_call(handler)
    assert ch.peer_closed.is_set() and not ch.hung_up.is_set()
    assert server.calls_handled == 1


async def test_linger_notice_alone_closes_socket_while_handler_still_runs():
    """Caller hangs up; FreeSWITCH lingers forever; we must close anyway."""
    started = asyncio.Event()

    async def handler(call):
        started.set()
        await call.wait_closed()  # a handler busy with something else
        return "closed"

    async with EslOutboundServer(handler) as server:
        ch = FakeOutboundChannel(server.port)
        await ch.start()
        await asyncio.wait_for(started.wait(), 2)
        ch.remote_hangup("NORMAL_CLEARING")
        await asyncio.wait_for(ch.peer_closed.wait(), 3)
        await ch.close()


async def test_execute_after_hangup_without_linger_is_connection_lost():
    outcome = {}

    async def handler(call):
        await call.answer()
        await call.hangup("USER_BUSY")
        try:
            await call.playback("x.wav")
        except ConnectionLost as exc:
            outcome["lost"] = exc

    ch, res, _ = await _run_call(handler, channel_kw={"full": False, "async_mode": False})
    call = res["call"]
    assert not call.lingering and call.control == "single-channel"
    assert "lost" in outcome
    assert call.disconnect_notice.headers["Content-Disposition"] == "disconnect"


async def test_execute_waits_for_its_own_application_uuid():
    async def handler(call):
        a, b = await asyncio.gather(call.execute("playback", "a.wav"), call.execute("playback", "b.wav"))
        return a.get("Application-Data"), b.get("Application-Data")

    _ch, res, _ = await _run_call(handler)
    assert res["value"] == ("a.wav", "b.wav")


async def test_handler_exception_is_isolated_per_call():
    calls = []

    async def handler(call):
        calls.append(call.uuid)
        if len(calls) == 1:
            raise RuntimeError("bug in one IVR flow")
        await call.answer()
        await call.hangup()

    async with EslOutboundServer(handler) as server:
        bad, good = FakeOutboundChannel(server.port), FakeOutboundChannel(server.port)
        await bad.start()
        await asyncio.wait_for(bad.peer_closed.wait(), 2)
        await good.start()
        await asyncio.wait_for(good.peer_closed.wait(), 2)
        await bad.close()
        await good.close()
    assert server.handler_errors == 1 and server.calls_handled == 2
    assert good.hung_up.is_set()


async def test_api_over_the_outbound_socket():
    async def handler(call):
        return await call.api("show channels count")

    _ch, res, _ = await _run_call(handler)
    assert res["value"] == "\n0 total.\n"


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.execute("playback", "a.wav\nexecute-app-name: hangup"),
        lambda c: c.execute("bad app", ""),
        lambda c: c.set_var("x", "${system(id)}"),
        lambda c: c.set_var("x y", "1"),
        lambda c: c.hangup("NORMAL\nCLEARING"),
        lambda c: c.play_and_get_digits("a.wav", terminators="#\n"),
    ],
)
async def test_hostile_values_refused_before_the_wire(action):
    async def handler(call):
        with pytest.raises(UnsafeValue):
            await action(call)
        return len(call._slots)

    ch, res, _ = await _run_call(handler)
    assert res["value"] == 0
    assert not any(c.startswith("sendmsg") for c in ch.commands())


async def test_server_close_cancels_stuck_handlers(monkeypatch):
    import callcenterd.protocols.esl.outbound as ob

    monkeypatch.setattr(ob, "HANDLER_CLOSE_TIMEOUT", 0.1)
    entered = asyncio.Event()

    async def handler(call):
        entered.set()
        await asyncio.sleep(30)

    server = EslOutboundServer(handler)
    await server.start()
    ch = FakeOutboundChannel(server.port)
    await ch.start()
    await asyncio.wait_for(entered.wait(), 2)
    await asyncio.wait_for(server.close(), 2)
    await asyncio.wait_for(ch.peer_closed.wait(), 2)
    await ch.close()
