"""`callcenterd report`: reads JSONL journeys, prints KPIs, clear errors (exit 2)."""

from __future__ import annotations

import csv
import io
from datetime import timezone

import pytest

from callcenterd.cdr.jsonl_writer import JsonlAgentEventWriter, JsonlJourneyWriter
from callcenterd.core import facts as f
from callcenterd.core.journeys import Journey, QueueSegment
from callcenterd.report import main, parse_when, run_report, add_report_arguments

UTC = timezone.utc
T = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC


def answered(call_id, enq, hold, talk, queue="sales", agent="1001") -> Journey:
    return Journey(
        call_id=call_id, started_at=enq, enqueued_at=enq, queue=queue, final_queue=queue,
        answered_at=enq + hold, hold_s=hold, talk_s=talk, ended_at=enq + hold + talk,
        agent=agent, outcome="answered",
        queues=[QueueSegment(queue, enq, left_at=enq + hold, result="answered")],
    )


def abandoned(call_id, enq, wait, queue="sales") -> Journey:
    return Journey(
        call_id=call_id, started_at=enq, enqueued_at=enq, queue=queue, final_queue=queue,
        wait_actual=wait, ended_at=enq + wait, outcome="abandoned",
        queues=[QueueSegment(queue, enq, left_at=enq + wait, result="abandoned")],
    )


@pytest.fixture
def cdr_dir(tmp_path):
    w = JsonlJourneyWriter(tmp_path, tz=UTC)
    w.write(answered("a1", T, 10, 100))
    w.write(answered("a2", T + 60, 30, 200))
    w.write(abandoned("x1", T + 120, 40))
    w.write(answered("s1", T + 180, 5, 50, queue="support", agent="1002"))
    w.write(answered("late", T + 86_400 * 3, 1, 1))  # outside the window
    w.write(answered("ends-next-day", T + 13.9 * 3600, 10, 3600))  # 23:54 -> file of 05-02
    w.close()
    ev = JsonlAgentEventWriter(tmp_path, tz=UTC)
    ev.write(f.AgentStateChanged(T, "1001", "available"))
    ev.write(f.AgentStateChanged(T + 10, "1001", "on-call"))
    ev.write(f.AgentStateChanged(T + 110, "1001", "available"))
    ev.write(f.AgentStateChanged(T + 210, "1001", "logged-out"))
    ev.close()
    return tmp_path


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    parser = add_report_arguments(__import__("argparse").ArgumentParser())
    code = run_report(parser.parse_args(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_table_by_queue(cdr_dir):
    code, out, err = run(["--from", "2024-05-01", "--to", "2024-05-01", "--utc", "--dir", str(cdr_dir)])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["queue", "offered", "answered", "abandoned", "short", "timeout", "empty",
                                "rejected", "ASA", "s", "AHT", "s", "SL", "%", "abandon", "%", "est.", "MAE", "s",
                                "est.", "bias", "s", "naive", "MAE", "s", "naive", "bias", "s"]
    sales = lines[2].split()
    # 3 offered, 2 answered, 1 abandoned; 'ends-next-day' enqueued 23:54 on 05-01 also counts
    assert sales[:4] == ["sales", "4", "3", "1"]
    support = lines[3].split()
    assert support[:3] == ["support", "1", "1"] and support[8] == "5.0"  # ASA
    assert lines[-2].split()[:3] == ["TOTAL", "5", "4"]
    # columns are aligned: every row has the same width up to the last column
    assert len({len(line) for line in lines[:4]}) == 1


def test_csv_output_to_stdout_has_hand_computed_figures(cdr_dir):
    code, out, _ = run(["--from", "2024-05-01T10:00", "--to", "2024-05-01T11:00", "--utc",
                        "--dir", str(cdr_dir), "--csv", "-"])
    assert code == 0
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"sales", "support", "total"}
    assert rows["sales"]["asa_s"] == "20.0"  # (10 + 30) / 2
    assert rows["sales"]["abandon_rate_pct"] == "33.33"  # 1 / 3
    assert rows["sales"]["service_level_pct"] == "33.33"  # a1 within 20 s of 3 offered
    assert rows["total"]["offered"] == "4"


def test_by_agent_reads_agent_events_for_occupancy(cdr_dir, tmp_path):
    target = tmp_path / "agents.csv"
    code, _, _ = run(["--from", "2024-05-01T10:00Z", "--to", "2024-05-01T10:05Z",
                      "--dir", str(cdr_dir), "--by", "agent", "--csv", str(target)])
    assert code == 0
    rows = {r["key"]: r for r in csv.DictReader(target.open())}
    assert rows["1001"]["occupancy_pct"] == "47.62"  # 100 s on-call / 210 s logged in
    assert rows["1001"]["aht_s"] == "150.0"


def test_by_interval(cdr_dir):
    code, out, _ = run(["--from", "2024-05-01", "--to", "2024-05-02", "--utc", "--dir", str(cdr_dir),
                        "--by", "interval", "--interval", "60", "--csv", "-"])
    assert code == 0
    keys = [r["key"] for r in csv.DictReader(io.StringIO(out))]
    assert keys == ["2024-05-01 10:00", "2024-05-01 23:00", "total"]


@pytest.mark.parametrize("argv, message", [
    (["--from", "2024-13-01", "--to", "2024-05-02"], "--from '2024-13-01': expected YYYY-MM-DD"),
    (["--from", "yesterday", "--to", "2024-05-02"], "expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"),
    (["--from", "2024-05-03", "--to", "2024-05-02"], "must be before --to"),
])
def test_bad_dates_exit_2(cdr_dir, argv, message):
    code, out, err = run(argv + ["--dir", str(cdr_dir)])
    assert code == 2 and message in err and out == ""


def test_missing_directory_exits_2(tmp_path):
    code, _, err = run(["--from", "2024-05-01", "--to", "2024-05-02", "--dir", str(tmp_path / "nope")])
    assert code == 2 and "does not exist" in err


def test_bad_config_exits_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("pbx: [\n")
    code, _, err = run(["--from", "2024-05-01", "--to", "2024-05-02", "-c", str(bad)])
    assert code == 2 and "config" in err


def test_empty_period_says_so(cdr_dir):
    code, out, _ = run(["--from", "2020-01-01", "--to", "2020-01-02", "--dir", str(cdr_dir)])
    assert code == 0 and out.startswith("no calls in that period")


def test_parse_when_is_explicit_about_zones():
    assert parse_when("2024-05-01", UTC, option="--from").timestamp() == T - 10 * 3600
    assert parse_when("2024-05-01", UTC, option="--to", end_of_day=True).timestamp() == T + 14 * 3600
    assert parse_when("2024-05-01T12:00+02:00", None, option="--from").timestamp() == T
    assert parse_when("2024-05-01T10:00", UTC, option="--from").timestamp() == T


def test_main_entry_point(cdr_dir, capsys):
    assert main(["--from", "2024-05-01", "--to", "2024-05-02", "--dir", str(cdr_dir), "--utc"]) == 0
    assert "sales" in capsys.readouterr().out


def test_report_shows_our_estimate_error_next_to_the_naive_formulas(tmp_path):
    """Both errors come from the journeys: ours from wait_estimate, the naive one from
    position x mean talk / staffed agents at entry."""
    w = JsonlJourneyWriter(tmp_path, tz=UTC)
    for call_id, at, hold, talk, position, estimate in (("e1", T, 10, 100, 1, 12.0), ("e2", T + 60, 30, 300, 2, 26.0)):
        j = answered(call_id, at, hold, talk)
        j.position_at_entry, j.staffed_at_entry, j.wait_estimate = position, 4, estimate
        j.queues[0].position, j.queues[0].staffed, j.queues[0].wait_estimate = position, 4, estimate
        w.write(j)
    w.close()
    code, out, err = run(["--from", "2024-05-01", "--to", "2024-05-01", "--utc", "--dir", str(tmp_path)])
    assert code == 0, err
    sales = out.splitlines()[2].split()
    # ours: errors +2, -4 -> MAE 3, bias -1; naive (mean talk 200, 4 agents): 50 - 10 = +40, 100 - 30 = +70
    assert sales[-4:] == ["3.0", "-1.0", "55.0", "55.0"]
