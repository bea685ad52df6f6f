"""The ACD's shared state: configuration, indexes, waiting lines and timers.

Every use-case module (admission, routing, agent lifecycle, resync, views)
works on this one object; :class:`~callcenterd.core.acd.engine.Acd` puts
them together.
"""

from __future__ import annotations

import heapq
import itertools
import random
from typing import Any, Callable, Iterable

from callcenterd.core.acd.agents import AgentLeg, AgentRuntime
from callcenterd.core.acd.estimate import HandleStats
from callcenterd.core.acd.errors import UnknownAgent
from callcenterd.core.acd.index import ReadyIndex
from callcenterd.core.acd.specs import AgentSpec, ConfigError, QueueSpec, Strategy
from callcenterd.core.acd.waiting import CallerEntry, StaffStats, WaitingLine
from callcenterd.core.commands import Command
from callcenterd.core.facts import Fact
from callcenterd.pbx.api import DeviceStatus, Outcome

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


class AcdState:
    """State and the helpers every use case shares (lookups, indexes, timers)."""

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
        self._handle: dict[str, HandleStats] = {q.name: HandleStats.prior(q.talk_time_prior) for q in self._queues.values()}
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
        self._routing_held = False  # True while a PBX snapshot is being applied

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

    def _agent(self, agent_id: str) -> AgentRuntime:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

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
