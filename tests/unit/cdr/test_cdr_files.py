"""Rotating files, CSV and JSONL journey writers: modes, headers, rotation, no duplicates."""

from __future__ import annotations

import csv
import json
import os
import stat
from datetime import timezone

import pytest

from callcenterd.cdr.csv_writer import CSV_COLUMNS, CsvJourneyWriter, journey_row
from callcenterd.cdr.jsonl_writer import JsonlJourneyWriter
from callcenterd.cdr.rotating import RotatingFile, read_tail_lines
from callcenterd.core.journeys import Journey, QueueSegment

UTC = timezone.utc
DAY1 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
DAY2 = DAY1 + 86_400


def journey(call_id: str, ended_at: float = DAY1, **kw) -> Journey:
    kw.setdefault("outcome", "answered")
    return Journey(call_id=call_id, started_at=ended_at - 60, ended_at=ended_at, **kw)


def test_new_file_gets_exact_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)  # would give 0600
    try:
        rf = RotatingFile(tmp_path, "x", ".log", tz=UTC)
        path = rf.write(b"a\n", DAY1)
        rf.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.name == "x-2024-05-01.log"


def test_daily_rotation_uses_record_date_and_writes_header_per_file(tmp_path):
    rf = RotatingFile(tmp_path, "j", ".csv", header=b"h\n", tz=UTC)
    rf.write(b"1\n", DAY1)
    rf.write(b"2\n", DAY2)
    rf.write(b"3\n", DAY1)  # a late record still lands in its own day
    rf.close()
    assert (tmp_path / "j-2024-05-01.csv").read_bytes() == b"h\n1\n3\n"
    assert (tmp_path / "j-2024-05-02.csv").read_bytes() == b"h\n2\n"


def test_size_rotation_renames_with_increasing_sequence(tmp_path):
    rf = RotatingFile(tmp_path, "j", ".csv", rotate="size", max_bytes=12, header=b"h\n", tz=UTC)
    for n in range(6):
        rf.write(b"rec%d\n" % n, DAY1)  # 2 + 5 + 5 = 12: two records per file
    rf.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.csv", "j.csv.1", "j.csv.2"]
    assert (tmp_path / "j.csv.1").read_bytes() == b"h\nrec0\nrec1\n"
    assert (tmp_path / "j.csv.2").read_bytes() == b"h\nrec2\nrec3\n"
    # every file starts with the header and no record is lost or repeated
    records = []
    for p in [tmp_path / "j.csv.1", tmp_path / "j.csv.2", tmp_path / "j.csv"]:
        lines = p.read_bytes().splitlines()
        assert lines[0] == b"h"
        records += lines[1:]
    assert records == [b"rec%d" % n for n in range(6)]


def test_torn_last_line_is_terminated_before_appending(tmp_path):
    path = tmp_path / "j-2024-05-01.jsonl"
    path.write_bytes(b'{"call_id":"a"}\n{"call_id":"b')  # crash mid-write
    rf = RotatingFile(tmp_path, "j", ".jsonl", tz=UTC)
    rf.write(b'{"call_id":"c"}\n', DAY1)
    rf.close()
    assert path.read_bytes().splitlines()[-1] == b'{"call_id":"c"}'
    assert read_tail_lines(path, 1 << 20)[-1] == b'{"call_id":"c"}'


def test_read_tail_lines_drops_the_cut_first_line(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"aaaa\nbb\ncc\n")
    assert read_tail_lines(path, 7) == [b"bb", b"cc"]
    assert read_tail_lines(tmp_path / "missing", 10) == []


@pytest.mark.parametrize("writer_cls", [CsvJourneyWriter, JsonlJourneyWriter])
def test_restart_does_not_write_a_journey_twice(tmp_path, writer_cls):
    w = writer_cls(tmp_path, tz=UTC)
    assert w.write(journey("c1")) and w.write(journey("c2"))
    assert not w.write(journey("c1"))  # same process
    w.close()
    w2 = writer_cls(tmp_path, tz=UTC)  # "restart": ids rebuilt from the file
    assert not w2.write(journey("c2"))
    assert w2.write(journey("c3"))
    assert w2.write(journey("c1", ended_at=DAY2))  # another day's file: a different scope
    w2.close()
    (path,) = [p for p in tmp_path.iterdir() if "2024-05-01" in p.name]
    text = path.read_text()
    assert text.count("c1") == 1 and text.count("c2") == 1 and text.count("c3") == 1
    assert w.duplicates == 1 and w2.duplicates == 1


def test_size_mode_dedupe_survives_rotation_and_restart(tmp_path):
    size = len(JsonlJourneyWriter(tmp_path, tz=UTC).encode(journey("c0")))
    w = JsonlJourneyWriter(tmp_path, rotate="size", max_bytes=2 * size + 5, tz=UTC)
    for n in range(4):
        assert w.write(journey(f"c{n}"))
    w.close()
    assert (tmp_path / "journeys.jsonl.1").exists()
    assert not (tmp_path / "journeys.jsonl.2").exists()  # c0,c1 in .1 ; c2,c3 current
    w2 = JsonlJourneyWriter(tmp_path, rotate="size", max_bytes=2 * size + 5, tz=UTC)
    assert [w2.write(journey(f"c{n}")) for n in range(5)] == [False] * 4 + [True]
    w2.close()


def test_csv_header_row_once_per_file_and_columns_stable(tmp_path):
    w = CsvJourneyWriter(tmp_path, tz=UTC)
    w.write(journey("c1", caller_name="Ada, \"the\" first", hold_s=12.5, readopted=True,
                    queues=[QueueSegment("sales", DAY1 - 50), QueueSegment("support", DAY1 - 20)]))
    w.write(journey("c2"))
    w.close()
    rows = list(csv.reader((tmp_path / "journeys-2024-05-01.csv").open()))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 3
    rec = dict(zip(rows[0], rows[1]))
    assert rec["caller_name"] == 'Ada, "the" first'
    assert rec["hold_s"] == "12.5" and rec["readopted"] == "true" and rec["wait_estimate"] == ""
    assert rec["ended_at"] == "2024-05-01T10:00:00.000+00:00"
    assert rec["queue_path"] == "sales>support"


def test_csv_neutralises_formulas_but_keeps_phone_numbers():
    row = dict(zip(CSV_COLUMNS, journey_row(
        journey("c1", caller_name="=HYPERLINK(\"http://x\")", caller_number="+4930123456", dnis="-1+2"), UTC)))
    assert row["caller_name"].startswith("'=")
    assert row["caller_number"] == "+4930123456"
    assert row["dnis"] == "'-1+2"  # not a phone number: neutralised


def test_jsonl_one_object_per_line_even_with_newlines_in_values(tmp_path):
    w = JsonlJourneyWriter(tmp_path, tz=UTC)
    w.write(journey("c1", caller_name="line1\nline2"))
    w.close()
    lines = (tmp_path / "journeys-2024-05-01.jsonl").read_bytes().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["caller_name"] == "line1\nline2"
    assert Journey.from_dict(json.loads(lines[0])).call_id == "c1"


def test_a_file_with_an_older_header_is_set_aside_so_rows_match_their_header(tmp_path):
    at = 1_714_557_600.0
    rf = RotatingFile(tmp_path, "journeys", ".csv", header=b"a,b\n", tz=UTC)
    rf.write(b"1,2\n", at)
    rf.close()
    [path] = list(tmp_path.iterdir())
    newer = RotatingFile(tmp_path, "journeys", ".csv", header=b"a,b,c\n", tz=UTC)
    newer.write(b"1,2,3\n", at)
    newer.close()
    assert path.read_bytes() == b"a,b,c\n1,2,3\n"
    assert path.with_name(path.name + ".old-1").read_bytes() == b"a,b\n1,2\n", "nothing lost"
    same = RotatingFile(tmp_path, "journeys", ".csv", header=b"a,b,c\n", tz=UTC)
    same.write(b"4,5,6\n", at)
    same.close()
    assert path.read_bytes() == b"a,b,c\n1,2,3\n4,5,6\n", "a matching header is appended to"
