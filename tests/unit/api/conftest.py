"""Shared fixtures of the API tests."""

import argparse

import pytest

from callcenterd.api.cli_commands import register
from callcenterd.api.client import TOKEN_ENV

TOKEN = "cli-test-token"


@pytest.fixture
def cli(monkeypatch):
    """Run ``callcenterd <argv>`` (the API commands) in-process; returns the exit code."""
    monkeypatch.delenv("CALLCENTERD_API_URL", raising=False)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    parser = argparse.ArgumentParser(prog="callcenterd")
    register(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    return run
