"""Shared fixtures of the API tests."""

import argparse
import asyncio
import contextlib
import threading

import pytest

from callcenterd.api.cli_commands import register
from callcenterd.api.client import TOKEN_ENV
from callcenterd.api.http import ApiServer, build_app

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


@contextlib.contextmanager
def api_in_thread(control, campaigns=None):
    """Serve the API on 127.0.0.1:0 on its own loop in a thread, as the
    daemon would run it; yields its base URL (the CLI is synchronous)."""
    loop = asyncio.new_event_loop()
    api = ApiServer(build_app(control, TOKEN, campaigns), "127.0.0.1", 0)
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(api.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield api.url
    finally:
        asyncio.run_coroutine_threadsafe(api.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
