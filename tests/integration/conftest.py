"""The real sandbox Asterisk 22 (Debian sid packages in a chroot) for the
integration tests.

``asterisk``: one started SandboxAsterisk for the whole session, on free
loopback ports (so two sessions, or the demo on 5038, can run side by side).
When the host cannot run it (not root, no debootstrap, ...) its tests are
skipped with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from callcenterd.sandbox.asterisk import (
    AmiCredentials,
    SandboxAsterisk,
    SandboxError,
    free_tcp_port,
    sandbox_unavailable_reason,
)


def _under_ci() -> bool:
    return os.environ.get("CI") == "true"


def _unavailable(reason: str) -> NoReturn:
    if _under_ci():
        pytest.fail(f"sandbox Asterisk unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"sandbox Asterisk unavailable: {reason}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever uses the real Asterisk carries the ``asterisk`` marker
    (``-m 'not asterisk'`` deselects it)."""
    for item in items:
        if "asterisk" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[SandboxAsterisk]:
    """A started sandbox Asterisk, stopped at the end of the session."""
    reason = sandbox_unavailable_reason()
    if reason:
        _unavailable(reason)
    sandbox = SandboxAsterisk(ami_port=free_tcp_port(), agi_port=free_tcp_port())
    try:
        sandbox.provision()  # network + debootstrap: a host problem, not a bug
    except SandboxError as exc:
        _unavailable(f"cannot provision {sandbox.root}: {exc}")
    try:
        sandbox.start()
    except SandboxError as exc:
        pytest.fail(f"sandbox Asterisk did not start: {exc}", pytrace=False)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def ami_credentials(asterisk: SandboxAsterisk) -> AmiCredentials:
    """host, port, user, secret of the running sandbox's AMI account
    (restarts the sandbox first if an earlier test left it stopped)."""
    if not asterisk.is_running():
        asterisk.start()
    return asterisk.ami_credentials()
