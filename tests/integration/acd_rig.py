"""callcenterd running in-process against the sandbox Asterisk, plus a
"traffic" AMI session that plays the customers.

Customers are ``Local/<queue>@customers/n`` channels: the ``;2`` half enters
``[callcenterd-inbound]``, the ``;1`` half runs ``Wait(<patience>)`` and then
hangs up (that is the customer hanging up).  Agents are the sandbox's
``[agents]`` extensions: 1XXX/5XXX answer and stay, 2001 never answers,
2002 is busy, 4XXX talk a few seconds and hang up.
"""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path
from typing import Any, Callable

from callcenterd.config import config_from_mapping
from callcenterd.core import facts as f
from callcenterd.protocols.ami.session import AmiSession
from callcenterd.wiring import build

#: Generous deadlines: the machine is small and Asterisk runs beside the tests.
FACT_TIMEOUT = 20.0


class AcdRig:
    def __init__(self, asterisk: Any, workdir: Path, *, queues: dict, agents: dict, login: bool = True) -> None:
        self.asterisk = asterisk
        self.workdir = workdir
        self.queues = queues
        self.agents = agents
        self.login = login
        self.facts: list[Any] = []
        self._changed = asyncio.Event()
        self.runtime: Any = None
        self.traffic: AmiSession | None = None
        self._customers = 0

    def config_mapping(self) -> dict:
        a = self.asterisk
        return {
            "pbx": {"sandbox": {
                "type": "asterisk",
                "ami": {"host": a.ami_host, "port": a.ami_port, "username": a.ami_user, "secret": a.ami_secret,
                        "keepalive_interval": 1, "keepalive_deadline": 2},
                "fastagi": {"host": a.agi_host, "port": a.agi_port},
            }},
            "queues": self.queues,
            "agents": self.agents,
            "cdr": {"directory": str(self.workdir / "cdr"), "fsync": "never"},
            "store": {"path": str(self.workdir / "state.db")},
        }

    async def start(self) -> "AcdRig":
        await clean_pbx(self.asterisk)
        config = config_from_mapping(self.config_mapping())
        self.runtime = await build(config, self.campaigns(config), with_api=False)
        self.runtime.center.add_listener(self._on_fact)
        await self.runtime.start()
        driver = self.runtime.drivers["sandbox"]
        await wait_for(lambda: driver.up, "AMI connected and resynced")
        if self.login:
            for agent in self.agents:
                self.control("agent_login", agent)
        a = self.asterisk
        self.traffic = await AmiSession.connect(a.ami_host, a.ami_port, a.ami_user, a.ami_secret, events="off")
        return self

    def campaigns(self, config: Any) -> dict:
        """The validated campaigns to run (none here; see the campaign tests)."""
        return {}

    async def stop(self) -> None:
        if self.traffic is not None:
            await self.traffic.close()
        if self.runtime is not None:
            await self.runtime.stop()
        await wait_for(lambda: self.channel_count() == 0, "sandbox idle", timeout=15, poll=0.3, fail=False)

    async def __aenter__(self) -> "AcdRig":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ------------------------------------------------------------- inputs
    def control(self, method: str, *args: Any) -> None:
        self.runtime.center.control(method, *args)

    async def customer(self, queue: str, patience: float, *, priority: int | None = None,
                       number: str | None = None, name: str = "Customer") -> str:
        """A customer calls ``queue`` and hangs up after ``patience`` seconds."""
        self._customers += 1
        number = number or f"55500{self._customers:02d}"
        headers = [
            ("Channel", f"Local/{queue}@customers/n"),
            ("Application", "Wait"), ("Data", str(int(patience))),
            ("CallerID", f'"{name}" <{number}>'),
            ("Async", "true"),
        ]
        if priority is not None:
            headers.append(("Variable", f"__CC_PRIORITY={priority}"))
        assert self.traffic is not None
        await self.traffic.action("Originate", headers)
        return number

    # ------------------------------------------------------------ outputs
    def _on_fact(self, fact: Any) -> None:
        self.facts.append(fact)
        self._changed.set()

    def of(self, kind: type, **match: Any) -> list[Any]:
        return [x for x in self.facts if isinstance(x, kind) and all(getattr(x, k) == v for k, v in match.items())]

    async def fact(self, kind: type, timeout: float = FACT_TIMEOUT, **match: Any) -> Any:
        """Wait for the first fact of ``kind`` matching ``match``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(kind, **match)
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [type(x).__name__ for x in self.facts]
                raise AssertionError(f"no {kind.__name__} {match} within {timeout}s; facts: {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def call_of(self, number: str) -> str:
        """The call id callcenterd gave the customer with this caller number."""
        started = self.of(f.CallStarted, caller_number=number)
        assert started, f"callcenterd never saw caller {number}"
        return started[0].call_id

    async def call_id(self, number: str, timeout: float = FACT_TIMEOUT) -> str:
        await self.fact(f.CallStarted, timeout=timeout, caller_number=number)
        return self.call_of(number)

    def agent_state(self, agent: str) -> str:
        return self.runtime.center.acd.agent_state(agent)["state"]

    def channel_count(self) -> int:
        return channel_count(self.asterisk)

    def channels(self) -> str:
        return self.asterisk.cli("core show channels concise")

    def journeys(self) -> list[dict]:
        import json

        rows = []
        for path in sorted((self.workdir / "cdr").glob("*.jsonl")):
            if "journey" in path.name:
                rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return rows

    def queue_log(self) -> list[list[str]]:
        rows = []
        for path in sorted((self.workdir / "cdr").glob("queue_log*")):
            rows += [line.split("|") for line in path.read_text().splitlines() if line.strip()]
        return rows

    def master_csv(self) -> list[list[str]]:
        path = self.asterisk.master_csv_path()
        if not path.exists():
            return []
        with path.open(newline="") as fh:
            return list(csv.reader(fh))


def channel_count(asterisk: Any) -> int:
    for line in asterisk.cli("core show channels count").splitlines():
        if "active channel" in line:
            return int(line.split()[0])
    return -1


async def clean_pbx(asterisk: Any) -> None:
    """Start every scenario from an idle PBX: a channel left over from an
    earlier test would show up as a busy agent device."""
    if channel_count(asterisk) != 0:
        asterisk.cli("channel request hangup all")
        await wait_for(lambda: channel_count(asterisk) == 0, "sandbox idle before the test", timeout=15)


async def wait_for(pred: Callable[[], bool], what: str, *, timeout: float = FACT_TIMEOUT,
                   poll: float = 0.05, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(poll)
    if fail:
        raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
    return False
