"""How a caller leaves a queue other than by answer: max_wait, overflow
chains, hang-up at the end of the line, and what is recorded for each."""

import itertools
import random

from acd_harness import A, FakeClock, Q, Rig, of

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd
from callcenterd.pbx.api import CallerId

T = FakeClock().now


def test_a_caller_timing_out_while_ringing_withdraws_the_ring_and_is_hung_up():
    r = Rig([Q(max_wait=20, ring_time=30)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.advance(20)
    assert of(out, f.AgentRingNoAnswer) == [f.AgentRingNoAnswer(T + 20, "c1", "sales", "a1", 20000, "caller-timeout")]
    assert of(out, f.CallerTimedOut) == [f.CallerTimedOut(T + 20, "c1", "sales", 1, 1, 20, "")]
    assert cmd.Hangup("pbx1", "cleg-c1", 16) in of(out, cmd.Hangup)
    assert of(out, f.CallEnded) == [f.CallEnded(T + 20, "c1", "timeout")]


def test_an_overflow_chain_stops_after_eight_queues():
    names = [f"q{i}" for i in range(10)]
    queues = [Q(n, max_wait=10, overflow_queue=names[i + 1] if i < 9 else "") for i, n in enumerate(names)]
    r = Rig(queues, [], login=False)
    r.call("q0", call_id="c1")
    r.advance(200)
    assert [e.queue for e in of(r.out, f.CallerEnqueued)] == names[:8]
    assert of(r.out, f.CallEnded) == [f.CallEnded(T + 80, "c1", "timeout")]


def test_skill_relaxation_is_logged_with_the_new_requirement():
    log = []

    class Log:
        def debug(self, event, **kw):
            log.append((event, kw))

        info = warning = debug

    ids = itertools.count(1)
    clock = FakeClock()
    acd = Acd([Q(skills={"billing": 8}, skill_relax=((20, 3),))], [], clock, rng=random.Random(1),
              new_id=lambda: f"leg-{next(ids)}", log=Log())
    acd.call_waiting("c1", "cleg-c1", "pbx1", "sales", caller=CallerId("1"))
    clock.now += 20
    acd.tick()
    assert ("acd.skills_relaxed", {"call_id": "c1", "queue": "sales", "step": 1,
                                   "requirement": {"billing": 5}}) in log
