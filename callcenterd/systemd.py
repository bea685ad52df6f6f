"""sd_notify without libsystemd: readiness, status and the watchdog.

The protocol (sd_notify(3)) is one AF_UNIX datagram of newline-separated
``KEY=VALUE`` assignments to the socket named by ``$NOTIFY_SOCKET``; a
leading ``@`` means the Linux abstract namespace.  Outside systemd the
variable is unset and every call is a cheap no-op returning False.

The watchdog ping is sent from the event loop itself (:func:`watchdog_task`),
so a blocked loop stops the pings and systemd restarts us
(``WatchdogSec=`` in the unit, ``Restart=on-failure``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

__all__ = [
    "notify",
    "notify_ready",
    "notify_reloading",
    "notify_stopping",
    "notify_status",
    "watchdog_interval",
    "watchdog_task",
]


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the service manager.

    Returns True when sent, False when not running under systemd.  Raises
    OSError when the socket is set but unreachable: that is worth a log line.
    """
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # abstract namespace (sd_notify.c does the same)
    elif address[0] != "/":
        return False  # vsock:... (VMs) is not supported; behave as outside systemd
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode("utf-8"))
    return True


def notify_ready(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """READY=1 (Type=notify): the daemon has connected its PBX nodes and listens."""
    return notify(_with_status("READY=1", status), env)


def notify_reloading(env: Mapping[str, str] | None = None) -> bool:
    """RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload (systemd 253) expects;
    send notify_ready() when the reload is done."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", env)


def notify_stopping(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """STOPPING=1: shutdown began (CDR flush, agent legs hung up...)."""
    return notify(_with_status("STOPPING=1", status), env)


def notify_status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """STATUS=...: the one line shown by ``systemctl status``."""
    return notify(_with_status(None, text), env)


def _with_status(state: str | None, status: str | None) -> str:
    lines = [state] if state else []
    if status is not None:
        # A newline would start a new assignment (STATUS=x\nREADY=1).
        if any(ch in status for ch in "\r\n\0"):
            raise ValueError("status text must not contain CR, LF or NUL")
        lines.append(f"STATUS={status}")
    return "\n".join(lines)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog interval in seconds from WATCHDOG_USEC, or None when the
    watchdog is off or meant for another process (WATCHDOG_PID, sd_watchdog_enabled(3))."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000


async def watchdog_task(interval: float, env: Mapping[str, str] | None = None) -> None:
    """Send WATCHDOG=1 every ``interval / 2`` seconds until cancelled.

    ``interval`` is the full watchdog interval (:func:`watchdog_interval`).
    Runs on the event loop on purpose: if the loop stalls, pings stop.
    """
    if interval <= 0:
        raise ValueError("watchdog interval must be positive")
    period = interval / 2
    while True:
        notify("WATCHDOG=1", env)
        await asyncio.sleep(period)
