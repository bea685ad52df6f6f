"""Tiny blocking client for the agent-control HTTP API (stdlib only, used by the CLI)."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

DEFAULT_API_URL = "http://127.0.0.1:8480"
TOKEN_ENV = "CALLCENTERD_API_TOKEN"
API_URL_ENV = "CALLCENTERD_API_URL"
DEFAULT_TIMEOUT = 5.0  # seconds; the API answers from memory


class ApiError(Exception):
    """The API answered with an error; ``message`` is the server's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class ApiUnreachable(Exception):
    """No answer at all: refused, timed out, bad host."""


class TokenError(ValueError):
    """No usable API token was configured."""


def load_token(token_file: str | os.PathLike[str] | None = None,
               env: Mapping[str, str] | None = None) -> str:
    """Token from ``token_file`` (first line) or else ``$CALLCENTERD_API_TOKEN``.

    There is deliberately no ``--token`` option: a command-line argument is
    visible to every local user in ``ps``.
    """
    env = os.environ if env is None else env
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise TokenError(f"cannot read token file {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise TokenError(f"token file {path} is not UTF-8 text") from None
        token = text.splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise TokenError(f"token file {path} is empty")
        return token
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise TokenError(f"no API token: pass --token-file FILE or set {TOKEN_ENV}")
    return token


class ApiClient:
    """One method per API route; each returns the decoded JSON body."""

    def __init__(self, base_url: str = DEFAULT_API_URL, token: str = "",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"API URL must look like http://127.0.0.1:8480, not {base_url!r}")
        if any(ch in token for ch in "\r\n\0"):
            raise TokenError("the API token contains a control character")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        # No proxies: the API is local, and $http_proxy must not see the token.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------- actions
    def login(self, agent_id: str) -> dict[str, Any]:
        return self._request("POST", self._agent_path(agent_id, "login"), {})

    def logout(self, agent_id: str) -> dict[str, Any]:
        return self._request("POST", self._agent_path(agent_id, "logout"), {})

    def pause(self, agent_id: str, reason: str) -> dict[str, Any]:
        return self._request("POST", self._agent_path(agent_id, "pause"), {"reason": reason})

    def unpause(self, agent_id: str) -> dict[str, Any]:
        return self._request("POST", self._agent_path(agent_id, "unpause"), {})

    # ------------------------------------------------------------ listings
    def agents(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/agents")["agents"]

    def queues(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/queues")["queues"]

    def waiting(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/waiting")["waiting"]

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/v1/health")

    # ----------------------------------------------------------- campaigns
    def campaigns(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/campaigns")["campaigns"]

    def campaign_status(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/campaigns/{_segment(name)}")

    def campaign_action(self, name: str, action: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/campaigns/{_segment(name)}/{_segment(action)}", {})

    def disposition(self, attempt_id: str, agent: str, disposition: str,
                    callback_at: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"agent": agent, "disposition": disposition}
        if callback_at:
            body["callback_at"] = callback_at
        return self._request("POST", f"/v1/attempts/{_segment(attempt_id)}/disposition", body)

    # ------------------------------------------------------------ plumbing
    @staticmethod
    def _agent_path(agent_id: str, action: str) -> str:
        if not agent_id or agent_id in (".", ".."):
            raise ValueError(f"invalid agent id {agent_id!r}")
        return f"/v1/agents/{urllib.parse.quote(agent_id, safe='')}/{action}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        data = None
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self._token}"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, _error_text(err)) from None
        except urllib.error.URLError as err:
            raise ApiUnreachable(self._why(err.reason)) from None
        except (TimeoutError, socket.timeout, ConnectionError) as err:
            raise ApiUnreachable(self._why(err)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(200, f"{url} did not answer JSON; is it the callcenterd API?") from None

    def _why(self, reason: object) -> str:
        if isinstance(reason, ConnectionRefusedError):
            what = "connection refused (is callcenterd running with the HTTP API enabled?)"
        elif isinstance(reason, (TimeoutError, socket.timeout)):
            what = f"no answer within {self.timeout:g} s"
        elif isinstance(reason, socket.gaierror):
            what = f"unknown host ({reason.strerror})"
        elif isinstance(reason, OSError) and reason.strerror:
            what = reason.strerror
        else:
            what = str(reason)
        return f"cannot reach the callcenterd API at {self.base_url}: {what}"


def _segment(value: str) -> str:
    if not value or value in (".", ".."):
        raise ValueError(f"invalid name {value!r}")
    return urllib.parse.quote(value, safe="")


def _error_text(err: urllib.error.HTTPError) -> str:
    """The server's ``{"error": ...}``, or the HTTP reason if the body is not ours."""
    try:
        body = json.loads(err.read() or b"null")
    except (ValueError, OSError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return str(err.reason or f"HTTP {err.code}")
