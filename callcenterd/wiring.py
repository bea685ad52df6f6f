"""Wiring: build every object from the config and run them together.

This is the only place that knows every subsystem.  Collaborators are
passed in through constructors, grouped by subsystem; nothing here keeps
state at module level.
"""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import structlog

from callcenterd.config.models import AsteriskNode, Config, FreeswitchNode, RelaxEvery
from callcenterd.core.acd.specs import AgentSpec, QueueSpec

log = structlog.get_logger(__name__)

#: How long shutdown waits for in-flight PBX commands and the CDR flush.
SHUTDOWN_GRACE = 10.0


# ------------------------------------------------------------ config -> core
def queue_specs(config: Config) -> list[QueueSpec]:
    specs = []
    for name, q in config.queues.items():
        relax: list[tuple[float, int]] = []
        if isinstance(q.skill_relax, RelaxEvery):
            top = max(q.skills.values(), default=0)
            relax = [(q.skill_relax.every * i, q.skill_relax.step * i)
                     for i in range(1, (top // q.skill_relax.step) + 2)]
        elif q.skill_relax:
            relax = [(s.after, -s.min_level_delta) for s in q.skill_relax if s.min_level_delta < 0]
        prog = q.ring_progressively
        specs.append(QueueSpec(
            name=name,
            strategy=q.strategy,
            ring_time=float(q.ring_time),
            retry_delay=float(q.retry_delay),
            wrapup_time=float(q.wrapup_time),
            talk_time_prior=float(q.talk_time_prior),
            max_wait=float(q.max_wait),
            max_callers=q.max_callers,
            join_empty=q.join_empty,
            leave_empty=q.leave_when_empty,
            overflow_queue=(q.overflow.queue or "") if q.overflow else "",
            overflow_destination=(q.overflow.destination or "") if q.overflow else "",
            weight=q.weight,
            moh_class=q.moh_class,
            announce_every=float(q.announce_frequency) if q.announce_position else 0.0,
            skills=dict(q.skills),
            skill_relax=tuple(relax),
            progressive_every=float(prog.every) if prog else 10.0,
            progressive_initial=prog.start if prog else 1,
            progressive_add=prog.step if prog else 1,
        ))
    return specs


def agent_specs(config: Config) -> list[AgentSpec]:
    only_node = next(iter(config.pbx)) if len(config.pbx) == 1 else ""
    return [
        AgentSpec(
            id=agent_id,
            device=a.device,
            node=a.node or only_node,
            queues=tuple(a.queues),
            skills=dict(a.skills),
            penalty={q: a.penalty for q in a.queues} if a.penalty else {},
            weight=float(a.weight) if a.weight > 0 else 1.0,
            wrapup_time=float(a.wrapup_time) if a.wrapup_time is not None else None,
            max_concurrent=a.max_concurrent,
            max_missed=a.max_missed,
            busy_backoff=float(a.busy_backoff),
        )
        for agent_id, a in config.agents.items()
    ]


# ------------------------------------------------------------------ runtime
@dataclass
class Runtime:
    """Everything :func:`build` made, for :func:`run` and for tests."""

    config: Config
    center: Any
    drivers: dict[str, Any]
    supervisors: list[Any] = field(default_factory=list)
    call_servers: list[Any] = field(default_factory=list)  # FastAGI / ESL outbound: where PBXes hand us calls
    cdr: Any = None
    store: Any = None
    api: Any = None
    saved_agents: dict[str, Any] = field(default_factory=dict)
    campaigns: Any = None  # callcenterd.campaigns.service.CampaignService, when campaigns are configured
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    failed: asyncio.Event = field(default_factory=asyncio.Event)  # set if the core dies

    async def start(self) -> None:
        if self.cdr is not None:
            self.cdr.start()
        for node in self.drivers:
            # nothing is routed to a PBX before its first complete snapshot
            # (PbxUp): a caller handed over early waits, it is not offered to
            # agents that may still be on calls from before our restart
            self.center.control("pbx_down", node)
        if self.saved_agents:
            # logins and pauses survive a restart of callcenterd
            self.center.restore_agents(self.saved_agents)
            log.info("agents.restored", agents=sorted(a for a, s in self.saved_agents.items() if s["logged_in"]))
        for server in self.call_servers:
            await server.start()
        core = asyncio.create_task(self.center.run(), name="core")
        core.add_done_callback(self._core_ended)
        self.tasks.append(core)
        if self.campaigns is not None:
            await self.campaigns.start()
        for sup in self.supervisors:
            sup.start()
        if self.api is not None:
            await self.api.start()

    def _core_ended(self, task: asyncio.Task[Any]) -> None:
        """The core must never end by itself: if it dies, say why, loudly,
        and let ``serve`` exit non-zero so systemd restarts us (callers wait
        in the PBX meanwhile and are re-adopted)."""
        if task.cancelled():
            return
        exc = task.exception()
        log.critical("core.crashed", error=repr(exc), exc_info=exc)
        self.failed.set()

    async def stop(self) -> None:
        """Graceful stop: callers stay in the PBX; CDR flushed to disk."""
        if self.api is not None:
            await self.api.stop()
        for server in self.call_servers:
            await server.close()
        if self.campaigns is not None:
            await self.campaigns.stop()  # no new line; lines up stay with the PBX
        await self.center.drain(SHUTDOWN_GRACE)
        for sup in self.supervisors:
            await sup.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.cdr is not None:
            await self.cdr.close()
        if self.store is not None:
            await self.store.close()


async def build(config: Config, campaigns: Mapping[str, Any] | None = None, *,
                clock: Callable[[], float] = time.time, with_api: bool = True) -> Runtime:
    """Build the runtime for ``config`` and its validated ``campaigns``
    (``load_campaigns``); nothing is started yet."""
    from callcenterd.cdr.sink import CdrSink
    from callcenterd.core.acd.engine import Acd
    from callcenterd.core.journeys.builder import JourneyBuilder
    from callcenterd.service import CallCenter
    from callcenterd.store.sqlite import SqliteStore

    # --- store (agent state, waiting callers)
    store = None
    if config.store.backend == "sqlite":
        Path(config.store.path).parent.mkdir(parents=True, exist_ok=True)
        store = await SqliteStore.open(config.store.path)

    # --- core
    acd = Acd(queue_specs(config), agent_specs(config), clock,
              rng=random.Random(), new_id=lambda: uuid.uuid4().hex[:16],
              log=structlog.get_logger("callcenterd.acd"))  # debug: why each agent was chosen
    saved_agents: dict[str, Any] = {}
    if store is not None:
        acd.import_handle_stats(await store.load_handle_stats())  # wait estimates survive a restart
        saved_agents = {
            agent: {"logged_in": s["logged_in"], "paused": s["paused"], "reason": s.get("reason", "")}
            for agent, s in (await store.load_agents()).items()
        }

    # --- CDR
    cdr = CdrSink(
        Path(config.cdr.directory), list(config.cdr.formats),
        rotate=config.cdr.rotate, max_bytes=config.cdr.max_bytes,
        fsync=config.cdr.fsync, fsync_interval_ms=config.cdr.fsync_interval_ms,
        file_mode=int(config.cdr.file_mode, 8),
    )

    drivers: dict[str, Any] = {}
    center = CallCenter(
        acd, drivers, clock=clock, new_id=lambda: uuid.uuid4().hex,
        journeys=JourneyBuilder(), cdr=cdr, store=store,
        queue_priority={name: q.priority for name, q in config.queues.items()},
        default_queue=next(iter(config.queues), ""),
    )
    if store is not None:
        from callcenterd.core.journeys.record import Journey

        center.restore_journeys([Journey.from_dict(d) for d in (await store.load_open_journeys()).values()])
    runtime = Runtime(config=config, center=center, drivers=drivers, cdr=cdr, store=store,
                      saved_agents=saved_agents)

    # --- PBX drivers
    for node, spec in config.pbx.items():
        if isinstance(spec, AsteriskNode):
            _build_asterisk(runtime, node, spec)
        elif isinstance(spec, FreeswitchNode):
            _build_freeswitch(runtime, node, spec)

    # --- device names as each PBX reports them
    for spec in agent_specs(config):
        driver = drivers.get(spec.node)
        key = getattr(driver, "device_key", None)
        if key is not None:
            center.device_aliases[key(spec.device)] = spec.device
            if hasattr(driver, "devices"):
                driver.devices.add(key(spec.device))

    # --- outbound campaigns: dialers on the same ACD, store and drivers
    if campaigns:
        runtime.campaigns = _build_campaigns(runtime, campaigns, clock)

    # --- agent control API
    if with_api and config.api.has_token:
        from callcenterd.api.http import ApiServer, build_app

        app = build_app(AcdControl(center), config.api.resolve_token().get_secret_value(), runtime.campaigns)
        runtime.api = ApiServer(app, config.api.host, config.api.port)
    return runtime


def _build_campaigns(runtime: Runtime, campaigns: Mapping[str, Any], clock: Callable[[], float]) -> Any:
    from callcenterd.campaigns.service import CampaignService
    from callcenterd.config.errors import ConfigError
    from callcenterd.store.campaigns import CampaignStore

    if runtime.store is None:
        raise ConfigError(["campaigns need the store (store.backend: sqlite): leads and attempts live there"])
    service = CampaignService(campaigns, CampaignStore(runtime.store), runtime.center,
                              clock=clock, new_id=lambda: uuid.uuid4().hex)
    runtime.center.outbound = service
    runtime.center.add_listener(service.on_fact)
    return service


def _build_asterisk(runtime: Runtime, node: str, spec: AsteriskNode) -> None:
    from callcenterd.pbx.asterisk.driver import AsteriskContexts, AsteriskDriver
    from callcenterd.protocols.agi.server import FastAgiServer
    from callcenterd.protocols.ami.supervisor import AmiSupervisor

    driver = AsteriskDriver(node, runtime.center.emit,
                            contexts=AsteriskContexts(spec.contexts.hold, spec.contexts.agent))
    secret = spec.ami.resolve_secret()
    supervisor = AmiSupervisor(
        spec.ami.host, spec.ami.port, spec.ami.username, secret.get_secret_value(),
        md5=spec.ami.md5_login,
        on_connected=driver.on_ami_connected,
        on_ready=driver.on_ami_ready,
        on_disconnected=driver.on_ami_disconnected,
        on_event=driver.on_ami_event,
        action_timeout=float(spec.ami.action_timeout),
        keepalive_interval=float(spec.ami.keepalive_interval),
        keepalive_deadline=float(spec.ami.keepalive_deadline),
    )
    driver.attach(supervisor)
    runtime.drivers[node] = driver
    runtime.supervisors.append(supervisor)
    runtime.call_servers.append(FastAgiServer(driver.on_agi_session, spec.fastagi.host, spec.fastagi.port))


def _build_freeswitch(runtime: Runtime, node: str, spec: FreeswitchNode) -> None:
    """ESL inbound (control, events) with a reconnect supervisor, plus the
    outbound-socket server the dialplan's ``socket`` app connects to."""
    from callcenterd.pbx.freeswitch.driver import FreeswitchDriver
    from callcenterd.protocols.esl.outbound import EslOutboundServer
    from callcenterd.protocols.esl.supervisor import EslSupervisor

    driver = FreeswitchDriver(node, runtime.center.emit)
    supervisor = EslSupervisor(
        spec.esl.host, spec.esl.port, spec.esl.resolve_password().get_secret_value(),
        on_connected=driver.on_esl_connected,
        on_disconnected=driver.on_esl_disconnected,
    )
    runtime.drivers[node] = driver
    runtime.supervisors.append(supervisor)
    runtime.call_servers.append(EslOutboundServer(driver.on_outbound_call, spec.outbound.host, spec.outbound.port))


class AcdControl:
    """Adapts the running core to the HTTP API's AgentControl protocol."""

    def __init__(self, center: Any) -> None:
        self._center = center

    def login(self, agent_id: str) -> None:
        self._center.control("agent_login", agent_id)

    def logout(self, agent_id: str) -> None:
        self._center.control("agent_logout", agent_id)

    def pause(self, agent_id: str, reason: str) -> None:
        self._center.control("agent_pause", agent_id, reason)

    def unpause(self, agent_id: str) -> None:
        self._center.control("agent_unpause", agent_id)

    def agents(self) -> list[dict]:
        return self._center.acd.agents_view()

    def queues(self) -> list[dict]:
        return self._center.acd.queues_view()

    def waiting(self) -> list[dict]:
        return self._center.acd.waiting_view()


async def serve(config: Config, campaigns: Mapping[str, Any] | None = None) -> int:
    """``callcenterd run``: run until SIGTERM/SIGINT; exit code."""
    from callcenterd import systemd

    runtime = await build(config, campaigns)
    # Config, specs and indexes live as long as the process: keep the cyclic
    # GC from walking them on every collection (a routing latency spike).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    watchdog = None
    interval = systemd.watchdog_interval() if config.systemd.watchdog else None
    if interval:
        watchdog = asyncio.create_task(systemd.watchdog_task(interval))
    systemd.notify_ready()
    log.info("callcenterd.ready", nodes=list(runtime.drivers), queues=len(config.queues), agents=len(config.agents))
    failed = asyncio.create_task(runtime.failed.wait())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
    failed.cancel()
    stopping.cancel()
    systemd.notify_stopping()
    log.info("callcenterd.stopping", reason="core crashed" if runtime.failed.is_set() else "signal")
    if watchdog is not None:
        watchdog.cancel()
    await runtime.stop()
    return 1 if runtime.failed.is_set() else 0
