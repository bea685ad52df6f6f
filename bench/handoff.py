#!/usr/bin/env python3
"""Agent hand-off latency on the real sandbox Asterisk: callcenterd vs app_queue.

The moment measured: a caller waits in a queue whose only agent is paused;
the agent becomes available (unpause); how long until Asterisk creates the
agent's leg, ``Local/1001@agents-XXXXXXXX;1``?

* t0: ``time.perf_counter()`` right before the unpause is issued:
  callcenterd ``center.control("agent_unpause", "1001")`` (in-process, as the
  HTTP API does it); app_queue: the write of AMI ``QueuePause Paused=false``.
* t1: arrival, in a dedicated observer AMI session, of the ``Newchannel``
  event of the agent leg (timestamped first thing in the session's
  ``on_event`` callback).  Same event, same session, same process for both.

Both systems run on ONE fresh sandbox Asterisk (free ports), one after the
other, with the same calls: a customer ``Local/<queue>@<context>/n`` whose
``;1`` half waits (Originate Application Wait), agent ``Local/1001@agents/n``
(answers at once, [agents] 1XXX in the sandbox dialplan).

* callcenterd: wiring.build in-process (as tests/integration/acd_rig.py),
  customers enter ``Local/support@customers/n`` -> [callcenterd-inbound]
  (FastAGI) -> [callcenterd-hold]; queue ``support`` at callcenterd's
  defaults except ``wrapup_time: 0`` (app_queue's default wrapuptime is 0,
  and runs follow each other back to back).  While callcenterd runs, app_queue
  has no member at all.
* app_queue: customers enter ``Local/handoff@inbound/n`` -> Answer, Queue();
  queue ``handoff`` is defined with every option at the app_queue default
  (strategy ringall, timeout 15, retry 5, wrapuptime 0, joinempty yes,
  leavewhenempty no, autofill yes, announcements off); the agent is a dynamic
  member added by AMI ``QueueAdd Paused=true`` and removed at the end.
  callcenterd is stopped by then.

Why app_queue is slow here: the head caller with no available member polls
in wait_our_turn() with ``ast_waitfordigit(qe->chan, RECHECK * 1000)``
(apps/app_queue.c, ``#define RECHECK 1``): a member's unpause wakes nobody,
the caller notices within its next 1-s poll.  That poll's phase is set by
when the caller joined, so each run unpauses after a random offset (a seeded
draw, the same list for both systems) spread over more than one poll period:
a fixed offset would always hit the same phase and bias the baseline.

Each run: customer calls, wait until queued (callcenterd CallerEnqueued /
AMI QueueCallerJoin), sleep the offset, unpause, wait for the agent leg, pause
the agent again, hang the customer up, wait until Asterisk has no channel
left.  One untimed warm-up run per system.

Fairness notes: the observer shares the event loop with callcenterd during
its phase (a small handicap for callcenterd); both paths include Asterisk
creating the Local channel, only callcenterd's includes an AMI round trip
(Originate).  Waiting for the caller to be queued includes Answer()'s 0.5 s
wait for media on a Local channel (main/channel.c __ast_answer), for both.

Needs root (the sandbox chroots).  Last line: one JSON object.

    sudo .venv/bin/python bench/handoff.py [--runs N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Awaitable, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from callcenterd.logs import configure_logging  # noqa: E402
from callcenterd.protocols.ami.codec import Message  # noqa: E402
from callcenterd.protocols.ami.session import AmiSession  # noqa: E402
from callcenterd.sandbox.asterisk import (  # noqa: E402
    SandboxAsterisk,
    SandboxError,
    free_tcp_port,
    sandbox_unavailable_reason,
)

TARGET_RATIO = 10.0  # app_queue median / callcenterd median
DEFAULT_RUNS = 15
DEFAULT_SEED = 20240622

AGENT = "1001"
AGENT_DEVICE = f"Local/{AGENT}@agents/n"
# the ;1 half of the agent leg (core/local_proxy: "Local/<exten>@<context>-<8 hex>;1")
AGENT_LEG = re.compile(rf"^Local/{AGENT}@agents-[0-9a-f]+;1$")
CC_QUEUE = "support"  # callcenterd's queue ([customers] -> [callcenterd-inbound])
AQ_QUEUE = "handoff"  # app_queue's queue ([inbound] -> Queue())
CUSTOMER_PATIENCE = 60  # s the customer's ;1 half stays (we hang up long before)

# app_queue's head caller re-checks for an available member every second
# (apps/app_queue.c wait_our_turn(), RECHECK); the unpause comes this long
# after the caller is queued: OFFSET_MIN + a phase spread evenly over exactly
# one RECHECK period (stratified, shuffled), so no poll phase is favoured
RECHECK_PERIOD = 1.0
OFFSET_MIN = 0.05

# deadlines (seconds)
START_TIMEOUT = 30.0  # callcenterd AMI up, FastAGI listening
QUEUED_TIMEOUT = 10.0  # customer originated -> queued
HANDOFF_TIMEOUT = 8.0  # unpause -> agent leg (app_queue: <= 1 s poll + ring)
IDLE_TIMEOUT = 8.0  # hang-up -> no channel left
FORCE_IDLE_TIMEOUT = 5.0

# app_queue baseline: one queue at its defaults (see docstring).  The sandbox
# template queues.conf is replaced by this one (extra_conf).
QUEUES_CONF = f"""\
; bench/handoff.py: app_queue baseline, every option at its default
[general]
persistentmembers = no

[{AQ_QUEUE}]
strategy = ringall
"""


# ------------------------------------------------------------------ observer
class Observer:
    """Watches the PBX from its own AMI session: the agent leg's birth
    (perf_counter on arrival), queue joins, and which channels are alive."""

    def __init__(self) -> None:
        self.live: dict[str, str] = {}  # Uniqueid -> channel name
        self._changed = asyncio.Event()
        self._leg: asyncio.Future[tuple[float, str]] | None = None
        self.joins: list[str] = []  # Uniqueid of QueueCallerJoin (app_queue)
        self.connects: list[str] = []  # Uniqueid of AgentConnect (app_queue)
        self.session: AmiSession | None = None

    async def connect(self, pbx: SandboxAsterisk) -> None:
        self.session = await AmiSession.connect(
            pbx.ami_host, pbx.ami_port, pbx.ami_user, pbx.ami_secret,
            events=["call", "agent"], on_event=self.on_event)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def on_event(self, msg: Message) -> None:
        now = time.perf_counter()  # first: the arrival time
        name = msg.name
        if name == "Newchannel":
            channel = msg.get("Channel") or ""
            self.live[msg.get("Uniqueid") or channel] = channel
            leg = self._leg
            if leg is not None and not leg.done() and AGENT_LEG.match(channel):
                leg.set_result((now, channel))
        elif name == "Hangup":
            self.live.pop(msg.get("Uniqueid") or msg.get("Channel") or "", None)
        elif name == "QueueCallerJoin" and msg.get("Queue") == AQ_QUEUE:
            self.joins.append(msg.get("Uniqueid") or "")
        elif name == "AgentConnect" and msg.get("Queue") == AQ_QUEUE:
            self.connects.append(msg.get("Uniqueid") or "")
        self._changed.set()

    def arm(self) -> asyncio.Future[tuple[float, str]]:
        """Catch the next agent leg."""
        self._leg = asyncio.get_running_loop().create_future()
        return self._leg

    async def until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))
            except TimeoutError:
                pass


# ------------------------------------------------------------------ the runs
class Bench:
    def __init__(self, pbx: SandboxAsterisk, observer: Observer, traffic: AmiSession,
                 offsets: list[float]) -> None:
        self.pbx = pbx
        self.observer = observer
        self.traffic = traffic
        self.offsets = offsets
        self._callers = 0

    async def customer(self, channel: str) -> str:
        """A customer calls; returns its caller number."""
        self._callers += 1
        number = f"5550{self._callers:04d}"
        await self.traffic.action("Originate", [
            ("Channel", channel), ("Application", "Wait"), ("Data", str(CUSTOMER_PATIENCE)),
            ("CallerID", f'"Bench" <{number}>'), ("Async", "true"),
        ])
        return number

    async def hang_up(self, pattern: str) -> None:
        """Hang up the customer (AMI Hangup takes /regex/, main/manager.c)
        and wait until Asterisk has no channel left."""
        await self.traffic.action("Hangup", [("Channel", f"/{pattern}/")], raw=True)
        try:
            await self.observer.until(lambda: not self.observer.live, IDLE_TIMEOUT, "idle")
        except TimeoutError:
            await self.traffic.action("Hangup", [("Channel", "/^Local./")], raw=True)
            await self.observer.until(lambda: not self.observer.live, FORCE_IDLE_TIMEOUT,
                                      f"idle after hanging up {sorted(self.observer.live.values())}")

    async def measure(self, unpause: Callable[[], Awaitable[None] | None]) -> float:
        """t0 = right before the unpause; t1 = the agent leg's Newchannel."""
        leg = self.observer.arm()
        t0 = time.perf_counter()
        pending = unpause()
        if pending is not None:
            await pending
        t1, _channel = await asyncio.wait_for(leg, HANDOFF_TIMEOUT)
        return t1 - t0

    # -------------------------------------------------------- callcenterd
    async def run_callcenterd(self, workdir: Path, runs: int) -> list[float]:
        from callcenterd.config import config_from_mapping
        from callcenterd.core import facts as f
        from callcenterd.wiring import build

        a = self.pbx
        mapping = {
            "pbx": {"sandbox": {
                "type": "asterisk",
                "ami": {"host": a.ami_host, "port": a.ami_port, "username": a.ami_user,
                        "secret": a.ami_secret},
                "fastagi": {"host": a.agi_host, "port": a.agi_port},
            }},
            "queues": {CC_QUEUE: {"wrapup_time": 0}},
            "agents": {AGENT: {"device": AGENT_DEVICE, "queues": [CC_QUEUE]}},
            "cdr": {"directory": str(workdir / "cdr"), "fsync": "never"},
            "store": {"path": str(workdir / "state.db")},
        }
        runtime = await build(config_from_mapping(mapping), with_api=False)
        center = runtime.center
        seen: list[Any] = []
        changed = asyncio.Event()

        def on_fact(fact: Any) -> None:
            seen.append(fact)
            changed.set()

        async def fact(kind: type, timeout: float, **match: Any) -> Any:
            deadline = time.monotonic() + timeout
            while True:
                for x in seen:
                    if isinstance(x, kind) and all(getattr(x, k) == v for k, v in match.items()):
                        return x
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"callcenterd: no {kind.__name__} {match} within {timeout:.0f} s")
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), left)
                except TimeoutError:
                    pass

        center.add_listener(on_fact)
        await runtime.start()
        try:
            driver = runtime.drivers["sandbox"]
            deadline = time.monotonic() + START_TIMEOUT
            while not driver.up:
                if time.monotonic() > deadline:
                    raise TimeoutError("callcenterd: AMI not up")
                await asyncio.sleep(0.05)
            center.control("agent_login", AGENT)
            center.control("agent_pause", AGENT, "bench")
            samples = []
            for i in range(runs + 1):  # run 0: warm-up
                seen.clear()
                number = await self.customer(f"Local/{CC_QUEUE}@customers/n")
                started = await fact(f.CallStarted, QUEUED_TIMEOUT, caller_number=number)
                await fact(f.CallerEnqueued, QUEUED_TIMEOUT, call_id=started.call_id)
                state = center.acd.agent_state(AGENT)["state"]
                if state != "paused":
                    raise RuntimeError(f"callcenterd: agent {AGENT} is {state!r} before the unpause")
                await asyncio.sleep(self.offsets[i])
                took = await self.measure(lambda: center.control("agent_unpause", AGENT))
                if i:
                    samples.append(took)
                await fact(f.AgentOffered, QUEUED_TIMEOUT, call_id=started.call_id)
                await fact(f.CallerConnected, QUEUED_TIMEOUT, call_id=started.call_id)
                await center.drain(QUEUED_TIMEOUT)  # its Bridge + Setvar: the call is up
                center.control("agent_pause", AGENT, "bench")
                await self.hang_up(f"^Local.{CC_QUEUE}@customers-")
                await fact(f.CallEnded, QUEUED_TIMEOUT, call_id=started.call_id)
            return samples
        finally:
            await runtime.stop()

    # ----------------------------------------------------------- app_queue
    async def run_app_queue(self, runs: int) -> list[float]:
        member = [("Queue", AQ_QUEUE), ("Interface", AGENT_DEVICE)]

        async def pause(paused: bool) -> None:
            await self.traffic.action("QueuePause", [*member, ("Paused", str(paused).lower())])

        await self.traffic.action("QueueAdd", [*member, ("Paused", "true"),
                                               ("MemberName", f"Agent {AGENT}")])
        try:
            samples = []
            for i in range(runs + 1):  # run 0: warm-up
                joined, connected = len(self.observer.joins), len(self.observer.connects)
                await self.customer(f"Local/{AQ_QUEUE}@inbound/n")
                await self.observer.until(lambda: len(self.observer.joins) > joined, QUEUED_TIMEOUT,
                                          "app_queue: QueueCallerJoin")
                await asyncio.sleep(self.offsets[i])
                # pause(False) is a coroutine: measure() takes t0, then awaits it,
                # and the QueuePause bytes are written before its first suspension
                took = await self.measure(lambda: pause(False))
                if i:
                    samples.append(took)
                await self.observer.until(lambda: len(self.observer.connects) > connected,
                                          QUEUED_TIMEOUT, "app_queue: AgentConnect")
                await pause(True)
                await self.hang_up(f"^Local.{AQ_QUEUE}@inbound-")
            return samples
        finally:
            await self.traffic.action("QueueRemove", member, raw=True)


# ------------------------------------------------------------------ report
def unpause_offsets(runs: int, seed: int) -> list[float]:
    """Seconds from "queued" to the unpause, warm-up run first: one jittered
    phase per 1/runs slice of the RECHECK period, in random order."""
    rng = random.Random(seed)
    phases = [(i + rng.random()) / runs for i in range(runs)]
    rng.shuffle(phases)
    return [OFFSET_MIN + RECHECK_PERIOD * p for p in [rng.random(), *phases]]


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[math.ceil(0.9 * len(ms)) - 1], 2),  # nearest rank
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
    }


def print_table(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'system':<12} {'n':>3} {'p50 ms':>9} {'p90 ms':>9} {'min ms':>9} {'max ms':>9}")
    for name, s in rows.items():
        print(f"{name:<12} {s['n']:>3} {s['p50_ms']:>9.2f} {s['p90_ms']:>9.2f} "
              f"{s['min_ms']:>9.2f} {s['max_ms']:>9.2f}")


def result_line(**figures: Any) -> str:
    return json.dumps({"bench": "handoff", "metric": "unpause -> agent leg Newchannel (ms)",
                       **figures, "target": {"ratio_min": TARGET_RATIO}})


async def main_async(args: argparse.Namespace) -> int:
    reason = sandbox_unavailable_reason()
    if reason:
        print(f"sandbox Asterisk unavailable: {reason}", file=sys.stderr)
        print(result_line(error=reason, target_met=False))
        return 2
    offsets = unpause_offsets(args.runs, args.seed)
    # the product's AMI classes (read from its manager snippet; no I/O) plus
    # "agent", for the baseline only: QueueAdd/QueuePause, QueueCallerJoin.
    # While callcenterd runs app_queue has no member, so no agent event flows.
    product = SandboxAsterisk()
    pbx = SandboxAsterisk(ami_port=free_tcp_port(), agi_port=free_tcp_port(),
                          extra_conf={"queues.conf": QUEUES_CONF},
                          ami_read=f"{product.ami_read},agent",
                          ami_write=f"{product.ami_write},agent")
    started = time.monotonic()
    try:
        await asyncio.to_thread(pbx.start)
    except SandboxError as exc:
        print(f"sandbox Asterisk did not start: {exc}", file=sys.stderr)
        print(result_line(error=f"sandbox: {str(exc)[:300]}", target_met=False))
        return 2
    observer = Observer()
    traffic: AmiSession | None = None
    try:
        await observer.connect(pbx)
        traffic = await AmiSession.connect(pbx.ami_host, pbx.ami_port, pbx.ami_user, pbx.ami_secret,
                                           events="off")
        bench = Bench(pbx, observer, traffic, offsets)
        with tempfile.TemporaryDirectory(prefix="cc-handoff-") as tmp:
            cc = await bench.run_callcenterd(Path(tmp), args.runs)
        aq = await bench.run_app_queue(args.runs)
    except Exception as exc:  # a broken run is a result too: say why, JSON last
        traceback.print_exc(file=sys.stderr)
        print(f"bench failed: {exc}", file=sys.stderr)
        print(result_line(error=f"{type(exc).__name__}: {str(exc)[:300]}", target_met=False))
        return 1
    finally:
        if traffic is not None:
            await traffic.close()
        await observer.close()
        await asyncio.to_thread(pbx.stop)
    rows = {"callcenterd": summary(cc), "app_queue": summary(aq)}
    ratio = rows["app_queue"]["p50_ms"] / max(rows["callcenterd"]["p50_ms"], 1e-6)
    print(f"agent hand-off: unpause -> agent leg Newchannel, Asterisk sandbox, "
          f"{args.runs} runs each (unpause {OFFSET_MIN:.2f}-{OFFSET_MIN + RECHECK_PERIOD:.2f} s "
          f"after queued, seed {args.seed})")
    print_table(rows)
    print(f"ratio of medians app_queue/callcenterd: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x)")
    print(f"wall time {time.monotonic() - started:.1f} s")
    print(result_line(
        runs=args.runs, seed=args.seed,
        callcenterd=rows["callcenterd"], app_queue=rows["app_queue"],
        samples_ms={"callcenterd": [round(x * 1000, 2) for x in cc],
                    "app_queue": [round(x * 1000, 2) for x in aq]},
        ratio_p50=round(ratio, 1),
        target_met=ratio >= TARGET_RATIO,
    ))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="measured runs per system")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the unpause offsets")
    parser.add_argument("--log-level", default="warning", help="callcenterd log level (to stderr)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    configure_logging(level=args.log_level, stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
