"""Agent lifecycle: login, pause, logout, device state, wrap-up, and the
readiness every routing decision reads (:meth:`_touch`)."""

from __future__ import annotations

from typing import Any, Mapping

from callcenterd.core.acd.agents import AgentRuntime
from callcenterd.core.acd.errors import AgentStateError
from callcenterd.core.acd.state import _BLOCKING, AcdState, Output
from callcenterd.core.facts import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
)
from callcenterd.pbx.api import DeviceStatus, check_safe


class AgentLifecycle(AcdState):
    """Agent state changes and readiness."""

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

    def reserve_agent(self, agent_id: str, ref: str) -> list[Output]:
        """Hold a ready agent for a campaign attempt (``ref``): no other call is
        offered to it until the attempt reaches it or :meth:`release_agent`."""
        a = self._agent(agent_id)
        if a.reserved_for:
            raise AgentStateError(f"agent {agent_id} is already reserved for {a.reserved_for}")
        if not self._is_ready(a, self._clock()):
            raise AgentStateError(f"agent {agent_id} is not available")
        out: list[Output] = []
        a.reserved_for = ref
        self._touch(a, out)
        return out

    def release_agent(self, agent_id: str, ref: str) -> list[Output]:
        """Give back an agent reserved for ``ref`` (a no-op for anything else)."""
        a = self._agents.get(agent_id)
        out: list[Output] = []
        if a is None or a.reserved_for != ref:
            return out
        a.reserved_for = ""
        self._touch(a, out)
        self._route(out)
        return out

    def _is_ready(self, a: AgentRuntime, now: float) -> bool:
        if not a.staffed or a.spec.node in self._nodes_down or a.reserved_for:
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
            slots = self._slots.get(a.id)
            if slots is None:
                node = a.spec.node
                slots = self._slots[a.id] = [(qn, self._stats(node, qn), self._index(node, qn),
                                              self._queues[qn].leave_empty) for qn in a.spec.queues]
            for qn, st, idx, leave_empty in slots:
                st.staffed += staffed - was_staffed
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

    def _on_wrapup(self, agent_id: str, out: list[Output]) -> None:
        self._touch(self._agents[agent_id], out)

    _on_backoff = _on_wrapup

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
