"""Agent-selection strategies over a :class:`ReadyIndex`.

Each strategy walks the index in its own order and stops at the first agent
the caller may take (``ok``): a decision costs O(log n) plus the agents
skipped because they are excluded for this caller (retry delay, missing
skill), never a scan of every agent.  Exceptions, documented: ring-all
rings the whole lowest-penalty tier, and weighted-random draws over the
lowest-penalty tier that has a candidate (a weighted draw needs the tier's
total weight).

Index keys (see ``Acd._agent_key``):

* longest-idle / ring-all / ring-progressively / random / weighted-random /
  skills: ``(penalty, idle_since, order, id)``
* fewest-calls: ``(penalty, calls_taken, idle_since, order, id)``
* least-talk-time: ``(penalty, talk_time, idle_since, order, id)``
* linear: ``(penalty, order, id)``
* round-robin: ``(order, id)`` (app_queue rrmemory: resume after the last one)
"""

from __future__ import annotations

import random
from typing import Callable

from callcenterd.core.acd.index import ReadyIndex
from callcenterd.core.acd.specs import Strategy

CONSIDERED_MAX = 8  # candidates kept for the debug decision log


class Pick:
    """The outcome of one decision: agents to ring, the rule, who was looked at."""

    __slots__ = ("agents", "rule", "considered")

    def __init__(self, agents: list[str], rule: str, considered: list[str]) -> None:
        self.agents = agents
        self.rule = rule
        self.considered = considered


def _first(entries, ok: Callable[[str], bool], rule: str) -> Pick:
    considered: list[str] = []
    for e in entries:
        aid = e[-1]
        if len(considered) < CONSIDERED_MAX:
            considered.append(aid)
        if ok(aid):
            return Pick([aid], rule, considered)
    return Pick([], rule, considered)


def pick(
    strategy: Strategy,
    idx: ReadyIndex,
    ok: Callable[[str], bool],
    want: int,
    *,
    rng: random.Random,
    rr_last: int | None,
    primary: tuple[str, int] | None,
    tier_cap: int | None = None,
    skills_of: Callable[[str], dict[str, int]] = lambda _aid: {},
    fit_only: bool = False,
) -> Pick:
    """Choose up to ``want`` agents from ``idx`` for one caller.

    ``tier_cap`` (ring-all with legs already ringing): only agents of that
    penalty or lower join the ring, as app_queue does not widen a ringall
    to the next penalty while the current tier is still ringing.

    ``fit_only``: the caller needs at least the queue's own skill levels, so
    only ``idx.fit`` can qualify.  Walking that subset in the same order
    gives the same choice (the others would fail ``ok``), except for
    random, whose draw is over the whole index.
    """
    if strategy is Strategy.SKILLS and primary is not None:
        skill, level = primary
        rule = f"skills:{skill}>={level}:best-proficiency,longest-idle"
        bag = idx.by_skill.get(skill)
        if bag is None:
            bag = idx.ensure_bucket(skill, skills_of)
        considered: list[str] = []
        for neg_level, _idle, _order, aid in bag:
            if -neg_level < level:
                break  # sorted by proficiency: nobody further down qualifies
            if len(considered) < CONSIDERED_MAX:
                considered.append(aid)
            if ok(aid):
                return Pick([aid], rule, considered)
        return Pick([], rule, considered)

    if strategy is Strategy.RANDOM:
        n = len(idx.main)
        if n == 0:
            return Pick([], "random", [])
        start = rng.randrange(n)
        return _first(idx.main.iter_from(idx.main[start]), ok, "random")

    entries = idx.fit if fit_only else idx.main  # read only now: skills buckets do not need them
    if strategy is Strategy.RING_ALL or strategy is Strategy.RING_PROGRESSIVELY:
        all_tier = strategy is Strategy.RING_ALL
        rule = "ring-all:lowest-penalty-tier" if all_tier else f"ring-progressively:longest-idle:{want}"
        chosen: list[str] = []
        tier = tier_cap
        for e in entries:
            if tier is not None and all_tier and e[0] > tier:
                break
            aid = e[-1]
            if ok(aid):
                chosen.append(aid)
                tier = e[0]
                if len(chosen) >= want:
                    break
        return Pick(chosen, rule, chosen[:CONSIDERED_MAX])

    if strategy is Strategy.ROUND_ROBIN:
        probe = (rr_last + 0.5,) if rr_last is not None else (-1,)
        return _first(entries.iter_from(probe), ok, "round-robin:after-last")

    if strategy is Strategy.WEIGHTED_RANDOM:
        return _weighted(idx, entries, ok, rng)

    rule = {
        Strategy.LONGEST_IDLE: "longest-idle",
        Strategy.FEWEST_CALLS: "fewest-calls",
        Strategy.LEAST_TALK_TIME: "least-talk-time",
        Strategy.LINEAR: "linear:config-order",
        Strategy.SKILLS: "skills:none-required:longest-idle",
    }[strategy]
    return _first(entries, ok, rule)


def _weighted(idx: ReadyIndex, entries, ok: Callable[[str], bool], rng: random.Random) -> Pick:
    """app_queue wrandom: lowest penalty tier first, then a draw by weight."""
    tier = None
    cands: list[tuple[str, float]] = []
    for e in entries:
        if tier is not None and e[0] != tier:
            break
        aid = e[-1]
        if ok(aid):
            tier = e[0]
            cands.append((aid, idx.weight_of(aid)))
    if not cands:
        return Pick([], "weighted-random", [])
    x = rng.random() * sum(w for _, w in cands)
    for aid, w in cands:
        x -= w
        if x < 0:
            break
    return Pick([aid], f"weighted-random:penalty={tier}", [a for a, _ in cands[:CONSIDERED_MAX]])
