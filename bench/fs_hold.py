"""FreeSWITCH hold: time for the driver to put an arrived caller on hold.

A hold is done over the caller's outbound socket: stamp the ``cc_*``
variables, queue ``endless_playback``, close the socket.  Each application
on the channel is a round trip on FreeSWITCH's session thread; the fake
FreeSWITCH models it with ``app_delay``, taken from the real captures (the
step between two events of one channel's applications in
esl-outbound-after-bridge-ends-outbound.txt, FreeSWITCH's 20 ms timer tick).

Baseline, same fake, same run: the previous driver code, one ``set`` per
variable (8 applications).  Measured: the driver as shipped, one
``multiset``.  Target: the shipped hold takes at most 2 application round
trips at p50 (<= 2 x app_delay + 10 ms) and is at least 3x faster than the
baseline.  Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from callcenterd.pbx.api import CallArrived, HoldSpec, WaitingCall  # noqa: E402
from callcenterd.pbx.freeswitch.driver import FreeswitchDriver  # noqa: E402
from callcenterd.protocols.esl.outbound import EslOutboundServer  # noqa: E402
from callcenterd.protocols.esl.supervisor import EslSupervisor  # noqa: E402
from tests.contract.fs_switch import FsSwitch  # noqa: E402
from tests.fakes.esl_server import _event_of, captured_events  # noqa: E402


class OneSetPerVariable(FreeswitchDriver):
    """The baseline: the hold as it was before, one ``set`` app per stamp."""

    async def _stamp_socket(self, call, stamps) -> None:  # type: ignore[override]
        for name, value in stamps.items():
            await call.set_var(name, value)


def app_step_from_capture() -> float:
    """The smallest step between two application events of the socket
    channel in the capture (Event-Date-Timestamp is in microseconds)."""
    stamps = sorted({int(_event_of(h, b).get("Event-Date-Timestamp") or 0)
                     for h, b in captured_events("outbound-after-bridge-ends-outbound")
                     if _event_of(h, b).name.startswith("CHANNEL_EXECUTE")})
    steps = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
    return min(steps) / 1e6


async def measure(driver_cls: type[FreeswitchDriver], calls: int, app_delay: float) -> list[float]:
    switch = FsSwitch()
    switch.app_delay = app_delay
    events: list = []
    driver = driver_cls("fs", events.append, decision_timeout=30)
    port = await switch.start()
    sup = EslSupervisor("127.0.0.1", port, "ClueCon", on_connected=driver.on_esl_connected,
                        on_disconnected=driver.on_esl_disconnected, keepalive_interval=0)
    sup.start()
    server = EslOutboundServer(driver.on_outbound_call, "127.0.0.1", 0)
    await server.start()
    try:
        while not driver.up:
            await asyncio.sleep(0.01)
        times = []
        for i in range(calls):
            chan = await switch.customer(server.port, "support", 600, f"555{i:04d}", "Bench")
            while not any(isinstance(e, CallArrived) and e.leg_id == chan.uuid for e in events):
                await asyncio.sleep(0.001)
            wc = WaitingCall(chan.uuid, "support", time.time(), priority=1, call_id=f"call-{i}",
                             skills={"fr": 5, "sales": 3})
            t0 = time.perf_counter()
            await driver.hold(wc, HoldSpec(position=i + 1, wait_estimate=30, announce_every=30))
            times.append(time.perf_counter() - t0)
            assert chan.vars["cc_call_id"] == f"call-{i}"
            while "cc_moh_playing" not in chan.vars:  # the queued music starts one app step later
                await asyncio.sleep(0.001)
        return times
    finally:
        await server.close()
        await sup.stop()
        await driver.close()
        await switch.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=30, help="callers held per variant (default 30)")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    app_delay = app_step_from_capture()
    base = asyncio.run(measure(OneSetPerVariable, args.calls, app_delay))
    new = asyncio.run(measure(FreeswitchDriver, args.calls, app_delay))
    rows = {}
    for name, t in (("baseline: one set per variable", base), ("shipped: one multiset", new)):
        rows[name] = {"p50_ms": round(statistics.median(t) * 1000, 1),
                      "p90_ms": round(sorted(t)[int(len(t) * 0.9) - 1] * 1000, 1),
                      "max_ms": round(max(t) * 1000, 1)}
    print(f"application round trip modelled from the capture: {app_delay * 1000:.0f} ms; {args.calls} callers each")
    print(f"{'variant':34} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}")
    for name, r in rows.items():
        print(f"{name:34} {r['p50_ms']:>8} {r['p90_ms']:>8} {r['max_ms']:>8}")
    b, n = statistics.median(base), statistics.median(new)
    limit = 2 * app_delay + 0.010
    speedup = b / n if n else float("inf")
    print(f"speed-up at p50: {speedup:.1f}x")
    print(json.dumps({
        "bench": "fs_hold",
        "baseline": "one set application per stamp (previous driver)",
        "app_round_trip_ms": round(app_delay * 1000, 1),
        "results": {"baseline": rows["baseline: one set per variable"], "shipped": rows["shipped: one multiset"],
                    "speedup_p50": round(speedup, 2)},
        "target": {"shipped_p50_ms_max": round(limit * 1000, 1), "speedup_p50_min": 3.0},
        "target_met": n <= limit and speedup >= 3.0,
    }))


if __name__ == "__main__":
    main()
