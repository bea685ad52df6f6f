"""The ``callcenterd`` command line.

Each subcommand is one ``register_<name>(subparsers)`` function that adds its
parser and sets ``handler=`` to a function ``(args) -> int`` (the exit code).
To add one (``run``, ``report``, ``agent ...``, ``demo``), write its register
function, in this module or in the module that implements it, and add it to
:data:`SUBCOMMANDS`; nothing else changes.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from callcenterd import __version__

__all__ = ["main", "build_parser", "SUBCOMMANDS", "DEFAULT_CONFIG", "EXIT_OK", "EXIT_CONFIG"]

DEFAULT_CONFIG = "/etc/callcenterd/callcenterd.yaml"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # also argparse's exit code for usage errors

Subparsers = Any  # argparse._SubParsersAction is private


def add_config_option(parser: argparse.ArgumentParser, *, campaigns: bool = False) -> None:
    """``-c/--config FILE``, shared by every subcommand that reads the config
    (and ``--campaigns DIR`` for those that read the campaign files)."""
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"main configuration file; conf.d/*.yaml beside it is applied too (default {DEFAULT_CONFIG})",
    )
    if campaigns:
        parser.add_argument(
            "--campaigns", metavar="DIR", default=None,
            help="directory of campaign files, one *.yaml per campaign (default: campaigns/ beside the config)",
        )


def load_with_campaigns(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The main configuration and its campaigns; ConfigError lists every problem."""
    from callcenterd.config import load_config
    from callcenterd.config.campaigns import campaigns_dir, load_campaigns

    config = load_config(args.config)
    directory = args.campaigns or campaigns_dir(args.config)
    return config, load_campaigns(Path(directory), config)


# --------------------------------------------------------------------- check
def register_check(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate the configuration and exit",
        description="Validate callcenterd.yaml and conf.d/*.yaml; print every error "
        "as file:line: key: problem.",
    )
    add_config_option(parser, campaigns=True)
    parser.add_argument(
        "--secrets",
        action="store_true",
        help="also resolve secret_env / secret_file (run it as the service user)",
    )
    parser.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from callcenterd.config import ConfigError

    try:
        config, campaigns = load_with_campaigns(args)
        if args.secrets:
            _resolve_all_secrets(config)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        noun = "error" if len(exc.messages) == 1 else "errors"
        print(f"{args.config}: {len(exc.messages)} {noun}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"OK: {len(config.queues)} queues, {len(config.agents)} agents, {len(config.pbx)} pbx nodes,"
          f" {len(campaigns)} campaigns")
    return EXIT_OK


def _resolve_all_secrets(config: Any) -> None:
    """Resolve every configured secret, collecting all failures (never the values)."""
    from callcenterd.config import ConfigError
    from callcenterd.config.models import AsteriskNode

    resolvers: list[tuple[str, Callable[[], object]]] = []
    for name, node in config.pbx.items():
        if isinstance(node, AsteriskNode):
            resolvers.append((f"pbx.{name}.ami", node.ami.resolve_secret))
        else:
            resolvers.append((f"pbx.{name}.esl", node.esl.resolve_password))
    if config.api.has_token:
        resolvers.append(("api", config.api.resolve_token))
    if config.store.backend == "postgresql":
        resolvers.append(("store", config.store.resolve_dsn))
    problems: list[str] = []
    for where, resolve in resolvers:
        try:
            resolve()
        except ConfigError as exc:
            problems += [f"{where}: {m}" for m in exc.messages]
    if problems:
        raise ConfigError(problems)


# ----------------------------------------------------------------------- run
def register_run(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon (systemd: Type=notify)",
        description="Connect to the configured PBX nodes and serve calls until SIGTERM.",
    )
    add_config_option(parser, campaigns=True)
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from callcenterd.config import ConfigError
    from callcenterd.logs import configure_logging
    from callcenterd.wiring import serve

    try:
        config, campaigns = load_with_campaigns(args)
        configure_logging(config.logging.level, config.logging.format)
        return asyncio.run(serve(config, campaigns))
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        return EXIT_CONFIG


# -------------------------------------------------------------------- report
def register_report(subparsers: Subparsers) -> None:
    from callcenterd.report import add_report_arguments, run_report

    parser = subparsers.add_parser(
        "report",
        help="KPIs from the journey files (by queue, agent or interval)",
        description="ASA, AHT, service level, abandon rate and occupancy from the CDR directory.",
    )
    add_report_arguments(parser)
    parser.set_defaults(handler=run_report)


def register_agent_commands(subparsers: Subparsers) -> None:
    from callcenterd.api.cli_commands import register
    from callcenterd.campaigns.cli import add_load_arguments

    campaign_actions = register(subparsers)
    load = campaign_actions.add_parser(
        "load", help="import a call list (CSV) into a campaign",
        description="Validate and import a CSV call list into a campaign's leads. All or nothing unless "
        "--skip-bad; every bad row is reported with its line, column and reason.")
    add_config_option(load, campaigns=True)
    add_load_arguments(load)
    load.set_defaults(func=cmd_campaign_load)


def cmd_campaign_load(args: argparse.Namespace) -> int:
    """``campaign load CAMPAIGN FILE.csv``: straight into the store (the
    daemon, running or not, picks the new leads up at its next refill)."""

    from callcenterd.config import ConfigError

    try:
        config, campaigns = load_with_campaigns(args)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        return EXIT_CONFIG
    if config.store.backend != "sqlite":
        print("callcenterd: campaigns need store.backend: sqlite", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_campaign_load(args, config, campaigns))


async def _campaign_load(args: argparse.Namespace, config: Any, campaigns: dict[str, Any]) -> int:
    from callcenterd.campaigns.cli import run_campaign_load
    from callcenterd.store.campaigns import CampaignStore
    from callcenterd.store.sqlite import SqliteStore

    Path(config.store.path).parent.mkdir(parents=True, exist_ok=True)
    store = await SqliteStore.open(config.store.path)
    try:
        leads = CampaignStore(store)
        loop = asyncio.get_running_loop()
        name = args.campaign
        internal_dnc = await leads.dnc_numbers(name)

        def sink(new: list[Any], merged: list[Any]) -> None:
            # called from the import thread, batch by batch, once the whole
            # file is known to be good (all or nothing)
            asyncio.run_coroutine_threadsafe(leads.merge_leads(name, new + merged), loop).result()

        def existing(batch: Any) -> set[str]:
            return asyncio.run_coroutine_threadsafe(leads.known_phones(name, list(batch)), loop).result()

        return await asyncio.to_thread(run_campaign_load, args, campaigns=campaigns, sink=sink,
                                       existing=existing, internal_dnc=internal_dnc)
    finally:
        await store.close()


def register_demo(subparsers: Subparsers) -> None:
    from callcenterd.demo import register

    register(subparsers)


# -------------------------------------------------------------------- parser
# Subcommand name -> register function.
SUBCOMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "check": register_check,
    "run": register_run,
    "report": register_report,
    "agent": register_agent_commands,  # also agents, queues, waiting
    "demo": register_demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcenterd",
        description="Call-center daemon (ACD, IVR, dialer, CDR) beside Asterisk or FreeSWITCH.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS.values():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # python -m callcenterd.cli
    sys.exit(main())
