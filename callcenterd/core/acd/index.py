"""Indexed sets of ready agents, so a routing decision never scans every agent.

One :class:`ReadyIndex` per (node, queue) holds the agents that could take
a call there right now, sorted by the queue's strategy key.  Skills queues
also keep one bucket per skill sorted by (-proficiency, idle_since).

:class:`SortedBag` is a plain sorted list driven by :mod:`bisect`: lookups
are O(log n); an insert or delete moves at most n pointers with one
``memmove`` (a few microseconds at 10,000 entries, and a (node, queue) set
is usually far smaller).  Entries are tuples whose last two items are the
agent's config order (unique int) and id, so no two entries compare equal.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Callable, Iterator

from callcenterd.core.acd.specs import Strategy

Entry = tuple


class SortedBag:
    """A sorted list of unique tuples."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Entry] = []

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
    """Ready agents of one (node, queue), ordered for the queue's strategy."""

    __slots__ = ("strategy", "main", "by_skill", "_entries", "_key", "weight_of")

    def __init__(self, strategy: Strategy, key: Callable[[str], tuple],
                 weight_of: Callable[[str], float] = lambda _aid: 1.0, skills: tuple[str, ...] = ()) -> None:
        self.strategy = strategy
        self.main = SortedBag()
        # Skill buckets exist for the queue's own skills, and for a caller's
        # extra skill from the first time one asks for it (see ensure_bucket):
        # an agent's other skills cost nothing here.
        self.by_skill: dict[str, SortedBag] = {s: SortedBag() for s in skills} if strategy is Strategy.SKILLS else {}
        self._entries: dict[str, tuple[Entry, list[tuple[str, Entry]]]] = {}
        self._key = key  # agent id -> strategy key tuple, ending (order, id)
        self.weight_of = weight_of  # weighted-random

    def __len__(self) -> int:
        return len(self.main)

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._entries

    def add(self, agent_id: str, skills: dict[str, int], idle_since: float, order: int) -> None:
        """(Re)insert ``agent_id`` with its current key."""
        self.discard(agent_id)
        entry = self._key(agent_id)
        self.main.add(entry)
        skill_entries: list[tuple[str, Entry]] = []
        if self.by_skill:
            for skill, bag in self.by_skill.items():
                level = skills.get(skill)
                if level:
                    e = (-level, idle_since, order, agent_id)
                    bag.add(e)
                    skill_entries.append((skill, e))
        self._entries[agent_id] = (entry, skill_entries)

    def discard(self, agent_id: str) -> None:
        old = self._entries.pop(agent_id, None)
        if old is None:
            return
        entry, skill_entries = old
        self.main.discard(entry)
        for skill, e in skill_entries:
            self.by_skill[skill].discard(e)

    def ensure_bucket(self, skill: str, skills_of: Callable[[str], dict[str, int]]) -> SortedBag:
        """The bucket of ``skill``, built once from the ready agents if new (O(n) once)."""
        bag = self.by_skill.get(skill)
        if bag is None:
            bag = self.by_skill[skill] = SortedBag()
            for aid, (entry, skill_entries) in self._entries.items():
                level = skills_of(aid).get(skill)
                if level:
                    e = (-level, entry[-3], entry[-2], aid)  # skills key: (penalty, idle_since, order, id)
                    bag.add(e)
                    skill_entries.append((skill, e))
        return bag

    def ids(self) -> Iterator[str]:
        for e in self.main:
            yield e[-1]
