"""CdrSink: non-blocking submit, writer thread, fsync policy, drain on close."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from datetime import timezone

import pytest

from callcenterd.cdr.sink import CdrSink
from callcenterd.core import facts as f
from callcenterd.core.journeys import Journey

UTC = timezone.utc
DAY1 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def journey(call_id: str) -> Journey:
    return Journey(call_id=call_id, started_at=DAY1 - 30, ended_at=DAY1, outcome="answered")


def jsonl_ids(tmp_path) -> list[str]:
    path = tmp_path / "journeys-2024-05-01.jsonl"
    return [json.loads(line)["call_id"] for line in path.read_text().splitlines()]


async def test_everything_submitted_before_close_is_on_disk(tmp_path):
    sink = CdrSink(tmp_path, ["csv", "jsonl", "queue_log"], fsync="interval", fsync_interval_ms=10_000, tz=UTC)
    sink.start()
    for n in range(500):
        assert sink.submit_journey(journey(f"c{n}"))
        assert sink.submit_fact(f.CallerAbandoned(DAY1, f"c{n}", "sales", 1, 1, 5))
    sink.submit_fact(f.AgentStateChanged(DAY1, "1001", "on-call"))
    await sink.close()  # no sleep: close itself must drain
    assert jsonl_ids(tmp_path) == [f"c{n}" for n in range(500)]
    csv_lines = (tmp_path / "journeys-2024-05-01.csv").read_text().splitlines()
    assert len(csv_lines) == 501  # header + 500
    assert len((tmp_path / "queue_log-2024-05-01").read_text().splitlines()) == 500
    events = (tmp_path / "agent-events-2024-05-01.jsonl").read_text().splitlines()
    assert json.loads(events[0]) == {"at": DAY1, "agent": "1001", "state": "on-call", "reason": "", "extra": {}}
    assert sink.stats["written"] == 1001 and sink.stats["queued"] == 0
    assert sink.submit_journey(journey("late")) is False  # closed: refused, counted
    assert sink.stats["dropped"] == 1


async def test_close_fsyncs_even_with_a_long_interval(tmp_path, monkeypatch):
    synced_files: list[int] = []
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not the directory fsync done on create
            synced_files.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sink = CdrSink(tmp_path, ["jsonl"], fsync="interval", fsync_interval_ms=60_000, tz=UTC)
    sink.start()
    sink.submit_journey(journey("c1"))
    await sink.close()
    assert len(synced_files) == 1, "close() must fsync the written file"


@pytest.mark.parametrize("policy, min_syncs, max_syncs", [("always", 20, 10_000), ("never", 0, 0)])
async def test_fsync_policy(tmp_path, monkeypatch, policy, min_syncs, max_syncs):
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    sink = CdrSink(tmp_path, ["jsonl"], fsync=policy, tz=UTC)
    sink.start()
    for n in range(20):
        sink.submit_journey(journey(f"c{n}"))
    await sink.close()
    assert min_syncs <= len(synced) <= max_syncs
    assert len(jsonl_ids(tmp_path)) == 20


async def test_interval_policy_group_commits(tmp_path, monkeypatch):
    synced = threading.Event()
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.set(), real_fsync(fd))[1])
    sink = CdrSink(tmp_path, ["jsonl"], fsync="interval", fsync_interval_ms=20, tz=UTC)
    sink.start()
    sink.submit_journey(journey("c1"))
    # nothing else is submitted: the timer alone must commit
    assert await asyncio.to_thread(synced.wait, 2.0)
    await sink.close()


async def test_full_queue_drops_without_blocking(tmp_path):
    sink = CdrSink(tmp_path, ["jsonl"], queue_size=3, tz=UTC)
    # not started: nothing drains, so the 4th and 5th submits overflow
    results = [sink.submit_journey(journey(f"c{n}")) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert sink.stats["dropped"] == 2 and sink.stats["queued"] == 3
    sink.start()
    await sink.close()
    assert jsonl_ids(tmp_path) == ["c0", "c1", "c2"]


async def test_duplicate_journey_is_written_once_across_restart(tmp_path):
    for _ in range(2):
        sink = CdrSink(tmp_path, ["jsonl", "csv"], tz=UTC)
        sink.start()
        sink.submit_journey(journey("same"))
        await sink.close()
    assert jsonl_ids(tmp_path) == ["same"]
    assert sink.stats["duplicates"] == 2  # csv + jsonl both skipped it


async def test_write_error_is_retried_not_lost(tmp_path, monkeypatch):
    sink = CdrSink(tmp_path, ["jsonl"], tz=UTC)
    real_write = os.write
    failures = iter([OSError(28, "No space left on device")])

    def flaky_write(fd, data):
        err = next(failures, None)
        if err is not None:
            raise err
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", flaky_write)
    sink.start()
    sink.submit_journey(journey("c1"))
    await sink.close()
    assert jsonl_ids(tmp_path) == ["c1"]
    assert sink.stats["write_errors"] == 1


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown CDR format"):
        CdrSink(tmp_path, ["xml"])
    with pytest.raises(ValueError, match="fsync"):
        CdrSink(tmp_path, ["csv"], fsync="sometimes")
    with pytest.raises(ValueError, match="rotate"):
        CdrSink(tmp_path, ["csv"], rotate="weekly")
