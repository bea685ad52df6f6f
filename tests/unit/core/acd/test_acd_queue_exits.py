"""How a caller leaves a queue other than by answer: max_wait, overflow
chains, hang-up at the end of the line, and what is recorded for each."""

import itertools
import random

import pytest
from acd_harness import A, FakeClock, Q, Rig, of, offered

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd
from callcenterd.core.acd.errors import DuplicateCall
from callcenterd.pbx.api import CallerId, HoldSpec, WaitingCall

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


def test_an_abandon_records_when_where_and_the_entry_position():
    r = Rig([Q()], [], login=False)
    r.call("sales", call_id="c1")
    r.call("sales", call_id="c2")
    r.advance(7.5)
    out = r.hangup("cleg-c2")
    assert of(out, f.CallerAbandoned) == [f.CallerAbandoned(T + 7.5, "c2", "sales", 2, 2, 7)]
    assert of(out, f.CallEnded) == [f.CallEnded(T + 7.5, "c2", "abandoned")]


@pytest.mark.parametrize("call_id, leg_id, node, message", [
    ("c\n1", "l1", "pbx1", "call id"),
    ("c1", "l\r1", "pbx1", "leg id"),
    ("c1", "l1", "pbx\x001", "node"),
    ("", "l1", "pbx1", "call_id and leg_id must not be empty"),
    ("c1", "", "pbx1", "call_id and leg_id must not be empty"),
])
def test_unsafe_or_empty_call_ids_are_refused_naming_the_field(call_id, leg_id, node, message):
    r = Rig([Q()], [], login=False)
    with pytest.raises(ValueError, match=message):
        r.acd.call_waiting(call_id, leg_id, node, "sales", caller=CallerId("1"))


def test_a_call_or_leg_already_in_the_acd_is_refused_by_name():
    r = Rig([Q()], [], login=False)
    r.call("sales", call_id="c1")
    with pytest.raises(DuplicateCall, match="call 'c1' is already in the ACD"):
        r.acd.call_waiting("c1", "other", "pbx1", "sales")
    with pytest.raises(DuplicateCall, match="leg 'cleg-c1' is already in the ACD"):
        r.acd.call_waiting("c2", "cleg-c1", "pbx1", "sales")


def test_a_caller_without_a_priority_has_priority_zero():
    r = Rig([Q()], [], login=False)
    r.acd.call_waiting("c1", "l1", "pbx1", "sales")
    assert r.acd.waiting_view()[0]["priority"] == 0


def test_a_caller_readopted_through_call_waiting_keeps_its_original_times():
    r = Rig([Q(max_wait=120)], [], login=False)
    out = r.run(r.acd.call_waiting("c1", "l1", "pbx1", "sales", enqueued_at=T - 100, readopted=True))
    assert of(out, cmd.Hold) == [] and len(of(out, cmd.UpdateHold)) == 1  # already on hold in the PBX
    assert r.acd.waiting_view()[0]["waited"] == 100.0
    assert [t.call_id for t in of(r.advance(20), f.CallerTimedOut)] == ["c1"]


def test_a_new_caller_stamped_with_an_earlier_enqueue_time_keeps_its_place_but_a_full_max_wait():
    r = Rig([Q(max_wait=60)], [], login=False)
    r.acd.call_waiting("c1", "l1", "pbx1", "sales", enqueued_at=T - 100)
    assert r.acd.waiting_view()[0]["waited"] == 100.0
    assert of(r.advance(59), f.CallerTimedOut) == []
    assert [t.call_id for t in of(r.advance(1), f.CallerTimedOut)] == ["c1"]


def test_callers_arriving_at_the_same_instant_keep_their_arrival_order():
    r = Rig([Q()], [], login=False)
    r.call("sales", call_id="b")
    r.call("sales", call_id="a")
    assert [w["call_id"] for w in r.acd.waiting_view()] == ["b", "a"]


def test_skill_levels_go_from_1_to_10():
    r = Rig([Q()], [], login=False)
    r.call("sales", call_id="c1", skills={"fr": 10})
    with pytest.raises(ValueError, match="level must be an integer 1..10"):
        r.call("sales", call_id="c2", skills={"fr": 11})


def test_a_caller_asking_less_than_the_queue_requires_gets_the_queue_level():
    r = Rig([Q(skills={"billing": 8})], [A("b5", skills={"billing": 5}), A("b8", skills={"billing": 8})])
    assert offered(r.call("sales", call_id="c1", skills={"billing": 3})) == [("c1", "b8")]


@pytest.mark.parametrize("skills, priority, message", [
    ({"": 3}, 0, "caller skill '': level must be an integer 1..10, got 3"),
    ({5: 3}, 0, "caller skill 5: level must be an integer 1..10, got 3"),
    ({"fr": 0}, 0, "caller skill 'fr': level must be an integer 1..10, got 0"),
    ({"fr": "3"}, 0, "caller skill 'fr': level must be an integer 1..10, got '3'"),
    ({}, "high", "priority must be an integer, got 'high'"),
])
def test_a_caller_with_a_bad_skill_or_priority_is_refused_saying_which(skills, priority, message):
    r = Rig([Q()], [A("a1")])
    with pytest.raises(ValueError) as err:
        r.acd.call_waiting("c1", "cleg-c1", "pbx1", "sales", skills=skills, priority=priority)
    assert message in str(err.value)
    assert r.acd.waiting_view() == []


# ------------------------------------------------ what the PBX and the records get on entry
def test_a_new_caller_is_held_with_the_queues_music_its_place_and_its_estimate():
    r = Rig([Q(moh_class="sales-moh", announce_every=30), Q("support")], [A("a1"), A("b1", queues=("support",))])
    r.call("sales", call_id="c1")
    r.clock.now = T + 4
    out = r.run(r.acd.call_waiting("c2", "cleg-c2", "pbx1", "sales", priority=5, caller=CallerId("5550142", "Ann"),
                                   skills={"fr": 2}))
    (enq,) = of(out, f.CallerEnqueued)
    assert enq == f.CallerEnqueued(T + 4, "c2", "sales", 1, 5, "5550142", enq.wait_estimate, False, 1)
    assert enq.wait_estimate is not None
    assert of(out, cmd.Hold) == [cmd.Hold("pbx1", WaitingCall("cleg-c2", "sales", T + 4, 5, "c2",
                                                              CallerId("5550142", "Ann"), {"fr": 2}),
                                          HoldSpec("sales-moh", 30, 1, enq.wait_estimate))]


def test_a_readopted_caller_is_told_its_place_again_without_a_new_hold():
    from callcenterd.pbx.api import PbxSnapshot

    r = Rig([Q(moh_class="sales-moh", announce_every=30)], [], login=False)
    r.clock.now = T + 100
    out = r.run(r.acd.pbx_up("pbx1", PbxSnapshot(legs=frozenset({"leg-a"}),
                                                 waiting=(WaitingCall("leg-a", "sales", T + 40, call_id="a"),))))
    assert of(out, cmd.Hold) == []
    assert of(out, cmd.UpdateHold) == [cmd.UpdateHold("pbx1", "leg-a", HoldSpec("sales-moh", 30, 1, None))]
    assert of(out, f.CallerEnqueued) == [f.CallerEnqueued(T + 100, "a", "sales", 1, 0, "", None, True, 0)]


def test_a_refusal_is_recorded_with_its_time_and_caller():
    r = Rig([Q(max_callers=1, overflow_destination="full,s,1")], [], login=False)
    r.call("sales", call_id="c1")
    r.clock.now = T + 2
    out = r.call("sales", call_id="c2")
    assert of(out, f.CallerRejected) == [f.CallerRejected(T + 2, "c2", "sales", "full", "dialplan:full,s,1")]


def test_a_caller_is_never_moved_back_to_a_queue_it_already_waited_in():
    r = Rig([Q("a", max_wait=10, overflow_queue="b"), Q("b", max_wait=10, overflow_queue="a")], [], login=False)
    r.call("a", call_id="c1")
    r.advance(100)
    assert [e.queue for e in of(r.out, f.CallerEnqueued)] == ["a", "b"]
    assert of(r.out, f.CallEnded) == [f.CallEnded(T + 20, "c1", "timeout")]


@pytest.mark.parametrize("join_empty", ["no", "strict"])
def test_a_queue_that_refuses_callers_when_empty_lets_them_in_while_someone_is_staffed(join_empty):
    r = Rig([Q(join_empty=join_empty)], [A("a1")])
    r.call("sales", call_id="c1")
    out = r.call("sales", call_id="c2")
    assert of(out, f.CallerRejected) == [] and of(out, f.CallerEnqueued)[0].staffed == 1
