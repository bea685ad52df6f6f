"""Contact-center KPIs from closed journeys (and agent state events). Pure.

The unit counted depends on the grouping:

* ``by="queue"``: each *queue segment* is one offer to that queue, so a call
  that timed out of ``sales`` and was answered in ``support`` counts as a
  timeout in sales and an answer in support.
* ``by="interval"`` / ``by="total"``: each journey that entered a queue is
  one offer, bucketed by its first enqueue time.
* ``by="agent"``: each ring attempt to the agent is one offer; answered
  calls give ASA/AHT; occupancy comes from agent state events.

Definitions (docs/cdr.md has the long form):

* ASA = mean wait until answer over answered offers.
* AHT = mean (talk + wrap-up) over answered offers; wrap-up only when the
  agent events show it, else talk alone.
* Service level = answered within the queue's threshold / denominator, with
  the denominator one of ``offered``, ``offered-minus-short``, ``answered``,
  ``answered+abandoned`` (as in config ``kpi.service_level_denominator``).
* Abandon rate = abandons / (offered - short abandons); abandons shorter
  than ``short_abandon_s`` are excluded from both sides and reported apart.
* Occupancy = time on-call / time logged in (any state but logged-out).
* Estimate accuracy = mean absolute error (and bias, estimate - actual) of
  the wait estimate given at entry against the actual wait, over answered
  offers (an abandoned caller's real wait is unknown, so abandons are left
  out); next to it the same for the naive formula ``position x mean talk /
  staffed agents`` (position and staffed agents at entry, mean talk of the
  queue's answered calls in the same journeys).

Joinempty / full rejections are not offers; they are counted in ``rejected``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Iterable, Mapping, Sequence

from callcenterd.core.journeys.record import Journey

GROUPINGS = ("queue", "agent", "interval", "total")
SL_DENOMINATORS = ("offered", "offered-minus-short", "answered", "answered+abandoned")
INTERVALS = (15, 30, 60)
WRAPUP_LINK_SLACK_S = 5.0  # a wrap-up starting this soon after a call's end belongs to it
_REJECTED = ("joinempty", "full", "rejected")


@dataclass(frozen=True)
class KpiSettings:
    service_level_s: float = 20.0
    queue_service_level_s: Mapping[str, float] = field(default_factory=dict)
    short_abandon_s: float = 5.0
    sl_denominator: str = "offered-minus-short"
    interval_minutes: int = 15

    def __post_init__(self) -> None:
        if self.sl_denominator not in SL_DENOMINATORS:
            raise ValueError(f"sl_denominator must be one of {SL_DENOMINATORS}, not {self.sl_denominator!r}")
        if self.interval_minutes not in INTERVALS:
            raise ValueError(f"interval_minutes must be one of {INTERVALS}, not {self.interval_minutes!r}")

    def threshold(self, queue: str) -> float:
        return self.queue_service_level_s.get(queue, self.service_level_s)


@dataclass
class KpiRow:
    key: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0  # short abandons excluded
    short_abandoned: int = 0
    timed_out: int = 0
    exited_empty: int = 0
    other: int = 0  # ended while waiting for another reason (pbx-restart...)
    rejected: int = 0  # joinempty/full: never admitted, not in offered
    ring_no_answer: int = 0  # by agent
    answered_in_sl: int = 0
    asa_s: float | None = None
    aht_s: float | None = None
    service_level_pct: float | None = None
    abandon_rate_pct: float | None = None
    estimate_mae_s: float | None = None
    estimate_samples: int = 0
    estimate_bias_s: float | None = None
    naive_mae_s: float | None = None
    naive_bias_s: float | None = None
    naive_samples: int = 0
    occupancy_pct: float | None = None


@dataclass
class _Offer:
    key: str
    result: str  # answered | abandoned | timeout | empty | <rejected> | other
    wait_s: float | None = None
    threshold: float = 0.0
    handle_s: float | None = None
    estimate: float | None = None
    naive: float | None = None


@dataclass(frozen=True)
class AgentEvent:
    """One AgentStateChanged as read back from agent-events-*.jsonl."""

    at: float
    agent: str
    state: str
    call_id: str = ""


# ------------------------------------------------------------------ public
def compute_kpis(
    journeys: Iterable[Journey],
    by: str = "queue",
    settings: KpiSettings = KpiSettings(),
    *,
    agent_events: Sequence[AgentEvent] = (),
    window: tuple[float, float] | None = None,
    tz: tzinfo | None = None,
) -> list[KpiRow]:
    """KPI rows for the grouping, sorted by key (``by="total"`` gives one row).

    Campaign attempts (``direction == "outbound"``) count only per agent
    (calls handled, handle time): ASA, service level and the abandon rate
    are the inbound callers' (a campaign's drops are its own figure).
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, not {by!r}")
    journeys = list(journeys)
    wrapups = wrapup_by_call(journeys, agent_events)
    inbound = [j for j in journeys if j.direction != "outbound"]
    talk = mean_talk_by_queue(inbound)
    if by == "queue":
        offers = list(_segment_offers(inbound, settings, wrapups, talk))
    elif by == "agent":
        offers = list(_agent_offers(journeys, wrapups))
    else:
        offers = list(_journey_offers(inbound, settings, wrapups, by, tz, talk))
    grouped: dict[str, list[_Offer]] = defaultdict(list)
    for offer in offers:
        grouped[offer.key].append(offer)
    rows = {key: _row(key, items, settings, by) for key, items in grouped.items()}
    if by == "agent" and agent_events:
        seconds = agent_state_seconds(agent_events, window)
        for agent, states in seconds.items():
            row = rows.setdefault(agent, KpiRow(agent))
            logged_in = sum(s for state, s in states.items() if state != "logged-out")
            if logged_in > 0:
                row.occupancy_pct = _pct(states.get("on-call", 0.0), logged_in)
    return [rows[k] for k in sorted(rows)]


def agent_state_seconds(
    events: Sequence[AgentEvent], window: tuple[float, float] | None = None
) -> dict[str, dict[str, float]]:
    """Seconds each agent spent in each state, clipped to ``window``.

    A state lasts until the agent's next event; the last one runs to the end
    of the window (or to the last event seen when there is no window).
    Events before the window only set the state the window starts in.
    """
    by_agent: dict[str, list[AgentEvent]] = defaultdict(list)
    for ev in events:
        by_agent[ev.agent].append(ev)
    horizon = max((ev.at for ev in events), default=0.0)
    start, end = window if window is not None else (float("-inf"), horizon)
    out: dict[str, dict[str, float]] = {}
    for agent, evs in by_agent.items():
        evs.sort(key=lambda e: e.at)
        totals: dict[str, float] = defaultdict(float)
        for ev, nxt in zip(evs, evs[1:] + [None]):
            span_end = nxt.at if nxt is not None else end
            lo, hi = max(ev.at, start), min(span_end, end)
            if hi > lo:
                totals[ev.state] += hi - lo
        out[agent] = dict(totals)
    return out


def wrapup_by_call(journeys: Sequence[Journey], events: Sequence[AgentEvent]) -> dict[str, float]:
    """Wrap-up seconds per call_id, from the agents' wrap-up spans.

    A wrap-up span belongs to the call named in the event (``extra.call_id``)
    or else to the agent's call that ended at most WRAPUP_LINK_SLACK_S before.
    """
    if not events:
        return {}
    ended: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for j in journeys:
        if j.agent and j.answered_at is not None and j.ended_at is not None:
            ended[j.agent].append((j.ended_at, j.call_id))
    by_agent: dict[str, list[AgentEvent]] = defaultdict(list)
    for ev in events:
        by_agent[ev.agent].append(ev)
    out: dict[str, float] = {}
    for agent, evs in by_agent.items():
        evs.sort(key=lambda e: e.at)
        for ev, nxt in zip(evs, evs[1:]):
            if ev.state != "wrap-up":
                continue
            call_id = ev.call_id or _call_before(ended.get(agent, ()), ev.at)
            if call_id:
                out[call_id] = out.get(call_id, 0.0) + (nxt.at - ev.at)
    return out


# ----------------------------------------------------------------- offers
def _call_before(calls: Iterable[tuple[float, str]], at: float) -> str:
    """The call whose end is nearest ``at``, within the slack (clocks and event order differ)."""
    best, best_gap = "", WRAPUP_LINK_SLACK_S
    for end, call_id in calls:
        gap = abs(at - end)
        if gap <= best_gap:
            best, best_gap = call_id, gap
    return best


def _handle(j: Journey, wrapups: Mapping[str, float]) -> float | None:
    if j.talk_s is None:
        return None
    return j.talk_s + wrapups.get(j.call_id, 0.0)


def mean_talk_by_queue(journeys: Sequence[Journey]) -> dict[str, float]:
    """Mean talk (s) of the answered calls of each queue (the queue that answered)."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for j in journeys:
        if j.answered_at is not None and j.talk_s is not None and j.queues:
            answered = next((s.queue for s in reversed(j.queues) if s.result == "answered"), j.final_queue)
            acc = sums[answered]
            acc[0] += j.talk_s
            acc[1] += 1
    return {q: total / n for q, (total, n) in sums.items() if n}


def _naive(position: int | None, staffed: int | None, talk: float | None) -> float | None:
    """position x mean talk / staffed agents, when all three are known."""
    if not position or not staffed or talk is None:
        return None
    return position * talk / staffed


def _segment_offers(journeys, settings: KpiSettings, wrapups, talk=None) -> Iterable[_Offer]:
    talk = talk or {}
    for j in journeys:
        for index, seg in enumerate(j.queues):
            result = seg.result
            if result == "ended" and index == len(j.queues) - 1 and j.outcome == "abandoned":
                result = "abandoned"  # CallEnded said so, no queue exit fact came
            offer = _Offer(seg.queue, result, seg.wait_s, settings.threshold(seg.queue), estimate=seg.wait_estimate,
                           naive=_naive(seg.position, seg.staffed, talk.get(seg.queue)))
            if result == "answered":
                offer.handle_s = _handle(j, wrapups)
            yield offer


def _journey_offers(journeys, settings: KpiSettings, wrapups, by: str, tz, talk=None) -> Iterable[_Offer]:
    talk = talk or {}
    step = settings.interval_minutes * 60
    for j in journeys:
        if not j.queues:
            continue  # never reached a queue (IVR only)
        if j.enqueued_at is None:
            result = j.queues[-1].result if j.queues[-1].result in _REJECTED else "rejected"
            key = _interval_key(j.started_at, step, tz) if by == "interval" else "total"
            yield _Offer(key, result)
            continue
        key = _interval_key(j.enqueued_at, step, tz) if by == "interval" else "total"
        if j.answered_at is not None:
            yield _Offer(key, "answered", j.hold_s, settings.threshold(j.final_queue),
                         _handle(j, wrapups), j.wait_estimate,
                         _naive(j.position_at_entry, j.staffed_at_entry, talk.get(j.queue)))
        else:
            result = j.outcome if j.outcome in ("abandoned", "timeout", "empty") else "other"
            yield _Offer(key, result, j.wait_actual, settings.threshold(j.final_queue))


def _agent_offers(journeys, wrapups) -> Iterable[_Offer]:
    for j in journeys:
        if j.agent and j.answered_at is not None and not any(a.result == "answered" for a in j.attempts):
            # answered, but the ring attempts were not recorded
            yield _Offer(j.agent, "answered", j.hold_s, handle_s=_handle(j, wrapups))
        for attempt in j.attempts:
            if attempt.result == "answered":
                yield _Offer(attempt.agent, "answered", j.hold_s, handle_s=_handle(j, wrapups))
            elif attempt.result == "cancelled":
                yield _Offer(attempt.agent, "cancelled")
            else:
                yield _Offer(attempt.agent, "ring-no-answer")


def _interval_key(at: float, step: int, tz) -> str:
    moment = datetime.fromtimestamp(at, tz)
    floored = moment.replace(second=0, microsecond=0, minute=moment.minute - moment.minute % (step // 60))
    return floored.strftime("%Y-%m-%d %H:%M")


# -------------------------------------------------------------------- rows
def _pct(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 2)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _row(key: str, offers: list[_Offer], settings: KpiSettings, by: str) -> KpiRow:
    row = KpiRow(key)
    waits, handles, errors, naive_errors = [], [], [], []
    for o in offers:
        if o.result in _REJECTED:
            row.rejected += 1
            continue
        if o.result == "cancelled":
            continue  # another leg won the ring-all race, or the caller left
        row.offered += 1
        if o.result == "answered":
            row.answered += 1
            if o.wait_s is not None:
                waits.append(o.wait_s)
                if by != "agent" and o.wait_s <= o.threshold:
                    row.answered_in_sl += 1
                if o.estimate is not None:
                    errors.append(o.estimate - o.wait_s)
                if o.naive is not None:
                    naive_errors.append(o.naive - o.wait_s)
            if o.handle_s is not None:
                handles.append(o.handle_s)
        elif o.result == "abandoned":
            if o.wait_s is not None and o.wait_s < settings.short_abandon_s:
                row.short_abandoned += 1
            else:
                row.abandoned += 1
        elif o.result == "timeout":
            row.timed_out += 1
        elif o.result == "empty":
            row.exited_empty += 1
        elif o.result == "ring-no-answer":
            row.ring_no_answer += 1
        else:
            row.other += 1
    row.asa_s, row.aht_s = _mean(waits), _mean(handles)
    row.estimate_mae_s, row.estimate_samples = _mean([abs(e) for e in errors]), len(errors)
    row.estimate_bias_s = _mean(errors)
    row.naive_mae_s, row.naive_bias_s = _mean([abs(e) for e in naive_errors]), _mean(naive_errors)
    row.naive_samples = len(naive_errors)
    if by != "agent":
        denominator = {
            "offered": row.offered,
            "offered-minus-short": row.offered - row.short_abandoned,
            "answered": row.answered,
            "answered+abandoned": row.answered + row.abandoned + row.short_abandoned,
        }[settings.sl_denominator]
        row.service_level_pct = _pct(row.answered_in_sl, denominator)
        row.abandon_rate_pct = _pct(row.abandoned, row.offered - row.short_abandoned)
    return row
