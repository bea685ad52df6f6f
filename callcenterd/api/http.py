"""Local HTTP API for agent control: login, logout, pause, unpause, and live views.

Bound to 127.0.0.1 by default.  Every ``/v1`` route except ``/v1/health``
needs ``Authorization: Bearer <token>``; the token is compared in constant
time and never logged.  Errors are always JSON ``{"error": "..."}``.

The API talks to the core through :class:`AgentControl` only.  The daemon
adapts the ACD to it; its methods may be plain or ``async``.  Errors the
control raises map onto HTTP statuses:

* ``LookupError`` (incl. ``KeyError`` and an ``UnknownAgent(KeyError)``) → 404
* ``ValueError`` or any exception class named ``InvalidTransition`` → 409
* anything else → 500 ``{"error": "internal error"}`` (details logged, not sent)

Slow or idle clients cannot hold the API (slowloris): a connection must
finish its first request header within ``HEADER_TIMEOUT``, an idle keep-alive
connection is closed after ``KEEPALIVE_TIMEOUT``, a request body must arrive
within ``BODY_TIMEOUT``, and at most ``MAX_CONNECTIONS`` are open at once (at
the limit the oldest connection still waiting for its header is closed; when
none is, the new one gets a 503).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import ipaddress
from typing import Any, Awaitable, Callable, Protocol, TypedDict

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8480
MAX_BODY_BYTES = 16 * 1024  # a pause body is a few dozen bytes
MAX_REASON_LEN = 64  # fits queue_log's PAUSE|reason and Asterisk's QueueMemberPause Reason
MAX_AGENT_ID_LEN = 64
PUBLIC_PATHS = frozenset({"/v1/health"})
SHUTDOWN_TIMEOUT = 5.0  # seconds stop() waits for in-flight requests
HEADER_TIMEOUT = 10.0  # seconds from connect to the end of the first request header
KEEPALIVE_TIMEOUT = 15.0  # seconds an idle keep-alive connection stays open (aiohttp's default: 1 h)
BODY_TIMEOUT = 10.0  # seconds to receive a request body
MAX_CONNECTIONS = 64  # open at once; the CLI uses one per command


# ----------------------------------------------------------------- the port
class AgentRow(TypedDict, total=False):
    """One entry of ``GET /v1/agents`` (extra keys are passed through)."""

    agent: str
    state: str  # logged-out | available | ringing | on-call | wrap-up | paused
    reason: str
    since: float  # epoch seconds of the last state change
    queues: list[str]


class QueueRow(TypedDict, total=False):
    """One entry of ``GET /v1/queues``."""

    queue: str
    waiting: int
    available: int  # agents idle and able to take a call now
    logged_in: int
    longest_wait: float  # seconds


class WaitingRow(TypedDict, total=False):
    """One entry of ``GET /v1/waiting``."""

    call_id: str
    queue: str
    position: int  # 1-based, within its queue
    enqueued_at: float  # epoch seconds
    waited: float  # seconds
    estimated_wait: float | None  # seconds, None when unknown
    priority: int
    caller_number: str


class AgentControl(Protocol):
    """What the HTTP API needs from the core (methods may also be ``async``)."""

    def login(self, agent_id: str) -> None: ...
    def logout(self, agent_id: str) -> None: ...
    def pause(self, agent_id: str, reason: str) -> None: ...
    def unpause(self, agent_id: str) -> None: ...
    def agents(self) -> list[AgentRow]: ...
    def queues(self) -> list[QueueRow]: ...
    def waiting(self) -> list[WaitingRow]: ...


class CampaignControl(Protocol):
    """What the campaign routes need (methods may also be ``async``).

    ``action`` is one of start, pause, resume, stop.  A disposition's
    ``callback_at`` is the lead's local wall-clock time, ISO 8601 without an
    offset (``2026-12-01T10:30``), or None.
    """

    def campaigns(self) -> list[dict[str, Any]]: ...
    def campaign_status(self, name: str) -> dict[str, Any]: ...
    def campaign_action(self, name: str, action: str) -> dict[str, Any]: ...
    def disposition(self, attempt_id: str, agent: str, disposition: str,
                    callback_at: str | None) -> dict[str, Any]: ...
    def preview_next(self, agent: str) -> dict[str, Any] | None: ...
    def preview_decide(self, agent: str, lead_id: int, accept: bool) -> dict[str, Any]: ...


CAMPAIGN_ACTIONS = ("start", "pause", "resume", "stop")
MAX_NAME_LEN = 64


class BadRequest(ValueError):
    """The request itself is malformed (→ 400, unlike a core ValueError → 409)."""


# ---------------------------------------------------------------- helpers
def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _message(err: BaseException) -> str:
    # str(KeyError("x")) is "'x'" (the repr); the first argument is what was meant.
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err) or type(err).__name__


def _has_control_chars(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def _agent_id(request: web.Request) -> str:
    agent_id = request.match_info["agent_id"]
    if len(agent_id) > MAX_AGENT_ID_LEN:
        raise BadRequest(f"agent id longer than {MAX_AGENT_ID_LEN} characters")
    if _has_control_chars(agent_id):
        raise BadRequest("agent id contains a control character")
    return agent_id


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _bearer_ok(header: str, token: bytes) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest on bytes: constant time in the token's content.
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token)


# ------------------------------------------------------------- middleware
def _middlewares(token: bytes) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    @web.middleware
    async def errors(request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413...
            if exc.status < 400:
                raise
            return _error(exc.status, exc.reason)
        except BadRequest as err:
            return _error(400, str(err))
        except LookupError as err:
            return _error(404, _message(err))
        except Exception as err:  # noqa: BLE001 (mapped by contract, see module doc)
            if isinstance(err, ValueError) or type(err).__name__ == "InvalidTransition":
                return _error(409, _message(err))
            log.exception("api.handler_failed", method=request.method, path=request.path)
            return _error(500, "internal error")

    @web.middleware
    async def auth(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            if not _bearer_ok(request.headers.get("Authorization", ""), token):
                # Never log the header: a wrong token is often a typo of the right one.
                log.warning("api.unauthorized", method=request.method, path=request.path,
                            peer=request.remote)
                resp = _error(401, "missing or wrong bearer token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="callcenterd"'
                return resp
        return await handler(request)

    return [errors, auth]


# ----------------------------------------------------------------- routes
def build_app(control: AgentControl, token: str, campaigns: CampaignControl | None = None) -> web.Application:
    """The aiohttp application; ``token`` must be non-empty.  Without
    ``campaigns`` the campaign routes answer 404 "no campaigns"."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError("the API token must be a non-empty string")
    if _has_control_chars(token):
        raise ValueError("the API token contains a control character")

    routes = web.RouteTableDef()

    @routes.get("/v1/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def agent_action(action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            agent_id = _agent_id(request)
            await _call(getattr(control, action), agent_id)
            log.info("api.agent", action=action, agent=agent_id)
            return web.json_response({"ok": True, "agent": agent_id, "action": action})
        return handler

    @routes.post("/v1/agents/{agent_id}/pause")
    async def pause(request: web.Request) -> web.Response:
        agent_id = _agent_id(request)
        reason = await _reason(request)
        await _call(control.pause, agent_id, reason)
        log.info("api.agent", action="pause", agent=agent_id, reason=reason)
        return web.json_response({"ok": True, "agent": agent_id, "action": "pause",
                                  "reason": reason})

    for action in ("login", "logout", "unpause"):
        routes.post(f"/v1/agents/{{agent_id}}/{action}")(agent_action(action))

    def listing(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            rows = await _call(getattr(control, name))
            return web.json_response({name: list(rows)})
        return handler

    for name in ("agents", "queues", "waiting"):
        routes.get(f"/v1/{name}")(listing(name))

    _campaign_routes(routes, campaigns)

    app = web.Application(middlewares=_middlewares(token.encode("utf-8")),
                          client_max_size=MAX_BODY_BYTES)
    app.add_routes(routes)
    return app


def _campaign_routes(routes: web.RouteTableDef, campaigns: CampaignControl | None) -> None:
    def need() -> CampaignControl:
        if campaigns is None:
            raise LookupError("no campaigns are configured on this daemon")
        return campaigns

    @routes.get("/v1/campaigns")
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"campaigns": list(await _call(need().campaigns))})

    @routes.get("/v1/campaigns/{name}")
    async def status(request: web.Request) -> web.Response:
        return web.json_response(await _call(need().campaign_status, _name(request, "name")))

    @routes.post("/v1/campaigns/{name}/{action}")
    async def action(request: web.Request) -> web.Response:
        name, act = _name(request, "name"), request.match_info["action"]
        if act not in CAMPAIGN_ACTIONS:
            raise web.HTTPNotFound(reason=f"unknown campaign action {act!r}: use {', '.join(CAMPAIGN_ACTIONS)}")
        result = await _call(need().campaign_action, name, act)
        log.info("api.campaign", action=act, campaign=name)
        return web.json_response(result)

    @routes.post("/v1/attempts/{attempt_id}/disposition")
    async def disposition(request: web.Request) -> web.Response:
        attempt_id = _name(request, "attempt_id")
        body = await _json_object(request)
        agent = _field(body, "agent")
        name = _field(body, "disposition")
        callback_at = body.get("callback_at")
        if callback_at is not None and (not isinstance(callback_at, str) or _has_control_chars(callback_at)):
            raise BadRequest("'callback_at' must be a local time such as 2026-12-01T10:30")
        result = await _call(need().disposition, attempt_id, agent, name, callback_at)
        log.info("api.disposition", attempt=attempt_id, agent=agent, disposition=name)
        return web.json_response(result)

    @routes.get("/v1/agents/{agent_id}/preview")
    async def preview(request: web.Request) -> web.Response:
        lead = await _call(need().preview_next, _agent_id(request))
        return web.json_response({"lead": lead})

    @routes.post("/v1/agents/{agent_id}/preview/{lead_id}/{decision}")
    async def decide(request: web.Request) -> web.Response:
        agent = _agent_id(request)
        decision = request.match_info["decision"]
        if decision not in ("accept", "skip"):
            raise web.HTTPNotFound(reason="use accept or skip")
        try:
            lead_id = int(request.match_info["lead_id"])
        except ValueError:
            raise BadRequest("lead id must be an integer") from None
        return web.json_response(await _call(need().preview_decide, agent, lead_id, decision == "accept"))


def _name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if len(value) > MAX_NAME_LEN or _has_control_chars(value):
        raise BadRequest(f"{key} must be at most {MAX_NAME_LEN} printable characters")
    return value


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{key}' is required: a non-empty string")
    if len(value) > MAX_NAME_LEN or _has_control_chars(value):
        raise BadRequest(f"'{key}' must be at most {MAX_NAME_LEN} printable characters")
    return value


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            body = await request.json()
    except (ValueError, LookupError):
        raise BadRequest("request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {BODY_TIMEOUT:g} s") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


async def _reason(request: web.Request) -> str:
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            body = await request.json()
    except (ValueError, LookupError):  # bad JSON, bad UTF-8, unknown charset=
        raise BadRequest("request body is not valid JSON") from None
    except RecursionError:  # json.loads recurses once per "[" or "{"
        raise BadRequest("request body is nested too deeply") from None
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {BODY_TIMEOUT:g} s") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("'reason' is required: a non-empty string")
    if len(reason) > MAX_REASON_LEN:
        raise BadRequest(f"'reason' is longer than {MAX_REASON_LEN} characters")
    if _has_control_chars(reason):
        # CR/LF would split a queue_log line or an AMI header downstream.
        raise BadRequest("'reason' contains a control character")
    return reason


# ----------------------------------------------------------------- server
class _Connections:
    """The open API connections, oldest first, with the limits they obey."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open: dict[_GuardedConnection, None] = {}  # insertion ordered

    def admit(self, conn: _GuardedConnection) -> bool:
        """Make room for ``conn``: close the oldest connection still waiting
        for its header if the limit is reached; False when none can go."""
        if len(self.open) >= self.max_connections:
            idle = next((c for c in self.open if c.awaiting_header), None)
            if idle is None:
                return False
            idle.drop("api.connection_evicted", max_connections=self.max_connections)
        self.open[conn] = None
        return True


_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 34\r\n\r\n"
    b'{"error": "too many connections"}\n'
)


class _GuardedConnection(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: enforces the header
    timeout and the connection limit, forwards everything else.

    aiohttp has no header-read timeout, and its keep-alive timer only starts
    after a first response (before 3.14), so a client that sends half a
    header and stalls would hold its connection for ever.
    """

    def __init__(self, inner_factory: Callable[[], asyncio.Protocol], conns: _Connections) -> None:
        self._inner_factory = inner_factory
        self._conns = conns
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # last bytes seen while awaiting the header
        self.awaiting_header = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if not self._conns.admit(self):
            log.warning("api.connection_refused", reason="too many connections",
                        max_connections=self._conns.max_connections)
            self._transport.write(_TOO_MANY)
            self._transport.close()
            return
        self._timer = asyncio.get_running_loop().call_later(self._conns.header_timeout, self._header_timed_out)
        self._inner = self._inner_factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self.awaiting_header:
            seen = self._tail + data
            if b"\r\n\r\n" in seen:  # end of the request line and headers
                self.awaiting_header = False
                self._cancel_timer()
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._conns.open.pop(self, None)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def _header_timed_out(self) -> None:
        self._timer = None
        self.drop("api.header_timeout", timeout_s=self._conns.header_timeout)

    def drop(self, event: str, **fields: Any) -> None:
        """Close the connection (header timeout, eviction); logged once."""
        self._cancel_timer()
        self._conns.open.pop(self, None)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            log.info(event, peer=transport.get_extra_info("peername"), **fields)
            transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ApiServer:
    """Runs an app on host:port; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(self, app: web.Application, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, *, header_timeout: float = HEADER_TIMEOUT,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._keepalive_timeout = keepalive_timeout
        self.connections = _Connections(max_connections, header_timeout)
        self.port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("API server already started")
        if not _is_loopback(self.host):
            log.warning("api.non_loopback_bind", host=self.host,
                        hint="anyone who can reach this port can try tokens; firewall it")
        runner = web.AppRunner(self.app, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_TIMEOUT,
                               keepalive_timeout=self._keepalive_timeout)
        await runner.setup()
        inner = runner.server  # aiohttp's protocol factory (its low-level server)
        assert inner is not None
        conns = self.connections
        try:
            # Our own listening socket instead of web.TCPSite, so that every
            # connection goes through _GuardedConnection.
            server = await asyncio.get_running_loop().create_server(
                lambda: _GuardedConnection(inner, conns), self.host, self._requested_port)
        except OSError as err:
            await runner.cleanup()
            raise OSError(err.errno,
                          f"cannot listen on {self.host}:{self._requested_port}: {err.strerror}"
                          ) from err
        self._runner, self._server = runner, server
        self.port = server.sockets[0].getsockname()[1]
        log.info("api.listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stop accepting; open connections are shut down by the runner
        if runner is not None:
            await runner.cleanup()
        for conn in list(self.connections.open):
            conn.drop("api.connection_closed_on_stop")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


async def start_api(app: web.Application, host: str = DEFAULT_HOST,
                    port: int = DEFAULT_PORT) -> ApiServer:
    """Start serving ``app``; ``await server.stop()`` to end."""
    server = ApiServer(app, host, port)
    await server.start()
    return server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
