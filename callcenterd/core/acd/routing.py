"""Routing and offers: match waiting callers with ready agents, ring them,
bridge on answer, and close the call when either side hangs up."""

from __future__ import annotations

from callcenterd.core.acd.agents import AgentLeg, AgentRuntime
from callcenterd.core.acd.specs import Strategy
from callcenterd.core.acd.state import (
    _BACKOFF_OUTCOMES,
    CAUSE_ANSWERED_ELSEWHERE,
    CAUSE_NO_ANSWER,
    CAUSE_NORMAL,
    RING_MARGIN,
    AcdState,
    Output,
)
from callcenterd.core.acd.strategies import pick
from callcenterd.core.acd.waiting import CallerEntry
from callcenterd.core.commands import Bridge, Hangup, Originate
from callcenterd.core.facts import (
    AgentOffered,
    AgentRingNoAnswer,
    CallCompleted,
    CallEnded,
    CallerConnected,
)
from callcenterd.pbx.api import OriginateRequest, Outcome


class Routing(AcdState):
    """Offers, answers, ring failures and call completion."""

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
        if not call.outbound:
            self._handle[al.queue].add_answer(now - al.started_at, now - call.entered_at)
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

    def offer_lost(self, leg_id: str, reason: str = "pbx-timeout") -> list[Output]:
        """The PBX never answered our Originate (timeout): the offer is
        withdrawn without blaming the agent (no miss, no auto-pause, its
        place kept).  The driver hangs the leg up if it shows up late."""
        out: list[Output] = []
        leg = self._legs.get(leg_id)
        if not isinstance(leg, AgentLeg) or leg.answered_at is not None:
            return out
        call = self._calls[leg.call_id]
        delay = self._queues[leg.queue].retry_delay
        self._withdraw(leg, reason, out, cause=None)
        if delay > 0:  # not the same agent again at once: the PBX may be struggling
            call.excluded[leg.agent_id] = self._clock() + delay
            self._schedule("exclude", (call.call_id, leg.agent_id), self._clock() + delay)
            self._refresh_call(call)
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
        if self._routing_held:
            return  # a snapshot is half-applied: pbx_up routes once it is whole
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
        # the place to give back if we withdraw: the one before the first of its ringing offers
        idle_before = min((lg.idle_before for lg in a.legs.values()), default=a.idle_since)
        leg = AgentLeg(leg_id, a.id, call.call_id, call.node, q.name, now, idle_before)
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
        self._idle_from(agent, now)
        if outcome is not Outcome.CANCELLED:
            agent.missed += 1
            if agent.spec.max_missed and agent.missed >= agent.spec.max_missed and not agent.paused:
                agent.missed = 0
                if self._log is not None:
                    self._log.info("acd.auto_pause", agent=agent.id, misses=agent.spec.max_missed)
                self._pause(agent, "no-answer", out)
        self._touch(agent, out)
        self._refresh_call(call)

    def _idle_from(self, agent: AgentRuntime, now: float) -> None:
        """The agent goes to the back of the line (a call ended, an offer missed).
        An offer still ringing on another line then gives back this place, not
        an older one, if it is withdrawn (max_concurrent > 1)."""
        agent.idle_since, agent.key_dirty = now, True
        for leg in agent.legs.values():
            leg.idle_before = now

    def _on_ring(self, leg_id: str, out: list[Output]) -> None:
        leg = self._legs[leg_id]
        assert isinstance(leg, AgentLeg)
        out.append(Hangup(leg.node, leg_id, CAUSE_NO_ANSWER))
        self._ring_failed(leg, Outcome.NO_ANSWER, out, hung_up=True)

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
        self._handle[q.name].add_talk(talk)
        self._idle_from(agent, now)
        if agent.logout_pending and not agent.legs:
            self._do_logout(agent, out)
            return
        if wrapup > 0:
            agent.wrapup_until = max(agent.wrapup_until, now + wrapup)
            self._schedule("wrapup", agent.id, agent.wrapup_until)
        self._touch(agent, out)
