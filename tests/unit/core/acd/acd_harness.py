"""Shared fixtures for the ACD unit tests: a fake clock and output filters."""

from __future__ import annotations

import itertools
import random

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd, AgentSpec, QueueSpec
from callcenterd.pbx.api import CallerId, Outcome


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Rig:
    """An Acd with a fake clock; helpers to drive it and read what it said."""

    def __init__(self, queues, agents, *, login=True, seed=7, node="pbx1"):
        self.clock = FakeClock()
        self._ids = itertools.count(1)
        self.node = node
        self.acd = Acd(queues, agents, self.clock, rng=random.Random(seed), new_id=lambda: f"leg-{next(self._ids)}")
        self.out: list = []
        self._calls = itertools.count(1)
        if login:
            for a in agents:
                self.run(self.acd.agent_login(a.id))

    def run(self, outputs):
        self.out += outputs
        return outputs

    def call(self, queue, *, priority=0, skills=None, node=None, call_id=None):
        n = next(self._calls)
        call_id = call_id or f"call-{n}"
        return self.run(self.acd.call_waiting(call_id, f"cleg-{call_id}", node or self.node, queue,
                                              priority=priority, caller=CallerId(f"555{n:04d}"), skills=skills))

    def advance(self, seconds):
        """Move the clock, ticking at every deadline on the way (like the wiring does)."""
        end = self.clock.now + seconds
        got = []
        while True:
            d = self.acd.next_deadline()
            if d is None or d > end:
                break
            self.clock.now = max(self.clock.now, d)
            got += self.run(self.acd.tick())
        self.clock.now = end
        got += self.run(self.acd.tick())
        return got

    def answer(self, leg):
        return self.run(self.acd.leg_answered(leg))

    def hangup(self, leg, outcome=Outcome.ANSWERED):
        return self.run(self.acd.leg_hung_up(leg, outcome))


def of(outputs, kind):
    return [o for o in outputs if isinstance(o, kind)]


def offered(outputs):
    """[(call_id, agent)] for each AgentOffered, in order."""
    return [(o.call_id, o.agent) for o in of(outputs, f.AgentOffered)]


def leg_for(outputs, agent, call_id=None):
    """The agent leg id of the (last) offer to ``agent``."""
    legs = [o.leg_id for o in of(outputs, f.AgentOffered) if o.agent == agent and (call_id is None or o.call_id == call_id)]
    assert legs, f"no offer to {agent}"
    return legs[-1]


def hangups(outputs):
    return [o.leg_id for o in of(outputs, cmd.Hangup)]


def Q(name="sales", **kw):
    return QueueSpec(name=name, **kw)


def A(aid, queues=("sales",), node="pbx1", **kw):
    return AgentSpec(id=aid, device=f"PJSIP/{aid}", node=node, queues=tuple(queues), **kw)
