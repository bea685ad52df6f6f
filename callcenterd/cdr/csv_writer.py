"""Journeys as CSV: one row per call, a header row at the top of every file.

Columns are documented in docs/cdr.md; their order is part of the format
(append new columns at the end, never reorder).  Times are ISO 8601 with
the UTC offset of the configured zone, millisecond precision; durations are
seconds with up to 3 decimals; empty means unknown.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Iterable

from callcenterd.cdr.rotating import DEFAULT_DEDUPE_SCAN_BYTES, DedupedJourneyFile, RotatingFile
from callcenterd.core.journeys.record import Journey

CSV_COLUMNS: tuple[str, ...] = (
    "call_id",
    "node",
    "caller_number",
    "caller_name",
    "dnis",
    "started_at",
    "enqueued_at",
    "queue",
    "final_queue",
    "priority",
    "position_at_entry",
    "wait_estimate",
    "wait_actual",
    "estimate_error",
    "answered_at",
    "agent",
    "agent_leg_id",
    "ring_attempts",
    "hold_s",
    "talk_s",
    "ended_at",
    "duration_s",
    "outcome",
    "completed_by",
    "readopted",
    "queue_path",
    "pbx_uniqueid",
    "pbx_linkedid",
    "caller_name_raw",
    "staffed_at_entry",
    "direction",
    "campaign",
    "lead_id",
    "amd",
)
_TIME_COLUMNS = {"started_at", "enqueued_at", "answered_at", "ended_at"}

# Spreadsheet formula injection (OWASP "CSV injection"): caller name and number
# come from the network.  A value starting with = + - @ TAB CR is prefixed
# with ' -- except a plausible phone number such as +4930123456.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"[+-]?[0-9 ()./-]*")


def _safe_text(value: str) -> str:
    value = value.replace("\r", " ").replace("\n", " ")  # one record, one line
    if value.startswith(_FORMULA_START) and not _PHONE.fullmatch(value):
        return "'" + value
    return value


def _fmt_time(at: float | None, tz: tzinfo | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, tz).astimezone(tz).isoformat(timespec="milliseconds")


def _fmt_number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def journey_row(journey: Journey, tz: tzinfo | None = None) -> list[str]:
    """The CSV cells of one journey, in CSV_COLUMNS order."""
    data = journey.to_dict()
    data["queue_path"] = ">".join(seg.queue for seg in journey.queues)
    row = []
    for col in CSV_COLUMNS:
        value = data[col]
        if col in _TIME_COLUMNS:
            row.append(_fmt_time(value, tz))
        elif isinstance(value, bool):
            row.append("true" if value else "false")
        elif isinstance(value, (int, float)) or value is None:
            row.append(_fmt_number(value))
        else:
            row.append(_safe_text(str(value)))
    return row


def _encode_row(cells: Iterable[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue().encode("utf-8")


CSV_HEADER = _encode_row(CSV_COLUMNS)


class CsvJourneyWriter(DedupedJourneyFile):
    """journeys-YYYY-MM-DD.csv (daily) or journeys.csv (size)."""

    def __init__(self, directory: Path, *, scan_bytes: int = DEFAULT_DEDUPE_SCAN_BYTES, **file_options: Any) -> None:
        """``file_options``: rotate, max_bytes, file_mode, durable, tz (see RotatingFile)."""
        rfile = RotatingFile(directory, "journeys", ".csv", header=CSV_HEADER, **file_options)
        super().__init__(rfile, scan_bytes=scan_bytes)
        self.tz = rfile.tz

    def encode(self, journey: Journey) -> bytes:
        return _encode_row(journey_row(journey, self.tz))

    def ids_in(self, lines: Iterable[bytes]) -> set[str]:
        ids = set()
        for row in csv.reader(line.decode("utf-8", "replace") for line in lines):
            if row and row[0] != "call_id":  # skip header rows
                ids.add(row[0])
        return ids
