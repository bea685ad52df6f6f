"""The store port: what callcenterd keeps across a restart.

The PBX keeps the media and the callers on hold; the store keeps what the
PBX forgets when *we* restart: agent login/pause state, the original
enqueue time and order of every waiting caller, and a checkpoint of open
call journeys.  Every method is async and never blocks the event loop.

Row shapes (plain dicts so they cross to JSON, MQTT and the HTTP API as is):

* agent:   ``{"logged_in": bool, "paused": bool, "reason": str, "at": float}``
* waiting: ``{"call_id", "node", "leg_id", "queue": str, "enqueued_at": float,
  "priority": int, "caller_number", "caller_name": str, "skills": dict}``
* journey: whatever JSON-serialisable dict the journey tracker checkpoints.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class StoreError(Exception):
    """The store cannot do what was asked; the message names the file."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class StoreClosed(StoreError):
    """A method was called after :meth:`Store.close`."""


@runtime_checkable
class Store(Protocol):
    """Durable state for one callcenterd (SQLite today, PostgreSQL later)."""

    # ---------------------------------------------------------------- agents
    async def save_agent(
        self, agent_id: str, logged_in: bool, paused: bool, reason: str, at: float
    ) -> None:
        """Upsert an agent's login/pause state as of wall-clock ``at``."""

    async def load_agents(self) -> dict[str, dict[str, Any]]:
        """Every known agent, keyed by agent id."""

    # ------------------------------------------------------- waiting callers
    async def save_waiting(
        self,
        call_id: str,
        node: str,
        leg_id: str,
        queue: str,
        enqueued_at: float,
        priority: int,
        caller_number: str,
        caller_name: str,
        skills: dict[str, Any],
    ) -> None:
        """Upsert a caller waiting in a queue (all fields are replaced)."""

    async def remove_waiting(self, call_id: str) -> None:
        """Forget a caller (answered, abandoned, overflowed out); no-op if unknown."""

    async def load_waiting(self) -> list[dict[str, Any]]:
        """Waiting callers, oldest ``enqueued_at`` first (ties in save order)."""

    # ---------------------------------------------------- handle-time stats
    async def save_handle_stats(self, queue: str, stats: dict[str, Any], at: float) -> None:
        """Keep one queue's handle-time statistics for wait estimates (upsert)."""

    async def load_handle_stats(self) -> dict[str, dict[str, Any]]:
        """Every queue's saved statistics, keyed by queue."""

    # --------------------------------------------------------- open journeys
    async def save_open_journey(self, call_id: str, data: dict[str, Any]) -> None:
        """Checkpoint a journey that has not ended yet (upsert)."""

    async def remove_open_journey(self, call_id: str) -> None:
        """Drop a checkpoint once the journey is closed and written; no-op if unknown."""

    async def load_open_journeys(self) -> dict[str, dict[str, Any]]:
        """Every checkpointed journey, keyed by call id."""

    # ------------------------------------------------------------- lifecycle
    async def close(self) -> None:
        """Finish pending writes and release the file.  Idempotent."""
