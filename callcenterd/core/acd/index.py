"""Indexed sets of ready agents, so a routing decision never scans every agent.

One :class:`ReadyIndex` per (node, queue) holds the agents that could take
a call there right now, sorted by the queue's strategy key.  Skills queues
also keep one bucket per skill sorted by (-proficiency, idle_since).  A
queue that requires skills also keeps ``fit``: the ready agents that meet
its own levels, so a caller asking for at least those levels never walks
past agents that can only serve relaxed callers (they would pile up at the
head of a longest-idle order, never chosen).

:class:`SortedBag` is a plain sorted list driven by :mod:`bisect`: lookups
are O(log n); an insert or delete moves at most n pointers with one
``memmove`` (a few microseconds at 10,000 entries, and a (node, queue) set
is usually far smaller).  Entries are tuples whose last two items are the
agent's config order (unique int) and id, so no two entries compare equal.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Callable, Iterable, Iterator, Mapping

from callcenterd.core.acd.specs import Strategy

Entry = tuple


class SortedBag:
    """A sorted list of unique tuples."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Entry] = ()) -> None:
        self._items: list[Entry] = sorted(items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._items)

    def __getitem__(self, i: int) -> Entry:
        return self._items[i]

    def add(self, item: Entry) -> None:
        insort(self._items, item)

    def discard(self, item: Entry) -> None:
        items = self._items
        i = bisect_left(items, item)
        if i < len(items) and items[i] == item:
            del items[i]

    def rank(self, item: Entry) -> int:
        """0-based position ``item`` has (or would have) in the bag."""
        return bisect_left(self._items, item)

    def iter_from(self, probe: Entry) -> Iterator[Entry]:
        """Entries at or after ``probe``, then wrap around to the start."""
        items = self._items
        i = bisect_left(items, probe)
        yield from items[i:]
        yield from items[:i]


class ReadyIndex:
    """Ready agents of one (node, queue), ordered for the queue's strategy.

    Only what routing reads is kept sorted, and only when it reads it:

    * insertion is deferred until someone reads an order (``main`` / ``fit``
      / ``by_skill``): an agent serving several queues that frees up and is
      offered a call from one of them at once is sorted into that one only,
      and leaves the others with a dict pop;
    * ``main`` and ``fit`` are built on their first read, then maintained: a
      skills queue reads only its skill buckets unless a caller's
      requirement relaxes to nothing, and a queue with required skills
      reads ``main`` only for relaxed callers and random.

    Keys are taken at :meth:`add` time, so every order is the one an eager
    insert would give.
    """

    __slots__ = ("strategy", "_main", "_fit", "base", "_by_skill", "_entries", "_staged", "_key", "weight_of")

    def __init__(self, strategy: Strategy, key: Callable[[str], tuple],
                 weight_of: Callable[[str], float] = lambda _aid: 1.0, skills: tuple[str, ...] = (),
                 base: Mapping[str, int] | None = None) -> None:
        self.strategy = strategy
        self._main: SortedBag | None = None  # built on first read
        # base: the queue's required levels; without any, every agent is fit and fit is main
        self.base = tuple((base or {}).items())
        self._fit: SortedBag | None = None  # built on first read
        # Skill buckets exist for the queue's own skills, and for a caller's
        # extra skill from the first time one asks for it (see ensure_bucket):
        # an agent's other skills cost nothing here.
        self._by_skill: dict[str, SortedBag] = {s: SortedBag() for s in skills} if strategy is Strategy.SKILLS else {}
        # agent id -> (main entry, skill bucket entries, in fit)
        self._entries: dict[str, tuple[Entry, list[tuple[str, Entry]], bool]] = {}
        # agent id -> (main entry, skills, idle_since, order): added, not sorted in yet
        self._staged: dict[str, tuple[Entry, dict[str, int], float, int]] = {}
        self._key = key  # agent id -> strategy key tuple, ending (order, id)
        self.weight_of = weight_of  # weighted-random

    def __len__(self) -> int:
        return len(self._entries) + len(self._staged)

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._entries or agent_id in self._staged

    @property
    def main(self) -> SortedBag:
        """Every ready agent, in strategy order."""
        if self._staged:
            self._flush()
        if self._main is None:
            self._main = SortedBag(entry for entry, _, _ in self._entries.values())
        return self._main

    @property
    def fit(self) -> SortedBag:
        """The ready agents meeting the queue's own skill levels, in strategy order."""
        if not self.base:
            return self.main
        if self._staged:
            self._flush()
        if self._fit is None:
            self._fit = SortedBag(entry for entry, _, fit in self._entries.values() if fit)
        return self._fit

    @property
    def by_skill(self) -> dict[str, SortedBag]:
        """Skill buckets: ``(-level, idle_since, order, id)``."""
        if self._staged:
            self._flush()
        return self._by_skill

    def add(self, agent_id: str, skills: dict[str, int], idle_since: float, order: int) -> None:
        """(Re)insert ``agent_id`` with its current key."""
        if agent_id in self._entries or agent_id in self._staged:
            self.discard(agent_id)
        self._staged[agent_id] = (self._key(agent_id), skills, idle_since, order)

    def _flush(self) -> None:
        staged, self._staged = self._staged, {}
        main, fit_bag = self._main, self._fit
        for agent_id, (entry, skills, idle_since, order) in staged.items():
            if main is not None:
                main.add(entry)
            fit = False
            if self.base:
                for skill, level in self.base:
                    if skills.get(skill, 0) < level:
                        break
                else:
                    fit = True
                    if fit_bag is not None:
                        fit_bag.add(entry)
            skill_entries: list[tuple[str, Entry]] = []
            for skill, bag in self._by_skill.items():
                level = skills.get(skill)
                if level:
                    e = (-level, idle_since, order, agent_id)
                    bag.add(e)
                    skill_entries.append((skill, e))
            self._entries[agent_id] = (entry, skill_entries, fit)

    def discard(self, agent_id: str) -> None:
        if self._staged.pop(agent_id, None) is not None:
            return
        old = self._entries.pop(agent_id, None)
        if old is None:
            return
        entry, skill_entries, fit = old
        if self._main is not None:
            self._main.discard(entry)
        if fit and self._fit is not None:
            self._fit.discard(entry)
        for skill, e in skill_entries:
            self._by_skill[skill].discard(e)

    def ensure_bucket(self, skill: str, skills_of: Callable[[str], dict[str, int]]) -> SortedBag:
        """The bucket of ``skill``, built once from the ready agents if new (O(n) once)."""
        bag = self.by_skill.get(skill)  # (flushes)
        if bag is None:
            bag = self._by_skill[skill] = SortedBag()
            for aid, (entry, skill_entries, _fit) in self._entries.items():
                level = skills_of(aid).get(skill)
                if level:
                    e = (-level, entry[-3], entry[-2], aid)  # skills key: (penalty, idle_since, order, id)
                    bag.add(e)
                    skill_entries.append((skill, e))
        return bag

    def ids(self) -> Iterator[str]:
        for e in self.main:
            yield e[-1]
