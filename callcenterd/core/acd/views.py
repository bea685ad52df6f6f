"""Views: read-only rows for the API, the CLI and the live status."""

from __future__ import annotations

from typing import Mapping

from callcenterd.core.acd.agents import AgentRuntime, AgentState
from callcenterd.core.acd.state import AcdState


class Views(AcdState):
    """Agents, queues and waiting callers as plain dicts."""

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
                "aht": round(self._handle[q.name].talk_mean + q.wrapup_time, 1),
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

    def pool_view(self, queue: str, skills: Mapping[str, int] | None = None) -> dict:
        """A campaign's agent pool: the queue's logged-in agents with ``skills``.

        ``ready``: free now (or reserved for a campaign attempt), longest idle
        first; ``wrapup``: agent -> seconds before it may take a call;
        ``on_call``: agent -> seconds talked (0 while ringing); ``paused``.
        """
        now = self._clock()
        need = dict(skills or {})
        ready: list[tuple[float, int, str]] = []
        wrapup: dict[str, float] = {}
        on_call: dict[str, float] = {}
        paused: list[str] = []
        for a in self._queue_agents[queue]:
            if not a.logged_in or a.logout_pending or any(a.spec.skills.get(s, 0) < lvl for s, lvl in need.items()):
                continue
            answered = [lg.answered_at for lg in a.legs.values() if lg.answered_at is not None]
            if answered:
                on_call[a.id] = now - min(answered)
            elif a.legs:
                on_call[a.id] = 0.0
            elif a.paused:
                paused.append(a.id)
            elif a.indexed_ready or (a.reserved_for and a.staffed):
                ready.append((a.idle_since, a.order, a.id))
            else:  # wrap-up, back-off after a missed offer, or its device busy elsewhere
                wrapup[a.id] = max(0.0, a.wrapup_until - now, a.backoff_until - now)
        return {"ready": [aid for _, _, aid in sorted(ready)], "wrapup": wrapup, "on_call": on_call,
                "paused": paused}

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
