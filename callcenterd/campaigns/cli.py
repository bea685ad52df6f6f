"""``callcenterd campaign load CAMPAIGN FILE.csv [--skip-bad] [--errors FILE]``.

The glue between the command line, the campaign config, the importer and
the store.  The store is injected (``sink`` and ``existing``), so the
command runs the same against the SQLite store and an in-memory list.

Exit codes: 0 imported, 1 nothing imported (bad rows without --skip-bad,
or an unusable file), 2 configuration or usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Container, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callcenterd.config.campaigns import CampaignConfig

from callcenterd.campaigns.dnc import read_dnc_files
from callcenterd.campaigns.importer import (
    Existing,
    ImportResult,
    LeadSink,
    ListError,
    import_leads,
)

__all__ = ["add_load_arguments", "default_errors_path", "run_campaign_load"]

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """CAMPAIGN FILE --skip-bad --errors (the caller adds -c/--config)."""
    parser.add_argument("campaign", metavar="CAMPAIGN", help="campaign name (config/campaigns/NAME.yaml)")
    parser.add_argument("file", metavar="FILE.csv", type=Path, help="the call list")
    parser.add_argument(
        "--skip-bad", action="store_true",
        help="import the good rows even if some are bad (default: all or nothing)",
    )
    parser.add_argument(
        "--errors", metavar="FILE", type=Path, default=None,
        help="per-row error report (CSV: line, column, reason); default FILE.errors.csv beside the list",
    )


def default_errors_path(csv_path: Path) -> Path:
    return csv_path.parent / f"{csv_path.stem}.errors.csv"


def run_campaign_load(
    args: argparse.Namespace,
    *,
    sink: LeadSink,
    existing: Existing = frozenset(),
    internal_dnc: Container[str] = frozenset(),
    campaigns: Mapping[str, CampaignConfig] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command: ``args`` has config, campaign, file, skip_bad, errors.

    ``sink(new, merged)`` stores leads (see ``importer.LeadSink``); call it
    inside one store transaction for all-or-nothing against store failures
    too.  ``existing``: the campaign's numbers (container, or a function of
    a batch of numbers).  ``internal_dnc``: the store's DNC, added to the
    campaign's DNC files.
    """
    from callcenterd.config import ConfigError, load_config
    from callcenterd.config.campaigns import campaigns_dir, load_campaigns

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if campaigns is None:  # the caller did not load them (``campaigns``: already validated)
        try:
            config = load_config(args.config)
            campaigns = load_campaigns(campaigns_dir(args.config), config)
        except ConfigError as exc:
            for message in exc.messages:
                print(message, file=err)
            return EXIT_CONFIG
    campaign = campaigns.get(args.campaign)
    if campaign is None:
        where = getattr(args, "campaigns", None) or campaigns_dir(args.config)
        known = ", ".join(sorted(campaigns)) or f"none in {where}"
        print(f"unknown campaign {args.campaign!r} (campaigns: {known})", file=err)
        return EXIT_CONFIG
    path = Path(args.file)
    if not path.is_file():
        print(f"{path}: no such file", file=err)
        return EXIT_CONFIG
    try:
        dnc = read_dnc_files(campaign)
    except ListError as exc:
        print(f"{exc} (DNC file of campaign {args.campaign})", file=err)
        return EXIT_CONFIG
    if internal_dnc:
        dnc = _Union(dnc, internal_dnc)

    errors_path = args.errors or default_errors_path(path)
    bar = _ProgressBar(err) if _isatty(err) else None
    try:
        result = import_leads(
            path, campaign, sink, existing=existing, dnc=dnc, skip_bad=args.skip_bad,
            errors_path=errors_path, progress=bar,
        )
    except ListError as exc:
        print(str(exc), file=err)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=err)
        return EXIT_FAILURE
    finally:
        if bar is not None:
            bar.close()
    if result.errors_file is None and args.errors is None and errors_path.exists():
        errors_path.unlink()  # our own report of an earlier run of this list: stale now
    _summary(result, args.campaign, out, err)
    return EXIT_OK if result.committed else EXIT_FAILURE


def _summary(result: ImportResult, campaign: str, out: IO[str], err: IO[str]) -> None:
    print(
        f"{result.path}: {result.read} rows read ({result.encoding}): {result.imported} new leads, "
        f"{result.merged} already in campaign {campaign} (updated), {result.duplicates_in_file} duplicates "
        f"in the file, {result.dnc_filtered} on a DNC list, {result.bad} bad",
        file=out,
    )
    for error in result.errors[:10]:
        column = f" {error.column}:" if error.column else ""
        print(f"{result.path}:{error.line}:{column} {error.reason}", file=err)
    if result.bad > 10:
        print(f"... and {result.bad - 10} more", file=err)
    if result.errors_file is not None:
        print(f"row errors written to {result.errors_file}", file=err)
    if not result.committed:
        print(
            f"nothing imported: {result.bad} bad rows (all or nothing; --skip-bad imports the good rows)",
            file=err,
        )


class _Union:
    """Membership in either of two containers, without copying them."""

    def __init__(self, a: Container[str], b: Container[str]) -> None:
        self.a, self.b = a, b

    def __contains__(self, item: object) -> bool:
        return item in self.a or item in self.b


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _ProgressBar:
    """tqdm on stderr: bytes while reading, leads while storing."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.bar: Any = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            if phase == "read":
                self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading", file=self.stream)
            else:
                self.bar = tqdm(total=total, unit=" leads", desc="storing", file=self.stream)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
