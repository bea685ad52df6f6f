"""The sandbox Asterisk itself: real Asterisk 22, the modules and dialplan
callcenterd relies on, AMI on loopback, CDRs, restart, a second instance.

The first group needs no Asterisk: mirror discovery and the cache's safety
rules (never wipe a directory that is not a half-made debootstrap).
"""

from __future__ import annotations

import csv
import random
import re
import socket
import time
from pathlib import Path

import pytest

from callcenterd.pbx.api import UnsafeValue
from callcenterd.sandbox import asterisk as sandbox_mod
from callcenterd.sandbox.asterisk import (
    CONF_TEMPLATES,
    SandboxAsterisk,
    SandboxError,
    debian_mirror,
    free_tcp_port,
)

CDR_FIELDS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel",
              "lastapp", "lastdata", "start", "answer", "end", "duration", "billsec",
              "disposition", "amaflags", "uniqueid", "userfield")


# ------------------------------------------------------------ no Asterisk needed
def test_mirror_from_deb822_skips_security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sandbox_mod.MIRROR_ENV, raising=False)
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "# comment\nTypes: deb deb-src\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert debian_mirror((sources,)) == "http://mirror.example/debian"


def test_mirror_from_sources_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sandbox_mod.MIRROR_ENV, raising=False)
    lst = tmp_path / "sources.list"
    lst.write_text("# deb http://old.example/debian bookworm main\n"
                   "deb http://security.example/debian-security bookworm-security main\n"
                   "deb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert debian_mirror((tmp_path / "missing.sources", lst)) == "http://mirror.example/debian"
    monkeypatch.setenv(sandbox_mod.MIRROR_ENV, "http://override.example/debian")
    assert debian_mirror((lst,)) == "http://override.example/debian"


def test_half_made_debootstrap_is_wiped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "debootstrap").mkdir(parents=True)  # debootstrap removes it when done
    (root / "etc").mkdir()
    (root / "etc" / "half").write_text("x")
    assert SandboxAsterisk(root)._needs_debootstrap() is True
    assert not root.exists()


def test_unknown_directory_is_never_wiped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "precious.txt").write_text("keep me")
    with pytest.raises(SandboxError, match="refusing to delete"):
        SandboxAsterisk(root)._needs_debootstrap()
    assert (root / "precious.txt").read_text() == "keep me"


def test_config_values_cannot_inject_config_lines() -> None:
    with pytest.raises(UnsafeValue):
        SandboxAsterisk(ami_secret="s3cret\n[evil]")
    with pytest.raises(ValueError, match="without blanks"):
        SandboxAsterisk(ami_user="callcenterd;read=all")
    with pytest.raises(ValueError, match="plain file name"):
        SandboxAsterisk(extra_conf={"../asterisk.conf": ""})


def test_product_ami_classes_are_used(tmp_path: Path) -> None:
    (tmp_path / "manager_callcenterd.conf").write_text(
        "[callcenterd]\nsecret = x ; not used\nread => system,call ; events\nwrite = call\n")
    sandbox = SandboxAsterisk(dialplan_dir=tmp_path)
    assert (sandbox.ami_read, sandbox.ami_write) == ("system,call", "call")
    assert SandboxAsterisk(dialplan_dir=tmp_path, ami_read="all").ami_read == "all"


# ------------------------------------------------------------ real Asterisk
def _loaded_modules(asterisk: SandboxAsterisk) -> dict[str, str]:
    status = {}
    for line in asterisk.cli("module show").splitlines():
        match = re.match(r"(\S+\.so)\s.*\s(Running|Not Running|Declined)\s", line)
        if match:
            status[match.group(1)] = match.group(2)
    return status


def test_is_asterisk_22(asterisk: SandboxAsterisk) -> None:
    assert re.match(r"Asterisk 22\.\d+", asterisk.cli("core show version"))


def test_every_configured_module_runs(asterisk: SandboxAsterisk) -> None:
    wanted = re.findall(r"^load\s*=>\s*(\S+\.so)", (CONF_TEMPLATES / "modules.conf").read_text(),
                        re.MULTILINE)
    assert {"app_queue.so", "app_mixmonitor.so", "app_originate.so", "cdr_csv.so",
            "res_agi.so", "app_amd.so", "res_musiconhold.so", "bridge_holding.so"} <= set(wanted)
    running = _loaded_modules(asterisk)
    missing = {name: running.get(name, "absent") for name in wanted if running.get(name) != "Running"}
    assert missing == {}


def _ami_login(host: str, port: int, user: str, secret: str) -> str:
    """Raw AMI Login; returns the first response block."""
    with socket.create_connection((host, port), timeout=5) as sock:
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(1024)
        assert data.startswith(b"Asterisk Call Manager/")
        data = data.split(b"\r\n", 1)[1]
        sock.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode()


def test_ami_login_on_loopback(asterisk: SandboxAsterisk, ami_credentials) -> None:
    creds = ami_credentials
    assert creds.host == "127.0.0.1"
    settings = asterisk.cli("manager show settings")
    assert re.search(rf"TCP Bindaddress:\s+127\.0\.0\.1:{creds.port}\b", settings)
    assert "Response: Success" in _ami_login(creds.host, creds.port, creds.user, creds.secret)
    assert "Authentication failed" in _ami_login(creds.host, creds.port, creds.user, "wrong")
    user = asterisk.cli(f"manager show user {creds.user}")
    read = re.search(r"read perm: (\S+)", user).group(1)
    assert set(read.split(",")) == set(asterisk.ami_read.split(","))
    assert "dialplan" not in read.split(",")  # VarSet/Newexten flood stays off


def test_test_contexts_and_globals(asterisk: SandboxAsterisk) -> None:
    agents = asterisk.cli("dialplan show agents")
    for exten in ("_1XXX", "'2001'", "'2002'", "'2003'", "'2004'", "_3XXX", "_4XXX", "_5XXX", "_6XXX"):
        assert exten in agents
    for context in ("customers", "customer-script", "ivr", "dtmf-sender", "amd-callee",
                    "amd-caller", "inbound"):
        assert f"Context '{context}'" in asterisk.cli(f"dialplan show {context}")
    globals_ = asterisk.cli("dialplan show globals")
    assert f"CC_AGI=127.0.0.1:{asterisk.agi_port}" in globals_
    assert f"CC_AGI_PORT={asterisk.agi_port}" in globals_
    assert "agi://127.0.0.1:${CC_AGI_PORT}/ivr" in asterisk.cli("dialplan show 500@ivr")


def test_product_dialplan_is_included(asterisk: SandboxAsterisk) -> None:
    assert (asterisk.dialplan_dir / sandbox_mod.PRODUCT_EXTENSIONS).exists()
    inbound = asterisk.cli("dialplan show callcenterd-inbound")
    assert "Context 'callcenterd-inbound'" in inbound
    assert "extensions_callcenterd.conf" in inbound


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_media_apps_work_on_local_channels(asterisk: SandboxAsterisk) -> None:
    """Playback(beep), SayNumber(5), MusicOnHold(default,2): files found, codecs there."""
    asterisk.cli("dialplan set global CC_SELFTEST_DONE no")
    offset = asterisk.log_path.stat().st_size
    asterisk.cli("channel originate Local/s@sandbox-selftest/n application Wait 10")
    _wait_for(lambda: "CC_SELFTEST_DONE=yes" in asterisk.cli("dialplan show globals"), 15,
              "the selftest context to finish")
    assert "CC_SELFTEST_PLAYBACK=SUCCESS" in asterisk.cli("dialplan show globals")
    with open(asterisk.log_path, errors="replace") as console:
        console.seek(offset)
        text = console.read()
    assert "Playing 'beep.gsm'" in text
    assert "Playing 'digits/5.gsm'" in text
    assert "Started music on hold, class 'default'" in text
    media_errors = re.findall(r"^.*(?:WARNING|ERROR)\[\d+\]: (?:file|app_playback|say|"
                              r"res_musiconhold|translate|channel)\.c.*$", text, re.MULTILINE)
    assert media_errors == []


def _cdr_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [dict(zip(CDR_FIELDS, row)) for row in csv.reader(handle)]


def test_master_csv_records_answered_and_busy_calls(asterisk: SandboxAsterisk) -> None:
    agent = str(random.randint(1000, 1999))
    asterisk.cli(f"channel originate Local/{agent}@agents/n application Wait 1")
    asterisk.cli("channel originate Local/2002@agents/n application Wait 1")

    def rows_for(exten: str) -> list[dict[str, str]]:
        return [r for r in _cdr_rows(asterisk.master_csv_path())
                if r["dst"] == exten and r["dcontext"] == "agents"]

    answered = _wait_for(lambda: len(rows_for(agent)) >= 2 and rows_for(agent), 10,
                         f"the CDRs of agent {agent}")
    assert {r["disposition"] for r in answered} == {"ANSWERED"}
    assert all(int(r["billsec"]) >= 1 for r in answered)  # Wait 1 after the answer
    busy = _wait_for(lambda: rows_for("2002"), 10, "the CDR of the busy agent")
    assert busy[-1]["disposition"] == "BUSY"  # unanswered = yes
    assert busy[-1]["answer"] == ""


def test_cli_refuses_line_breaks(asterisk: SandboxAsterisk) -> None:
    with pytest.raises(UnsafeValue):
        asterisk.cli("core show version\ncore stop now")
    assert asterisk.is_running()


def test_second_instance_restarts_beside_the_first(asterisk: SandboxAsterisk) -> None:
    """Two instances share the cached chroot; core restart brings one back
    fully booted in the same process while the other keeps running."""
    ami_port = free_tcp_port()
    other = SandboxAsterisk(ami_port=ami_port, agi_port=free_tcp_port(), ami_secret="other-secret")
    with other:
        assert other.host_instance_dir != asterisk.host_instance_dir
        pid = other._proc.pid
        other.cli("dialplan set global CC_BEFORE_RESTART yes")
        other.restart_core()
        assert other.is_running() and other._proc.pid == pid  # re-exec, same process
        assert "CC_BEFORE_RESTART" not in other.cli("dialplan show globals")
        console = other.log_path.read_text(errors="replace")
        assert console.count("Asterisk Ready.") == 2 and "Asterisk is now restarting" in console
        assert "Response: Success" in _ami_login("127.0.0.1", ami_port, other.ami_user, "other-secret")
        assert "Asterisk 22" in asterisk.cli("core show version")  # the first one is untouched
    assert not other.is_running()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", ami_port))  # AMI port released
