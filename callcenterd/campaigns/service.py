"""Runs the campaign dialers against the store, the ACD and the PBX drivers.

The decisions are the pure :class:`~callcenterd.core.campaigns.dialer.CampaignDialer`'s;
this service feeds it (pool views from the ACD, due leads from the store,
customer-leg events from the drivers, facts from the ACD) and executes what
it says, in order:

* ``RecordAttempt`` is written to the store **before** its ``Dial``; the
  store refuses a second open attempt for a lead and an attempt beyond the
  maximum, and a refused attempt is never dialled;
* an Originate is never sent twice: an attempt a crash left open is closed
  as ``interrupted`` at the next start;
* an answered person enters the pool's queue in the ACD (``outbound_wait``)
  and is bridged to an agent like an inbound caller; when no agent is
  connected in time the ACD says so and the dialer plays the abandon message.

Inputs reach the service through :meth:`on_event` (driver events, called by
the call center's dispatch) and :meth:`on_fact` (ACD facts); both only queue
work for the service's own task, so the ACD is never re-entered.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

import structlog

from callcenterd.core import facts
from callcenterd.core.campaigns import commands as c
from callcenterd.core.campaigns.compliance import AbandonLedger
from callcenterd.core.campaigns.dialer import CampaignDialer, PoolView, UnknownAttempt
from callcenterd.core.campaigns.model import AttemptOutcome, DialMode, Lead, LeadState
from callcenterd.core.campaigns.retry import after_attempt, after_disposition
from callcenterd.core.campaigns.windows import next_opening
from callcenterd.pbx.api import (
    AmdResult,
    CallerId,
    LegAnswered,
    LegHungUp,
    LegRinging,
    LegRole,
    Outcome,
    clean_caller_text,
)

log = structlog.get_logger(__name__)

TICK_INTERVAL = 1.0  # s between dialer ticks when nothing happens
REFILL_INTERVAL = 5.0  # s between hopper refills from the store
THIRTY_DAYS = 30 * 86400.0

# the PBX's end of a customer leg that never reached a person
_OUTCOMES = {
    Outcome.BUSY: AttemptOutcome.BUSY,
    Outcome.NO_ANSWER: AttemptOutcome.NO_ANSWER,
    Outcome.CONGESTION: AttemptOutcome.CONGESTION,
    Outcome.ANSWERED: AttemptOutcome.HUNGUP,
}


@dataclass(slots=True)
class _Live:
    """A dialled attempt the service is following."""

    campaign: str
    lead: Lead
    node: str
    in_acd: bool = False
    journey_closed: bool = False
    ended: bool = False


@dataclass(slots=True)
class Campaign:
    """One configured campaign at run time."""

    config: Any  # callcenterd.config.campaigns.CampaignConfig
    dialer: CampaignDialer
    last_refill: float = 0.0
    status_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.dialer.spec.name


class CampaignService:
    """Every campaign of the daemon; also the HTTP API's ``CampaignControl``."""

    def __init__(self, configs: Mapping[str, Any], store: Any, center: Any, *,
                 clock: Callable[[], float], new_id: Callable[[], str]) -> None:
        self._store = store  # callcenterd.store.campaigns.CampaignStore
        self._center = center
        self._clock = clock
        self._new_id = new_id
        self._campaigns: dict[str, Campaign] = {
            name: Campaign(cfg, CampaignDialer(cfg.spec, clock, new_id=new_id)) for name, cfg in configs.items()
        }
        self._live: dict[str, _Live] = {}  # attempt id (= leg id = call id) -> attempt
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore run states, ledgers and DNC files; close what a crash left open."""
        now = self._clock()
        states = await self._store.campaign_states()
        for camp in self._campaigns.values():
            events = await self._store.ledger_events(camp.name, now - THIRTY_DAYS)
            camp.dialer.ledger = AbandonLedger.from_events(events, self._clock)
            if camp.config.dnc_files:
                from callcenterd.campaigns.dnc import read_dnc_files

                await self._store.add_dnc(read_dnc_files(camp.config), "dnc file", now, campaign=camp.name)
            state = states.get(camp.name, "stopped")
            if state in ("running", "paused"):
                camp.dialer.start()
                if state == "paused":
                    camp.dialer.pause()
        for attempt in await self._store.open_attempts():
            lead = await self._store.lead(attempt.lead_id)
            camp = self._campaigns.get(attempt.campaign)
            if lead is None:
                continue
            if camp is not None:
                lead = after_attempt(camp.dialer.spec, replace(lead, state=LeadState.DIALLING),
                                     AttemptOutcome.NO_ANSWER, now)
            else:
                lead = replace(lead, state=LeadState.READY)
            await self._store.close_interrupted(attempt.attempt_id, now, lead)
            log.warning("campaign.attempt_interrupted", attempt=attempt.attempt_id, campaign=attempt.campaign,
                        lead=attempt.lead_id, hint="left open by a stop; closed, never dialled again")
        self._task = asyncio.create_task(self._run(), name="campaigns")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._side):
            task.cancel()

    # --------------------------------------------------------------- inputs
    def owns(self, leg_id: str) -> bool:
        return leg_id in self._live

    def on_event(self, event: Any) -> None:
        """A driver event about one of our customer legs (never blocks)."""
        leg = getattr(event, "leg_id", None)
        if leg in self._live:
            self._inbox.put_nowait(("event", event))

    def on_fact(self, fact: Any) -> None:
        """A fact the ACD or the journeys recorded (never blocks)."""
        if getattr(fact, "call_id", None) in self._live:
            self._inbox.put_nowait(("fact", fact))

    # ----------------------------------------------------------------- loop
    async def _run(self) -> None:
        while True:
            try:
                kind, item = await asyncio.wait_for(self._inbox.get(), TICK_INTERVAL)
            except TimeoutError:
                kind, item = "tick", None
            try:
                if kind == "event":
                    await self._event(item)
                elif kind == "fact":
                    await self._fact(item)
                while not self._inbox.empty():
                    kind, item = self._inbox.get_nowait()
                    await (self._event(item) if kind == "event" else self._fact(item))
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign.loop_failed")

    async def _tick(self) -> None:
        now = self._clock()
        for camp in self._campaigns.values():
            dialer = camp.dialer
            if dialer.state.value == "stopped" and not dialer.in_flight():
                continue
            if dialer.state.value == "running" and dialer.hopper_room() and now - camp.last_refill >= REFILL_INTERVAL:
                camp.last_refill = now
                await self._refill(camp, now)
            pool = PoolView(**self._center.acd.pool_view(dialer.spec.queue, dialer.spec.skills))
            await self._execute(camp, dialer.tick(pool))

    async def _refill(self, camp: Campaign, now: float) -> None:
        """Offer the dialer the store's due leads; leads outside their window
        are given their next opening so they stop filling the query."""
        dialer = camp.dialer
        held = dialer.held_lead_ids()
        leads = [ld for ld in await self._store.due_leads(camp.name, now, dialer.hopper_room() + len(held) + 50)
                 if ld.lead_id not in held]
        recent = {ld.lead_id: await self._store.attempt_times(ld.lead_id, now - THIRTY_DAYS) for ld in leads}
        dialer.offer_leads(leads, recent)
        for ld in leads:
            why = dialer.why_not(ld, now)
            if why == "outside the calling window":
                opening = next_opening(dialer.spec.windows, ld.zones, now)
                ld.next_at = opening if opening is not None else now + 86400.0
                await self._store.save_lead(ld)

    async def _event(self, event: Any) -> None:
        live = self._live.get(event.leg_id)
        if live is None:
            return
        camp = self._campaigns[live.campaign]
        dialer = camp.dialer
        aid = event.leg_id
        if isinstance(event, LegRinging):
            out = dialer.leg_ringing(aid)
        elif isinstance(event, LegAnswered):
            out = dialer.leg_answered(aid)
        elif isinstance(event, AmdResult):
            self._center.record_facts(facts.AmdDetected(self._clock(), aid, event.verdict.value))
            out = dialer.amd_result(aid, event.verdict)
        elif isinstance(event, LegHungUp):
            live.ended = True
            out = dialer.leg_ended(aid, _OUTCOMES.get(event.outcome, AttemptOutcome.FAILED))
        else:
            return
        await self._execute(camp, out)

    async def _fact(self, fact: Any) -> None:
        live = self._live.get(fact.call_id)
        if live is None:
            return
        camp = self._campaigns[live.campaign]
        now = self._clock()
        if isinstance(fact, facts.CallerConnected):
            out = camp.dialer.agent_connected(fact.call_id, fact.agent)
            await self._store.add_ledger_event(camp.name, now, "connected")
        elif isinstance(fact, (facts.CallerTimedOut, facts.CallerExitEmpty)):
            live.in_acd = False
            out = camp.dialer.no_agent(fact.call_id)
            await self._store.add_ledger_event(camp.name, now, "dropped")
        elif isinstance(fact, facts.CallEnded):
            live.journey_closed = True
            live.in_acd = False
            self._forget(fact.call_id)
            return
        else:
            return
        await self._execute(camp, out)

    def _forget(self, aid: str) -> None:
        live = self._live.get(aid)
        if live is not None and live.ended and live.journey_closed:
            del self._live[aid]

    # ------------------------------------------------------------- commands
    async def _execute(self, camp: Campaign, commands: list[Any]) -> None:
        i = 0
        while i < len(commands):
            command = commands[i]
            i += 1
            try:
                if isinstance(command, c.RecordAttempt):
                    if not await self._record(camp, command, commands[i:]):
                        # skip this attempt's UpdateLead / ReserveAgent / Dial
                        aid = command.attempt.attempt_id
                        while i < len(commands) and _attempt_of(commands[i]) in (aid, None) and \
                                not isinstance(commands[i], c.RecordAttempt):
                            i += 1
                elif isinstance(command, c.CloseAttempt):
                    lead = None
                    if i < len(commands) and isinstance(commands[i], c.UpdateLead):
                        lead = commands[i].lead
                        i += 1
                    await self._close(camp, command, lead)
                else:
                    await self._run_command(camp, command)
            except Exception:
                log.exception("campaign.command_failed", campaign=camp.name, command=type(command).__name__)

    async def _record(self, camp: Campaign, command: c.RecordAttempt, rest: list[Any]) -> bool:
        attempt = command.attempt
        ok = await self._store.begin_attempt(attempt, camp.dialer.spec.max_attempts)
        if not ok:
            log.error("campaign.attempt_refused", campaign=camp.name, lead=attempt.lead_id,
                      hint="the store says the lead is being dialled or has no attempt left; not dialled")
            camp.dialer.leg_ended(attempt.attempt_id, AttemptOutcome.FAILED)  # forget it, nothing is written
        return ok

    async def _close(self, camp: Campaign, command: c.CloseAttempt, lead: Lead | None) -> None:
        live = self._live.get(command.attempt_id)
        if lead is None:
            lead = live.lead if live is not None else await self._store.lead(
                (await self._store.attempt(command.attempt_id)).lead_id)
        await self._store.end_attempt(command.attempt_id, command.outcome.value, command.ended_at, lead,
                                      agent=command.agent)
        if live is not None:
            live.ended = True
            if not live.journey_closed and not live.in_acd:
                live.journey_closed = True
                self._center.record_facts(facts.CallEnded(command.ended_at, command.attempt_id, command.outcome.value))
            self._forget(command.attempt_id)

    async def _run_command(self, camp: Campaign, command: Any) -> None:
        center = self._center
        if isinstance(command, c.UpdateLead):
            await self._store.save_lead(command.lead)
        elif isinstance(command, c.Dial):
            await self._dial(camp, command)
        elif isinstance(command, c.ConnectToPool):
            live = self._live[command.attempt_id]
            live.in_acd = True
            lead = live.lead
            center.control("call_waiting", command.attempt_id, command.attempt_id, live.node, command.queue,
                           priority=command.priority, skills=dict(command.skills),
                           caller=CallerId(lead.phone, clean_caller_text(lead.name)[:80]),
                           outbound_wait=command.max_wait, reserved_agent=command.reserved_agent)
        elif isinstance(command, c.PlayAbandonMessage):
            await self._driver(command.attempt_id).play_abandon(command.attempt_id, command.prompt)
        elif isinstance(command, c.LeaveMachineMessage):
            self._background(self._driver(command.attempt_id).leave_message(command.attempt_id, command.prompt))
        elif isinstance(command, c.HangupAttempt):
            await self._driver(command.attempt_id).hangup(command.attempt_id, command.cause)
        elif isinstance(command, c.RecordDisposition):
            await self._store.set_disposition(command.attempt_id, command.agent, command.disposition)
        elif isinstance(command, c.AddDnc):
            await self._store.add_dnc([command.number], command.reason, self._clock())
        elif isinstance(command, c.ReserveAgent):
            center.control("reserve_agent", command.agent, command.attempt_id)
        elif isinstance(command, c.ReleaseAgent):
            center.control("release_agent", command.agent, command.attempt_id)
        elif isinstance(command, c.CloseAttempt):
            await self._close(camp, command, None)

    async def _dial(self, camp: Campaign, command: c.Dial) -> None:
        spec = camp.dialer.spec
        node = command.node or spec.node or next(iter(self._center.drivers), "")
        lead = command.lead
        self._live[command.attempt_id] = _Live(camp.name, lead, node)
        self._center.record_facts(facts.CallStarted(
            at=self._clock(), call_id=command.attempt_id, leg_id=command.attempt_id,
            caller_number=lead.phone, caller_name=clean_caller_text(lead.name), dnis=lead.phone, node=node,
            direction="outbound", campaign=camp.name, lead_id=lead.lead_id,
        ))
        request = replace(command.request(), role=LegRole.CUSTOMER)
        driver = self._center.drivers.get(node)
        try:
            if driver is None:
                raise LookupError(f"no PBX node {node!r}")
            await driver.originate(request)
        except Exception as exc:  # noqa: BLE001 - any refusal ends the attempt as failed
            log.warning("campaign.dial_failed", campaign=camp.name, attempt=command.attempt_id,
                        lead=lead.lead_id, error=str(exc))
            self._live[command.attempt_id].ended = True
            await self._execute(camp, camp.dialer.leg_ended(command.attempt_id, AttemptOutcome.FAILED))

    def _driver(self, attempt_id: str) -> Any:
        live = self._live.get(attempt_id)
        node = live.node if live is not None else ""
        driver = self._center.drivers.get(node)
        if driver is None:
            raise LookupError(f"attempt {attempt_id}: no PBX node {node!r}")
        return driver

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    # ------------------------------------------------------ CampaignControl
    def _campaign(self, name: str) -> Campaign:
        camp = self._campaigns.get(name)
        if camp is None:
            raise LookupError(f"unknown campaign {name!r}")
        return camp

    @property
    def names(self) -> list[str]:
        return sorted(self._campaigns)

    def dialer(self, name: str) -> CampaignDialer:
        return self._campaign(name).dialer

    async def campaigns(self) -> list[dict[str, Any]]:
        return [await self.campaign_status(name) for name in sorted(self._campaigns)]

    async def campaign_status(self, name: str) -> dict[str, Any]:
        camp = self._campaign(name)
        counts = await self._store.lead_counts(name)
        remaining = counts.get("ready", 0) + counts.get("callback", 0) + counts.get("dialling", 0)
        status = camp.dialer.status(remaining=remaining)
        status["remaining"] = remaining
        status["leads"] = counts
        status["dispositions"] = await self._store.disposition_counts(name)
        status["outcomes"] = await self._store.outcome_counts(name)
        return status

    async def campaign_action(self, name: str, action: str) -> dict[str, Any]:
        camp = self._campaign(name)
        dialer = camp.dialer
        if action == "resume" and dialer.state.value != "paused":
            raise ValueError(f"campaign {name} is {dialer.state.value}, not paused")
        if action == "pause" and dialer.state.value != "running":
            raise ValueError(f"campaign {name} is {dialer.state.value}, not running")
        out = getattr(dialer, action)()
        camp.last_refill = 0.0
        await self._store.save_campaign_state(name, dialer.state.value, self._clock())
        log.info("campaign.state", campaign=name, state=dialer.state.value)
        await self._execute(camp, out)
        self._inbox.put_nowait(("tick", None))
        return {"campaign": name, "state": dialer.state.value}

    async def disposition(self, attempt_id: str, agent: str, disposition: str,
                          callback_at: str | None) -> dict[str, Any]:
        record = await self._store.attempt(attempt_id)
        if record is None:
            raise LookupError(f"unknown attempt {attempt_id!r}")
        camp = self._campaign(record.campaign)
        lead = await self._store.lead(record.lead_id)
        when = _local_time(callback_at, lead.zones if lead else ()) if callback_at else None
        try:
            out = camp.dialer.disposition(attempt_id, agent, disposition, when)
        except UnknownAttempt:  # before a restart, or long after the call: the stored lead
            if lead is None:
                raise
            new = after_disposition(camp.dialer.spec, lead, disposition, agent, when, self._clock())
            out = [c.RecordDisposition(attempt_id, agent, disposition, when), c.UpdateLead(new)]
        await self._execute(camp, out)
        return {"ok": True, "attempt": attempt_id, "disposition": disposition}

    def preview_next(self, agent: str) -> dict[str, Any] | None:
        for camp in self._campaigns.values():
            if camp.dialer.spec.mode is not DialMode.PREVIEW:
                continue
            lead = camp.dialer.preview_next(agent)
            if lead is not None:
                return {"campaign": camp.name, "lead_id": lead.lead_id, "phone": lead.phone, "name": lead.name,
                        "fields": dict(lead.fields), "attempts": lead.attempts, "last_outcome": lead.last_outcome}
        return None

    async def preview_decide(self, agent: str, lead_id: int, accept: bool) -> dict[str, Any]:
        for camp in self._campaigns.values():
            if camp.dialer.spec.mode is not DialMode.PREVIEW:
                continue
            held = camp.dialer.previewing(agent)
            if held is None or held.lead_id != lead_id:
                continue
            out = camp.dialer.preview_accept(agent, lead_id) if accept else camp.dialer.preview_skip(agent, lead_id)
            await self._execute(camp, out)
            return {"ok": True, "campaign": camp.name, "lead_id": lead_id, "accepted": accept}
        raise LookupError(f"agent {agent} has no preview of lead {lead_id}")


def _attempt_of(command: Any) -> str | None:
    aid = getattr(command, "attempt_id", None)
    if aid is None and isinstance(command, c.UpdateLead):
        return None
    return aid


def _local_time(text: str, zones: tuple[str, ...]) -> float:
    """A callback time in the lead's local time (its first zone) as epoch seconds."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"callback time {text!r} is not a local time such as 2026-12-01T10:30") from None
    if naive.tzinfo is not None:
        return naive.timestamp()
    zone = ZoneInfo(zones[0]) if zones else None
    if zone is None:
        return naive.timestamp()
    return naive.replace(tzinfo=zone).timestamp()


__all__ = ["CampaignService", "Campaign", "TICK_INTERVAL", "REFILL_INTERVAL"]
