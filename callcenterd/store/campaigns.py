"""Campaign state in the SQLite store: leads, attempts, DNC, run state, ledger.

It shares the :class:`~callcenterd.store.sqlite.SqliteStore` file and its
single worker thread (schema migration 3).  The two promises a campaign
manager relies on are kept by the file itself, so they hold across a SIGKILL
of the daemon and across a PBX link drop:

* a lead is dialled at most once at a time: :meth:`CampaignStore.begin_attempt`
  marks the lead ``dialling`` and inserts the open attempt in one transaction,
  and a partial unique index refuses a second open attempt for a lead;
* never beyond its maximum attempts: the same transaction only succeeds while
  ``attempts < max_attempts``.

The daemon records an attempt *before* it sends the Originate, and never
sends it again: an attempt left open by a crash is closed at the next start
as ``interrupted`` (:meth:`CampaignStore.close_interrupted`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Sequence

from callcenterd.core.campaigns.model import AttemptRecord, Lead, LeadState
from callcenterd.store.sqlite import SqliteStore

# the lead columns, in the order _lead() reads them
_LEAD_COLS = ("lead_id, campaign, phone, name, zones, postal_code, fields, state, attempts, next_at,"
              " last_outcome, last_dropped_at, callback_agent, disposition")

INTERRUPTED = "interrupted"  # outcome of an attempt a crash left open
CAMPAIGN_STATES = ("stopped", "running", "paused")


def _lead(row: Sequence[Any]) -> Lead:
    (lead_id, campaign, phone, name, zones, postal, fields, state, attempts, next_at,
     last_outcome, dropped_at, cb_agent, disposition) = row
    return Lead(
        lead_id=lead_id, campaign=campaign, phone=phone, name=name,
        zones=tuple(zones.split()), postal_code=postal, fields=json.loads(fields or "{}"),
        state=LeadState(state), attempts=attempts, next_at=next_at, last_outcome=last_outcome,
        last_dropped_at=dropped_at, callback_agent=cb_agent, disposition=disposition,
    )


def _attempt(row: Sequence[Any]) -> AttemptRecord:
    attempt_id, campaign, lead_id, phone, started, ended, outcome, agent, disposition = row
    return AttemptRecord(attempt_id, campaign, lead_id, phone, started, ended, outcome, agent, disposition)


_ATTEMPT_COLS = "attempt_id, campaign, lead_id, phone, started_at, ended_at, outcome, agent, disposition"


class CampaignStore:
    """Async access to the campaign tables of one store file."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # ------------------------------------------------------------- leads
    async def merge_leads(self, campaign: str, leads: Sequence[Lead]) -> tuple[int, int]:
        """Insert new leads; a number already in the campaign gets its name,
        zones, postal code and fields refreshed and keeps its history.
        Returns ``(inserted, merged)``.  One transaction per call: batch it."""
        rows = [(campaign, ld.phone, ld.name, " ".join(ld.zones), ld.postal_code,
                 json.dumps(ld.fields, sort_keys=True, ensure_ascii=False)) for ld in leads]

        def run(c: sqlite3.Connection) -> tuple[int, int]:
            c.execute("BEGIN IMMEDIATE")
            try:
                before = c.execute("SELECT COUNT(*) FROM lead WHERE campaign = ?", (campaign,)).fetchone()[0]
                c.executemany(
                    "INSERT INTO lead (campaign, phone, name, zones, postal_code, fields)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, phone) DO UPDATE SET"
                    " name = excluded.name, zones = excluded.zones,"
                    " postal_code = excluded.postal_code, fields = excluded.fields", rows)
                after = c.execute("SELECT COUNT(*) FROM lead WHERE campaign = ?", (campaign,)).fetchone()[0]
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return after - before, len(rows) - (after - before)

        return await self._store._run(run)

    async def known_phones(self, campaign: str, phones: Iterable[str]) -> set[str]:
        """Which of ``phones`` the campaign already has."""
        wanted = list(dict.fromkeys(phones))

        def run(c: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in c.execute(
                    f"SELECT phone FROM lead WHERE campaign = ? AND phone IN ({marks})", (campaign, *chunk)))
            return found

        return await self._store._run(run)

    async def lead(self, lead_id: int) -> Lead | None:
        row = await self._store._run(lambda c: c.execute(
            f"SELECT {_LEAD_COLS} FROM lead WHERE lead_id = ?", (lead_id,)).fetchone())
        return _lead(row) if row else None

    async def due_leads(self, campaign: str, now: float, limit: int) -> list[Lead]:
        """Leads that may be due by state and time: callbacks first, then the
        longest-due.  The dialer core still checks windows, DNC and caps."""
        rows = await self._store._run(lambda c: c.execute(
            f"SELECT {_LEAD_COLS} FROM lead WHERE campaign = ? AND state IN ('ready', 'callback')"
            " AND next_at <= ? ORDER BY state = 'callback' DESC, next_at, lead_id LIMIT ?",
            (campaign, now, limit)).fetchall())
        return [_lead(r) for r in rows]

    async def save_lead(self, lead: Lead) -> None:
        """Persist the lead's dialling state (never its identity or data)."""
        row = (lead.state.value, lead.attempts, lead.next_at, lead.last_outcome, lead.last_dropped_at,
               lead.callback_agent, lead.disposition, lead.lead_id)
        await self._store._run(lambda c: c.execute(
            "UPDATE lead SET state = ?, attempts = ?, next_at = ?, last_outcome = ?, last_dropped_at = ?,"
            " callback_agent = ?, disposition = ? WHERE lead_id = ?", row))

    async def lead_counts(self, campaign: str) -> dict[str, int]:
        """Leads per state."""
        rows = await self._store._run(lambda c: c.execute(
            "SELECT state, COUNT(*) FROM lead WHERE campaign = ? GROUP BY state", (campaign,)).fetchall())
        return {state: n for state, n in rows}

    # ---------------------------------------------------------- attempts
    async def begin_attempt(self, attempt: AttemptRecord, max_attempts: int) -> bool:
        """Record an attempt before dialling.  False (and nothing written)
        when the lead is already being dialled or has no attempt left."""

        def run(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            try:
                cur = c.execute(
                    "UPDATE lead SET state = 'dialling', attempts = attempts + 1"
                    " WHERE lead_id = ? AND campaign = ? AND state NOT IN ('dialling', 'done', 'dnc')"
                    " AND attempts < ?", (attempt.lead_id, attempt.campaign, max_attempts))
                if cur.rowcount != 1:
                    c.execute("ROLLBACK")
                    return False
                c.execute(f"INSERT INTO attempt ({_ATTEMPT_COLS}) VALUES (?, ?, ?, ?, ?, NULL, '', '', '')",
                          (attempt.attempt_id, attempt.campaign, attempt.lead_id, attempt.phone,
                           attempt.started_at))
                c.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                c.execute("ROLLBACK")
                return False
            except BaseException:
                c.execute("ROLLBACK")
                raise

        return await self._store._run(run)

    async def end_attempt(self, attempt_id: str, outcome: str, ended_at: float, lead: Lead,
                          agent: str = "") -> None:
        """Close the attempt and save the lead's new state in one transaction."""
        lead_row = (lead.state.value, lead.next_at, lead.last_outcome, lead.last_dropped_at,
                    lead.callback_agent, lead.disposition, lead.lead_id)

        def run(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("UPDATE attempt SET ended_at = ?, outcome = ?, agent = CASE WHEN ? = '' THEN agent"
                          " ELSE ? END WHERE attempt_id = ? AND ended_at IS NULL",
                          (ended_at, outcome, agent, agent, attempt_id))
                c.execute("UPDATE lead SET state = ?, next_at = ?, last_outcome = ?, last_dropped_at = ?,"
                          " callback_agent = ?, disposition = ? WHERE lead_id = ?", lead_row)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._store._run(run)

    async def set_disposition(self, attempt_id: str, agent: str, disposition: str) -> None:
        await self._store._run(lambda c: c.execute(
            "UPDATE attempt SET disposition = ?, agent = CASE WHEN ? = '' THEN agent ELSE ? END"
            " WHERE attempt_id = ?", (disposition, agent, agent, attempt_id)))

    async def attempt(self, attempt_id: str) -> AttemptRecord | None:
        row = await self._store._run(lambda c: c.execute(
            f"SELECT {_ATTEMPT_COLS} FROM attempt WHERE attempt_id = ?", (attempt_id,)).fetchone())
        return _attempt(row) if row else None

    async def open_attempts(self) -> list[AttemptRecord]:
        rows = await self._store._run(lambda c: c.execute(
            f"SELECT {_ATTEMPT_COLS} FROM attempt WHERE ended_at IS NULL ORDER BY started_at").fetchall())
        return [_attempt(r) for r in rows]

    async def attempt_times(self, lead_id: int, since: float) -> list[float]:
        """Start times of the lead's attempts since ``since`` (the 30-day cap)."""
        rows = await self._store._run(lambda c: c.execute(
            "SELECT started_at FROM attempt WHERE lead_id = ? AND started_at >= ? ORDER BY started_at",
            (lead_id, since)).fetchall())
        return [r[0] for r in rows]

    async def close_interrupted(self, attempt_id: str, ended_at: float, lead: Lead) -> None:
        """An attempt a crash left open: closed, never dialled again."""
        await self.end_attempt(attempt_id, INTERRUPTED, ended_at, lead)

    async def outcome_counts(self, campaign: str) -> dict[str, int]:
        rows = await self._store._run(lambda c: c.execute(
            "SELECT outcome, COUNT(*) FROM attempt WHERE campaign = ? AND ended_at IS NOT NULL GROUP BY outcome",
            (campaign,)).fetchall())
        return {o: n for o, n in rows}

    async def disposition_counts(self, campaign: str) -> dict[str, int]:
        rows = await self._store._run(lambda c: c.execute(
            "SELECT disposition, COUNT(*) FROM attempt WHERE campaign = ? AND disposition != ''"
            " GROUP BY disposition", (campaign,)).fetchall())
        return {d: n for d, n in rows}

    # --------------------------------------------------------------- DNC
    async def add_dnc(self, phones: Iterable[str], reason: str, at: float, campaign: str = "") -> None:
        """Add numbers to a DNC list ('' = every campaign); leads with them stop."""
        rows = [(campaign, p, reason, at) for p in dict.fromkeys(phones)]

        def run(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("INSERT INTO dnc (campaign, phone, reason, at) VALUES (?, ?, ?, ?)"
                              " ON CONFLICT (campaign, phone) DO NOTHING", rows)
                where = "" if not campaign else " AND campaign = ?"
                for _, phone, _, _ in rows:
                    c.execute("UPDATE lead SET state = 'dnc' WHERE phone = ? AND state != 'dialling'" + where,
                              (phone, campaign) if campaign else (phone,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._store._run(run)

    async def dnc_numbers(self, campaign: str) -> set[str]:
        """Every number on the global list or on this campaign's own."""
        rows = await self._store._run(lambda c: c.execute(
            "SELECT phone FROM dnc WHERE campaign IN ('', ?)", (campaign,)).fetchall())
        return {r[0] for r in rows}

    # ------------------------------------------------------ run state
    async def save_campaign_state(self, campaign: str, state: str, at: float) -> None:
        if state not in CAMPAIGN_STATES:
            raise ValueError(f"campaign state must be one of {', '.join(CAMPAIGN_STATES)}, not {state!r}")
        await self._store._run(lambda c: c.execute(
            "INSERT INTO campaign (name, state, at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET state = excluded.state, at = excluded.at", (campaign, state, at)))

    async def campaign_states(self) -> dict[str, str]:
        rows = await self._store._run(lambda c: c.execute("SELECT name, state FROM campaign").fetchall())
        return {n: s for n, s in rows}

    # ------------------------------------------------- abandonment ledger
    async def add_ledger_event(self, campaign: str, at: float, kind: str) -> None:
        if kind not in ("connected", "dropped"):
            raise ValueError(f"ledger event kind must be 'connected' or 'dropped', not {kind!r}")
        await self._store._run(lambda c: c.execute(
            "INSERT INTO abandon_ledger (campaign, at, kind) VALUES (?, ?, ?)", (campaign, at, kind)))

    async def ledger_events(self, campaign: str, since: float) -> list[tuple[float, str]]:
        """The campaign's live answers and drops since ``since``, oldest first;
        older rows are pruned on the way (the ledger only looks back 30 days)."""

        def run(c: sqlite3.Connection) -> list[tuple[float, str]]:
            c.execute("DELETE FROM abandon_ledger WHERE campaign = ? AND at < ?", (campaign, since))
            return [(at, kind) for at, kind in c.execute(
                "SELECT at, kind FROM abandon_ledger WHERE campaign = ? AND at >= ? ORDER BY at",
                (campaign, since))]

        return await self._store._run(run)
