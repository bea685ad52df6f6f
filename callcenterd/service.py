"""The contact-center service: one task that feeds the pure core.

PBX events (from every driver) and timer deadlines go into the ACD; the
commands it emits are executed on the right driver; the facts go to the
journey builder, the CDR sink and the store.  All ACD decisions happen in
this one task, so the core needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, Awaitable, Callable, Mapping

import structlog

from callcenterd.core import commands as cmd
from callcenterd.core import facts
from callcenterd.logs import bind_call
from callcenterd.pbx.api import (
    Bridged,
    CallArrived,
    CallHeld,
    DeviceState,
    LegAnswered,
    LegHungUp,
    Outcome,
    PbxDown,
    PbxEvent,
    PbxPort,
    PbxUp,
    Timeout,
)

log = structlog.get_logger(__name__)

#: PBX events waiting for the core.  Drivers never block on it: a full
#: queue means the core is wedged, which the watchdog will notice.
EVENT_QUEUE_SIZE = 10_000
#: Longest sleep between two looks at the ACD's timers.
MAX_IDLE = 1.0
#: Hang-up causes of a PBX shutting down gracefully (FreeSWITCH hangs every
#: channel up with SYSTEM_SHUTDOWN, switch_types.h 501): a caller lost that
#: way did not abandon.
PBX_SHUTDOWN_CAUSES = frozenset({"SYSTEM_SHUTDOWN"})


@dataclasses.dataclass(frozen=True, slots=True)
class OfferLost:
    """Internal event: an agent Originate got no answer from the PBX in time."""

    leg_id: str


class CallCenter:
    """Runs the ACD against a set of PBX drivers (one per node)."""

    def __init__(
        self,
        acd: Any,
        drivers: dict[str, PbxPort],
        *,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        journeys: Any = None,
        cdr: Any = None,
        store: Any = None,
        queue_priority: Mapping[str, int] | None = None,
        default_queue: str = "",
        device_aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.acd = acd
        self.drivers = drivers  # shared: the wiring adds drivers after building us
        self._clock = clock
        self._new_id = new_id
        self._journeys = journeys
        self._cdr = cdr
        self._store = store
        self._queue_priority = dict(queue_priority or {})
        self._default_queue = default_queue
        # the PBX's name for a device -> the agent's configured device
        # (Asterisk reports Local/1001@agents for Local/1001@agents/n)
        self.device_aliases: dict[str, str] = dict(device_aliases or {})
        self.events: asyncio.Queue[PbxEvent] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self._leg_tail: dict[str, asyncio.Task[None]] = {}
        self._store_ops: asyncio.Queue[Callable[[], Awaitable[Any]] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[Callable[[Any], None]] = []
        self._wake = asyncio.Event()
        self.dropped_events = 0
        # journeys checkpointed before our restart: call id -> node, until
        # that node's first PbxUp says whether the call is still there
        self._restored: dict[str, str] = {}
        # node -> when we last heard from it before it went down: calls lost
        # in a PBX restart end there, not at the reconnect
        self._lost_sight: dict[str, float] = {}
        # the campaigns (wiring sets it): they follow their customer legs
        self.outbound: Any = None

    # ------------------------------------------------------------- inputs
    def emit(self, event: PbxEvent | OfferLost) -> None:
        """Called by drivers; never blocks."""
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped_events += 1
            log.error("core.event_queue_full", dropped=self.dropped_events, event=type(event).__name__)

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        """Receive every fact (live status, tests)."""
        self._listeners.append(listener)

    def control(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Run an agent-control input (login, pause...) on the ACD now.

        Raises what the ACD raises (UnknownAgent...), before any output.
        """
        outputs = getattr(self.acd, method)(*args, **kwargs)
        self._process(outputs)
        self._wake.set()

    def record_facts(self, *outputs: Any) -> None:
        """Facts (and commands) from another part of the core, e.g. the
        campaigns: recorded and executed like the ACD's own."""
        self._process(list(outputs))

    # --------------------------------------------------------------- loop
    async def run(self) -> None:
        store_task = asyncio.create_task(self._store_writer(), name="store-writer")
        try:
            while True:
                timeout = MAX_IDLE
                deadline = self.acd.next_deadline()
                if deadline is not None:
                    timeout = max(0.0, min(MAX_IDLE, deadline - self._clock()))
                event = None
                getter = asyncio.ensure_future(self.events.get())
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    done, _ = await asyncio.wait({getter, waker}, timeout=timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                    if getter.done() and not getter.cancelled():
                        event = getter.result()
                    else:
                        getter.cancel()
                self._wake.clear()
                if event is not None:
                    self.dispatch(event)
                    while not self.events.empty():  # drain a burst before ticking
                        self.dispatch(self.events.get_nowait())
                self._process(self.acd.tick())
        finally:
            self._store_ops.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store_task, 5)

    def dispatch(self, event: PbxEvent) -> None:
        """Feed one PBX event into the core and act on what it says."""
        acd = self.acd
        outbound = self.outbound
        if outbound is not None and outbound.owns(getattr(event, "leg_id", None)):
            outbound.on_event(event)  # and the ACD too, once the person waits for an agent
        try:
            if isinstance(event, CallArrived):
                outputs = self._arrived(event)
            elif isinstance(event, LegAnswered):
                outputs = acd.leg_answered(event.leg_id)
            elif isinstance(event, LegHungUp):
                outputs = acd.leg_hung_up(event.leg_id, event.outcome)
                if event.cause_text in PBX_SHUTDOWN_CAUSES:
                    outputs = _pbx_shutdown(outputs)
            elif isinstance(event, Bridged):
                if self._journeys is not None:
                    self._journeys.bridged(event.leg_a, event.leg_b, self._clock())
                return
            elif isinstance(event, DeviceState):
                outputs = acd.device_state(self.device_aliases.get(event.device, event.device), event.status)
            elif isinstance(event, PbxUp):
                outputs = self._first_seen(event, acd.pbx_up(event.node, self._aliased(event.snapshot)))
                lost_at = self._lost_sight.pop(event.node, None)
                if event.snapshot.restarted and lost_at is not None:
                    outputs = _at_last_sight(outputs, lost_at)
                outputs += self._close_interrupted(event.node)
            elif isinstance(event, CallHeld):
                outputs = self._held(event)
            elif isinstance(event, OfferLost):
                outputs = acd.offer_lost(event.leg_id)
            elif isinstance(event, PbxDown):
                driver = self.drivers.get(event.node)
                self._lost_sight[event.node] = getattr(driver, "lost_sight_at", None) or self._clock()
                outputs = acd.pbx_down(event.node)
            else:
                return
        except Exception:
            log.exception("core.dispatch_failed", event=type(event).__name__)
            return
        self._process(outputs)

    def _aliased(self, snapshot: Any) -> Any:
        """The snapshot's device states under the agents' configured names."""
        if not snapshot.devices or not self.device_aliases:
            return snapshot
        aliases = self.device_aliases
        return dataclasses.replace(snapshot, devices={aliases.get(d, d): s for d, s in snapshot.devices.items()})

    def _held(self, event: CallHeld) -> list[Any]:
        """A caller the PBX holds without our decision: open its journey and
        let the ACD adopt it (it ignores a leg it already has)."""
        wc = event.call
        with bind_call(call_id=wc.call_id, queue=wc.queue):
            adopted = self.acd.caller_held(event.node, wc)
        if not adopted:
            return adopted
        started = facts.CallStarted(
            at=wc.enqueued_at, call_id=wc.call_id, leg_id=wc.leg_id, caller_number=wc.caller_id.number,
            caller_name=wc.caller_id.name, node=event.node, pbx_uniqueid=wc.leg_id,
        )
        return [started, *adopted]

    def _arrived(self, event: CallArrived) -> list[Any]:
        """Inbound call: until the IVR wave, the dialplan names the queue."""
        call_id = self._new_id()
        queue = event.variables.get("queue", "") or self._default_queue
        with bind_call(call_id=call_id, queue=queue):
            return self._admit_call(event, call_id, queue)

    def _admit_call(self, event: CallArrived, call_id: str, queue: str) -> list[Any]:
        started = facts.CallStarted(
            at=self._clock(), call_id=call_id, leg_id=event.leg_id,
            caller_number=event.caller_id.number, caller_name=event.caller_id.name,
            dnis=event.dnis, node=event.node, pbx_uniqueid=event.leg_id, pbx_linkedid=event.linked_id,
            caller_name_raw=event.caller_raw,
        )
        outputs: list[Any] = [started]
        if queue not in self._queue_priority:
            log.warning("call.unknown_queue", call_id=call_id, queue=queue)
            queue = self._default_queue
            if not queue:
                outputs.append(cmd.Hangup(event.node, event.leg_id, 1))
                outputs.append(facts.CallEnded(self._clock(), call_id, "rejected"))
                return outputs
        priority = _priority(event.variables.get("priority", ""), call_id, self._queue_priority[queue])
        outputs.extend(self.acd.call_waiting(
            call_id, event.leg_id, event.node, queue, priority=priority, caller=event.caller_id,
        ))
        return outputs

    def restore_agents(self, saved: Mapping[str, Any]) -> None:
        """Re-apply logins and pauses saved before a restart.

        Only their state changes are recorded (live status, occupancy): the
        agents never left as far as queue_log is concerned, so no second
        ADDMEMBER / PAUSE line is written."""
        outputs = self.acd.import_state(saved)
        self._process([o for o in outputs if not isinstance(
            o, (facts.AgentLoggedIn, facts.AgentLoggedOut, facts.AgentPaused, facts.AgentUnpaused))])
        self._wake.set()

    def restore_journeys(self, journeys: list[Any]) -> None:
        """Journeys that were open when callcenterd stopped (from the store)."""
        for journey in journeys:
            self._journeys.restore(journey)
            self._restored[journey.call_id] = journey.node

    def _first_seen(self, event: PbxUp, outputs: list[Any]) -> list[Any]:
        """Callers the PBX held while we were down and that we never saw
        (no journey, not even a restored one): their journey starts at the
        enqueue time stamped in the PBX, with the caller ID the PBX has, and
        queue_log gets their ENTERQUEUE (readopted=False: nothing was
        written for them before)."""
        if self._journeys is None:
            return outputs
        waiting = {w.call_id or w.leg_id: w for w in event.snapshot.waiting}
        out: list[Any] = []
        for o in outputs:
            wc = waiting.get(getattr(o, "call_id", ""))
            if (isinstance(o, facts.CallerEnqueued) and o.readopted and wc is not None
                    and self._journeys.get(o.call_id) is None):
                at = min(o.at, wc.enqueued_at)
                out.append(facts.CallStarted(
                    at=at, call_id=o.call_id, leg_id=wc.leg_id, caller_number=wc.caller_id.number,
                    caller_name=wc.caller_id.name, dnis="", node=event.node))
                o = dataclasses.replace(o, at=at, readopted=False)
            out.append(o)
        return out

    def _close_interrupted(self, node: str) -> list[Any]:
        """After a restart, calls the PBX no longer holds for us (the caller
        hung up meanwhile, or was talking to an agent when we died) close
        their journey as ``interrupted``: written once, never left open."""
        live = {w["call_id"] for w in self.acd.waiting_view()}
        live.update(c for a in self.acd.agents_view() for c in a.get("call_ids", ()))
        ended = []
        for call_id, journey_node in list(self._restored.items()):
            if journey_node in (node, ""):
                del self._restored[call_id]
                if call_id not in live:
                    ended.append(facts.CallEnded(self._clock(), call_id, "interrupted"))
        return ended

    # ------------------------------------------------------------ outputs
    def _process(self, outputs: list[Any]) -> None:
        for out in outputs:
            if isinstance(out, (cmd.Originate, cmd.Bridge, cmd.Hangup, cmd.Hold, cmd.UpdateHold, cmd.Redirect)):
                self._execute(out)
            else:
                self._record(out)

    def _record(self, fact: Any) -> None:
        for listener in self._listeners:
            try:
                listener(fact)
            except Exception:
                log.exception("core.listener_failed")
        if self._cdr is not None:
            self._cdr.submit_fact(fact)
        # Recording must never take call handling down with it: a bug here is
        # logged with the fact, and the calls go on.
        try:
            closed = self._journeys.apply(fact) if self._journeys is not None else []
            for journey in closed:
                if self._cdr is not None:
                    self._cdr.submit_journey(journey)
            if self._store is not None:
                self._persist(fact)
        except Exception:
            log.exception("core.record_failed", fact=type(fact).__name__, call_id=getattr(fact, "call_id", ""))

    def _persist(self, fact: Any) -> None:
        store = self._store
        if isinstance(fact, (facts.CallerEnqueued, facts.CallerConnected)) and self._journeys is not None:
            # checkpoint: a restart re-opens the same journey (caller, times,
            # IVR...), so it is still written once, complete
            journey = self._journeys.get(fact.call_id)
            if journey is not None:
                data = journey.to_dict()
                self._store_ops.put_nowait(lambda: store.save_open_journey(fact.call_id, data))
        if isinstance(fact, facts.CallCompleted):  # the queue's handle-time statistics changed
            stats = self.acd.handle_stats(fact.queue)
            self._store_ops.put_nowait(lambda: store.save_handle_stats(fact.queue, stats, fact.at))
        if isinstance(fact, facts.CallEnded):
            self._store_ops.put_nowait(lambda: store.remove_open_journey(fact.call_id))
        elif isinstance(fact, (facts.AgentLoggedIn, facts.AgentLoggedOut, facts.AgentPaused, facts.AgentUnpaused)):
            state = self.acd.export_state().get(fact.agent, {})
            self._store_ops.put_nowait(lambda: store.save_agent(
                fact.agent, bool(state.get("logged_in")), bool(state.get("paused")),
                str(state.get("reason", "")), fact.at))

    async def _store_writer(self) -> None:
        while True:
            op = await self._store_ops.get()
            if op is None:
                return
            try:
                await op()
            except Exception:
                log.exception("store.write_failed")

    def _execute(self, command: Any) -> None:
        driver = self.drivers.get(command.node)
        if driver is None:
            log.error("core.unknown_node", node=command.node, command=type(command).__name__)
            return
        leg = _leg_of(command)
        previous = self._leg_tail.get(leg)
        task = asyncio.create_task(self._run_command(driver, command, previous))
        self._leg_tail[leg] = task
        self._tasks.add(task)

        def _done(t: asyncio.Task[None], leg: str = leg) -> None:
            self._tasks.discard(t)
            if self._leg_tail.get(leg) is t:
                del self._leg_tail[leg]

        task.add_done_callback(_done)

    async def _run_command(self, driver: PbxPort, command: Any, previous: asyncio.Task[None] | None) -> None:
        """Commands on one leg run in the order the core emitted them."""
        if previous is not None:
            with contextlib.suppress(BaseException):
                await previous
        with bind_call(**_context_of(command)):
            await self._send(driver, command)

    async def _send(self, driver: PbxPort, command: Any) -> None:
        try:
            if isinstance(command, cmd.Originate):
                await driver.originate(command.request)
            elif isinstance(command, cmd.Bridge):
                await driver.bridge(command.leg_a, command.leg_b)
            elif isinstance(command, cmd.Hangup):
                await driver.hangup(command.leg_id, command.cause)
            elif isinstance(command, cmd.Hold):
                await driver.hold(command.call, command.spec)
            elif isinstance(command, cmd.UpdateHold):
                await driver.update_hold(command.leg_id, command.spec)
            elif isinstance(command, cmd.Redirect):
                await driver.redirect(command.leg_id, command.destination)
        except Exception as exc:
            log.warning("pbx.command_failed", command=type(command).__name__, node=command.node,
                        leg=_leg_of(command), error=str(exc) or type(exc).__name__)
            self._command_failed(command, exc)

    def _command_failed(self, command: Any, exc: BaseException | None = None) -> None:
        """Tell the core what a failed command means for its legs."""
        if isinstance(command, cmd.Originate):
            if isinstance(exc, Timeout):
                # Not the agent's fault, and the leg may still appear (the
                # driver hangs it up then): withdraw the offer, no miss.
                self.emit(OfferLost(command.request.leg_id))
            else:
                # The leg never existed: the core tries the next agent.
                self.emit(LegHungUp(command.request.leg_id, Outcome.FAILED))
        elif isinstance(command, cmd.Bridge):
            # Drop the agent leg; the caller goes back to waiting.
            self._execute(cmd.Hangup(command.node, command.leg_b))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for in-flight PBX commands (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


#: Caller priorities accepted from the dialplan / IVR.
PRIORITY_RANGE = (-100, 100)


def _priority(text: str, call_id: str, default: int) -> int:
    """A caller priority from the dialplan; garbage is logged and ignored."""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        log.warning("call.bad_priority", call_id=call_id, priority=text[:20])
        return default
    low, high = PRIORITY_RANGE
    return min(high, max(low, value))


def _pbx_shutdown(outputs: list[Any]) -> list[Any]:
    """A waiting caller hung up by a PBX shutting down did not abandon: no
    CallerAbandoned (queue_log ABANDON, abandon rate), and the call ends as
    ``pbx-shutdown``."""
    out = []
    for o in outputs:
        if isinstance(o, facts.CallerAbandoned):
            continue
        if isinstance(o, facts.CallEnded) and o.outcome == "abandoned":
            o = dataclasses.replace(o, outcome="pbx-shutdown")
        out.append(o)
    return out


def _at_last_sight(outputs: list[Any], lost_at: float) -> list[Any]:
    """Calls the PBX lost in a restart end when we last heard from it, so
    the outage is not counted as talk or hold time."""
    return [dataclasses.replace(o, at=min(o.at, lost_at))
            if isinstance(o, facts.CallEnded) and o.outcome == "pbx-restart" else o for o in outputs]


def _context_of(command: Any) -> dict[str, str]:
    """Per-call log context for a command (call id, queue, agent)."""
    if isinstance(command, cmd.Originate):
        v = command.request.variables
        return {"call_id": command.request.call_id, "queue": v.get("CC_QUEUE", ""), "agent": v.get("CC_AGENT", "")}
    if isinstance(command, cmd.Hold):
        return {"call_id": command.call.call_id, "queue": command.call.queue}
    return {}


def _leg_of(command: Any) -> str:
    if isinstance(command, cmd.Originate):
        return command.request.leg_id
    if isinstance(command, cmd.Bridge):
        return command.leg_a
    if isinstance(command, cmd.Hold):
        return command.call.leg_id
    return command.leg_id
