"""Logging: structlog in front, stdlib logging behind, one output format.

* JSON lines when the stream is not a TTY (journald, files) or fmt="json";
  colourless console lines on a TTY or with fmt="console".
* Every line has an ISO-8601 UTC timestamp, the level and the logger name.
* Per-call context (call id, queue, agent) is bound with :func:`bind_call`
  through ``structlog.contextvars``, so it follows the asyncio task.
* stdlib loggers (asyncio, aiohttp, ...) go through the same pipeline via
  ``structlog.stdlib.ProcessorFormatter``.
* Keys that look like secrets (secret, password, token, dsn) are masked.
* Tracebacks never show local variables, whatever is installed: structlog's
  defaults do (``dict_tracebacks``, and ``rich``/``better_exceptions`` on the
  console), and a local can be the API token or a PBX password.

Usage::

    configure_logging(level="info", fmt="auto")
    log = get_logger(__name__)
    with bind_call(call_id="1712.42", queue="sales"):
        log.info("caller_queued", position=3)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor

__all__ = ["configure_logging", "bind_call", "get_logger", "redact_secrets", "LEVELS"]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
SECRET_KEYS = frozenset({"secret", "password", "token", "dsn", "authorization"})
_HANDLER_NAME = "callcenterd"  # marks our root handler so reconfiguring replaces it
# Structured tracebacks, but without frame locals (a local may hold a secret).
_DICT_TRACEBACKS_NO_LOCALS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Mask values logged under a secret-looking key (belt and braces: config
    secrets are SecretStr already)."""
    for key in event_dict:
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "**********"
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        redact_secrets,
    ]


def configure_logging(
    level: str = "info", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """(Re)configure structlog and the root stdlib logger to write to ``stream``.

    ``fmt`` is "auto", "json" or "console"; "auto" picks console on a TTY.
    Calling it again replaces the previous handler (tests, SIGHUP reload).
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; expected auto, json or console")
    stream = sys.stderr if stream is None else stream
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        fmt = "console" if isatty is not None and isatty() else "json"

    renderer: Processor
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        final.append(_DICT_TRACEBACKS_NO_LOCALS)
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    final.append(renderer)

    shared = _shared_processors()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=final,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level.lower()])
    # one line per HTTP request (agent API polling) is noise at info level
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level get_logger() must follow a reconfigure.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a stdlib one (``get_logger(__name__)``)."""
    return structlog.stdlib.get_logger(name, **initial)


@contextmanager
def bind_call(
    call_id: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    **extra: Any,
) -> Iterator[MutableMapping[str, Any]]:
    """Bind per-call context to every log line in this task for the block.

    ``None`` values are not bound.  Nested blocks add to (and on exit restore)
    the outer context; asyncio tasks started inside inherit it.
    """
    values = {"call_id": call_id, "queue": queue, "agent": agent, **extra}
    bound = {k: v for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**bound):
        yield structlog.contextvars.get_contextvars()
