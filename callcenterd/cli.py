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
import sys
from collections.abc import Callable, Sequence
from typing import Any

from callcenterd import __version__

__all__ = ["main", "build_parser", "SUBCOMMANDS", "DEFAULT_CONFIG", "EXIT_OK", "EXIT_CONFIG"]

DEFAULT_CONFIG = "/etc/callcenterd/callcenterd.yaml"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # also argparse's exit code for usage errors

Subparsers = Any  # argparse._SubParsersAction is private


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``, shared by every subcommand that reads the config."""
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"main configuration file; conf.d/*.yaml beside it is applied too (default {DEFAULT_CONFIG})",
    )


# --------------------------------------------------------------------- check
def register_check(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate the configuration and exit",
        description="Validate callcenterd.yaml and conf.d/*.yaml; print every error "
        "as file:line: key: problem.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--secrets",
        action="store_true",
        help="also resolve secret_env / secret_file (run it as the service user)",
    )
    parser.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from callcenterd.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        if args.secrets:
            _resolve_all_secrets(config)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        noun = "error" if len(exc.messages) == 1 else "errors"
        print(f"{args.config}: {len(exc.messages)} {noun}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"OK: {len(config.queues)} queues, {len(config.agents)} agents, {len(config.pbx)} pbx nodes")
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
    add_config_option(parser)
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from callcenterd.config import ConfigError, load_config
    from callcenterd.logs import configure_logging
    from callcenterd.wiring import serve

    try:
        config = load_config(args.config)
        configure_logging(config.logging.level, config.logging.format)
        return asyncio.run(serve(config))
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

    register(subparsers)


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
