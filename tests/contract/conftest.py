"""The contract suite's ``pbx`` fixture: the same scenarios against every driver.

* ``asterisk``: the real sandbox Asterisk 22 (the integration suite's session
  fixture, imported here so both suites share one definition), driven by
  :class:`tests.integration.acd_rig.AcdRig`;
* ``freeswitch``: the scripted fake FreeSWITCH of ``fs_switch.py`` (real
  captured event headers and oddities), time compressed tenfold.

A scenario asks the fixture for a rig (``pbx.rig(queues=..., agents=...)``),
for device strings (``pbx.device("1001")``) and for durations
(``pbx.s(4)``: 4 s on Asterisk, 0.4 s on the fake).  Rigs expose one API:
``customer``, ``call_id``, ``fact``, ``of``, ``agent_state``,
``agent_leg_up``, ``control``, ``outside_call`` (a call on an agent's device
that callcenterd did not make), ``announced`` (the positions a waiting
caller was told, read from what the PBX played), ``held`` (the caller's leg is
on hold in the PBX) and ``restart_callcenterd``
(a graceful stop and a fresh runtime on the same store, CDR directory and
PBX, whose channels are left alone).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from callcenterd.config import config_from_mapping
from callcenterd.pbx.api import CallerId, LegRole, OriginateRequest
from callcenterd.sandbox.asterisk import free_tcp_port
from callcenterd.wiring import build
from tests.contract.fs_switch import FsSwitch
from tests.integration.acd_rig import AcdRig, wait_for
from tests.integration.conftest import asterisk  # noqa: F401  (session fixture, shared)


async def start_fresh_runtime(rig: AcdRig, driver: str) -> None:
    """After a graceful stop, a new runtime from the same config: same store,
    CDR directory and PBX.  Agents are not logged in again: their state must
    come back from the store."""
    rig.runtime = await build(config_from_mapping(rig.config_mapping()), with_api=False)
    rig.runtime.center.add_listener(rig._on_fact)
    await rig.runtime.start()
    new_driver = rig.runtime.drivers[driver]
    await wait_for(lambda: new_driver.up, "driver up again after the restart", timeout=10)


class AsteriskContractRig(AcdRig):
    async def restart_callcenterd(self) -> None:
        await self.runtime.stop()  # callers stay in [callcenterd-hold]
        await start_fresh_runtime(self, "sandbox")

    def agent_leg_up(self, ext: str) -> bool:
        return f"{ext}@agents" in self.channels()

    async def outside_call(self, ext: str, seconds: float) -> None:
        """Somebody else's call on the agent's device: an Originate to it that
        callcenterd did not ask for."""
        assert self.traffic is not None
        await self.traffic.action("Originate", [("Channel", f"Local/{ext}@agents/n"), ("Application", "Wait"),
                                                ("Data", str(int(seconds))), ("Async", "true")])

    def answer_first(self) -> list[str]:
        """From now on, each agent leg's OriginateResponse (answer) reaches the
        driver before its Newchannel, the order seen once in ~170 bridges.
        Returns the list the reordered legs are appended to."""
        supervisor = self.runtime.supervisors[0]
        translator = self.runtime.drivers["sandbox"]._translator
        deliver = supervisor._on_event
        held: dict[str, Any] = {}
        reordered: list[str] = []

        def reorder(msg: Any) -> None:
            uid = msg.get("Uniqueid") or ""
            if msg.name == "Newchannel" and uid in translator.originates.values():
                held[uid] = msg
                return
            deliver(msg)
            if msg.name == "OriginateResponse" and uid in held:
                reordered.append(uid)
                deliver(held.pop(uid))

        supervisor._on_event = reorder
        return reordered

    def bridged_with(self, leg_a: str, leg_b: str) -> bool:
        """Both legs sit in one bridge of the PBX (by uniqueid)."""
        rows = {r[-1]: r for r in (line.split("!") for line in self.channels().splitlines()) if len(r) > 2}
        a, b = rows.get(leg_a), rows.get(leg_b)
        return a is not None and b is not None and a[-2] != "" and a[-2] == b[-2]

    def held(self, leg_id: str) -> bool:
        """The caller's leg sits in [callcenterd-hold] (its AGI is over)."""
        channel = self.runtime.drivers["sandbox"]._translator.channel_name(leg_id)
        rows = [line.split("!") for line in self.channels().splitlines()]
        return any(r[0] == channel and len(r) > 1 and r[1] == "callcenterd-hold" for r in rows)

    def announced(self, leg_id: str) -> list[int]:
        """Positions [callcenterd-hold] said to the leg, from the console log:
        ``SayNumber(<n>)`` after "there are", or "queue-youarenext" for 1."""
        channel = self.runtime.drivers["sandbox"]._translator.channel_name(leg_id)
        text = self.asterisk.log_path.read_text(errors="replace")
        pattern = re.compile(rf'(?:SayNumber\("{re.escape(channel)}", "(\d+)"\)'
                             rf'|Playback\("{re.escape(channel)}", "queue-youarenext"\))')
        return [int(m.group(1) or 1) for m in pattern.finditer(text)]


class FreeswitchContractRig(AcdRig):
    """AcdRig's API over the fake FreeSWITCH (no AMI traffic session)."""

    def __init__(self, workdir: Path, *, queues: dict, agents: dict, login: bool = True) -> None:
        super().__init__(None, workdir, queues=queues, agents=agents, login=login)
        self.switch = FsSwitch()
        self.outbound_port = 0

    def config_mapping(self) -> dict:
        return {
            "pbx": {"fs": {
                "type": "freeswitch",
                "esl": {"host": "127.0.0.1", "port": self.switch.fake.port, "password": self.switch.fake.password},
                "outbound": {"host": "127.0.0.1", "port": self.outbound_port},
            }},
            "queues": self.queues,
            "agents": self.agents,
            "cdr": {"directory": str(self.workdir / "cdr"), "fsync": "never"},
            "store": {"path": str(self.workdir / "state.db")},
        }

    async def start(self) -> "FreeswitchContractRig":
        await self.switch.start()
        self.outbound_port = free_tcp_port()
        self.runtime = await build(config_from_mapping(self.config_mapping()), with_api=False)
        self.runtime.center.add_listener(self._on_fact)
        await self.runtime.start()
        driver = self.runtime.drivers["fs"]
        await wait_for(lambda: driver.up, "ESL connected and resynced", timeout=5)
        if self.login:
            for agent in self.agents:
                self.control("agent_login", agent)
        return self

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            await self.runtime.drivers["fs"].close()
        await self.switch.close()

    async def customer(self, queue: str, patience: float, *, priority: int | None = None,
                       number: str | None = None, name: str = "Customer") -> str:
        """A customer calls ``queue``; a ``priority`` is the channel variable
        ``cc_priority`` the dialplan/IVR set before ``socket`` (the driver reads
        it from the socket's CHANNEL_DATA, like __CC_PRIORITY on Asterisk)."""
        self._customers += 1
        number = number or f"55500{self._customers:02d}"
        variables = {} if priority is None else {"cc_priority": str(priority)}
        await self.switch.customer(self.outbound_port, queue, patience, number, name, variables)
        return number

    async def restart_callcenterd(self) -> None:
        await self.runtime.stop()  # the fake keeps the callers' channels parked
        await self.runtime.drivers["fs"].close()
        await start_fresh_runtime(self, "fs")

    def agent_leg_up(self, ext: str) -> bool:
        return self.switch.ext_up(ext)

    def answer_first(self) -> list[str]:
        """From now on, each agent leg is answered and bridged while its
        originate job still runs (the job then ends -ERR ORIGINATOR_CANCEL,
        esl-bridge-before-originate-job).  Legs are addressed by our own
        origination_uuid, so there is no name to learn: nothing to reorder."""
        self.switch.job_delay = max(self.switch.job_delay, 0.2)
        return []

    def bridged_with(self, leg_a: str, leg_b: str) -> bool:
        a, b = self.switch.channels.get(leg_a), self.switch.channels.get(leg_b)
        return a is not None and b is not None and a.bridged == leg_b and b.bridged == leg_a

    def held(self, leg_id: str) -> bool:
        """The caller's socket queued the music on hold (the last step of a hold)."""
        chan = self.switch.channels.get(leg_id)
        return chan is not None and not chan.gone and "cc_moh_playing" in chan.vars

    async def outside_call(self, ext: str, seconds: float) -> None:
        self.switch.outside_call(ext, seconds)

    def announced(self, leg_id: str) -> list[int]:
        return self.switch.announced(leg_id)

    def channel_count(self) -> int:
        return len(self.switch.alive())


CAMPAIGN_CID = CallerId("5551000", "Campaign")


class Legs:
    """Port-level access for outbound scenarios: originate legs straight
    through the rig's driver (``rig.runtime.drivers[node]``) and collect the
    port events the driver emits for them (the core still gets every event;
    it ignores legs it did not dial).  ``sent`` records the AMI actions the
    Asterisk driver sent (name, headers) as they went to the wire."""

    def __init__(self, pbx: Pbx, rig: AcdRig) -> None:
        self.pbx = pbx
        self.rig = rig
        self.node = "sandbox" if pbx.kind == "asterisk" else "fs"
        self.driver = rig.runtime.drivers[self.node]
        self.events: list[tuple[float, Any]] = []
        self.names: dict[str, str] = {}  # Asterisk leg id -> channel name, kept after the hangup
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []
        emit = self.driver._emit

        def tap(event: Any) -> None:
            self.events.append((time.monotonic(), event))
            self._learn_names()
            emit(event)

        self.driver._emit = tap
        if pbx.kind == "asterisk":
            ami = self.driver._ami
            action = ami.action

            async def recording(name: str, headers: Any = (), **kw: Any) -> Any:
                self.sent.append((name, list(headers)))
                return await action(name, headers, **kw)

            ami.action = recording
        else:
            self.driver.amd_window = pbx.s(5)  # the fake's machines beep 0.15 s after avmd start

    def _learn_names(self) -> None:
        if self.pbx.kind == "asterisk":
            self.names.update({k: v for k, v in self.driver._translator.channels.items()})

    def lead(self, digit: str) -> str:
        """The dial string of a sandbox lead whose last digit is ``digit``."""
        number = f"555010{digit}"
        if self.pbx.kind == "asterisk":
            return f"Local/{number}@sandbox-outbound/n"
        return f"loopback/{number}/sandbox-outbound"

    async def originate(self, endpoint: str, *, role: LegRole = LegRole.CUSTOMER, amd: bool = False,
                        ring: float = 20.0, caller_id: CallerId = CAMPAIGN_CID,
                        variables: dict[str, str] | None = None) -> tuple[str, float]:
        leg = "cc-" + uuidlib.uuid4().hex[:16]
        started = time.monotonic()
        await self.driver.originate(OriginateRequest(
            leg_id=leg, endpoint=endpoint, caller_id=caller_id, ring_timeout=ring, amd=amd,
            call_id="call-" + leg[3:], role=role, variables=variables or {}))
        return leg, started

    def of(self, leg: str, kind: type | None = None) -> list[Any]:
        out = []
        for _, e in self.events:
            legs = {getattr(e, "leg_id", None), getattr(e, "leg_a", None), getattr(e, "leg_b", None)}
            if leg in legs and (kind is None or isinstance(e, kind)):
                out.append(e)
        return out

    def at(self, leg: str, kind: type) -> float | None:
        return next((t for t, e in self.events if isinstance(e, kind) and getattr(e, "leg_id", None) == leg), None)

    async def event(self, leg: str, kind: type, timeout: float = 30.0) -> Any:
        await wait_for(lambda: bool(self.of(leg, kind)), f"{kind.__name__} for {leg}", timeout=timeout)
        return self.of(leg, kind)[0]

    def played(self, leg: str) -> list[str]:
        """Sound files the PBX played to the leg: Asterisk's console log
        (``Playback("<channel>", "<file>")``), the fake's ``played``."""
        if self.pbx.kind == "asterisk":
            channel = self.names.get(leg, leg)
            text = self.pbx.asterisk.log_path.read_text(errors="replace")
            return re.findall(rf'Playback\("{re.escape(channel)}", "([^"]+)"\)', text)
        return [f for u, f in self.rig.switch.played if u == leg]

    def waited_for_silence(self, leg: str) -> bool:
        if self.pbx.kind == "asterisk":
            channel = self.names.get(leg, leg)
            return f'WaitForSilence("{channel}"' in self.pbx.asterisk.log_path.read_text(errors="replace")
        return False

    async def settle(self) -> None:
        await asyncio.sleep(self.pbx.s(0.5))


class Pbx:
    """What a scenario needs to know about the PBX under test."""

    def __init__(self, kind: str, asterisk: Any, workdir: Path) -> None:
        self.kind = kind
        self.asterisk = asterisk
        self.workdir = workdir
        self.scale = 1.0 if kind == "asterisk" else 0.1

    def s(self, seconds: float) -> float:
        """A scenario duration on this PBX (the fake runs 10x faster)."""
        return seconds * self.scale

    def device(self, ext: str) -> str:
        return f"Local/{ext}@agents/n" if self.kind == "asterisk" else f"loopback/{ext}/agents"

    def rig(self, *, queues: dict, agents: dict, login: bool = True) -> AcdRig:
        if self.kind == "asterisk":
            return AsteriskContractRig(self.asterisk, self.workdir, queues=queues, agents=agents, login=login)
        return FreeswitchContractRig(self.workdir, queues=queues, agents=agents, login=login)

    async def wait(self, pred: Any, what: str, timeout: float = 20.0) -> None:
        await wait_for(pred, what, timeout=timeout)

    def legs(self, rig: AcdRig) -> Legs:
        """Port-level outbound helper on a started rig (see :class:`Legs`)."""
        return Legs(self, rig)


@pytest.fixture(params=["asterisk", "freeswitch"])
def pbx(request: pytest.FixtureRequest, tmp_path: Path) -> Pbx:
    ast = None
    if request.param == "asterisk":
        ast = request.getfixturevalue("asterisk")
        if not ast.is_running():
            ast.start()
    return Pbx(request.param, ast, tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("pbx") == "asterisk":
            item.add_marker(pytest.mark.asterisk)

