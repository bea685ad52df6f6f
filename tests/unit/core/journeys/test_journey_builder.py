"""JourneyBuilder: facts in, one journey per call out (closed on CallEnded)."""

from __future__ import annotations

import json

from callcenterd.core import facts as f
from callcenterd.core.journeys import Journey, JourneyBuilder

T0 = 1_700_000_000.0


def feed(builder: JourneyBuilder, facts) -> list[Journey]:
    closed: list[Journey] = []
    for fact in facts:
        closed.extend(builder.apply(fact))
    return closed


def answered_call(call_id: str = "c1") -> list:
    return [
        f.CallStarted(T0, call_id, "leg-c", caller_number="+4930111", caller_name="Ada", dnis="800", node="pbx1"),
        f.CallerEnqueued(T0 + 2, call_id, "sales", position=3, priority=5, caller_number="+4930111", wait_estimate=30.0),
        f.AgentOffered(T0 + 10, call_id, "sales", "1001", "leg-a1", rule="longest-idle"),
        f.AgentRingNoAnswer(T0 + 25, call_id, "sales", "1001", ring_ms=15000),
        f.AgentOffered(T0 + 26, call_id, "sales", "1002", "leg-a2"),
        f.CallerConnected(T0 + 30, call_id, "sales", "1002", hold_s=28, agent_leg_id="leg-a2", ring_s=4),
        f.CallCompleted(T0 + 150, call_id, "sales", "1002", hold_s=28, talk_s=120, orig_position=3, by="agent"),
        f.CallEnded(T0 + 150, call_id, "answered"),
    ]


def test_answered_call_gives_one_journey_with_every_field():
    builder = JourneyBuilder()
    closed = feed(builder, answered_call())
    assert len(closed) == 1
    j = closed[0]
    assert (j.call_id, j.node, j.caller_number, j.caller_name, j.dnis) == ("c1", "pbx1", "+4930111", "Ada", "800")
    assert (j.started_at, j.enqueued_at, j.answered_at, j.ended_at) == (T0, T0 + 2, T0 + 30, T0 + 150)
    assert (j.queue, j.final_queue, j.priority, j.position_at_entry) == ("sales", "sales", 5, 3)
    assert j.wait_estimate == 30.0
    assert j.hold_s == 28.0 and j.wait_actual == 28.0
    assert j.estimate_error == -2.0  # waited 28 s, told 30 s
    assert j.talk_s == 120.0 and j.duration_s == 150.0
    assert (j.agent, j.agent_leg_id, j.ring_attempts) == ("1002", "leg-a2", 2)
    assert (j.outcome, j.completed_by, j.readopted) == ("answered", "agent", False)
    assert [(a.agent, a.result, a.ring_s) for a in j.attempts] == [("1001", "no-answer", 15.0), ("1002", "answered", 4.0)]
    assert j.attempts[0].rule == "longest-idle"
    assert [(s.queue, s.result, s.wait_s) for s in j.queues] == [("sales", "answered", 28.0)]
    assert builder.open_journeys() == []


def test_journey_stays_open_until_call_ended():
    builder = JourneyBuilder()
    closed = feed(builder, answered_call()[:-1])
    assert closed == []
    (open_j,) = builder.open_journeys()
    assert open_j.call_id == "c1" and open_j.is_open


def test_overflow_keeps_a_segment_per_queue():
    builder = JourneyBuilder()
    closed = feed(builder, [
        f.CallStarted(T0, "c2", "leg"),
        f.CallerEnqueued(T0 + 1, "c2", "sales", position=1, wait_estimate=10.0),
        f.AgentOffered(T0 + 2, "c2", "sales", "1001", "leg-x"),
        f.CallerTimedOut(T0 + 61, "c2", "sales", position=1, orig_position=1, wait_s=60, overflow_to="support"),
        f.CallerEnqueued(T0 + 61, "c2", "support", position=2),
        f.CallerAbandoned(T0 + 91, "c2", "support", position=1, orig_position=2, wait_s=30),
        f.CallEnded(T0 + 91, "c2", ""),
    ])
    (j,) = closed
    assert (j.queue, j.final_queue) == ("sales", "support")
    assert [(s.queue, s.result, s.wait_s, s.overflow_to) for s in j.queues] == [
        ("sales", "timeout", 60.0, "support"),
        ("support", "abandoned", 30.0, ""),
    ]
    assert j.attempts[0].result == "cancelled"  # the ring stopped when the caller left sales
    assert j.wait_actual == 90.0
    assert j.estimate_error is None  # never answered: the actual wait is censored
    assert j.outcome == "abandoned"  # derived: CallEnded carried no outcome


def test_rejected_then_overflow_keeps_first_queue():
    builder = JourneyBuilder()
    (j,) = feed(builder, [
        f.CallStarted(T0, "c3", "leg"),
        f.CallerRejected(T0 + 1, "c3", "vip", reason="joinempty", overflow_to="sales"),
        f.CallerEnqueued(T0 + 1, "c3", "sales", position=1),
        f.CallerConnected(T0 + 6, "c3", "sales", "1001", hold_s=5, agent_leg_id="l", ring_s=1),
        f.CallEnded(T0 + 66, "c3", "answered"),
    ])
    assert (j.queue, j.final_queue) == ("vip", "sales")
    assert [s.result for s in j.queues] == ["joinempty", "answered"]
    assert j.talk_s == 60.0  # no CallCompleted: talk computed from answer to end
    assert j.completed_by == ""


def test_readopted_caller_opens_journey_with_original_enqueue_time():
    builder = JourneyBuilder()
    original_enqueue = T0 - 300
    closed = feed(builder, [
        f.CallerEnqueued(original_enqueue, "c4", "sales", position=4, caller_number="555", readopted=True),
        f.CallerConnected(T0, "c4", "sales", "1001", hold_s=300, agent_leg_id="l", ring_s=2),
        f.CallEnded(T0 + 10, "c4", "answered"),
    ])
    (j,) = closed
    assert j.readopted is True
    assert j.enqueued_at == original_enqueue and j.started_at == original_enqueue
    assert j.hold_s == 300.0 and j.caller_number == "555"


def test_readopted_known_caller_does_not_duplicate_segment():
    builder = JourneyBuilder()
    feed(builder, [
        f.CallStarted(T0, "c5", "leg"),
        f.CallerEnqueued(T0 + 1, "c5", "sales", position=1),
        f.CallerEnqueued(T0 + 1, "c5", "sales", position=1, readopted=True),
    ])
    (j,) = builder.open_journeys()
    assert j.readopted and len(j.queues) == 1


def test_pbx_restart_closes_waiting_segment_and_ringing_attempts():
    builder = JourneyBuilder()
    (j,) = feed(builder, [
        f.CallStarted(T0, "c6", "leg"),
        f.CallerEnqueued(T0 + 1, "c6", "sales", position=1),
        f.AgentOffered(T0 + 3, "c6", "sales", "1001", "la"),
        f.CallEnded(T0 + 9, "c6", "pbx-restart"),
    ])
    assert j.outcome == "pbx-restart"
    assert (j.queues[0].result, j.queues[0].left_at) == ("ended", T0 + 9)
    assert (j.attempts[0].result, j.attempts[0].ring_s) == ("cancelled", 6.0)
    assert j.wait_actual == 8.0


def test_facts_for_unknown_calls_are_counted_not_fatal():
    builder = JourneyBuilder()
    assert builder.apply(f.CallEnded(T0, "ghost", "answered")) == []
    assert builder.apply(f.AgentOffered(T0, "ghost", "q", "a", "l")) == []
    assert builder.apply(f.AgentStateChanged(T0, "1001", "available")) == []
    assert builder.orphans == 2


def test_replayed_call_started_does_not_reset_journey():
    builder = JourneyBuilder()
    feed(builder, answered_call()[:3])
    builder.apply(f.CallStarted(T0 + 50, "c1", "leg-c"))
    (j,) = builder.open_journeys()
    assert j.started_at == T0 and j.ring_attempts == 1


def test_to_dict_round_trips_through_json():
    (j,) = feed(JourneyBuilder(), answered_call())
    data = json.loads(json.dumps(j.to_dict()))
    assert data["attempts"][0]["ring_s"] == 15.0
    assert data["queues"][0]["wait_s"] == 28.0
    back = Journey.from_dict(data)
    assert back == j


def test_a_call_that_went_on_across_a_restart_counts_its_whole_talk():
    """Checkpointed at connect, restored after callcenterd restarted, then
    completed: the ACD only counted talk from the re-adoption (5 s)."""
    first = JourneyBuilder()
    facts = answered_call()
    feed(first, facts[:6])
    saved = first.get("c1").to_dict()
    builder = JourneyBuilder()
    builder.restore(Journey.from_dict(saved))
    closed = feed(builder, [f.CallCompleted(T0 + 150, "c1", "sales", "1002", hold_s=0, talk_s=5, orig_position=0, by="caller"),
                            f.CallEnded(T0 + 150, "c1", "answered")])
    assert closed[0].talk_s == 120.0 and closed[0].outcome == "answered"
def test_answered_at_moves_to_the_first_bridge_and_hold_follows():
    builder = JourneyBuilder()
    facts = answered_call()
    feed(builder, facts[:6])  # up to CallerConnected at T0 + 30
    builder.bridged("leg-c", "leg-a2", T0 + 30.5)
    builder.bridged("leg-c", "leg-a2", T0 + 90)  # a later re-bridge is not the answer
    (j,) = feed(builder, facts[6:])
    assert j.answered_at == T0 + 30.5 and j.hold_s == 28.5 and j.wait_actual == 28.5 and j.estimate_error == -1.5


def test_a_ring_cancelled_by_the_caller_leaving_is_cancelled_as_documented():
    builder = JourneyBuilder()
    (j,) = feed(builder, [
        f.CallStarted(T0, "c1", "leg-c"),
        f.CallerEnqueued(T0 + 1, "c1", "sales", position=1),
        f.AgentOffered(T0 + 2, "c1", "sales", "1001", "leg-a1"),
        f.AgentRingNoAnswer(T0 + 5, "c1", "sales", "1001", ring_ms=3000, reason="caller-hangup"),
        f.CallerAbandoned(T0 + 5, "c1", "sales", position=1, orig_position=1, wait_s=4),
        f.CallEnded(T0 + 5, "c1", "abandoned"),
    ])
    assert [a.result for a in j.attempts] == ["cancelled"]
