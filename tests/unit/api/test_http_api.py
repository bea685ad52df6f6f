"""The agent-control HTTP API, served for real on 127.0.0.1:0."""

import asyncio
import importlib.util
import io
import logging

import aiohttp
import pytest

from callcenterd.api.http import ApiServer, build_app
from callcenterd.logs import configure_logging

TOKEN = "s3cret-token-value"


class UnknownAgent(KeyError):
    pass


class InvalidTransition(Exception):
    pass


class FakeControl:
    """Records calls; agent '404' is unknown, agent 'busy' cannot change state."""

    def __init__(self):
        self.calls = []

    def _check(self, agent_id):
        if agent_id == "404":
            raise UnknownAgent(f"unknown agent {agent_id!r}")
        if agent_id == "busy":
            raise InvalidTransition("agent is on a call")

    def login(self, agent_id):
        self._check(agent_id)
        self.calls.append(("login", agent_id))

    def logout(self, agent_id):
        self._check(agent_id)
        self.calls.append(("logout", agent_id))

    async def pause(self, agent_id, reason):  # async on purpose: both kinds are supported
        self._check(agent_id)
        if reason == "already":
            raise ValueError("agent 1001 is already paused")
        self.calls.append(("pause", agent_id, reason))

    def unpause(self, agent_id):
        self._check(agent_id)
        if agent_id == "boom":
            raise RuntimeError("database password is hunter2")
        self.calls.append(("unpause", agent_id))

    def agents(self):
        return [{"agent": "1001", "state": "paused", "reason": "lunch", "since": 1.0}]

    def queues(self):
        return [{"queue": "sales", "waiting": 2, "available": 1, "logged_in": 3}]

    async def waiting(self):
        return [{"call_id": "c1", "queue": "sales", "position": 1, "waited": 12.0}]


@pytest.fixture
async def api():
    control = FakeControl()
    server = ApiServer(build_app(control, TOKEN), "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession(base_url=server.url) as http:
        yield control, http
    await server.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_login_logout_unpause_reach_the_control(api):
    control, http = api
    for action in ("login", "logout", "unpause"):
        async with http.post(f"/v1/agents/1001/{action}", headers=AUTH) as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True, "agent": "1001", "action": action}
    assert control.calls == [("login", "1001"), ("logout", "1001"), ("unpause", "1001")]


async def test_agent_id_is_url_decoded(api):
    control, http = api
    async with http.post("/v1/agents/sip%2Fbob@x/login", headers=AUTH) as resp:
        assert resp.status == 200
    assert control.calls == [("login", "sip/bob@x")]


async def test_pause_passes_the_reason(api):
    control, http = api
    async with http.post("/v1/agents/1001/pause", json={"reason": "lunch"}, headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["reason"] == "lunch"
    assert control.calls == [("pause", "1001", "lunch")]


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'["lunch"]', "JSON object"),
    (b"{}", "'reason' is required"),
    (b'{"reason": "   "}', "'reason' is required"),
    (b'{"reason": 5}', "'reason' is required"),
    (b'{"reason": "' + b"x" * 65 + b'"}', "longer than 64"),
    (b'{"reason": "lunch\\r\\nAction: Originate"}', "control character"),
    (b'{"reason": "a\\u0000b"}', "control character"),
    (b"[" * 8000 + b"]" * 8000, "nested too deeply"),
    (b'{"a":' * 2000 + b"1" + b"}" * 2000, "nested too deeply"),
])
async def test_bad_pause_bodies_are_400(api, body, needle):
    control, http = api
    async with http.post("/v1/agents/1001/pause", data=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert needle in (await resp.json())["error"]
    assert control.calls == []


async def test_reason_of_exactly_64_chars_is_accepted(api):
    control, http = api
    async with http.post("/v1/agents/1001/pause", json={"reason": "y" * 64}, headers=AUTH) as r:
        assert r.status == 200
    assert control.calls == [("pause", "1001", "y" * 64)]


async def test_unknown_charset_is_400_not_404(api):
    _, http = api
    headers = {**AUTH, "Content-Type": "application/json; charset=klingon"}
    async with http.post("/v1/agents/1001/pause", data=b'{"reason":"x"}', headers=headers) as r:
        assert r.status == 400


async def test_control_char_in_agent_id_is_400(api):
    control, http = api
    async with http.post("/v1/agents/10%0D01/login", headers=AUTH) as resp:
        assert resp.status == 400
        assert "control character" in (await resp.json())["error"]
    assert control.calls == []


async def test_unknown_agent_is_404_with_plain_message(api):
    _, http = api
    async with http.post("/v1/agents/404/login", headers=AUTH) as resp:
        assert resp.status == 404
        # str(KeyError) would add quotes; the API returns the message itself.
        assert await resp.json() == {"error": "unknown agent '404'"}


async def test_invalid_transition_and_value_error_are_409(api):
    _, http = api
    async with http.post("/v1/agents/busy/logout", headers=AUTH) as resp:
        assert resp.status == 409
        assert await resp.json() == {"error": "agent is on a call"}
    async with http.post("/v1/agents/1001/pause", json={"reason": "already"}, headers=AUTH) as r:
        assert r.status == 409
        assert await r.json() == {"error": "agent 1001 is already paused"}


async def test_unexpected_error_is_500_without_details(api):
    _, http = api
    async with http.post("/v1/agents/boom/unpause", headers=AUTH) as resp:
        assert resp.status == 500
        assert await resp.json() == {"error": "internal error"}


@pytest.mark.parametrize("path,key", [
    ("/v1/agents", "agents"), ("/v1/queues", "queues"), ("/v1/waiting", "waiting"),
])
async def test_listings(api, path, key):
    control, http = api
    async with http.get(path, headers=AUTH) as resp:
        assert resp.status == 200
        body = await resp.json()
    expected = getattr(control, key)()
    if asyncio.iscoroutine(expected):
        expected = await expected
    assert body == {key: expected}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer "},
])
@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/agents/1001/login"), ("GET", "/v1/agents"), ("GET", "/v1/no-such-route"),
])
async def test_missing_or_wrong_token_is_401(api, headers, method, path):
    control, http = api
    async with http.request(method, path, headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in await resp.json()
    assert control.calls == []


async def test_health_needs_no_token(api):
    _, http = api
    async with http.get("/v1/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_unknown_route_and_wrong_method_are_json(api):
    _, http = api
    async with http.get("/v1/nope", headers=AUTH) as resp:
        assert resp.status == 404
        assert "error" in await resp.json()
    async with http.get("/v1/agents/1001/login", headers=AUTH) as resp:
        assert resp.status == 405
        assert "error" in await resp.json()


async def test_oversized_body_is_refused(api):
    control, http = api
    body = b'{"reason": "' + b"x" * 20000 + b'"}'
    async with http.post("/v1/agents/1001/pause", data=body, headers=AUTH) as resp:
        assert resp.status == 413
        assert "error" in await resp.json()
    assert control.calls == []


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_token_never_appears_in_logs(api, caplog, capsys, daemon_logging, fmt):
    # With rich installed (the test extra has it), structlog's default console
    # tracebacks print locals, and the 500's traceback has the token in a frame.
    assert importlib.util.find_spec("rich") is not None, "the test extra must install rich"
    stream = io.StringIO()
    configure_logging(level="debug", fmt=fmt, stream=stream)
    _, http = api
    caplog.set_level(logging.DEBUG)
    async with http.get("/v1/agents", headers={"Authorization": f"Bearer {TOKEN}-typo"}) as r:
        assert r.status == 401
    async with http.get("/v1/agents", headers=AUTH) as r:
        assert r.status == 200
    async with http.post("/v1/agents/boom/unpause", headers=AUTH) as r:
        assert r.status == 500
    out, err = capsys.readouterr()
    logged = stream.getvalue() + caplog.text + out + err
    assert "unauthorized" in logged  # the 401 was logged...
    assert "api.handler_failed" in logged  # ...so was the 500, with its traceback...
    assert "Traceback" in logged or "exc_type" in logged
    assert TOKEN not in logged  # ...and nothing carries the token


def test_empty_or_unsafe_token_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        build_app(FakeControl(), "")
    with pytest.raises(ValueError, match="non-empty"):
        build_app(FakeControl(), "   ")
    with pytest.raises(ValueError, match="control character"):
        build_app(FakeControl(), "abc\n")


async def test_port_zero_gets_a_real_port_and_stop_frees_it():
    server = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0)
    await server.start()
    port = server.port
    assert port and port > 0
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{port}/v1/health")


async def test_busy_port_is_a_clear_error():
    first = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0)
    await first.start()
    try:
        second = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", first.port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()


# ---------------------------------------------- slow and idle clients (slowloris)
async def _raw(server: ApiServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing; fails if it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), within)


async def test_half_a_header_then_silence_is_dropped_after_the_header_timeout():
    server = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0, header_timeout=0.3)
    await server.start()
    try:
        reader, writer = await _raw(server)
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert await _closed_by_server(reader, within=3) == b""
        writer.close()
        assert not server.connections.open
    finally:
        await server.stop()


async def test_header_timeout_does_not_cut_a_slow_handler():
    control = FakeControl()

    async def slow_agents():
        await asyncio.sleep(0.5)  # longer than the header timeout
        return []

    control.agents = slow_agents
    server = ApiServer(build_app(control, TOKEN), "127.0.0.1", 0, header_timeout=0.2)
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=server.url) as http:
            async with http.get("/v1/agents", headers=AUTH) as r:
                assert r.status == 200 and await r.json() == {"agents": []}
    finally:
        await server.stop()


async def test_idle_keepalive_connection_is_closed():
    server = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0, keepalive_timeout=0.3)
    await server.start()
    try:
        reader, writer = await _raw(server)
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await _closed_by_server(reader, within=3)
        assert answer.startswith(b"HTTP/1.1 200")  # answered, then closed once idle
        writer.close()
    finally:
        await server.stop()


async def test_too_many_connections_evicts_the_oldest_idle_one():
    server = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0, max_connections=3)
    await server.start()
    try:
        idle = [await _raw(server) for _ in range(3)]
        await asyncio.sleep(0.05)
        async with aiohttp.ClientSession(base_url=server.url) as http:
            async with http.get("/v1/health") as r:
                assert r.status == 200
        assert await _closed_by_server(idle[0][0], within=3) == b""  # the oldest went
        assert len(server.connections.open) <= 3
        for _, writer in idle:
            writer.close()
    finally:
        await server.stop()


async def test_too_many_busy_connections_refuse_the_next_with_503():
    control = FakeControl()
    release = asyncio.Event()

    async def blocked_agents():
        await release.wait()
        return []

    control.agents = blocked_agents
    server = ApiServer(build_app(control, TOKEN), "127.0.0.1", 0, max_connections=2)
    await server.start()
    try:
        busy = [await _raw(server) for _ in range(2)]
        for _, writer in busy:
            writer.write(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        await asyncio.sleep(0.1)
        reader, writer = await _raw(server)
        refused = await _closed_by_server(reader, within=3)
        assert refused.startswith(b"HTTP/1.1 503") and b"too many connections" in refused
        writer.close()
        release.set()
        for reader, writer in busy:
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 3)).startswith(b"HTTP/1.1 200")
            writer.close()
    finally:
        await server.stop()


async def test_body_that_never_arrives_is_408(monkeypatch):
    monkeypatch.setattr("callcenterd.api.http.BODY_TIMEOUT", 0.2)
    control = FakeControl()
    server = ApiServer(build_app(control, TOKEN), "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await _raw(server)
        writer.write(b"POST /v1/agents/1001/pause HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        status = await asyncio.wait_for(reader.readuntil(b"\r\n"), 3)
        assert status.startswith(b"HTTP/1.1 408")
        writer.close()
        assert control.calls == []
    finally:
        await server.stop()
