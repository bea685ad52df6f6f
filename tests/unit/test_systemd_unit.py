"""sd_notify over a real AF_UNIX datagram socket, and the shipped unit file."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest

from callcenterd import systemd

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "callcenterd.service"


# ------------------------------------------------------------------ sd_notify
@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket and the env that points at it."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, {"NOTIFY_SOCKET": str(path)}
    sock.close()


def received(sock) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def test_ready_status_stopping(notify_socket):
    sock, env = notify_socket
    assert systemd.notify_ready("2 pbx nodes up", env=env)
    assert systemd.notify_status("47 callers waiting", env=env)
    assert systemd.notify_stopping(env=env)
    assert received(sock) == [b"READY=1\nSTATUS=2 pbx nodes up", b"STATUS=47 callers waiting", b"STOPPING=1"]


def test_reloading_carries_monotonic_usec(notify_socket):
    sock, env = notify_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    systemd.notify_reloading(env=env)
    (message,) = received(sock)
    state, usec = message.decode().split("\n")
    assert state == "RELOADING=1" and int(usec.removeprefix("MONOTONIC_USEC=")) >= before


def test_abstract_socket():
    name = f"callcenterd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert systemd.notify_ready(env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_outside_systemd_is_a_no_op():
    assert systemd.notify_ready(env={}) is False
    assert systemd.notify_ready(env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_status_cannot_inject_assignments(notify_socket):
    sock, env = notify_socket
    with pytest.raises(ValueError, match="CR, LF"):
        systemd.notify_status("ok\nREADY=1", env=env)
    assert received(sock) == []


def test_unreachable_socket_raises(tmp_path):
    with pytest.raises(OSError):
        systemd.notify_ready(env={"NOTIFY_SOCKET": str(tmp_path / "gone")})


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert systemd.watchdog_interval(env) == expected


def test_watchdog_pings_then_sleeps_half_the_interval(notify_socket, monkeypatch):
    sock, env = notify_socket

    @types.coroutine
    def fake_sleep(delay):
        yield delay  # hands the delay to whoever drives the coroutine

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    coro = systemd.watchdog_task(30.0, env=env)
    assert coro.send(None) == 15.0
    assert received(sock) == [b"WATCHDOG=1"]
    assert coro.send(None) == 15.0
    assert received(sock) == [b"WATCHDOG=1"]
    coro.close()


async def test_watchdog_pings_from_the_loop_and_stops_when_the_loop_blocks(notify_socket):
    sock, env = notify_socket
    task = asyncio.create_task(systemd.watchdog_task(0.1, env=env))
    try:
        await asyncio.sleep(0.17)  # pings at ~0, 0.05, 0.10, 0.15
        pings = received(sock)
        assert len(pings) >= 2 and set(pings) == {b"WATCHDOG=1"}
        time.sleep(0.25)  # a frozen event loop: the watchdog must go quiet
        assert received(sock) == []
        await asyncio.sleep(0.01)  # the loop runs again: pings resume
        resumed = received(sock)
        assert len(resumed) >= 1 and set(resumed) == {b"WATCHDOG=1"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------ unit file
def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_has_the_required_settings():
    d = directives(UNIT.read_text())
    expected = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
        "ExecStart": "/usr/bin/callcenterd run -c /etc/callcenterd/callcenterd.yaml",
        "User": "callcenterd", "Group": "callcenterd", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/callcenterd /var/log/callcenterd",
        "StateDirectory": "callcenterd", "LogsDirectory": "callcenterd", "PrivateTmp": "yes",
        "ProtectHome": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }  # fmt: skip
    assert {key: d.get(key, [None])[-1] for key in expected} == expected
    assert "DynamicUser" not in d  # a dedicated, stable user owns the CDR files


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is required in CI to verify systemd/callcenterd.service")
        pytest.skip("systemd-analyze not installed: cannot verify the unit file here")
    return found


def _verify(analyze: str, unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # verify insists that ExecStart= binaries exist: point them at a real one.
    executable = shutil.which("callcenterd", path=str(Path(sys.executable).parent)) or "/bin/true"
    unit = tmp_path / "callcenterd.service"
    unit.write_text(unit_text.replace("/usr/bin/callcenterd", executable))
    return subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning", "SYSTEMD_LOG_COLOR": "0"},
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    result = _verify(_systemd_analyze(), UNIT.read_text(), tmp_path)
    # Parse problems are "ignoring" warnings, so demand silence about our unit too.
    complaints = [line for line in result.stderr.splitlines() if "callcenterd" in line]
    assert result.returncode == 0 and complaints == [], result.stderr


@pytest.mark.parametrize(
    "breakage",
    [("Type=notify", "Type=notifyy"), ("ProtectSystem=strict", "ProtectSystem=sometimes"),
     ("WatchdogSec=30", "WatchdogSec=30 parsecs")],
)  # fmt: skip
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path, breakage):
    old, new = breakage
    text = UNIT.read_text()
    assert old in text
    result = _verify(_systemd_analyze(), text.replace(old, new), tmp_path)
    assert result.returncode != 0 or "callcenterd.service" in result.stderr
