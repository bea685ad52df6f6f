"""Admission and waiting: a caller joins a queue (or is rejected), waits,
times out, leaves when empty, overflows or abandons."""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from callcenterd.core.acd.errors import DuplicateCall, UnknownQueue
from callcenterd.core.acd.specs import QueueSpec, Strategy
from callcenterd.core.acd.state import CAUSE_NORMAL, MAX_OVERFLOW_HOPS, AcdState, Output
from callcenterd.core.acd.estimate import BusyAgent, HandleStats, QueueView, estimate_wait
from callcenterd.core.acd.waiting import CallerEntry
from callcenterd.core.commands import Hangup, Hold, Redirect, UpdateHold
from callcenterd.core.facts import (
    CallEnded,
    CallerAbandoned,
    CallerEnqueued,
    CallerExitEmpty,
    CallerRejected,
    CallerTimedOut,
)
from callcenterd.pbx.api import CallerId, HoldSpec, WaitingCall, check_safe


class Admission(AcdState):
    """Admitting callers, keeping their place in line, and their timers."""

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
        outbound_wait: float | None = None,
        reserved_agent: str = "",
    ) -> list[Output]:
        """A caller asks for an agent in ``queue``: admit (or reject) and route.

        ``outbound_wait`` admits an answered campaign call instead: it stays
        where the PBX holds it, ahead of no one's join rules, and leaves with
        :class:`CallerTimedOut` (no hangup, no overflow) when no agent is
        connected within that many seconds.  ``reserved_agent``: the agent
        :meth:`reserve_agent` held for this call is offered it first.
        """
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
        if outbound_wait is not None and not outbound_wait > 0:
            raise ValueError(f"outbound_wait must be a positive number of seconds, got {outbound_wait!r}")
        now = self._clock()
        call = CallerEntry(
            call_id=call_id, leg_id=leg_id, node=node, queue=queue, priority=priority, caller_id=caller,
            skills=skills, enqueued_at=now if enqueued_at is None else float(enqueued_at), entered_at=now,
            seq=next(self._seq), outbound=outbound_wait is not None, max_wait=outbound_wait,
        )
        if readopted and enqueued_at is not None:
            call.entered_at = min(now, call.enqueued_at)
        out: list[Output] = []
        self._calls[call_id] = call
        self._legs[leg_id] = call
        self._admit(call, out, held=readopted, readopted=readopted)
        held_agent = self._agents.get(reserved_agent) if reserved_agent else None
        if held_agent is not None and held_agent.reserved_for == call_id:
            held_agent.reserved_for = ""
            self._touch(held_agent, out)
            if call.in_line and held_agent.indexed_ready:
                self._offer(call, held_agent, "reserved", out)
        self._route(out)
        return out

    def _admit(self, call: CallerEntry, out: list[Output], *, held: bool, readopted: bool) -> None:
        """Put ``call`` in its queue, or reject it per join rules and overflow."""
        q = self._queues[call.queue]
        now = self._clock()
        call.visited.append(q.name)
        if not readopted and not call.outbound:
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
                                  readopted, self._stats(call.node, q.name).staffed))
        spec = HoldSpec(q.moh_class, q.announce_every, pos, est)
        if call.outbound:
            self._schedule("maxwait", call.call_id, call.entered_at + (call.max_wait or 0.0))
            self._refresh_call(call)
            return
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
        """Gather the queue's view for :func:`estimate_wait` (None when nobody is staffed)."""
        node, qn = call.node, call.queue
        if self._stats(node, qn).staffed <= 0:
            return None
        calls = self._calls
        ahead = sum(1 for key in itertools.islice(self._line(call).waiting, position - 1)
                    if not calls[key[-1]].rings)  # callers being offered are not ahead
        idx = self._ready.get((node, qn))
        ready = len(idx) if idx else 0
        busy = self._busy_agents(node, qn, ahead + 1, now) if ahead >= ready else []
        q = self._queues[qn]
        return round(estimate_wait(QueueView(ahead, ready, busy, q.wrapup_time, self._handle[qn])), 1)

    def _busy_agents(self, node: str, qn: str, demand: int, now: float) -> list[BusyAgent]:
        """Each staffed, not-ready agent of the queue: what it is doing and its share of this queue."""
        out = []
        counts = self._queue_count
        for a in self._queue_agents[qn]:
            if not a.indexed_staffed or a.indexed_ready or a.spec.node != node:
                continue
            share = 1.0
            if len(a.spec.queues) > 1:  # shared: split by the callers waiting in each of its queues
                share = demand / (demand + sum(counts[o] + 1 for o in a.spec.queues if o != qn))
            leg = next((lg for lg in a.legs.values() if lg.answered_at is not None), None)
            if leg is not None:
                wrap = a.spec.wrapup_time if a.spec.wrapup_time is not None else self._queues[leg.queue].wrapup_time
                out.append(BusyAgent(wrap, now - leg.answered_at, share=share))
            elif a.legs:
                leg = next(iter(a.legs.values()))
                wrap = a.spec.wrapup_time if a.spec.wrapup_time is not None else self._queues[leg.queue].wrapup_time
                out.append(BusyAgent(wrap, ringing=True, share=share))
            elif max(a.wrapup_until, a.backoff_until) > now:
                out.append(BusyAgent(max(a.wrapup_until, a.backoff_until) - now, share=share))
            else:  # busy with a call we did not set up: assume a whole call
                out.append(BusyAgent(self._queues[qn].wrapup_time, ringing=True, share=share))
        return out

    def handle_stats(self, queue: str) -> dict[str, Any]:
        """One queue's handle-time statistics as plain data, for the store."""
        return self._handle[queue].to_dict()

    def import_handle_stats(self, saved: Mapping[str, Mapping[str, Any]]) -> None:
        """Re-apply statistics saved before a restart; unknown queues and bad rows are skipped."""
        for queue, data in saved.items():
            if queue not in self._handle:
                continue
            try:
                self._handle[queue] = HandleStats.from_dict(data)
            except (KeyError, TypeError, ValueError):
                if self._log is not None:
                    self._log.warning("acd.bad_handle_stats", queue=queue)

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
        if not call.outbound:  # a campaign's 2 s says nothing of the inbound wait
            self._handle[call.queue].add_wait(now - call.entered_at, abandoned=True)
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
        if not call.outbound:
            self._handle[q.name].add_wait(now - call.entered_at, abandoned=False)
        if call.outbound:  # the campaign plays its abandon message and ends the call
            out.append(fact(now, call.call_id, q.name, pos, call.orig_position, int(now - call.entered_at), ""))
            self._drop_call(call)
            return
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
