"""A full disk never leaves a torn or doubled CDR record (issue 10, item 7).

ENOSPC shows up as a short ``write`` (what still fits) followed by an error:
the file must be cut back to where the record started, and the retry must
append the record once, whole.
"""

from __future__ import annotations

import csv
import errno
import os
import subprocess
from datetime import timezone

import pytest

from callcenterd.cdr.csv_writer import CSV_COLUMNS, CSV_HEADER, CsvJourneyWriter
from callcenterd.cdr.rotating import RotatingFile
from callcenterd.cdr.sink import CdrSink
from callcenterd.core.journeys import Journey

UTC = timezone.utc
DAY1 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def journey(call_id: str) -> Journey:
    return Journey(call_id=call_id, started_at=DAY1 - 30, ended_at=DAY1, outcome="answered",
                   caller_name="Ada Lovelace", caller_number="+4930123456")


class FullDisk:
    """os.write with a byte budget: writes what fits, then raises ENOSPC."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.short_writes = 0
        self.real_write = os.write

    def __call__(self, fd, data):
        if self.budget is None:
            n = self.real_write(fd, data)
        elif self.budget == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        else:
            n = self.real_write(fd, bytes(data[: self.budget]))
            self.budget -= n
        if n < len(data):
            self.short_writes += 1
        return n


def csv_rows(path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("budget", [0, 1, 7, 20, 150])
def test_partial_record_is_cut_back_and_the_retry_writes_it_once(tmp_path, monkeypatch, budget):
    disk = FullDisk(None)
    monkeypatch.setattr(os, "write", disk)
    rf = RotatingFile(tmp_path, "j", ".txt", header=b"head\n", tz=UTC)
    rf.write(b"first record\n", DAY1)
    disk.budget = budget  # 150: the next record fits, the one after does not
    record = b"x" * 100 + b"\n"
    with pytest.raises(OSError) as exc:
        for _ in range(2):
            rf.write(record, DAY1)
    assert exc.value.errno == errno.ENOSPC
    disk.budget = None  # space freed
    rf.write(record, DAY1)
    rf.close()
    expected = b"head\nfirst record\n" + record * (2 if budget >= len(record) else 1)
    assert (tmp_path / "j-2024-05-01.txt").read_bytes() == expected


@pytest.mark.parametrize("budget", [0, 2])
def test_disk_full_inside_the_header_still_gives_one_header(tmp_path, monkeypatch, budget):
    disk = FullDisk(budget)
    monkeypatch.setattr(os, "write", disk)
    rf = RotatingFile(tmp_path, "j", ".txt", header=b"head\n", tz=UTC)
    with pytest.raises(OSError):
        rf.write(b"rec\n", DAY1)
    disk.budget = None
    rf.write(b"rec\n", DAY1)
    rf.close()
    assert (tmp_path / "j-2024-05-01.txt").read_bytes() == b"head\nrec\n"


async def test_sink_retry_after_enospc_mid_row_keeps_every_csv_row_whole(tmp_path, monkeypatch):
    """The reported defect: a 45-field row against 26 in the header."""
    row_bytes = len(CsvJourneyWriter(tmp_path / "probe", tz=UTC).encode(journey("c0")))
    disk = FullDisk(None)
    monkeypatch.setattr(os, "write", disk)
    sink = CdrSink(tmp_path, ["csv"], tz=UTC)

    class Ops:  # reads the error log and frees space
        def error(self, event, **kw):
            assert event == "cdr.write_failed"
            disk.budget = None

    sink._log = Ops()
    monkeypatch.setattr("callcenterd.cdr.sink.RETRY_BACKOFF_MIN_S", 0.001)
    disk.budget = len(CSV_HEADER) + row_bytes + row_bytes // 2  # c1's row fits, c2's is cut mid-row
    sink.start()
    for n in range(1, 5):
        sink.submit_journey(journey(f"c{n}"))
    await sink.close()
    rows = csv_rows(tmp_path / "journeys-2024-05-01.csv")
    assert disk.short_writes == 1 and sink.stats["write_errors"] >= 1
    assert rows[0] == list(CSV_COLUMNS)
    assert [len(r) for r in rows[1:]] == [len(CSV_COLUMNS)] * 4
    assert [r[0] for r in rows[1:]] == ["c1", "c2", "c3", "c4"]


async def test_sink_retry_goes_only_to_the_output_that_failed(tmp_path, monkeypatch):
    """CSV written, JSONL full: the retry does not touch the CSV (no false duplicate)."""
    sink = CdrSink(tmp_path, ["csv", "jsonl"], tz=UTC)
    sink._log = type("Quiet", (), {"error": lambda *a, **k: None})()
    real_write = os.write
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def jsonl_full_once(fd, data):
        if bytes(data[:1]) == b"{" and failures:
            raise failures.pop()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", jsonl_full_once)
    monkeypatch.setattr("callcenterd.cdr.sink.RETRY_BACKOFF_MIN_S", 0.001)
    sink.start()
    sink.submit_journey(journey("c1"))
    await sink.close()
    assert not failures
    assert [r[0] for r in csv_rows(tmp_path / "journeys-2024-05-01.csv")[1:]] == ["c1"]
    assert (tmp_path / "journeys-2024-05-01.jsonl").read_text().count('"c1"') == 1
    assert sink.stats["write_errors"] == 1 and sink.stats["duplicates"] == 0


# --------------------------------------------------------------- real tmpfs
def _under_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs mounted under tmp_path (root only)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {proc.stderr.strip() or proc.returncode}"
        if _under_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)  # a file left open by a failed test


def test_real_full_tmpfs_then_freed_space_leaves_a_consistent_csv(small_tmpfs, monkeypatch):
    spy = FullDisk(None)  # no budget: only counts the kernel's short writes
    monkeypatch.setattr(os, "write", spy)
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * 16384)
    w = CsvJourneyWriter(small_tmpfs, tz=UTC, durable=False)
    written, failed_at = 0, None
    for n in range(10_000):
        try:
            w.write(journey(f"c{n}"))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            failed_at = n
            break
        written += 1
    assert failed_at is not None, "the tmpfs never filled up"
    assert spy.short_writes >= 1, "the kernel did not cut the last write short"
    filler.unlink()  # ops free space
    try:
        for n in range(failed_at, failed_at + 5):
            assert w.write(journey(f"c{n}"))
    finally:
        w.close()
    rows = csv_rows(small_tmpfs / "journeys-2024-05-01.csv")
    assert rows[0] == list(CSV_COLUMNS)
    assert all(len(r) == len(CSV_COLUMNS) for r in rows[1:])
    assert [r[0] for r in rows[1:]] == [f"c{n}" for n in range(failed_at + 5)]
