"""PBX resync: a node goes down or comes back; re-adopt what it still holds."""

from __future__ import annotations

from callcenterd.core.acd.agents import AgentLeg
from callcenterd.core.acd.state import CAUSE_NORMAL, AcdState, Output
from callcenterd.core.acd.waiting import CallerEntry
from callcenterd.core.commands import Hangup
from callcenterd.core.facts import CallEnded
from callcenterd.pbx.api import CallerId, LiveAgentLeg, PbxSnapshot, WaitingCall


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
        """(Re)connected to a PBX: resync from its snapshot, re-adopt, then route.

        Nothing is routed before the whole snapshot is applied: device
        states first, then calls still talking to an agent (the agent stays
        on-call until that call ends), orphaned agent legs hung up, and
        waiting callers re-adopted in their original order.
        """
        out: list[Output] = []
        routing, self._routing_held = self._routing_held, True
        try:
            self._resync(node, snapshot, out)
        finally:
            self._routing_held = routing
        self._route(out)
        return out

    def _resync(self, node: str, snapshot: PbxSnapshot, out: list[Output]) -> None:
        self._nodes_down.discard(node)
        for device, status in snapshot.devices.items():
            out += self.device_state(device, status)
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
        if not snapshot.restarted:
            for live in snapshot.agent_legs:
                self._adopt_agent_leg(node, live, out)
        # sort is stable: equal stamps keep the driver's (creation) order
        for wc in sorted(snapshot.waiting, key=lambda w: w.enqueued_at):
            self._readopt(node, wc, out)
        self._refresh_node(node, out)

    def caller_held(self, node: str, wc: WaitingCall) -> list[Output]:
        """A caller the PBX holds that we never admitted (its hand-off to us
        failed): adopt it in its stamped order.  A leg we have is ignored."""
        out: list[Output] = []
        if self._readopt(node, wc, out):
            self._route(out)
        return out

    def _readopt(self, node: str, wc: WaitingCall, out: list[Output]) -> bool:
        if wc.leg_id in self._legs or (wc.call_id and wc.call_id in self._calls):
            return False
        if wc.queue not in self._queues:
            if self._log is not None:
                self._log.warning("acd.readopt_unknown_queue", queue=wc.queue, leg_id=wc.leg_id)
            return False
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
        return True

    def _adopt_agent_leg(self, node: str, live: LiveAgentLeg, out: list[Output]) -> None:
        """An agent leg the PBX still has that we do not know (we restarted).

        Bridged to a caller: that call goes on, and its agent is on-call
        until it ends (then wrap-up, as usual).  Not bridged: nobody will
        bridge it any more, so it is hung up, never left ringing or holding
        the agent's phone off-hook.
        """
        if live.leg_id in self._legs:
            return
        agent = self._agents.get(live.agent)
        caller = live.bridged_to
        if agent is None or agent.spec.node != node or not caller or caller in self._legs:
            out.append(Hangup(node, live.leg_id, CAUSE_NORMAL))
            return
        call_id = live.call_id or self._new_id()
        if call_id in self._calls:
            out.append(Hangup(node, live.leg_id, CAUSE_NORMAL))
            return
        queue = live.queue if live.queue in self._queues else next(iter(agent.spec.queues), "")
        if not queue:
            out.append(Hangup(node, live.leg_id, CAUSE_NORMAL))
            return
        now = self._clock()
        call = CallerEntry(call_id=call_id, leg_id=caller, node=node, queue=queue, priority=0, caller_id=CallerId(),
                           skills={}, enqueued_at=now, entered_at=now, seq=next(self._seq))
        call.agent_leg, call.agent_id, call.connected_at = live.leg_id, agent.id, now
        leg = AgentLeg(live.leg_id, agent.id, call_id, node, queue, now, agent.idle_since, answered_at=now)
        agent.legs[live.leg_id] = leg
        self._calls[call_id] = call
        self._legs[caller] = call
        self._legs[live.leg_id] = leg
        agent.key_dirty = True
        self._touch(agent, out)
        if self._log is not None:
            self._log.info("acd.call_readopted", call_id=call_id, agent=agent.id, leg_id=live.leg_id)

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
