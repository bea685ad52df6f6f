"""``callcenterd run`` as a real process, driven through its HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

QUEUE = {"strategy": "linear", "ring_time": 4, "retry_delay": 1, "wrapup_time": 0, "announce_frequency": 0}
TOKEN = "test-token-0123456789"


class Daemon:
    """``callcenterd run`` as a real process, driven through its HTTP API."""

    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.port, self.log = config, port, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("callcenterd")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(exe), "run", "-c", str(self.config)], stdout=out, stderr=out,
                                         env=self.env)

    def get(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST",
                                     data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            return json.loads(resp.read() or b"{}")

    def waiting(self) -> list[dict]:
        try:
            return self.get("/v1/waiting")["waiting"]
        except OSError:
            return []

    def up(self) -> bool:
        try:
            self.get("/v1/health")
            return True
        except OSError:
            return False

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def daemon_config(asterisk, tmp_path: Path, api_port: int, agents: tuple[str, ...] = ("1001",)) -> Path:
    cfg = {
        "pbx": {"sandbox": {"type": "asterisk",
                            "ami": {"host": asterisk.ami_host, "port": asterisk.ami_port,
                                    "username": asterisk.ami_user, "secret": asterisk.ami_secret},
                            "fastagi": {"host": asterisk.agi_host, "port": asterisk.agi_port}}},
        "queues": {"support": QUEUE},
        "agents": {a: {"device": f"Local/{a}@agents/n", "queues": ["support"]} for a in agents},
        "cdr": {"directory": str(tmp_path / "cdr")},
        "store": {"path": str(tmp_path / "state.db")},
        "api": {"host": "127.0.0.1", "port": api_port, "token": TOKEN},
        "logging": {"level": "info", "format": "json"},
    }
    path = tmp_path / "callcenterd.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path
