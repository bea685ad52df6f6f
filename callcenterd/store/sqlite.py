"""SQLite store: one file, WAL, one connection living on one worker thread.

Every sqlite3 call runs on a dedicated single-thread executor, so a slow or
stalled disk delays only the coroutine awaiting that write, never the event
loop and the calls it is handling.  The connection is created on that thread
and used from it alone (sqlite3's ``check_same_thread`` stays on to prove it).
A single worker also serialises writes: no "database is locked" between our
own statements.

Each write is its own autocommitted transaction: once ``await save_x()``
returns, the row survives a crash of the daemon (WAL + synchronous=NORMAL;
a power cut may lose the last commits, never corrupt the file).

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` is
append-only, entry *n* takes the file from version *n* to *n + 1*.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from callcenterd.store.base import StoreClosed, StoreError

T = TypeVar("T")

# How long a statement waits for another process holding the write lock
# (e.g. an operator's sqlite3 shell) before failing.
BUSY_TIMEOUT_MS = 5000

MIGRATIONS: tuple[str, ...] = (
    # 1: agent state, waiting callers, open journeys
    """
    CREATE TABLE agent (
        agent_id  TEXT PRIMARY KEY,
        logged_in INTEGER NOT NULL,
        paused    INTEGER NOT NULL,
        reason    TEXT NOT NULL,
        at        REAL NOT NULL
    );
    CREATE TABLE waiting (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,  -- save order, breaks ties
        call_id       TEXT NOT NULL UNIQUE,
        node          TEXT NOT NULL,
        leg_id        TEXT NOT NULL,
        queue         TEXT NOT NULL,
        enqueued_at   REAL NOT NULL,
        priority      INTEGER NOT NULL,
        caller_number TEXT NOT NULL,
        caller_name   TEXT NOT NULL,
        skills        TEXT NOT NULL  -- JSON object
    );
    CREATE INDEX waiting_order ON waiting (enqueued_at, seq);
    CREATE TABLE open_journey (
        call_id TEXT PRIMARY KEY,
        data    TEXT NOT NULL  -- JSON object
    );
    """,
    # 2: each queue's handle-time statistics for wait estimates (a new table:
    # an existing file keeps every row it had)
    """
    CREATE TABLE handle_stats (
        queue TEXT PRIMARY KEY,
        data  TEXT NOT NULL,  -- JSON object (HandleStats.to_dict)
        at    REAL NOT NULL
    );
    """,
    # 3: outbound campaigns (callcenterd.store.campaigns): leads, attempts,
    # DNC, campaign run state and the abandonment ledger
    """
    CREATE TABLE campaign (
        name  TEXT PRIMARY KEY,
        state TEXT NOT NULL,  -- stopped | running | paused
        at    REAL NOT NULL
    );
    CREATE TABLE lead (
        lead_id         INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign        TEXT NOT NULL,
        phone           TEXT NOT NULL,  -- E.164
        name            TEXT NOT NULL DEFAULT '',
        zones           TEXT NOT NULL DEFAULT '',  -- space separated IANA zones
        postal_code     TEXT NOT NULL DEFAULT '',
        fields          TEXT NOT NULL DEFAULT '{}',  -- JSON object
        state           TEXT NOT NULL DEFAULT 'ready',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_at         REAL NOT NULL DEFAULT 0,
        last_outcome    TEXT NOT NULL DEFAULT '',
        last_dropped_at REAL,
        callback_agent  TEXT NOT NULL DEFAULT '',
        disposition     TEXT NOT NULL DEFAULT '',
        UNIQUE (campaign, phone)
    );
    CREATE INDEX lead_due ON lead (campaign, state, next_at);
    CREATE TABLE attempt (
        attempt_id  TEXT PRIMARY KEY,  -- the attempt's journey call id
        campaign    TEXT NOT NULL,
        lead_id     INTEGER NOT NULL REFERENCES lead (lead_id),
        phone       TEXT NOT NULL,
        started_at  REAL NOT NULL,
        ended_at    REAL,
        outcome     TEXT NOT NULL DEFAULT '',
        agent       TEXT NOT NULL DEFAULT '',
        disposition TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attempt_lead ON attempt (lead_id, started_at);
    -- a lead is dialled at most once at a time: the file itself refuses a second open attempt
    CREATE UNIQUE INDEX attempt_one_open ON attempt (lead_id) WHERE ended_at IS NULL;
    CREATE TABLE dnc (
        campaign TEXT NOT NULL,  -- '' = every campaign
        phone    TEXT NOT NULL,
        reason   TEXT NOT NULL DEFAULT '',
        at       REAL NOT NULL,
        PRIMARY KEY (campaign, phone)
    );
    CREATE TABLE abandon_ledger (
        campaign TEXT NOT NULL,
        at       REAL NOT NULL,
        kind     TEXT NOT NULL  -- connected | dropped
    );
    CREATE INDEX abandon_ledger_at ON abandon_ledger (campaign, at);
    """,
)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _key(value: Any, what: str) -> str:
    if not _text(value, what):
        raise ValueError(f"{what} must not be empty")
    return value


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number (epoch seconds), not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite")
    return float(value)


def _json_object(value: Any, what: str) -> str:
    """Serialise on the caller's side so a bad value fails at the call site."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} is not JSON-serialisable: {err}") from None


class SqliteStore:
    """The embedded default :class:`~callcenterd.store.base.Store`.

    >>> store = await SqliteStore.open("/var/lib/callcenterd/state.db")
    >>> await store.save_agent("1001", True, False, "", time.time())
    >>> await store.close()
    """

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        # Use SqliteStore.open(); the connection belongs to the executor's thread.
        self.path = path
        self._executor = executor
        self._conn: sqlite3.Connection | None = conn

    # ------------------------------------------------------------- lifecycle
    @classmethod
    async def open(cls, path: str | Path) -> "SqliteStore":
        """Open (creating if needed) and migrate the store file at ``path``."""
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callcenterd-store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    async def close(self) -> None:
        """Wait for queued writes, close the connection, stop the worker thread."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, _close, conn)
        finally:
            self._executor.shutdown(wait=False)

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreClosed(f"store {self.path} is closed", str(self.path))
        loop = asyncio.get_running_loop()
        # If the awaiting task is cancelled the statement still runs to its
        # commit on the worker thread: a cancelled save is "maybe saved".
        try:
            return await loop.run_in_executor(self._executor, fn, conn)
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err

    # ---------------------------------------------------------------- agents
    async def save_agent(
        self, agent_id: str, logged_in: bool, paused: bool, reason: str, at: float
    ) -> None:
        row = (_key(agent_id, "agent_id"), int(bool(logged_in)), int(bool(paused)),
               _text(reason, "reason"), _time(at, "at"))
        await self._run(lambda c: c.execute(
            "INSERT INTO agent (agent_id, logged_in, paused, reason, at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (agent_id) DO UPDATE SET logged_in = excluded.logged_in,"
            " paused = excluded.paused, reason = excluded.reason, at = excluded.at",
            row,
        ))

    async def load_agents(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.execute(
            "SELECT agent_id, logged_in, paused, reason, at FROM agent ORDER BY agent_id"
        ).fetchall())
        return {
            agent_id: {"logged_in": bool(li), "paused": bool(pa), "reason": reason, "at": at}
            for agent_id, li, pa, reason, at in rows
        }

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
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, not {type(priority).__name__}")
        row = (
            _key(call_id, "call_id"), _text(node, "node"), _text(leg_id, "leg_id"),
            _key(queue, "queue"), _time(enqueued_at, "enqueued_at"), priority,
            _text(caller_number, "caller_number"), _text(caller_name, "caller_name"),
            _json_object(skills, "skills"),
        )
        # ON CONFLICT DO UPDATE keeps ``seq``: an update does not move the
        # caller behind callers saved later with the same enqueue time.
        await self._run(lambda c: c.execute(
            "INSERT INTO waiting (call_id, node, leg_id, queue, enqueued_at, priority,"
            " caller_number, caller_name, skills) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO UPDATE SET node = excluded.node,"
            " leg_id = excluded.leg_id, queue = excluded.queue,"
            " enqueued_at = excluded.enqueued_at, priority = excluded.priority,"
            " caller_number = excluded.caller_number, caller_name = excluded.caller_name,"
            " skills = excluded.skills",
            row,
        ))

    async def remove_waiting(self, call_id: str) -> None:
        key = _key(call_id, "call_id")
        await self._run(lambda c: c.execute("DELETE FROM waiting WHERE call_id = ?", (key,)))

    async def load_waiting(self) -> list[dict[str, Any]]:
        rows = await self._run(lambda c: c.execute(
            "SELECT call_id, node, leg_id, queue, enqueued_at, priority, caller_number,"
            " caller_name, skills FROM waiting ORDER BY enqueued_at, seq"
        ).fetchall())
        out = []
        for call_id, node, leg_id, queue, enq, prio, number, name, skills in rows:
            out.append({
                "call_id": call_id, "node": node, "leg_id": leg_id, "queue": queue,
                "enqueued_at": enq, "priority": prio, "caller_number": number,
                "caller_name": name, "skills": self._decode(skills, "waiting", call_id),
            })
        return out

    # ---------------------------------------------------- handle-time stats
    async def save_handle_stats(self, queue: str, stats: dict[str, Any], at: float) -> None:
        row = (_key(queue, "queue"), _json_object(stats, "handle stats"), _time(at, "at"))
        await self._run(lambda c: c.execute(
            "INSERT INTO handle_stats (queue, data, at) VALUES (?, ?, ?)"
            " ON CONFLICT (queue) DO UPDATE SET data = excluded.data, at = excluded.at",
            row,
        ))

    async def load_handle_stats(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.execute(
            "SELECT queue, data FROM handle_stats ORDER BY queue"
        ).fetchall())
        return {queue: self._decode(data, "handle_stats", queue) for queue, data in rows}

    # --------------------------------------------------------- open journeys
    async def save_open_journey(self, call_id: str, data: dict[str, Any]) -> None:
        row = (_key(call_id, "call_id"), _json_object(data, "journey data"))
        await self._run(lambda c: c.execute(
            "INSERT INTO open_journey (call_id, data) VALUES (?, ?)"
            " ON CONFLICT (call_id) DO UPDATE SET data = excluded.data",
            row,
        ))

    async def remove_open_journey(self, call_id: str) -> None:
        key = _key(call_id, "call_id")
        await self._run(lambda c: c.execute("DELETE FROM open_journey WHERE call_id = ?", (key,)))

    async def load_open_journeys(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.execute(
            "SELECT call_id, data FROM open_journey ORDER BY call_id"
        ).fetchall())
        return {call_id: self._decode(data, "open_journey", call_id) for call_id, data in rows}

    def _decode(self, text: str, table: str, call_id: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as err:
            raise StoreError(
                f"store {self.path}: {table} row {call_id!r} holds invalid JSON ({err})",
                str(self.path),
            ) from None


# ------------------------------------------------- worker-thread functions
def _connect(path: Path) -> sqlite3.Connection:
    """Runs on the store thread: open, tune, check and migrate the file."""
    if path.is_dir():
        raise StoreError(f"cannot open store {path}: it is a directory", str(path))
    if path.parent.exists() and not path.parent.is_dir():
        raise StoreError(
            f"cannot open store {path}: {path.parent} is not a directory", str(path)
        )
    if not path.parent.is_dir():
        raise StoreError(
            f"cannot open store {path}: directory {path.parent} does not exist", str(path)
        )
    try:
        # isolation_level=None: autocommit; we issue BEGIN ourselves for migrations.
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as err:
        raise _translate(err, path) from err
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(
                f"cannot open store {path}: SQLite refused WAL mode (got {mode!r});"
                " is it on a network file system?", str(path),
            )
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across a process crash in WAL
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException as err:
        conn.close()
        if isinstance(err, sqlite3.Error):
            raise _translate(err, path) from err
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"store {path} has schema version {version}, newer than this callcenterd"
            f" understands ({len(MIGRATIONS)}); upgrade callcenterd or use another file",
            str(path),
        )
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript() runs the whole text as one batch; BEGIN IMMEDIATE
        # makes the migration and its version bump one atomic step.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _close(conn: sqlite3.Connection) -> None:
    try:
        # Fold the WAL back into the main file so a copied .db is complete.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # best effort: the WAL is replayed on next open anyway
    conn.close()


def _translate(err: sqlite3.Error, path: Path) -> StoreError:
    """Turn sqlite's terse messages into ones an admin can act on."""
    text = str(err)
    low = text.lower()
    if "not a database" in low or "malformed" in low:
        hint = "the file is not a SQLite database or is corrupt"
    elif "unable to open" in low:
        hint = "cannot create or open the file (check the directory exists and is writable)"
    elif "readonly" in low or "read-only" in low:
        hint = "the file or its directory is read-only (WAL needs to create -wal and -shm files)"
    elif "locked" in low or "busy" in low:
        hint = f"the file stayed locked by another process for more than {BUSY_TIMEOUT_MS} ms"
    elif "disk" in low and ("full" in low or "i/o" in low):
        hint = "disk error"
    else:
        hint = "SQLite error"
    return StoreError(f"store {path}: {hint} ({text})", str(path))
