"""The ACD: which agent takes which caller.

Pure and single-threaded: every input is a method call that returns the
:mod:`~callcenterd.core.commands` to execute and the
:mod:`~callcenterd.core.facts` to record, in order.  Time comes only from
the injected ``clock``; the wiring calls :meth:`Acd.tick` at
:meth:`Acd.next_deadline`.

Routing happens at the end of every input (``_route``): callers that became
routable are served first, in (weight, priority, wait) order, each by its
queue's strategy over the indexed ready agents; then each agent that
became ready takes the best caller of all the queues it serves (on its
node).  After ``_route`` no routable caller has an eligible ready agent.

Decisions worth knowing:

* Every ``AgentOffered`` is closed by exactly one ``CallerConnected`` (same
  leg) or ``AgentRingNoAnswer``.  Offers we withdraw ourselves carry a
  reason that is not a PBX outcome: ``answered-elsewhere`` (ring-all loser,
  Hangup cause 26 like app_queue), ``caller-hangup``, ``caller-timeout``,
  ``caller-exit``, ``paused``, ``logged-out``, ``pbx-down``, ``pbx-restart``.
  Only PBX outcomes other than ``cancelled`` count towards auto-pause.
* Ring timeout is enforced here (tick), not only by the PBX: the agent leg
  is hung up and forgotten at once; a late LegHungUp/LegAnswered for it is
  ignored.
* Overflow to a queue keeps the ORIGINAL ``enqueued_at`` for ordering (the
  caller keeps its place among callers of equal priority) while
  ``max_wait``, hold time and skill relaxation restart from the move.  The
  caller gets a fresh ``Hold`` so the PBX re-stamps the new queue on the
  leg.  A queue already visited is never re-entered (no overflow loops).
* A caller that leaves with no overflow configured is hung up (app_queue
  would continue the dialplan: configure ``overflow_destination`` for that).
* ``CallerConnected.hold_s`` / ``CallCompleted.hold_s`` / ``wait_s`` count
  from entry into the current queue (queue_log semantics).
"""

from __future__ import annotations

import heapq
import itertools
import random
from typing import Any, Callable, Iterable, Mapping

from callcenterd.core.acd.agents import AgentLeg, AgentRuntime, AgentState
from callcenterd.core.acd.index import ReadyIndex
from callcenterd.core.acd.specs import AgentSpec, ConfigError, QueueSpec, Strategy
from callcenterd.core.acd.strategies import pick
from callcenterd.core.acd.waiting import (
    CallerEntry,
    StaffStats,
    WaitingLine,
    estimate_wait,
    update_aht,
)
from callcenterd.core.commands import Bridge, Command, Hangup, Hold, Originate, Redirect, UpdateHold
from callcenterd.core.facts import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentOffered,
    AgentPaused,
    AgentRingNoAnswer,
    AgentStateChanged,
    AgentUnpaused,
    CallCompleted,
    CallEnded,
    CallerAbandoned,
    CallerConnected,
    CallerEnqueued,
    CallerExitEmpty,
    CallerRejected,
    CallerTimedOut,
    Fact,
)
from callcenterd.pbx.api import (
    CallerId,
    DeviceStatus,
    HoldSpec,
    OriginateRequest,
    Outcome,
    PbxSnapshot,
    WaitingCall,
    check_safe,
)

Output = Command | Fact

RING_MARGIN = 2.0  # s added to the PBX-side ring timeout; we hang up first, via tick()
MAX_OVERFLOW_HOPS = 8
CAUSE_NORMAL = 16  # Q.850 normal clearing
CAUSE_NO_ANSWER = 19  # Q.850 no answer: our ring timeout
CAUSE_ANSWERED_ELSEWHERE = 26  # Q.850 "non-selected user clearing": app_queue ringall losers

# Device states that mean "busy with something we did not set up" when the
# agent holds none of our legs (app_queue ringinuse=no; UNKNOWN is callable,
# as in app_queue's default).
_BLOCKING = frozenset({DeviceStatus.INUSE, DeviceStatus.BUSY, DeviceStatus.RINGING, DeviceStatus.UNAVAILABLE})
_BACKOFF_OUTCOMES = frozenset({Outcome.BUSY, Outcome.REJECTED, Outcome.CONGESTION})


class AcdError(Exception):
    """Base of the ACD's input errors."""


class UnknownAgent(AcdError, KeyError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)
        self.agent_id = agent_id

    def __str__(self) -> str:
        return f"unknown agent {self.agent_id!r}: not in the ACD configuration"


class UnknownQueue(AcdError, KeyError):
    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.queue = queue

    def __str__(self) -> str:
        return f"unknown queue {self.queue!r}: not in the ACD configuration"


class AgentStateError(AcdError, ValueError):
    """The agent is in no state to do that (e.g. pause while logged out)."""


class DuplicateCall(AcdError, ValueError):
    """A call id or leg id the ACD already tracks."""


class Acd:
    """Automatic call distribution over queues, agents and PBX nodes."""

    def __init__(
        self,
        queues: Iterable[QueueSpec],
        agents: Iterable[AgentSpec],
        clock: Callable[[], float],
        *,
        rng: random.Random,
        new_id: Callable[[], str],
        log: Any = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._new_id = new_id
        self._log = log
        self._queues: dict[str, QueueSpec] = {}
        for q in queues:
            if q.name in self._queues:
                raise ConfigError(f"queue {q.name!r} defined twice")
            self._queues[q.name] = q
        for q in self._queues.values():
            if q.overflow_queue and q.overflow_queue not in self._queues:
                raise ConfigError(f"queue {q.name!r}: overflow_queue {q.overflow_queue!r} does not exist")
        self._agents: dict[str, AgentRuntime] = {}
        self._by_device: dict[str, list[AgentRuntime]] = {}
        for order, spec in enumerate(agents):
            if spec.id in self._agents:
                raise ConfigError(f"agent {spec.id!r} defined twice")
            for qn in spec.queues:
                if qn not in self._queues:
                    raise ConfigError(f"agent {spec.id!r}: queue {qn!r} does not exist")
            a = AgentRuntime(spec=spec, order=order)
            self._agents[spec.id] = a
            self._by_device.setdefault(spec.device, []).append(a)
        self._device_status: dict[str, DeviceStatus] = {}
        self._ready: dict[tuple[str, str], ReadyIndex] = {}
        self._lines: dict[tuple[str, str], WaitingLine] = {}
        self._staff: dict[tuple[str, str], StaffStats] = {}
        # per agent: (queue, staff stats, ready index, leave_empty) of each queue it serves
        self._slots: dict[str, list[tuple[str, StaffStats, ReadyIndex, str]]] = {}
        self._queue_agents: dict[str, list[AgentRuntime]] = {name: [] for name in self._queues}
        for a in self._agents.values():
            for qn in a.spec.queues:
                self._queue_agents[qn].append(a)
        self._queue_count: dict[str, int] = {name: 0 for name in self._queues}
        self._aht: dict[str, float] = {q.name: q.aht_initial for q in self._queues.values()}
        self._rr_last: dict[tuple[str, str], int] = {}
        self._calls: dict[str, CallerEntry] = {}
        self._legs: dict[str, CallerEntry | AgentLeg] = {}
        self._nodes_down: set[str] = set()
        self._lost_legs: dict[str, set[str]] = {}
        self._timers: dict[tuple[str, Any], float] = {}
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._pending_calls: set[str] = set()
        self._pending_agents: set[str] = set()
        self._pending_empty: set[tuple[str, str]] = set()

    # ================================================================ inputs
    def call_waiting(
        self,
        call_id: str,
        leg_id: str,
        node: str,
        queue: str,
        *,
        priority: int = 0,
        caller: CallerId = CallerId(),
        skills: Mapping[str, int] | None = None,
        enqueued_at: float | None = None,
        readopted: bool = False,
    ) -> list[Output]:
        """A caller asks for an agent in ``queue``: admit (or reject) and route."""
        if queue not in self._queues:
            raise UnknownQueue(queue)
        check_safe(call_id, "call id")
        check_safe(leg_id, "leg id")
        check_safe(node, "node")
        if not call_id or not leg_id:
            raise ValueError("call_id and leg_id must not be empty")
        if call_id in self._calls:
            raise DuplicateCall(f"call {call_id!r} is already in the ACD")
        if leg_id in self._legs:
            raise DuplicateCall(f"leg {leg_id!r} is already in the ACD")
        skills = dict(skills or {})
        for s, lvl in skills.items():
            if not isinstance(s, str) or not s or not isinstance(lvl, int) or not 1 <= lvl <= 10:
                raise ValueError(f"caller skill {s!r}: level must be an integer 1..10, got {lvl!r}")
        if not isinstance(priority, int):
            raise ValueError(f"priority must be an integer, got {priority!r}")
        now = self._clock()
        call = CallerEntry(
            call_id=call_id, leg_id=leg_id, node=node, queue=queue, priority=priority, caller_id=caller,
            skills=skills, enqueued_at=now if enqueued_at is None else float(enqueued_at), entered_at=now,
            seq=next(self._seq),
        )
        if readopted and enqueued_at is not None:
            call.entered_at = min(now, call.enqueued_at)
        out: list[Output] = []
        self._calls[call_id] = call
        self._legs[leg_id] = call
        self._admit(call, out, held=readopted, readopted=readopted)
        self._route(out)
        return out

    def leg_answered(self, leg_id: str) -> list[Output]:
        """An agent leg answered: bridge it with its caller.  Caller legs: nothing to do."""
        out: list[Output] = []
        al = self._legs.get(leg_id)
        if not isinstance(al, AgentLeg) or al.answered_at is not None:
            return out
        now = self._clock()
        call = self._calls[al.call_id]
        agent = self._agents[al.agent_id]
        self._cancel("ring", leg_id)
        al.answered_at = now
        call.agent_leg, call.agent_id, call.connected_at = leg_id, agent.id, now
        del call.rings[leg_id]
        self._leave_line(call)
        self._cancel_call_timers(call)
        out.append(Bridge(call.node, call.leg_id, leg_id))
        out.append(CallerConnected(now, call.call_id, call.queue, agent.id, int(now - call.entered_at),
                                   leg_id, int(now - al.started_at)))
        for other in list(call.rings):
            self._withdraw(self._legs[other], "answered-elsewhere", out, cause=CAUSE_ANSWERED_ELSEWHERE)
        agent.missed = 0
        self._touch(agent, out)
        self._route(out)
        return out

    def leg_hung_up(self, leg_id: str, outcome: Outcome) -> list[Output]:
        """A caller leg or agent leg is gone."""
        out: list[Output] = []
        entry = self._legs.get(leg_id)
        if entry is None:
            return out  # a leg we already let go of (timeout, cancel): expected
        outcome = Outcome(outcome)
        if isinstance(entry, CallerEntry):
            if entry.agent_leg is not None:
                self._complete(entry, "caller", out)
            else:
                self._abandon(entry, out)
        elif entry.answered_at is not None:
            self._complete(self._calls[entry.call_id], "agent", out)
        else:
            self._ring_failed(entry, outcome, out)
        self._route(out)
        return out

    def device_state(self, device: str, status: DeviceStatus) -> list[Output]:
        """Track a device; one busy with a call we do not own is not rung."""
        out: list[Output] = []
        status = DeviceStatus(status)
        if self._device_status.get(device) is status:
            return out
        self._device_status[device] = status
        for agent in self._by_device.get(device, ()):
            self._touch(agent, out)
        self._route(out)
        return out

    def agent_login(self, agent_id: str) -> list[Output]:
        agent = self._agent(agent_id)
        out: list[Output] = []
        if agent.logged_in and not agent.logout_pending:
            return out
        now = self._clock()
        was_in = agent.logged_in
        agent.logged_in, agent.logout_pending, agent.missed = True, False, 0
        agent.idle_since, agent.key_dirty = now, True
        if not was_in:
            out.append(AgentLoggedIn(now, agent_id, agent.spec.queues))
        self._touch(agent, out)
        self._route(out)
        return out

    def agent_logout(self, agent_id: str) -> list[Output]:
        """Log out; during a call the logout takes effect when the call ends."""
        agent = self._agent(agent_id)
        out: list[Output] = []
        if not agent.logged_in or agent.logout_pending:
            return out
        self._withdraw_agent_rings(agent, "logged-out", out)
        if agent.legs:
            agent.logout_pending = True
            self._touch(agent, out)
        else:
            self._do_logout(agent, out)
        self._route(out)
        return out

    def agent_pause(self, agent_id: str, reason: str = "") -> list[Output]:
        """Pause; a ringing offer is withdrawn and its caller routed at once."""
        agent = self._agent(agent_id)
        check_safe(reason, "pause reason")
        if not agent.logged_in or agent.logout_pending:
            raise AgentStateError(f"agent {agent_id!r} is not logged in: cannot pause")
        out: list[Output] = []
        if agent.paused and agent.pause_reason == reason:
            return out
        self._pause(agent, reason, out)
        self._route(out)
        return out

    def agent_unpause(self, agent_id: str) -> list[Output]:
        agent = self._agent(agent_id)
        out: list[Output] = []
        if not agent.paused:
            return out
        agent.paused, agent.pause_reason, agent.missed = False, "", 0
        agent.idle_since, agent.key_dirty = self._clock(), True
        out.append(AgentUnpaused(self._clock(), agent_id, agent.spec.queues))
        self._touch(agent, out)
        self._route(out)
        return out

    def tick(self) -> list[Output]:
        """Everything due now: ring timeouts, wrap-up ends, max_wait, announcements..."""
        out: list[Output] = []
        now = self._clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, kind, ref = heapq.heappop(heap)
            if self._timers.get((kind, ref)) != due:
                continue  # cancelled or rescheduled
            del self._timers[(kind, ref)]
            getattr(self, "_on_" + kind)(ref, out)
        self._route(out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (clock time), or None."""
        heap = self._heap
        while heap:
            due, _, kind, ref = heap[0]
            if self._timers.get((kind, ref)) == due:
                return due
            heapq.heappop(heap)
        return None

    def pbx_down(self, node: str) -> list[Output]:
        """Lost the PBX: nothing is hung up, but agent legs ringing there are lost."""
        out: list[Output] = []
        if node in self._nodes_down:
            return out
        self._nodes_down.add(node)
        lost = self._lost_legs.setdefault(node, set())
        for leg in [e for e in self._legs.values() if isinstance(e, AgentLeg) and e.node == node]:
            if leg.answered_at is None:
                lost.add(leg.leg_id)
                self._withdraw(leg, "pbx-down", out, cause=None)
        self._refresh_node(node, out)
        return out

    def pbx_up(self, node: str, snapshot: PbxSnapshot) -> list[Output]:
        """(Re)connected to a PBX: resync from its snapshot, re-adopt callers, route."""
        out: list[Output] = []
        self._nodes_down.discard(node)
        lost = self._lost_legs.pop(node, set())
        legs = snapshot.legs
        on_node = sorted((c for c in self._calls.values() if c.node == node), key=lambda c: c.key)
        if snapshot.restarted:
            for call in on_node:
                self._close_restarted(call, out)
        else:
            for leg_id in sorted(lost & legs):
                out.append(Hangup(node, leg_id, CAUSE_NORMAL))  # rang on while we were away
            for call in on_node:
                if call.call_id not in self._calls:
                    continue
                if call.leg_id not in legs:
                    if call.agent_leg is not None:
                        self._complete(call, "caller", out, other_up=call.agent_leg in legs)
                    else:
                        self._abandon(call, out)
                elif call.agent_leg is not None and call.agent_leg not in legs:
                    self._complete(call, "agent", out)
        known_legs = set(self._legs)
        for wc in sorted(snapshot.waiting, key=lambda w: (w.enqueued_at, w.leg_id)):
            if wc.leg_id in known_legs or (wc.call_id and wc.call_id in self._calls):
                continue
            if wc.queue not in self._queues:
                if self._log is not None:
                    self._log.warning("acd.readopt_unknown_queue", queue=wc.queue, leg_id=wc.leg_id)
                continue
            call_id = wc.call_id or self._new_id()
            now = self._clock()
            call = CallerEntry(
                call_id=call_id, leg_id=wc.leg_id, node=node, queue=wc.queue, priority=wc.priority,
                caller_id=wc.caller_id, skills=dict(wc.skills), enqueued_at=wc.enqueued_at,
                entered_at=min(now, wc.enqueued_at), seq=next(self._seq),
            )
            self._calls[call_id] = call
            self._legs[wc.leg_id] = call
            self._admit(call, out, held=True, readopted=True)
        self._refresh_node(node, out)
        self._route(out)
        return out

    # ================================================================= views
    def agent_state(self, agent_id: str) -> dict:
        """One agent as :meth:`agents_view` shows it."""
        return self._agent_view(self._agent(agent_id), self._clock())

    def agents_view(self) -> list[dict]:
        now = self._clock()
        return [self._agent_view(a, now) for a in self._agents.values()]

    def queues_view(self) -> list[dict]:
        now = self._clock()
        rows = []
        for q in self._queues.values():
            staffed = sum(s.staffed for (n, qn), s in self._staff.items() if qn == q.name)
            ready = sum(len(i) for (n, qn), i in self._ready.items() if qn == q.name)
            oldest = [k[1] for (n, qn), line in self._lines.items() if qn == q.name for k in line.waiting]
            rows.append({
                "queue": q.name,
                "strategy": q.strategy.value,
                "waiting": self._queue_count[q.name],
                "staffed": staffed,
                "available": ready,
                "aht": round(self._aht[q.name], 1),
                "longest_wait": round(now - min(oldest), 1) if oldest else 0.0,
            })
        return rows

    def waiting_view(self) -> list[dict]:
        now = self._clock()
        rows = []
        for call in sorted(self._calls.values(), key=lambda c: c.key):
            if not call.in_line:
                continue
            pos = self._line(call).position(call)
            rows.append({
                "call_id": call.call_id,
                "queue": call.queue,
                "node": call.node,
                "position": pos,
                "enqueued_at": call.enqueued_at,
                "waited": round(now - call.enqueued_at, 3),
                "wait_estimate": self._estimate(call, pos, now),
                "priority": call.priority,
                "ringing": sorted(call.rings.values()),
            })
        return rows

    # ============================================================ durability
    def export_state(self) -> dict[str, dict]:
        """Agent login / pause as plain data for the store: ``{agent: {logged_in, paused, reason}}``.

        Only logged-in agents are listed (an agent logging out during a call
        is already shown logged out: that is what must survive a restart).
        """
        return {
            a.id: {"logged_in": True, "paused": a.paused, "reason": a.pause_reason}
            for a in self._agents.values()
            if a.logged_in and not a.logout_pending
        }

    def import_state(self, state: Mapping[str, Mapping[str, Any]]) -> list[Output]:
        """Re-apply what :meth:`export_state` saved; agents no longer configured are skipped."""
        out: list[Output] = []
        for agent_id, st in state.items():
            if agent_id not in self._agents:
                if self._log is not None:
                    self._log.warning("acd.import_unknown_agent", agent=agent_id)
                continue
            if st.get("logged_in"):
                out += self.agent_login(agent_id)
                if st.get("paused"):
                    out += self.agent_pause(agent_id, str(st.get("reason", "")))
        return out

    # ============================================================ internals
    def _agent(self, agent_id: str) -> AgentRuntime:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def _agent_view(self, a: AgentRuntime, now: float) -> dict:
        state, reason = a.display(now)
        return {
            "agent": a.id,
            "node": a.spec.node,
            "device": a.spec.device,
            "state": state,
            "reason": reason,
            "paused": a.paused,
            "queues": list(a.spec.queues),
            "calls": sum(a.calls_taken.values()),
            "talk_time": round(sum(a.talk_time.values()), 3),
            "missed": a.missed,
            "idle_since": a.idle_since if state == AgentState.AVAILABLE.value else None,
            "call_ids": sorted({leg.call_id for leg in a.legs.values()}),
        }

    def _line(self, call: CallerEntry) -> WaitingLine:
        k = (call.node, call.queue)
        line = self._lines.get(k)
        if line is None:
            line = self._lines[k] = WaitingLine()
        return line

    def _stats(self, node: str, queue: str) -> StaffStats:
        k = (node, queue)
        s = self._staff.get(k)
        if s is None:
            s = self._staff[k] = StaffStats()
        return s

    def _index(self, node: str, queue: str) -> ReadyIndex:
        k = (node, queue)
        idx = self._ready.get(k)
        if idx is None:
            q = self._queues[queue]
            idx = self._ready[k] = ReadyIndex(
                q.strategy, lambda aid: self._agent_key(q, aid), lambda aid: self._agents[aid].spec.weight,
                tuple(q.skills), base=q.skills,
            )
        return idx

    def _agent_key(self, q: QueueSpec, agent_id: str) -> tuple:
        a = self._agents[agent_id]
        pen = a.spec.penalty.get(q.name, 0)
        s = q.strategy
        if s is Strategy.ROUND_ROBIN:
            return (a.order, agent_id)
        if s is Strategy.LINEAR:
            return (pen, a.order, agent_id)
        if s is Strategy.FEWEST_CALLS:
            return (pen, a.calls_taken.get(q.name, 0), a.idle_since, a.order, agent_id)
        if s is Strategy.LEAST_TALK_TIME:
            return (pen, a.talk_time.get(q.name, 0.0), a.idle_since, a.order, agent_id)
        return (pen, a.idle_since, a.order, agent_id)

    # ---------------------------------------------------------------- timers
    def _schedule(self, kind: str, ref: Any, due: float) -> None:
        self._timers[(kind, ref)] = due
        heapq.heappush(self._heap, (due, next(self._seq), kind, ref))
        if len(self._heap) > 4 * len(self._timers) + 256:  # drop cancelled entries
            self._heap = [(d, s, k, r) for d, s, k, r in self._heap if self._timers.get((k, r)) == d]
            heapq.heapify(self._heap)

    def _cancel(self, kind: str, ref: Any) -> None:
        self._timers.pop((kind, ref), None)

    def _cancel_call_timers(self, call: CallerEntry) -> None:
        for kind in ("maxwait", "announce", "relax", "progress"):
            self._timers.pop((kind, call.call_id), None)
        for aid in call.excluded:
            self._timers.pop(("exclude", (call.call_id, aid)), None)
        call.excluded.clear()

    def _on_ring(self, leg_id: str, out: list[Output]) -> None:
        leg = self._legs[leg_id]
        assert isinstance(leg, AgentLeg)
        out.append(Hangup(leg.node, leg_id, CAUSE_NO_ANSWER))
        self._ring_failed(leg, Outcome.NO_ANSWER, out, hung_up=True)

    def _on_wrapup(self, agent_id: str, out: list[Output]) -> None:
        self._touch(self._agents[agent_id], out)

    _on_backoff = _on_wrapup

    def _on_exclude(self, ref: tuple[str, str], out: list[Output]) -> None:
        call_id, agent_id = ref
        call = self._calls.get(call_id)
        if call is not None:
            call.excluded.pop(agent_id, None)
            self._refresh_call(call)

    def _on_maxwait(self, call_id: str, out: list[Output]) -> None:
        self._exit(self._calls[call_id], "timeout", out)

    def _on_announce(self, call_id: str, out: list[Output]) -> None:
        call = self._calls[call_id]
        q = self._queues[call.queue]
        now = self._clock()
        pos = self._line(call).position(call)
        out.append(UpdateHold(call.node, call.leg_id, HoldSpec(q.moh_class, q.announce_every, pos,
                                                               self._estimate(call, pos, now))))
        self._schedule("announce", call_id, now + q.announce_every)

    def _on_relax(self, call_id: str, out: list[Output]) -> None:
        call = self._calls[call_id]
        q = self._queues[call.queue]
        call.relax_step += 1
        if call.routable_in:  # file it under its new requirement
            line = self._line(call)
            line.discard_routable(call)
            self._set_requirement(call, q)
            line.add_routable(call)
        else:
            self._set_requirement(call, q)
        if self._log is not None:
            self._log.debug("acd.skills_relaxed", call_id=call_id, queue=q.name, step=call.relax_step,
                            requirement=dict(call.requirement))
        if call.relax_step < len(q.skill_relax):
            self._schedule("relax", call_id, call.entered_at + q.skill_relax[call.relax_step][0])
        self._refresh_call(call)

    def _on_progress(self, call_id: str, out: list[Output]) -> None:
        call = self._calls[call_id]
        q = self._queues[call.queue]
        steps = int((self._clock() - call.entered_at) // q.progressive_every) + 1
        self._schedule("progress", call_id, call.entered_at + steps * q.progressive_every)
        self._refresh_call(call)

    # ------------------------------------------------------------- callers
    def _admit(self, call: CallerEntry, out: list[Output], *, held: bool, readopted: bool) -> None:
        """Put ``call`` in its queue, or reject it per join rules and overflow."""
        q = self._queues[call.queue]
        now = self._clock()
        call.visited.append(q.name)
        if not readopted:
            reason = ""
            if q.join_empty != "yes" and self._stats(call.node, q.name).staffed == 0 and (
                    q.join_empty == "strict" or not self._anyone_logged_in(call.node, q.name)):
                reason = "joinempty"
            elif q.max_callers and self._queue_count[q.name] >= q.max_callers:
                reason = "full"
            if reason:
                target, overflow_to = self._overflow_target(call, q)
                out.append(CallerRejected(now, call.call_id, q.name, reason, overflow_to))
                self._overflow(call, target, q, "rejected", out, held=held)
                return
        call.requirement, call.primary, call.relax_step = {}, None, 0
        relax = q.skill_relax
        while call.relax_step < len(relax) and now >= call.entered_at + relax[call.relax_step][0]:
            call.relax_step += 1
        self._set_requirement(call, q)
        line = self._line(call)
        line.waiting.add(call.key)
        call.in_line = True
        self._queue_count[q.name] += 1
        pos = line.position(call)
        est = self._estimate(call, pos, now)
        call.orig_position, call.estimate = pos, est
        out.append(CallerEnqueued(now, call.call_id, q.name, pos, call.priority, call.caller_id.number, est,
                                  readopted))
        spec = HoldSpec(q.moh_class, q.announce_every, pos, est)
        if readopted:
            out.append(UpdateHold(call.node, call.leg_id, spec))
        else:
            wc = WaitingCall(call.leg_id, q.name, call.enqueued_at, call.priority, call.call_id, call.caller_id,
                             dict(call.skills))
            out.append(Hold(call.node, wc, spec))
        if q.max_wait:
            self._schedule("maxwait", call.call_id, max(now, call.entered_at + q.max_wait))
        if q.announce_every:
            self._schedule("announce", call.call_id, now + q.announce_every)
        if call.relax_step < len(relax):
            self._schedule("relax", call.call_id, call.entered_at + relax[call.relax_step][0])
        if q.strategy is Strategy.RING_PROGRESSIVELY:
            steps = int((now - call.entered_at) // q.progressive_every) + 1
            self._schedule("progress", call.call_id, call.entered_at + steps * q.progressive_every)
        self._refresh_call(call)

    def _set_requirement(self, call: CallerEntry, q: QueueSpec) -> None:
        req = dict(q.skills)
        for s, lvl in call.skills.items():
            req[s] = max(req.get(s, 0), lvl)
        drop = q.skill_relax[call.relax_step - 1][1] if call.relax_step else 0
        call.requirement = {s: lvl - drop for s, lvl in req.items() if lvl - drop > 0}
        call.primary = next((s for s in itertools.chain(call.skills, q.skills) if s in call.requirement), None)
        call.covers_base = all(call.requirement.get(s, 0) >= lvl for s, lvl in q.skills.items())

    def _estimate(self, call: CallerEntry, position: int, now: float) -> float | None:
        st = self._stats(call.node, call.queue)
        idx = self._ready.get((call.node, call.queue))
        est = estimate_wait(position, st.staffed, len(idx) if idx else 0, st.busy, st.busy_since_sum, now,
                            self._aht[call.queue])
        return None if est is None else round(est, 1)

    def _leave_line(self, call: CallerEntry) -> None:
        if not call.in_line:
            return
        line = self._line(call)
        line.waiting.discard(call.key)
        if call.routable_in:
            line.discard_routable(call)
            call.routable_in = False
        call.in_line = False
        self._queue_count[call.queue] -= 1
        self._pending_calls.discard(call.call_id)

    def _drop_call(self, call: CallerEntry) -> None:
        self._leave_line(call)
        self._cancel_call_timers(call)
        self._calls.pop(call.call_id, None)
        self._legs.pop(call.leg_id, None)

    def _routable(self, call: CallerEntry) -> bool:
        if not call.in_line or call.node in self._nodes_down:
            return False
        q = self._queues[call.queue]
        if q.strategy is Strategy.RING_ALL:
            return True
        if q.strategy is Strategy.RING_PROGRESSIVELY:
            return len(call.rings) < self._progressive_allowed(call, q)
        return not call.rings

    def _progressive_allowed(self, call: CallerEntry, q: QueueSpec) -> int:
        steps = int((self._clock() - call.entered_at) // q.progressive_every)
        return q.progressive_initial + steps * q.progressive_add

    def _refresh_call(self, call: CallerEntry) -> None:
        """Sync the caller's routable flag; queue it for routing if it may take an agent."""
        r = self._routable(call)
        if r != call.routable_in:
            line = self._line(call)
            (line.add_routable if r else line.discard_routable)(call)
            call.routable_in = r
        if r:
            self._pending_calls.add(call.call_id)

    def _position(self, call: CallerEntry) -> int:
        return self._line(call).position(call) if call.in_line else 0

    def _abandon(self, call: CallerEntry, out: list[Output]) -> None:
        now = self._clock()
        pos = self._position(call)
        for leg in list(call.rings):
            self._withdraw(self._legs[leg], "caller-hangup", out)
        out.append(CallerAbandoned(now, call.call_id, call.queue, pos, call.orig_position, int(now - call.entered_at)))
        out.append(CallEnded(now, call.call_id, "abandoned"))
        self._drop_call(call)

    def _exit(self, call: CallerEntry, why: str, out: list[Output]) -> None:
        """Leave the queue on max_wait ("timeout") or leave-when-empty ("empty"), then overflow."""
        now = self._clock()
        q = self._queues[call.queue]
        pos = self._position(call)
        for leg in list(call.rings):
            self._withdraw(self._legs[leg], "caller-timeout" if why == "timeout" else "caller-exit", out)
        target, overflow_to = self._overflow_target(call, q)
        fact = CallerTimedOut if why == "timeout" else CallerExitEmpty
        out.append(fact(now, call.call_id, q.name, pos, call.orig_position, int(now - call.entered_at), overflow_to))
        self._leave_line(call)
        self._cancel_call_timers(call)
        self._overflow(call, target, q, why, out, held=True)

    def _overflow_target(self, call: CallerEntry, q: QueueSpec) -> tuple[str, str]:
        if q.overflow_queue and q.overflow_queue not in call.visited and len(call.visited) < MAX_OVERFLOW_HOPS:
            return q.overflow_queue, q.overflow_queue
        if q.overflow_destination:
            return "", "dialplan:" + q.overflow_destination
        return "", ""

    def _overflow(self, call: CallerEntry, target: str, q: QueueSpec, outcome: str, out: list[Output],
                  *, held: bool) -> None:
        now = self._clock()
        if target:
            call.queue, call.entered_at, call.orig_position = target, now, 0
            self._admit(call, out, held=held, readopted=False)
            return
        if q.overflow_destination:
            out.append(Redirect(call.node, call.leg_id, q.overflow_destination))
        else:
            out.append(Hangup(call.node, call.leg_id, CAUSE_NORMAL))
        out.append(CallEnded(now, call.call_id, outcome))
        self._drop_call(call)

    def _complete(self, call: CallerEntry, by: str, out: list[Output], *, other_up: bool = True) -> None:
        """A connected call ended: record it, hang up the other leg, wrap the agent up."""
        now = self._clock()
        agent_leg = self._legs.pop(call.agent_leg)  # type: ignore[arg-type]
        assert isinstance(agent_leg, AgentLeg)
        agent = self._agents[agent_leg.agent_id]
        del agent.legs[agent_leg.leg_id]
        q = self._queues[call.queue]
        talk = now - call.connected_at
        out.append(CallCompleted(now, call.call_id, call.queue, agent.id, int(call.connected_at - call.entered_at),
                                 int(talk), call.orig_position, by))
        if other_up:
            other = agent_leg.leg_id if by == "caller" else call.leg_id
            out.append(Hangup(call.node, other, CAUSE_NORMAL))
        out.append(CallEnded(now, call.call_id, "answered"))
        self._drop_call(call)
        wrapup = agent.spec.wrapup_time if agent.spec.wrapup_time is not None else q.wrapup_time
        agent.calls_taken[q.name] = agent.calls_taken.get(q.name, 0) + 1
        agent.talk_time[q.name] = agent.talk_time.get(q.name, 0.0) + talk
        self._aht[q.name] = update_aht(self._aht[q.name], talk + wrapup)
        agent.idle_since, agent.key_dirty = now, True
        if agent.logout_pending and not agent.legs:
            self._do_logout(agent, out)
            return
        if wrapup > 0:
            agent.wrapup_until = max(agent.wrapup_until, now + wrapup)
            self._schedule("wrapup", agent.id, agent.wrapup_until)
        self._touch(agent, out)

    def _close_restarted(self, call: CallerEntry, out: list[Output]) -> None:
        """The PBX restarted: every leg of this call is gone."""
        now = self._clock()
        for leg in list(call.rings):
            self._withdraw(self._legs[leg], "pbx-restart", out, cause=None)
        agent = None
        if call.agent_leg is not None:
            leg = self._legs.pop(call.agent_leg)
            assert isinstance(leg, AgentLeg)
            agent = self._agents[leg.agent_id]
            del agent.legs[leg.leg_id]
            agent.idle_since, agent.key_dirty = now, True
        out.append(CallEnded(now, call.call_id, "pbx-restart"))
        self._drop_call(call)
        if agent is not None:
            if agent.logout_pending and not agent.legs:
                self._do_logout(agent, out)
            else:
                self._touch(agent, out)

    # -------------------------------------------------------------- agents
    def _pause(self, agent: AgentRuntime, reason: str, out: list[Output]) -> None:
        agent.paused, agent.pause_reason = True, reason
        out.append(AgentPaused(self._clock(), agent.id, agent.spec.queues, reason))
        self._withdraw_agent_rings(agent, "paused", out)
        self._touch(agent, out)

    def _do_logout(self, agent: AgentRuntime, out: list[Output]) -> None:
        agent.logged_in = agent.logout_pending = agent.paused = False
        agent.pause_reason = ""
        agent.wrapup_until = agent.backoff_until = 0.0
        self._cancel("wrapup", agent.id)
        self._cancel("backoff", agent.id)
        out.append(AgentLoggedOut(self._clock(), agent.id, agent.spec.queues))
        self._touch(agent, out)
        # a paused agent leaving changes no staff count, yet it may have been
        # the last one present for a leave_empty "yes" queue
        for qn in agent.spec.queues:
            if self._queues[qn].leave_empty == "yes" and self._stats(agent.spec.node, qn).staffed == 0:
                self._pending_empty.add((agent.spec.node, qn))

    def _withdraw_agent_rings(self, agent: AgentRuntime, reason: str, out: list[Output]) -> None:
        for leg in [lg for lg in agent.legs.values() if lg.answered_at is None]:
            self._withdraw(leg, reason, out)

    def _forget_leg(self, leg: AgentLeg) -> tuple[CallerEntry, AgentRuntime]:
        self._cancel("ring", leg.leg_id)
        self._legs.pop(leg.leg_id, None)
        agent = self._agents[leg.agent_id]
        agent.legs.pop(leg.leg_id, None)
        call = self._calls[leg.call_id]
        call.rings.pop(leg.leg_id, None)
        return call, agent

    def _withdraw(self, leg: AgentLeg, reason: str, out: list[Output], *, cause: int | None = CAUSE_NORMAL) -> None:
        """Stop ringing an agent for our own reasons: not the agent's fault, no miss counted."""
        call, agent = self._forget_leg(leg)
        now = self._clock()
        if cause is not None:
            out.append(Hangup(leg.node, leg.leg_id, cause))
        out.append(AgentRingNoAnswer(now, leg.call_id, leg.queue, agent.id, int((now - leg.started_at) * 1000), reason))
        agent.key_dirty = True
        if not agent.legs:
            agent.idle_since = leg.idle_before  # not the agent's doing: keep its place
        self._touch(agent, out)
        self._refresh_call(call)

    def _ring_failed(self, leg: AgentLeg, outcome: Outcome, out: list[Output], *, hung_up: bool = False) -> None:
        """The agent did not take the offer: RINGNOANSWER, back-off, retry delay, maybe auto-pause."""
        call, agent = self._forget_leg(leg)
        now = self._clock()
        q = self._queues[leg.queue]
        reason = outcome.value if outcome is not Outcome.ANSWERED else Outcome.FAILED.value
        out.append(AgentRingNoAnswer(now, leg.call_id, leg.queue, agent.id, int((now - leg.started_at) * 1000), reason))
        backoff = q.busy_backoff if agent.spec.busy_backoff is None else agent.spec.busy_backoff
        if outcome in _BACKOFF_OUTCOMES and backoff > 0:
            agent.backoff_until = max(agent.backoff_until, now + backoff)
            self._schedule("backoff", agent.id, agent.backoff_until)
        if q.retry_delay > 0:
            call.excluded[agent.id] = now + q.retry_delay
            self._schedule("exclude", (call.call_id, agent.id), now + q.retry_delay)
        agent.idle_since, agent.key_dirty = now, True
        if outcome is not Outcome.CANCELLED:
            agent.missed += 1
            if agent.spec.max_missed and agent.missed >= agent.spec.max_missed and not agent.paused:
                agent.missed = 0
                if self._log is not None:
                    self._log.info("acd.auto_pause", agent=agent.id, misses=agent.spec.max_missed)
                self._pause(agent, "no-answer", out)
        self._touch(agent, out)
        self._refresh_call(call)

    def _is_ready(self, a: AgentRuntime, now: float) -> bool:
        if not a.staffed or a.spec.node in self._nodes_down:
            return False
        if len(a.legs) >= a.spec.max_concurrent or a.wrapup_until > now or a.backoff_until > now:
            return False
        if not a.legs and self._device_status.get(a.spec.device) in _BLOCKING:
            return False
        return True

    def _touch(self, a: AgentRuntime, out: list[Output]) -> None:
        """Re-derive the agent's readiness: indexes, staff stats, state fact, routing trigger.

        ``idle_since`` (longest-idle key) is set by the events that make an
        agent idle for the ACD: login, unpause, end of a call, a missed offer.
        """
        now = self._clock()
        staffed = a.staffed
        ready = staffed and self._is_ready(a, now)
        was_staffed, was_ready = a.indexed_staffed, a.indexed_ready
        if staffed != was_staffed or ready != was_ready or (ready and a.key_dirty):
            was_busy = was_staffed and not was_ready
            busy = staffed and not ready
            old_since = a.busy_since
            if busy and not was_busy:
                a.busy_since = now
            slots = self._slots.get(a.id)
            if slots is None:
                node = a.spec.node
                slots = self._slots[a.id] = [(qn, self._stats(node, qn), self._index(node, qn),
                                              self._queues[qn].leave_empty) for qn in a.spec.queues]
            for qn, st, idx, leave_empty in slots:
                st.staffed += staffed - was_staffed
                if was_busy:
                    st.busy -= 1
                    st.busy_since_sum -= old_since
                if busy:
                    st.busy += 1
                    st.busy_since_sum += a.busy_since
                if ready:
                    idx.add(a.id, a.spec.skills, a.idle_since, a.order)
                elif was_ready:
                    idx.discard(a.id)
                if was_staffed and not staffed and st.staffed == 0 and leave_empty != "no":
                    self._pending_empty.add((a.spec.node, qn))
            a.indexed_staffed, a.indexed_ready = staffed, ready
        a.key_dirty = False
        if ready:
            self._pending_agents.add(a.id)
        shown = a.display(now)
        if shown != a.reported:
            a.reported = shown
            out.append(AgentStateChanged(now, a.id, shown[0], shown[1]))

    def _anyone_logged_in(self, node: str, queue: str) -> bool:
        """Any agent of ``queue`` on ``node`` logged in, paused or not.  Only
        asked when nobody is staffed (the join/leave-empty rules), so the
        scan stays off the routing path."""
        return any(a.logged_in and not a.logout_pending and a.spec.node == node
                   for a in self._queue_agents[queue])

    def _refresh_node(self, node: str, out: list[Output]) -> None:
        for a in self._agents.values():
            if a.spec.node == node:
                self._touch(a, out)
        for call in list(self._calls.values()):
            if call.node == node and call.in_line:
                self._refresh_call(call)

    # ------------------------------------------------------------- routing
    def _agent_ok(self, call: CallerEntry, a: AgentRuntime, now: float) -> bool:
        until = call.excluded.get(a.id)
        if until is not None and until > now:
            return False
        if a.id in call.rings.values():
            return False
        skills = a.spec.skills
        for s, lvl in call.requirement.items():
            if skills.get(s, 0) < lvl:
                return False
        return True

    def _route(self, out: list[Output]) -> None:
        """Match routable callers with ready agents until nothing more can be done."""
        while self._pending_calls or self._pending_agents or self._pending_empty:
            if self._pending_empty:
                for node, qn in sorted(self._pending_empty):
                    line = self._lines.get((node, qn))
                    if line is None or self._stats(node, qn).staffed:
                        continue
                    if self._queues[qn].leave_empty == "yes" and self._anyone_logged_in(node, qn):
                        continue  # only paused agents left: "yes" waits for them
                    for key in list(line.waiting):
                        call = self._calls.get(key[-1])
                        if call is not None and call.in_line and call.queue == qn:
                            self._exit(call, "empty", out)
                self._pending_empty.clear()
                continue
            if self._pending_calls:
                calls = [self._calls[c] for c in self._pending_calls if c in self._calls]
                self._pending_calls.clear()
                calls.sort(key=lambda c: (-self._queues[c.queue].weight,) + c.key)
                for call in calls:
                    self._route_call(call, out)
                continue
            agents = sorted((self._agents[a] for a in self._pending_agents), key=lambda a: a.order)
            self._pending_agents.clear()
            for a in agents:
                self._route_agent(a, out)

    def _route_call(self, call: CallerEntry, out: list[Output]) -> int:
        """Offer ``call`` to agent(s) chosen by its queue's strategy; returns offers made."""
        if call.call_id not in self._calls or not self._routable(call):
            return 0
        q = self._queues[call.queue]
        idx = self._ready.get((call.node, q.name))
        if not idx:
            return 0
        tier_cap = None
        if q.strategy is Strategy.RING_ALL:
            want = 1 << 30
            if call.rings:
                tier_cap = min(self._agents[aid].spec.penalty.get(q.name, 0) for aid in call.rings.values())
        elif q.strategy is Strategy.RING_PROGRESSIVELY:
            want = self._progressive_allowed(call, q) - len(call.rings)
        else:
            want = 1
        now = self._clock()
        agents = self._agents
        primary = (call.primary, call.requirement[call.primary]) if call.primary else None
        choice = pick(q.strategy, idx, lambda aid: self._agent_ok(call, agents[aid], now), want, rng=self._rng,
                      rr_last=self._rr_last.get((call.node, q.name)), primary=primary, tier_cap=tier_cap,
                      skills_of=lambda aid: agents[aid].spec.skills, fit_only=call.covers_base)
        if self._log is not None:
            self._log.debug("acd.decision", call_id=call.call_id, queue=q.name, rule=choice.rule,
                            chosen=choice.agents, considered=choice.considered, ready=len(idx),
                            requirement=call.requirement or None)
        for aid in choice.agents:
            self._offer(call, agents[aid], choice.rule, out)
        if choice.agents and q.strategy is Strategy.ROUND_ROBIN:
            self._rr_last[(call.node, q.name)] = agents[choice.agents[-1]].order
        return len(choice.agents)

    def _route_agent(self, a: AgentRuntime, out: list[Output]) -> None:
        """An agent is ready: serve the best eligible caller across its queues, by weight, priority, wait."""
        now = self._clock()
        aid, node, skills = a.id, a.spec.node, a.spec.skills
        lines, calls, queues = self._lines, self._calls, self._queues
        while self._is_ready(a, now) and a.indexed_ready:
            best = None
            best_key = None
            for qn in a.spec.queues:
                line = lines.get((node, qn))
                if line is None or not line.groups:
                    continue
                neg_weight = -queues[qn].weight
                for requirement, group in line.groups.items():
                    # one skill check per requirement, not per caller (see _agent_ok)
                    if any(skills.get(s, 0) < lvl for s, lvl in requirement):
                        continue
                    for key in group:
                        cand = (neg_weight,) + key
                        if best_key is not None and cand >= best_key:
                            break  # the group is in caller order: nothing better further down
                        call = calls[key[-1]]
                        until = call.excluded.get(aid)
                        if (until is not None and until > now) or aid in call.rings.values():
                            continue
                        best, best_key = call, cand
                        break
            if best is None or not self._route_call(best, out):
                return

    def _offer(self, call: CallerEntry, a: AgentRuntime, rule: str, out: list[Output]) -> None:
        now = self._clock()
        q = self._queues[call.queue]
        leg_id = self._new_id()
        request = OriginateRequest(
            leg_id=leg_id,
            endpoint=a.spec.device,
            caller_id=call.caller_id,
            ring_timeout=q.ring_time + RING_MARGIN,
            variables={"CC_CALL_ID": call.call_id, "CC_AGENT": a.id, "CC_QUEUE": q.name},
            call_id=call.call_id,
        )
        leg = AgentLeg(leg_id, a.id, call.call_id, call.node, q.name, now, a.idle_since)
        a.idle_since = now  # max_concurrent > 1: go to the back while still ready
        a.legs[leg_id] = leg
        call.rings[leg_id] = a.id
        self._legs[leg_id] = leg
        self._schedule("ring", leg_id, now + q.ring_time)
        out.append(Originate(call.node, request))
        out.append(AgentOffered(now, call.call_id, q.name, a.id, leg_id, rule))
        a.key_dirty = True
        self._touch(a, out)
        self._refresh_call(call)
