"""``callcenterd report``: KPIs from the CDR directory's JSON Lines files.

    callcenterd report --from 2024-05-01 --to 2024-05-07 --by queue
    callcenterd report --from 2024-05-01T08:00 --to 2024-05-01T18:00 --by interval --csv -

Times without an offset are local time (``--utc``: UTC); ``Z`` or ``+02:00``
is honoured.  A bare date in ``--to`` includes that whole day.  A journey is
in the window when its first enqueue time (its start time if it never
queued) is in ``[from, to)``.  Exit status: 0 ok, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import fields
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from callcenterd.cdr.jsonl_writer import AGENT_EVENTS_STEM, JOURNEYS_STEM, parse_lines
from callcenterd.cdr.rotating import read_tail_lines
from callcenterd.core.journeys.record import Journey
from callcenterd.core.kpis import AgentEvent, KpiRow, KpiSettings, compute_kpis

DEFAULT_CDR_DIR = "/var/lib/callcenterd/cdr"
EXIT_OK, EXIT_USAGE = 0, 2
_READ_ALL = 1 << 62


class ReportError(Exception):
    """Bad usage or unreadable input: printed, exit status 2."""


# ------------------------------------------------------------------- args
def add_report_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--from", dest="from_", required=True, metavar="WHEN",
                        help="start, YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time unless --utc or an offset)")
    parser.add_argument("--to", required=True, metavar="WHEN",
                        help="end (exclusive); a bare date includes that whole day")
    parser.add_argument("--by", choices=("queue", "agent", "interval"), default="queue")
    parser.add_argument("--interval", type=int, choices=(15, 30, 60), default=None,
                        help="minutes per row with --by interval (default: config kpi.interval_minutes or 15)")
    parser.add_argument("--csv", metavar="FILE", default=None, help="write CSV to FILE ('-' for stdout)")
    parser.add_argument("--dir", metavar="CDRDIR", default=None, help="CDR directory (default: config cdr.directory)")
    parser.add_argument("-c", "--config", metavar="CONFIG", default=None,
                        help="callcenterd.yaml: CDR directory, service levels, short-abandon threshold")
    parser.add_argument("--utc", action="store_true", help="read and print times in UTC instead of local time")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_report_arguments(argparse.ArgumentParser(prog="callcenterd report"))
    return run_report(parser.parse_args(argv))


def run_report(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Compute and print (or write) the report; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        tz: tzinfo | None = timezone.utc if args.utc else None
        start = parse_when(args.from_, tz, option="--from")
        end = parse_when(args.to, tz, option="--to", end_of_day=True)
        if start >= end:
            raise ReportError(f"--from ({args.from_}) must be before --to ({args.to})")
        settings, config_dir = _settings(args)
        directory = Path(args.dir or config_dir or DEFAULT_CDR_DIR)
        if not directory.is_dir():
            raise ReportError(f"CDR directory {directory} does not exist (use --dir or -c CONFIG)")
        journeys = list(load_journeys(directory, start.timestamp(), end.timestamp(), tz))
        events = list(load_agent_events(directory, start.timestamp(), end.timestamp(), tz)) if args.by == "agent" else []
        # Agent states run to the end of the window; never past the last thing
        # recorded (a report of today must not count the rest of the day as
        # idle, logged-in time).
        last_seen = max([e.at for e in events] + [j.ended_at or 0.0 for j in journeys], default=end.timestamp())
        window = (start.timestamp(), min(end.timestamp(), last_seen))
        rows = compute_kpis(journeys, args.by, settings, agent_events=events, window=window, tz=tz)
        total = None if args.by == "agent" else compute_kpis(journeys, "total", settings, tz=tz)
        if args.csv:
            _write_csv(args.csv, rows + (total or []), out)
        else:
            out.write(format_table(rows, total[0] if total else None, args.by))
            out.write(f"{len(journeys)} calls, {start.isoformat()} .. {end.isoformat()}, {directory}\n")
    except ReportError as exc:
        err.write(f"callcenterd report: error: {exc}\n")
        return EXIT_USAGE
    return EXIT_OK


def parse_when(text: str, tz: tzinfo | None, *, option: str, end_of_day: bool = False) -> datetime:
    """'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]' -> aware datetime."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day)
            if end_of_day:
                moment += timedelta(days=1)
        elif len(value) >= 16 and value[10] in "T ":
            moment = datetime.fromisoformat(value)
        else:
            raise ValueError
    except ValueError:
        raise ReportError(f"{option} {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment


def _settings(args: argparse.Namespace) -> tuple[KpiSettings, str | None]:
    interval = args.interval
    if not args.config:
        return KpiSettings(interval_minutes=interval or 15), None
    from callcenterd.config import ConfigError, load_config  # the CLI path only

    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as exc:
        raise ReportError(f"config {args.config}: {exc}") from None
    kpi = config.kpi
    settings = KpiSettings(
        queue_service_level_s={name: float(q.service_level) for name, q in config.queues.items()},
        short_abandon_s=float(kpi.short_abandon),
        sl_denominator=kpi.service_level_denominator,
        interval_minutes=interval or kpi.interval_minutes,
    )
    return settings, config.cdr.directory


# ------------------------------------------------------------------ input
def _candidate_files(directory: Path, stem: str, start: float, end: float, tz) -> list[Path]:
    """Dated files from the day before ``start`` to the day after ``end``, plus size-rotated ones."""
    first = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    paths = []
    day = first
    while day <= last:
        p = directory / f"{stem}-{day.isoformat()}.jsonl"
        if p.exists():
            paths.append(p)
        day += timedelta(days=1)
    paths += sorted(directory.glob(f"{stem}.jsonl.*")) + [p for p in [directory / f"{stem}.jsonl"] if p.exists()]
    return paths


def load_journeys(directory: Path, start: float, end: float, tz: tzinfo | None = None) -> Iterator[Journey]:
    """Journeys whose first enqueue (else start) is in [start, end), each call_id once."""
    seen: set[str] = set()
    for path in _candidate_files(directory, JOURNEYS_STEM, start, end, tz):
        for obj in parse_lines(read_tail_lines(path, _READ_ALL)):
            try:
                journey = Journey.from_dict(obj)
            except (TypeError, ValueError):
                continue  # a line from a newer/older format we cannot read
            at = journey.enqueued_at if journey.enqueued_at is not None else journey.started_at
            if start <= at < end and journey.call_id not in seen:
                seen.add(journey.call_id)
                yield journey


def load_agent_events(directory: Path, start: float, end: float, tz: tzinfo | None = None) -> Iterator[AgentEvent]:
    for path in _candidate_files(directory, AGENT_EVENTS_STEM, start, end, tz):
        for obj in parse_lines(read_tail_lines(path, _READ_ALL)):
            try:
                at, agent, state = float(obj["at"]), str(obj["agent"]), str(obj["state"])
            except (KeyError, TypeError, ValueError):
                continue
            if at < end:
                extra = obj.get("extra") if isinstance(obj.get("extra"), dict) else {}
                yield AgentEvent(at, agent, state, str(extra.get("call_id", "")))


# ----------------------------------------------------------------- output
_COLUMNS = {
    # header, attribute, groupings it is shown for
    "queue": [("offered", "offered"), ("answered", "answered"), ("abandoned", "abandoned"),
              ("short", "short_abandoned"), ("timeout", "timed_out"), ("empty", "exited_empty"),
              ("rejected", "rejected"), ("ASA s", "asa_s"), ("AHT s", "aht_s"), ("SL %", "service_level_pct"),
              ("abandon %", "abandon_rate_pct"), ("est. MAE s", "estimate_mae_s"),
              ("est. bias s", "estimate_bias_s"), ("naive MAE s", "naive_mae_s"), ("naive bias s", "naive_bias_s")],
    "agent": [("offered", "offered"), ("answered", "answered"), ("no answer", "ring_no_answer"),
              ("ASA s", "asa_s"), ("AHT s", "aht_s"), ("occupancy %", "occupancy_pct")],
}
_COLUMNS["interval"] = _COLUMNS["queue"]
_KEY_HEADER = {"queue": "queue", "agent": "agent", "interval": "interval"}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_table(rows: list[KpiRow], total: KpiRow | None, by: str) -> str:
    """An aligned plain-text table (text left, numbers right)."""
    cols = _COLUMNS[by]
    header = [_KEY_HEADER[by]] + [h for h, _ in cols]
    body = [[r.key] + [_cell(getattr(r, a)) for _, a in cols] for r in rows]
    if total is not None:
        body.append(["TOTAL"] + [_cell(getattr(total, a)) for _, a in cols])
    if not rows:
        return "no calls in that period\n"
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [fmt(header), rule] + [fmt(line) for line in body[: len(rows)]]
    if total is not None:
        lines += [rule, fmt(body[-1])]
    return "\n".join(lines) + "\n"


def _write_csv(target: str, rows: list[KpiRow], stdout: TextIO) -> None:
    names = [f.name for f in fields(KpiRow)]
    try:
        fh = stdout if target == "-" else open(target, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror}") from None
    try:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if getattr(row, n) is None else getattr(row, n) for n in names])
    finally:
        if fh is not stdout:
            fh.close()


if __name__ == "__main__":  # python -m callcenterd.report ...
    sys.exit(main())
