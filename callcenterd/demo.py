"""``callcenterd demo``: the main job on a fresh machine.

Provisions the sandbox Asterisk (Debian packages in a chroot), starts
callcenterd against it with ``config/demo.yaml``, drives inbound traffic
(Local-channel customers with random patience; agents that answer, talk and
hang up), shows live queue and agent status, and on exit prints the KPI
report from the journey files it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config" / "demo.yaml"
DEMO_CAMPAIGNS = REPO / "config" / "demo-campaigns"
#: Seconds the outbound part may take at most (the never-answering lead rings 16 s).
OUTBOUND_LIMIT = 90.0

#: Seconds between two status screens.
STATUS_EVERY = 3.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run callcenterd against a sandbox Asterisk with simulated traffic")
    p.add_argument("-c", "--config", default=str(DEMO_CONFIG), help="demo config (default: config/demo.yaml)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    p.add_argument("--rate", type=float, default=30.0, help="new callers per minute (default 30)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")
    p.add_argument("--workdir", default="var/demo", help="where CDR and state go (default var/demo)")
    p.add_argument("--no-outbound", action="store_true",
                   help="skip the outbound part (a small campaign from config/demo-campaigns)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from callcenterd.config import ConfigError, load_config
    from callcenterd.config.models import AsteriskNode
    from callcenterd.sandbox.asterisk import SandboxAsterisk, free_tcp_port, sandbox_unavailable_reason

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.messages:
            print(line, file=sys.stderr)
        return 2
    nodes = [name for name, node in config.pbx.items() if isinstance(node, AsteriskNode)]
    if len(config.pbx) != 1 or not nodes:
        print(f"callcenterd demo: {args.config} must define exactly one asterisk pbx node", file=sys.stderr)
        return 2
    reason = sandbox_unavailable_reason()
    if reason:
        print(f"callcenterd demo: cannot run the sandbox Asterisk: {reason}", file=sys.stderr)
        return 2
    # free ports, so the demo runs beside a real Asterisk or a test run
    node = config.pbx[nodes[0]]
    ami = node.ami.model_copy(update={"port": free_tcp_port(), "secret": SecretStr(secrets.token_hex(12)),
                                      "secret_env": None, "secret_file": None})
    fastagi = node.fastagi.model_copy(update={"port": free_tcp_port()})
    workdir = Path(args.workdir)
    config = config.model_copy(update={
        "pbx": {nodes[0]: node.model_copy(update={"ami": ami, "fastagi": fastagi})},
        "cdr": config.cdr.model_copy(update={"directory": str(workdir / "cdr")}),
        "store": config.store.model_copy(update={"path": str(workdir / "state.db")}),
    })
    print("provisioning the sandbox Asterisk (first run: about a minute)...", flush=True)
    sandbox = SandboxAsterisk(ami_port=ami.port, ami_user=ami.username, agi_port=fastagi.port,
                              ami_secret=ami.secret.get_secret_value())
    sandbox.provision()
    sandbox.start()
    try:
        return asyncio.run(_run(args, config, sandbox))
    except KeyboardInterrupt:
        return 130
    finally:
        sandbox.stop()


async def _run(args: argparse.Namespace, config: Any, sandbox: Any) -> int:
    from callcenterd.logs import configure_logging
    from callcenterd.protocols.ami.session import AmiSession
    from callcenterd.wiring import build

    cdr_dir = Path(config.cdr.directory)
    configure_logging(config.logging.level, config.logging.format)
    rng = random.Random(args.seed)
    campaigns = {}
    if not args.no_outbound:
        from callcenterd.config.campaigns import load_campaigns

        campaigns = load_campaigns(DEMO_CAMPAIGNS, config)
    runtime = await build(config, campaigns, with_api=False)
    await runtime.start()
    started = time.time()
    center = runtime.center
    for agent in config.agents:
        center.control("agent_login", agent)
    traffic = await AmiSession.connect(sandbox.ami_host, sandbox.ami_port, sandbox.ami_user, sandbox.ami_secret,
                                       events="off")
    queues = list(config.queues)
    names = {agent_id: a.name or agent_id for agent_id, a in config.agents.items()}
    calls = 0
    next_call = time.monotonic()
    next_status = time.monotonic()
    try:
        while time.time() - started < args.duration:
            now = time.monotonic()
            if now >= next_call:
                calls += 1
                queue = rng.choice(queues)
                patience = rng.randint(15, 60)  # the customer hangs up after this, answered or not
                await traffic.action("Originate", [
                    ("Channel", f"Local/{queue}@customers/n"),
                    ("Application", "Wait"), ("Data", str(patience)),
                    ("CallerID", f'"Customer {calls}" <555{calls:04d}>'),
                    ("Async", "true"),
                ])
                next_call = now + rng.expovariate(args.rate / 60.0)
            if now >= next_status:
                print_status(center.acd, calls, time.time() - started, names)
                next_status = now + STATUS_EVERY
            await asyncio.sleep(0.2)
        print("\ntraffic stopped; letting the last calls finish...", flush=True)
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline and (center.acd.waiting_view() or _busy(center.acd)):
            await asyncio.sleep(1)
        print_status(center.acd, calls, time.time() - started, names)
        if runtime.campaigns is not None:
            await _outbound(runtime)
    finally:
        await traffic.close()
        await runtime.stop()
    print(f"\njourney files: {cdr_dir.resolve()}")
    for path in sorted(cdr_dir.glob("*")):
        print(f"  {path.name}")
    from callcenterd.report import add_report_arguments, run_report

    # this run only (the CDR directory keeps earlier runs' journeys)
    since = time.strftime("%Y-%m-%dT%H:%M", time.localtime(started))
    until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 60))
    status = 0
    for by in ("queue", "agent"):
        print(f"\nKPI report by {by}:")
        report_args = add_report_arguments(argparse.ArgumentParser()).parse_args(
            ["--from", since, "--to", until, "--by", by, "--dir", str(cdr_dir), "-c", str(args.config)])
        status = run_report(report_args) or status
    return status


async def _outbound(runtime: Any) -> None:
    """Load the demo list, run the campaign until every lead is done, print its status."""
    from callcenterd.api.cli_commands import format_campaign_status
    from callcenterd.campaigns.importer import import_leads

    service = runtime.campaigns
    leads = service._store
    camp = service._campaigns["demo"]
    batches: list[Any] = []
    result = import_leads(DEMO_CAMPAIGNS / "demo-leads.csv", camp.config, lambda new, merged: batches.append(new + merged))
    for batch in batches:
        await leads.merge_leads("demo", batch)
    print(f"\noutbound: loaded {result.imported} leads ({result.merged} already known) into campaign demo;"
          " dialling the sandbox's leads...", flush=True)
    await service.campaign_action("demo", "start")
    deadline = time.monotonic() + OUTBOUND_LIMIT
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        status = await service.campaign_status("demo")
        if status["dialled"] and not status["in_flight"] and not status["hopper"] and \
                not status["leads"].get("ready") and not status["leads"].get("dialling"):
            break
    await service.campaign_action("demo", "stop")
    print("\n" + format_campaign_status(await service.campaign_status("demo")), flush=True)


def _busy(acd: Any) -> bool:
    return any(a.get("state") in ("ringing", "on-call") for a in acd.agents_view())


def print_status(acd: Any, calls: int, elapsed: float, names: dict[str, str], out: TextIO = sys.stdout) -> None:
    """One screen of live status: agents, queues, waiting callers."""
    lines = [f"\n=== callcenterd demo  t={elapsed:5.0f}s  callers so far: {calls} ==="]
    lines.append(f"{'agent':<8}{'name':<8}{'state':<12}{'reason':<12}{'calls':>6}")
    for a in acd.agents_view():
        lines.append(f"{a.get('agent', ''):<8}{names.get(a.get('agent', ''), ''):<8}{a.get('state', ''):<12}"
                     f"{a.get('reason', '') or '':<12}{a.get('calls', 0):>6}")
    lines.append(f"{'queue':<10}{'waiting':>8}{'staffed':>8}{'free':>6}{'longest':>9}{'AHT':>7}")
    for q in acd.queues_view():
        lines.append(f"{q['queue']:<10}{q['waiting']:>8}{q['staffed']:>8}{q['available']:>6}"
                     f"{q['longest_wait']:>8.0f}s{q['aht']:>6.0f}s")
    waiting = acd.waiting_view()
    lines.append(f"waiting: {len(waiting)}")
    for w in waiting:
        est = w.get("wait_estimate")
        lines.append(f"  #{w.get('position')} {w.get('queue'):<8} waited {w.get('waited', 0):5.0f}s"
                     f"  estimate {'-' if est is None else f'{est:.0f}s'}  prio {w.get('priority', 0)}")
    print("\n".join(lines), file=out, flush=True)
