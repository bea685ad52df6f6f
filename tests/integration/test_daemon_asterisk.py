"""``callcenterd run`` under systemd's notify protocol, against the sandbox:
READY, watchdog pings from the event loop, a served call, and SIGTERM
losing nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import socket

import pytest

from acd_rig import clean_pbx, wait_for
from callcenterd.protocols.ami.session import AmiSession
from callcenterd.sandbox.asterisk import free_tcp_port
from daemon_proc import Daemon, daemon_config

pytestmark = pytest.mark.asterisk


def _notifications(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return [line for line in out if line]


async def test_notify_watchdog_call_then_sigterm_loses_nothing(asterisk, tmp_path):
    await clean_pbx(asterisk)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    port = free_tcp_port()
    daemon = Daemon(daemon_config(asterisk, tmp_path, port), port, tmp_path / "daemon.log",
                    env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"})
    daemon.start()
    seen: list[str] = []
    traffic = None
    try:
        await wait_for(lambda: (seen.extend(_notifications(notify)) or "READY=1" in seen), "READY=1", timeout=30)
        await wait_for(daemon.up, "API up")
        # watchdog pings keep coming from the event loop (every 0.5 s here)
        pings_before = seen.count("WATCHDOG=1")
        await asyncio.sleep(1.6)
        seen.extend(_notifications(notify))
        assert seen.count("WATCHDOG=1") - pings_before >= 2

        daemon.post("/v1/agents/1001/login")
        traffic = await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user,
                                           asterisk.ami_secret, events="off")
        await traffic.action("Originate", [
            ("Channel", "Local/support@customers/n"), ("Application", "Wait"), ("Data", "3"),
            ("CallerID", '"Short" <5550200>'), ("Async", "true")])
        agent = lambda: next(a for a in daemon.get("/v1/agents")["agents"] if a["agent"] == "1001")  # noqa: E731
        await wait_for(lambda: agent()["state"] == "on-call", "agent on the call")
        await wait_for(lambda: agent()["state"] != "on-call", "call over", timeout=15)
        # SIGTERM right after the call: its records must be on disk, once
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
        seen.extend(_notifications(notify))
        assert "STOPPING=1" in seen
    finally:
        if traffic is not None:
            await traffic.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGKILL)
        notify.close()
    journeys = [json.loads(line) for p in (tmp_path / "cdr").glob("journeys-*.jsonl")
                for line in p.read_text().splitlines() if line.strip()]
    assert [(j["caller_number"], j["outcome"], j["agent"]) for j in journeys] == [("5550200", "answered", "1001")]
    csv_rows = [line for p in (tmp_path / "cdr").glob("journeys-*.csv") for line in p.read_text().splitlines()]
    assert len(csv_rows) == 2 and csv_rows[0].startswith("call_id,")  # header + the call
    queue_log = [line.split("|") for p in (tmp_path / "cdr").glob("queue_log*") for line in p.read_text().splitlines()]
    events = [row[4] for row in queue_log if row[1] == journeys[0]["call_id"]]
    assert events[0] == "ENTERQUEUE" and "CONNECT" in events and events[-1] in ("COMPLETECALLER", "COMPLETEAGENT")
    modes = {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "cdr").iterdir()}
    assert modes == {"0o640"}
