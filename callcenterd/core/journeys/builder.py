"""JourneyBuilder: folds the ACD's facts into one Journey per call.

Pure and synchronous: ``apply(fact)`` returns the journeys that closed on
that fact (only CallEnded closes one).  Facts about calls the builder has
never seen are counted in ``orphans`` and otherwise ignored, except
CallerEnqueued, which opens a journey (a caller re-adopted after a restart,
or an ACD that does not emit CallStarted).
"""

from __future__ import annotations

from callcenterd.core import facts as f
from callcenterd.core.journeys.record import AgentAttempt, Journey, QueueSegment, _ms

# segment result -> journey outcome when CallEnded carries none
_SEGMENT_OUTCOME = {
    "answered": "answered",
    "abandoned": "abandoned",
    "timeout": "timeout",
    "empty": "empty",
    "joinempty": "joinempty",
    "full": "full",
    "rejected": "rejected",
}


class JourneyBuilder:
    """One open Journey per live call_id."""

    def __init__(self) -> None:
        self._open: dict[str, Journey] = {}
        self.orphans = 0  # facts for a call_id we never saw start
        self._bridged: set[str] = set()  # call ids whose first bridge was seen

    def bridged(self, leg_a: str, leg_b: str, at: float) -> None:
        """The PBX bridged the caller to its agent leg: ``answered_at`` is
        that moment (CallerConnected comes at the agent's answer, just
        before the bridge is asked for).  Only the first bridge counts."""
        for journey in self._open.values():
            if journey.agent_leg_id in (leg_a, leg_b) and journey.answered_at is not None:
                if journey.call_id in self._bridged:
                    return
                self._bridged.add(journey.call_id)
                journey.answered_at = at
                if journey.enqueued_at is not None:
                    journey.hold_s = _ms(at - journey.enqueued_at)
                    journey.wait_actual = journey.hold_s
                    if journey.wait_estimate is not None:
                        journey.estimate_error = _ms(journey.wait_actual - journey.wait_estimate)
                return

    # ---------------------------------------------------------------- queries
    def open_journeys(self) -> list[Journey]:
        return list(self._open.values())

    def get(self, call_id: str) -> Journey | None:
        return self._open.get(call_id)

    def restore(self, journey: Journey) -> None:
        """Re-open a journey checkpointed before a restart of callcenterd."""
        if journey.is_open:
            self._open.setdefault(journey.call_id, journey)

    # ------------------------------------------------------------------ apply
    def apply(self, fact: f.Fact) -> list[Journey]:
        """Fold one fact in; return the journeys it closed (0 or 1)."""
        if isinstance(fact, f.CallStarted):
            self._started(fact)
        elif isinstance(fact, f.CallerEnqueued):
            self._enqueued(fact)
        elif isinstance(fact, f.CallEnded):
            return self._ended(fact)
        elif hasattr(fact, "call_id"):
            journey = self._open.get(fact.call_id)  # type: ignore[union-attr]
            if journey is None:
                self.orphans += 1
                return []
            handler = _CALL_HANDLERS.get(type(fact))
            if handler is not None:
                handler(journey, fact)
        # agent facts (AgentLoggedIn, AgentStateChanged, ...) carry no call
        return []

    # --------------------------------------------------------------- handlers
    def _started(self, fact: f.CallStarted) -> None:
        if fact.call_id in self._open:
            return  # a replayed CallStarted never resets a journey
        self._open[fact.call_id] = Journey(
            call_id=fact.call_id,
            node=fact.node,
            caller_number=fact.caller_number,
            caller_name=fact.caller_name,
            dnis=fact.dnis,
            started_at=fact.at,
            pbx_uniqueid=fact.pbx_uniqueid,
            pbx_linkedid=fact.pbx_linkedid,
            caller_name_raw=fact.caller_name_raw,
            direction=fact.direction,
            campaign=fact.campaign,
            lead_id=fact.lead_id,
        )

    def _enqueued(self, fact: f.CallerEnqueued) -> None:
        journey = self._open.get(fact.call_id)
        if journey is None:
            # Re-adopted after a restart (fact.at is the original enqueue time),
            # or an ACD path without CallStarted.
            journey = Journey(
                call_id=fact.call_id,
                caller_number=fact.caller_number,
                started_at=fact.at,
                readopted=fact.readopted,
            )
            self._open[fact.call_id] = journey
        elif fact.readopted:
            journey.readopted = True
            last = journey.queues[-1] if journey.queues else None
            if last is not None and last.queue == fact.queue and last.result == "waiting":
                return  # the same wait, picked up again: not a new segment
        if not journey.caller_number:
            journey.caller_number = fact.caller_number
        journey.queues.append(
            QueueSegment(
                queue=fact.queue,
                entered_at=fact.at,
                position=fact.position,
                priority=fact.priority,
                wait_estimate=fact.wait_estimate,
                staffed=fact.staffed,
            )
        )
        if journey.enqueued_at is None:
            journey.enqueued_at = fact.at
            journey.queue = journey.queue or fact.queue  # a rejection may come first
            journey.priority = fact.priority
            journey.position_at_entry = fact.position
            journey.wait_estimate = fact.wait_estimate
            journey.staffed_at_entry = fact.staffed
        journey.final_queue = fact.queue

    def _ended(self, fact: f.CallEnded) -> list[Journey]:
        journey = self._open.pop(fact.call_id, None)
        self._bridged.discard(fact.call_id)
        if journey is None:
            self.orphans += 1
            return []
        journey.ended_at = fact.at
        journey.duration_s = _ms(fact.at - journey.started_at)
        for attempt in journey.attempts:
            if attempt.result == "ringing":
                attempt.result, attempt.ring_end = "cancelled", fact.at
        last = journey.queues[-1] if journey.queues else None
        if last is not None and last.result == "waiting":
            # CallEnded without a queue exit fact (pbx-restart, crash...)
            last.result, last.left_at = "ended", fact.at
        if journey.answered_at is not None and journey.talk_s is None:
            journey.talk_s = _ms(fact.at - journey.answered_at)
        if journey.wait_actual is None and journey.enqueued_at is not None:
            left = last.left_at if last is not None and last.left_at is not None else fact.at
            journey.wait_actual = _ms(left - journey.enqueued_at)
        journey.outcome = fact.outcome or _derive_outcome(journey)
        return [journey]


def _derive_outcome(journey: Journey) -> str:
    if journey.answered_at is not None:
        return "answered"
    if journey.queues:
        return _SEGMENT_OUTCOME.get(journey.queues[-1].result, "ended")
    return "ended"


def _segment(journey: Journey, queue: str) -> QueueSegment | None:
    """The newest segment for ``queue`` (normally the last one)."""
    for seg in reversed(journey.queues):
        if seg.queue == queue:
            return seg
    return None


def _ringing_attempt(journey: Journey, agent: str, leg_id: str = "") -> AgentAttempt | None:
    for attempt in reversed(journey.attempts):
        if attempt.result != "ringing":
            continue
        if (leg_id and attempt.leg_id == leg_id) or attempt.agent == agent:
            return attempt
    return None


def _offered(journey: Journey, fact: f.AgentOffered) -> None:
    journey.attempts.append(
        AgentAttempt(
            agent=fact.agent, leg_id=fact.leg_id, queue=fact.queue, ring_start=fact.at, rule=fact.rule
        )
    )
    journey.ring_attempts = len(journey.attempts)


def _ring_no_answer(journey: Journey, fact: f.AgentRingNoAnswer) -> None:
    attempt = _ringing_attempt(journey, fact.agent)
    if attempt is not None:
        # the caller left while the agent rang: "cancelled", as docs/cdr.md says
        result = "cancelled" if fact.reason == "caller-hangup" else fact.reason or "no-answer"
        attempt.result, attempt.ring_end = result, fact.at


def _connected(journey: Journey, fact: f.CallerConnected) -> None:
    attempt = _ringing_attempt(journey, fact.agent, fact.agent_leg_id)
    if attempt is not None:
        attempt.result, attempt.ring_end = "answered", fact.at
    # other legs still ringing (ring-all) lost the race
    for other in journey.attempts:
        if other.result == "ringing":
            other.result, other.ring_end = "cancelled", fact.at
    journey.answered_at = fact.at
    journey.agent = fact.agent
    journey.agent_leg_id = fact.agent_leg_id
    if journey.enqueued_at is not None:
        journey.hold_s = _ms(fact.at - journey.enqueued_at)
        journey.wait_actual = journey.hold_s
        if journey.wait_estimate is not None:
            journey.estimate_error = _ms(journey.wait_actual - journey.wait_estimate)
    else:
        journey.hold_s = float(fact.hold_s)
    seg = _segment(journey, fact.queue)
    if seg is not None and seg.result == "waiting":
        seg.result, seg.left_at = "answered", fact.at


def _completed(journey: Journey, fact: f.CallCompleted) -> None:
    # From the journey's own answer time when it has one: a call that went
    # on across a restart of callcenterd is re-adopted mid-talk, and the
    # ACD's count only starts at the re-adoption.
    talk = fact.at - journey.answered_at if journey.answered_at is not None else None
    journey.talk_s = _ms(talk) if talk is not None and talk >= fact.talk_s else float(fact.talk_s)
    journey.completed_by = fact.by
    if not journey.agent:
        journey.agent = fact.agent


def _queue_exit(result: str):
    def handler(journey: Journey, fact) -> None:
        seg = _segment(journey, fact.queue)
        if seg is None:
            return
        seg.result, seg.left_at = result, fact.at
        seg.exit_position = fact.position
        seg.overflow_to = getattr(fact, "overflow_to", "")
        for attempt in journey.attempts:
            if attempt.result == "ringing" and attempt.queue == fact.queue:
                attempt.result, attempt.ring_end = "cancelled", fact.at

    return handler


def _rejected(journey: Journey, fact: f.CallerRejected) -> None:
    # Never admitted: a zero-length segment so the overflow trail is visible.
    journey.queues.append(
        QueueSegment(
            queue=fact.queue,
            entered_at=fact.at,
            left_at=fact.at,
            result=fact.reason if fact.reason in ("joinempty", "full") else "rejected",
            overflow_to=fact.overflow_to,
        )
    )
    if not journey.queue:
        journey.queue = fact.queue
    journey.final_queue = fact.queue


def _amd(journey: Journey, fact: f.AmdDetected) -> None:
    journey.amd = fact.verdict


_CALL_HANDLERS = {
    f.AmdDetected: _amd,
    f.AgentOffered: _offered,
    f.AgentRingNoAnswer: _ring_no_answer,
    f.CallerConnected: _connected,
    f.CallCompleted: _completed,
    f.CallerAbandoned: _queue_exit("abandoned"),
    f.CallerTimedOut: _queue_exit("timeout"),
    f.CallerExitEmpty: _queue_exit("empty"),
    f.CallerRejected: _rejected,
}
