"""Generic test setup only: make ``tests.fakes`` importable however pytest is
launched (``pytest``, ``python -m pytest``, from any directory)."""

import logging
import sys
from pathlib import Path

import pytest
import structlog

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def daemon_logging():
    """For tests that run the daemon's own log setup (configure_logging):
    the root logger and structlog are restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
