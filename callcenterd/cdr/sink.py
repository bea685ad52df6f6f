"""CdrSink: the asyncio-facing front of the CDR writers.

Call handling calls ``submit_fact`` / ``submit_journey``: synchronous,
O(1), never blocks, never raises on a slow or full disk.  A dedicated writer
thread drains a bounded in-memory queue, so fsync and a slow disk only ever
stall that thread.

Overflow policy: the queue is large (100 000 records by default, minutes of a
busy site's traffic); when it is full the record is dropped, counted in
``stats["dropped"]`` and logged at ERROR (first drop, then every 1000th).
Blocking the event loop instead would stop call handling, which is worse
than a missing CDR line.

fsync policy: ``always`` fsyncs after every record, ``interval`` fsyncs the
files written since the last commit every ``fsync_interval_ms`` (group
commit), ``never`` leaves it to the kernel.  Either way every record is in
the kernel (``os.write``) as soon as the thread has it, so a crash of the
process alone loses nothing already dequeued.

``await close()`` (SIGTERM path) drains everything queued, fsyncs and
closes the files before it returns.  A write error (ENOSPC, EIO) is logged
and the record retried with backoff, only into the outputs that do not have
it yet; a partial write is cut back by the file (``RotatingFile``), and
journeys are never written twice because each output remembers the call ids
it has written.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from datetime import tzinfo
from pathlib import Path
from typing import Any

import structlog

from callcenterd.cdr.csv_writer import CsvJourneyWriter
from callcenterd.cdr.jsonl_writer import JsonlAgentEventWriter, JsonlJourneyWriter
from callcenterd.cdr.queue_log import QueueLogWriter
from callcenterd.cdr.rotating import DEFAULT_MAX_BYTES, ROTATE_MODES
from callcenterd.core.facts import AgentStateChanged
from callcenterd.core.journeys.record import Journey

FORMATS = ("csv", "jsonl", "queue_log")
FSYNC_POLICIES = ("always", "interval", "never")
DEFAULT_QUEUE_SIZE = 100_000
DROP_LOG_EVERY = 1000
RETRY_BACKOFF_MIN_S = 0.05
RETRY_BACKOFF_MAX_S = 5.0
DEFAULT_CLOSE_TIMEOUT_S = 30.0


class CdrSink:
    """Writes journeys (CSV, JSONL), queue_log lines and agent events."""

    def __init__(
        self,
        directory: Path | str,
        formats: list[str] | tuple[str, ...] = FORMATS,
        *,
        rotate: str = "daily",
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: str = "interval",
        fsync_interval_ms: int = 200,
        file_mode: int = 0o640,
        tz: tzinfo | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        logger: Any = None,
    ) -> None:
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown CDR format(s) {sorted(unknown)}; expected some of {FORMATS}")
        if rotate not in ROTATE_MODES:
            raise ValueError(f"rotate must be one of {ROTATE_MODES}, not {rotate!r}")
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, not {fsync!r}")
        if fsync_interval_ms <= 0 or queue_size <= 0 or max_bytes <= 0:
            raise ValueError("fsync_interval_ms, queue_size and max_bytes must be positive")
        self.directory = Path(directory)
        self.formats = tuple(formats)
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_ms / 1000.0
        self.queue_size = queue_size
        self._log = logger or structlog.get_logger("callcenterd.cdr")
        opts = dict(rotate=rotate, max_bytes=max_bytes, file_mode=file_mode, durable=fsync != "never", tz=tz)
        self._journey_outputs: list = []
        self._fact_outputs: list = []
        if "csv" in self.formats:
            self._journey_outputs.append(CsvJourneyWriter(self.directory, **opts))
        if "jsonl" in self.formats:
            self._journey_outputs.append(JsonlJourneyWriter(self.directory, **opts))
            self._agent_events = JsonlAgentEventWriter(self.directory, **opts)
        else:
            self._agent_events = None
        if "queue_log" in self.formats:
            self._fact_outputs.append(QueueLogWriter(self.directory, **opts))

        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque()
        self._stopping = False
        self._give_up = False
        self._thread: threading.Thread | None = None
        self._dirty: set = set()
        self._stats = collections.Counter()

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        """Create the directory (0750) and start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("CdrSink already started")
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PermissionError(f"CDR directory {self.directory} is not writable")
        self._thread = threading.Thread(target=self._run, name="cdr-writer", daemon=True)
        self._thread.start()

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Drain the queue, fsync and close every file; then return."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is None:
            return
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():  # stuck on a failing disk: stop retrying
            with self._cond:
                self._give_up = True
                self._cond.notify()
            await asyncio.to_thread(self._thread.join, 5.0)
        lost = len(self._items)
        if lost:
            self._stats["lost_on_close"] += lost
            self._log.error("cdr.close_lost_records", lost=lost, directory=str(self.directory))

    # ---------------------------------------------------------------- submit
    def submit_fact(self, fact) -> bool:
        """Queue a fact for queue_log (and agent-events); False if dropped."""
        return self._submit("fact", fact)

    def submit_journey(self, journey: Journey) -> bool:
        """Queue a closed journey for CSV/JSONL; False if dropped."""
        return self._submit("journey", journey)

    def _submit(self, kind: str, item: Any) -> bool:
        with self._cond:
            if self._stopping:
                self._drop("closed")
                return False
            if len(self._items) >= self.queue_size:
                self._drop("full")
                return False
            self._items.append((kind, item))
            self._stats["submitted"] += 1
            self._cond.notify()
        return True

    def _drop(self, why: str) -> None:
        self._stats["dropped"] += 1
        n = self._stats["dropped"]
        if n == 1 or n % DROP_LOG_EVERY == 0:
            self._log.error("cdr.record_dropped", reason=why, dropped_total=n, queue_size=self.queue_size)

    @property
    def stats(self) -> dict[str, int]:
        with self._cond:
            out = dict(self._stats)
            out["queued"] = len(self._items)
        for key in ("submitted", "written", "dropped", "duplicates", "write_errors"):
            out.setdefault(key, 0)
        out["duplicates"] = sum(getattr(o, "duplicates", 0) for o in self._journey_outputs)
        return out

    # ---------------------------------------------------------------- thread
    def _run(self) -> None:
        last_commit = time.monotonic()
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    if self._dirty and self.fsync == "interval":
                        remaining = self.fsync_interval_s - (time.monotonic() - last_commit)
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    else:
                        self._cond.wait()
                batch, self._items = self._items, collections.deque()
                stopping = self._stopping
            for position, (kind, item) in enumerate(batch):
                if not self._write_with_retry(kind, item):
                    # gave up (close timed out on a dead disk): put the rest back to be counted
                    with self._cond:
                        self._items.extendleft(reversed(list(batch)[position:]))
                    self._close_outputs()
                    return
            if self.fsync == "interval" and time.monotonic() - last_commit >= self.fsync_interval_s:
                self._commit()
                last_commit = time.monotonic()
            if stopping:
                with self._cond:
                    if self._items:
                        continue
                self._close_outputs()
                return

    def _write_with_retry(self, kind: str, item: Any) -> bool:
        backoff = RETRY_BACKOFF_MIN_S
        done: set = set()  # outputs that already have this item: a retry skips them
        while True:
            try:
                self._write_one(kind, item, done)
                self._stats["written"] += 1
                return True
            except OSError as exc:
                self._stats["write_errors"] += 1
                self._log.error("cdr.write_failed", error=str(exc), kind=kind, retry_in_s=backoff)
                with self._cond:
                    if self._give_up:
                        return False
                    self._cond.wait(backoff)
                    if self._give_up:
                        return False
                backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)

    def _write_one(self, kind: str, item: Any, done: set) -> None:
        if kind == "journey":
            outputs = list(self._journey_outputs)
        else:
            outputs = list(self._fact_outputs)
            if self._agent_events is not None and isinstance(item, AgentStateChanged):
                outputs.append(self._agent_events)
        for out in outputs:
            if out in done:
                continue
            if out.write(item):
                self._dirty.add(out)
            done.add(out)
        if self.fsync == "always":
            self._commit()

    def _commit(self) -> None:
        for out in self._dirty:
            out.sync()
        self._dirty.clear()

    def _close_outputs(self) -> None:
        outputs = self._journey_outputs + self._fact_outputs
        if self._agent_events is not None:
            outputs.append(self._agent_events)
        for out in outputs:
            try:
                out.close()  # fsyncs first unless fsync == "never"
            except OSError as exc:
                self._log.error("cdr.close_failed", error=str(exc))
        self._dirty.clear()
