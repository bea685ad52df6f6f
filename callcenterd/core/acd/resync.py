"""PBX resync: a node goes down or comes back; re-adopt what it still holds."""

from __future__ import annotations

from callcenterd.core.acd.agents import AgentLeg
from callcenterd.core.acd.state import CAUSE_NORMAL, AcdState, Output
from callcenterd.core.acd.waiting import CallerEntry
from callcenterd.core.commands import Hangup
from callcenterd.core.facts import CallEnded
from callcenterd.pbx.api import PbxSnapshot


class Resync(AcdState):
    """Losing and regaining a PBX node."""

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

    def _refresh_node(self, node: str, out: list[Output]) -> None:
        for a in self._agents.values():
            if a.spec.node == node:
                self._touch(a, out)
        for call in list(self._calls.values()):
            if call.node == node and call.in_line:
                self._refresh_call(call)
