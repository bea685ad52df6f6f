"""CLI commands that drive a running daemon through its HTTP API.

    callcenterd agent login 1001
    callcenterd agent pause 1001 --reason lunch
    callcenterd agents | queues | waiting [--json]

Wire with ``register(subparsers)``; each parsed namespace carries ``func``,
which returns the process exit code (0 ok, 1 any error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

from callcenterd.api.client import (
    API_URL_ENV,
    DEFAULT_API_URL,
    DEFAULT_TIMEOUT,
    TOKEN_ENV,
    ApiClient,
    ApiError,
    ApiUnreachable,
    TokenError,
    load_token,
)

AGENT_ACTIONS = ("login", "logout", "pause", "unpause")
_DONE = {"login": "logged in", "logout": "logged out", "pause": "paused", "unpause": "unpaused"}


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``agent``, ``campaign``, ``agents``, ``queues`` and ``waiting`` to a CLI.

    Returns the ``campaign`` action parsers, so that the daemon CLI can add
    ``campaign load`` (it writes the store directly, not through the API)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("API connection")
    group.add_argument("--api", metavar="URL",
                       default=os.environ.get(API_URL_ENV) or DEFAULT_API_URL,
                       help=f"daemon API base URL (default: ${API_URL_ENV} or {DEFAULT_API_URL})")
    group.add_argument("--token-file", metavar="FILE",
                       help=f"file holding the API token (default: ${TOKEN_ENV})")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"give up after this long (default: {DEFAULT_TIMEOUT:g})")

    agent = subparsers.add_parser("agent", help="log an agent in or out, pause or unpause it")
    actions = agent.add_subparsers(dest="agent_action", metavar="ACTION", required=True)
    for action in AGENT_ACTIONS:
        p = actions.add_parser(action, parents=[common], help=f"{action} an agent")
        p.add_argument("agent_id", metavar="AGENT")
        if action == "pause":
            p.add_argument("--reason", required=True,
                           help="pause reason, written to queue_log (max 64 characters)")
        p.set_defaults(func=run_agent_action)

    campaign = subparsers.add_parser("campaign", help="run outbound campaigns; load call lists")
    cactions = campaign.add_subparsers(dest="campaign_action", metavar="ACTION", required=True)
    for action, what in (("start", "start dialling"), ("pause", "stop placing new calls (calls in progress go on)"),
                         ("resume", "dial again after a pause"), ("stop", "stop dialling and empty the hopper")):
        p = cactions.add_parser(action, parents=[common], help=what)
        p.add_argument("campaign", metavar="CAMPAIGN")
        p.set_defaults(func=run_campaign_action)
    p = cactions.add_parser("status", parents=[common], help="a campaign's figures (all campaigns without a name)")
    p.add_argument("campaign", metavar="CAMPAIGN", nargs="?")
    p.add_argument("--json", action="store_true", help="print raw JSON instead of text")
    p.set_defaults(func=run_campaign_status)
    p = cactions.add_parser("dispose", parents=[common], help="record an agent's disposition of an attempt")
    p.add_argument("attempt_id", metavar="ATTEMPT")
    p.add_argument("disposition", metavar="DISPOSITION", help="sale, callback, not-interested, dnc or a custom one")
    p.add_argument("--agent", required=True)
    p.add_argument("--callback-at", metavar="LOCAL_TIME",
                   help="for callback: the lead's local time, e.g. 2026-12-01T10:30")
    p.set_defaults(func=run_disposition)

    for name, what in (("agents", "agents and their state"),
                       ("queues", "queues with waiting callers and agents"),
                       ("waiting", "callers waiting in queues, in order")):
        p = subparsers.add_parser(name, parents=[common], help=f"list {what}")
        p.add_argument("--json", action="store_true", help="print raw JSON instead of a table")
        p.set_defaults(func=run_listing, listing=name)
    return cactions


# ------------------------------------------------------------------ runners
def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.api, load_token(args.token_file), timeout=args.timeout)


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn every expected failure into one line on stderr and exit code 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ApiError as err:
            print(f"callcenterd: {err.message}", file=sys.stderr)
        except (ApiUnreachable, TokenError, ValueError) as err:
            print(f"callcenterd: {err}", file=sys.stderr)
        return 1
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_guard
def run_agent_action(args: argparse.Namespace) -> int:
    """``agent login|logout|pause|unpause AGENT``."""
    client = _client(args)
    if args.agent_action == "pause":
        client.pause(args.agent_id, args.reason)
        print(f"agent {args.agent_id}: paused ({args.reason})")
    else:
        getattr(client, args.agent_action)(args.agent_id)
        print(f"agent {args.agent_id}: {_DONE[args.agent_action]}")
    return 0


@_guard
def run_campaign_action(args: argparse.Namespace) -> int:
    """``campaign start|pause|resume|stop CAMPAIGN``."""
    result = _client(args).campaign_action(args.campaign, args.campaign_action)
    print(f"campaign {args.campaign}: {result.get('state', args.campaign_action)}")
    return 0


@_guard
def run_campaign_status(args: argparse.Namespace) -> int:
    """``campaign status [CAMPAIGN]``."""
    client = _client(args)
    rows = [client.campaign_status(args.campaign)] if args.campaign else client.campaigns()
    if args.json:
        print(json.dumps(rows if not args.campaign else rows[0], indent=2, sort_keys=True))
        return 0
    print("\n\n".join(format_campaign_status(r) for r in rows) if rows else "(no campaigns)")
    return 0


@_guard
def run_disposition(args: argparse.Namespace) -> int:
    """``campaign dispose ATTEMPT DISPOSITION --agent AGENT [--callback-at T]``."""
    _client(args).disposition(args.attempt_id, args.agent, args.disposition, args.callback_at)
    print(f"attempt {args.attempt_id}: {args.disposition}")
    return 0


def _window_text(window: Any) -> str:
    """``{"count", "live_answers", "pct"}`` of one abandonment window."""
    if not isinstance(window, dict) or not isinstance(window.get("pct"), (int, float)):
        return "-"
    return f"{window['pct']:.2f}% ({window.get('count', 0)} of {window.get('live_answers', 0)} live answers)"


def format_campaign_status(row: dict[str, Any]) -> str:
    """A campaign's status as a short report for a campaign manager."""
    lines = [f"campaign {_printable(_text(row.get('campaign')))}: {_printable(_text(row.get('state')))}"
             f" ({_printable(_text(row.get('mode')))})"]
    pairs = [
        ("dialled", row.get("dialled")), ("human answers", row.get("human_answers")),
        ("machines", row.get("machines")), ("connected", row.get("connected")),
        ("abandoned", row.get("abandoned")),
        ("abandoned 24 h", _window_text(row.get("abandoned_24h"))),
        ("abandoned 30 days", _window_text(row.get("abandoned_30d"))),
        ("abandon cap", f"{row['abandon_cap_pct']}%" if "abandon_cap_pct" in row else "-"),
        ("lines up", row.get("in_flight")), ("remaining leads", row.get("remaining")),
        ("time to exhaust", format_duration(row.get("eta_seconds"))),
    ]
    width = max(len(k) for k, _ in pairs)
    lines += [f"  {k.ljust(width)}  {_printable(_text(v))}" for k, v in pairs]
    for title in ("outcomes", "dispositions"):
        counts = row.get(title) or {}
        if isinstance(counts, dict) and counts:
            lines.append(f"  {title}:")
            lines += [f"    {_printable(str(k))}: {_printable(_text(v))}" for k, v in sorted(counts.items())]
    return "\n".join(lines)


@_guard
def run_listing(args: argparse.Namespace) -> int:
    """``agents``, ``queues``, ``waiting``."""
    rows = getattr(_client(args), args.listing)()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print(format_table(args.listing, rows, now=time.time()))
    return 0


# ------------------------------------------------------------------ tables
def format_duration(seconds: Any) -> str:
    """``75`` → ``1:15``, ``3725`` → ``1:02:05``; unknown → ``-``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds != seconds:
        return "-"
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _waited(row: dict[str, Any], now: float) -> Any:
    if "waited" in row:
        return row["waited"]
    enq = row.get("enqueued_at")
    return now - enq if isinstance(enq, (int, float)) else None


def _since(row: dict[str, Any], now: float) -> Any:
    since = row.get("since")
    return now - since if isinstance(since, (int, float)) else None


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


# (header, cell function, right-aligned?)
Column = tuple[str, Callable[[dict[str, Any], float], str], bool]

COLUMNS: dict[str, Sequence[Column]] = {
    "agents": (
        ("AGENT", lambda r, now: _text(r.get("agent")), False),
        ("STATE", lambda r, now: _text(r.get("state")), False),
        ("REASON", lambda r, now: _text(r.get("reason")), False),
        ("FOR", lambda r, now: format_duration(_since(r, now)), True),
        ("QUEUES", lambda r, now: _text(r.get("queues")), False),
    ),
    "queues": (
        ("QUEUE", lambda r, now: _text(r.get("queue")), False),
        ("WAITING", lambda r, now: _text(r.get("waiting")), True),
        ("AVAILABLE", lambda r, now: _text(r.get("available")), True),
        ("LOGGED IN", lambda r, now: _text(r.get("staffed")), True),  # the API calls it staffed
        ("LONGEST WAIT", lambda r, now: format_duration(r.get("longest_wait")), True),
    ),
    "waiting": (
        ("POS", lambda r, now: _text(r.get("position")), True),
        ("CALL ID", lambda r, now: _text(r.get("call_id")), False),
        ("QUEUE", lambda r, now: _text(r.get("queue")), False),
        ("WAITED", lambda r, now: format_duration(_waited(r, now)), True),
        ("EST. WAIT", lambda r, now: format_duration(r.get("estimated_wait")), True),
        ("PRIORITY", lambda r, now: _text(r.get("priority")), True),
    ),
}

_EMPTY = {"agents": "no agents", "queues": "no queues", "waiting": "no callers waiting"}


def format_table(listing: str, rows: Sequence[dict[str, Any]], now: float) -> str:
    """A plain aligned table, ``now`` (epoch seconds) for the duration columns."""
    if not rows:
        return f"({_EMPTY[listing]})"
    columns = COLUMNS[listing]
    cells = [[_printable(cell(row, now)) for _, cell, _ in columns] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in cells))
              for i, (h, _, _) in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if right else v.ljust(w)
                 for v, w, (_, _, right) in zip(values, widths, columns)]
        return "  ".join(parts).rstrip()

    return "\n".join([line([h for h, _, _ in columns]), *(line(c) for c in cells)])


def _printable(text: str) -> str:
    # Caller names and reasons come from outside: no terminal escapes on screen.
    return "".join(ch if ch.isprintable() else "?" for ch in text)
