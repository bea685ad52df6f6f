"""The CLI commands against a real API server running in a background thread."""

import json
import socket

import pytest

from callcenterd.api.cli_commands import format_duration, format_table
from callcenterd.api.client import TOKEN_ENV, ApiClient, ApiError, TokenError, load_token
from tests.unit.api.conftest import TOKEN, api_in_thread


class UnknownAgent(KeyError):
    pass


class FakeControl:
    def __init__(self):
        self.calls = []
        self.waiting_rows = [
            {"call_id": "c-1", "queue": "sales", "position": 1, "waited": 75.0,
             "estimated_wait": 30.0, "priority": 5},
            {"call_id": "c-22", "queue": "support", "position": 1, "enqueued_at": 0.0,
             "estimated_wait": None, "priority": 0},
        ]

    def login(self, agent_id):
        if agent_id == "9999":
            raise UnknownAgent(f"unknown agent {agent_id!r}")
        self.calls.append(("login", agent_id))

    def logout(self, agent_id):
        self.calls.append(("logout", agent_id))

    def pause(self, agent_id, reason):
        if agent_id == "busy":
            raise ValueError("agent busy is on a call")
        self.calls.append(("pause", agent_id, reason))

    def unpause(self, agent_id):
        self.calls.append(("unpause", agent_id))

    def agents(self):
        return [{"agent": "1001", "state": "paused", "reason": "lunch", "queues": ["sales", "vip"]},
                {"agent": "1002", "state": "available", "reason": "", "queues": []}]

    def queues(self):
        return [{"queue": "sales", "waiting": 1, "available": 0, "staffed": 2,
                 "longest_wait": 3725.0}]

    def waiting(self):
        return self.waiting_rows


@pytest.fixture
def server():
    """Run the API on its own loop in a thread, as the daemon would run it."""
    control = FakeControl()
    with api_in_thread(control) as url:
        yield control, url




def test_agent_actions_reach_the_core(server, cli, capsys):
    control, url = server
    assert cli("agent", "login", "1001", "--api", url) == 0
    assert cli("agent", "pause", "1001", "--reason", "lunch", "--api", url) == 0
    assert cli("agent", "unpause", "1001", "--api", url) == 0
    assert cli("agent", "logout", "1001", "--api", url) == 0
    assert control.calls == [("login", "1001"), ("pause", "1001", "lunch"),
                             ("unpause", "1001"), ("logout", "1001")]
    out = capsys.readouterr().out
    assert "agent 1001: logged in" in out and "agent 1001: paused (lunch)" in out


def test_pause_requires_a_reason(cli, capsys):
    with pytest.raises(SystemExit) as info:
        cli("agent", "pause", "1001")
    assert info.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_server_reason_is_printed_and_exit_is_1(server, cli, capsys):
    control, url = server
    assert cli("agent", "login", "9999", "--api", url) == 1
    assert capsys.readouterr().err.strip() == "callcenterd: unknown agent '9999'"
    assert cli("agent", "pause", "busy", "--reason", "x", "--api", url) == 1
    assert "agent busy is on a call" in capsys.readouterr().err
    assert cli("agent", "pause", "1001", "--reason", "x" * 65, "--api", url) == 1
    assert "longer than 64" in capsys.readouterr().err
    assert control.calls == []


def test_wrong_token_file_is_401_exit_1(server, cli, tmp_path, capsys):
    _, url = server
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    assert cli("agents", "--api", url, "--token-file", str(token_file)) == 1
    assert "bearer token" in capsys.readouterr().err


def test_token_file_wins_over_env(server, cli, tmp_path, monkeypatch, capsys):
    control, url = server
    monkeypatch.setenv(TOKEN_ENV, "wrong-env-token")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert cli("agent", "login", "1001", "--api", url, "--token-file", str(token_file)) == 0
    assert control.calls == [("login", "1001")]


def test_no_token_is_a_clear_error(cli, monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENV)
    assert cli("agents", "--api", "http://127.0.0.1:9") == 1
    assert f"set {TOKEN_ENV}" in capsys.readouterr().err


def test_connection_refused_is_a_clear_error(cli, capsys):
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli("agents", "--api", f"http://127.0.0.1:{port}") == 1
    err = capsys.readouterr().err
    assert f"cannot reach the callcenterd API at http://127.0.0.1:{port}" in err
    assert "connection refused" in err


def test_silent_server_times_out(cli, capsys):
    with socket.socket() as s:  # accepts (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert cli("agents", "--api", f"http://127.0.0.1:{port}", "--timeout", "0.2") == 1
    assert "no answer within 0.2 s" in capsys.readouterr().err


def test_bad_api_url_is_a_clear_error(cli, capsys):
    assert cli("agents", "--api", "127.0.0.1:8480") == 1
    assert "API URL must look like" in capsys.readouterr().err


def test_waiting_table(server, cli, capsys):
    _, url = server
    assert cli("waiting", "--api", url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["POS", "CALL", "ID", "QUEUE", "WAITED", "EST.", "WAIT", "PRIORITY"]
    assert lines[1].split() == ["1", "c-1", "sales", "1:15", "0:30", "5"]
    # c-22 has only enqueued_at (epoch 0): waited is computed from now, hours long.
    row = lines[2].split()
    assert row[:3] == ["1", "c-22", "support"] and row[3].count(":") == 2
    assert row[4:] == ["-", "0"]


def test_agents_and_queues_tables(server, cli, capsys):
    _, url = server
    assert cli("agents", "--api", url) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["AGENT", "STATE", "REASON", "FOR", "QUEUES"]
    assert out[1].split() == ["1001", "paused", "lunch", "-", "sales,vip"]
    assert out[2].split() == ["1002", "available", "-", "-", "-"]
    assert cli("queues", "--api", url) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["sales", "1", "0", "2", "1:02:05"]


def test_the_queues_table_reads_the_keys_the_acd_really_returns():
    """``LOGGED IN`` showed "-": the CLI read ``logged_in``, the API returns ``staffed``."""
    from callcenterd.api.cli_commands import COLUMNS
    from tests.unit.core.acd.acd_harness import A, Q, Rig

    row = Rig([Q("sales")], [A("1001"), A("1002")]).acd.queues_view()[0]
    cells = {header: cell(row, 0.0) for header, cell, _ in COLUMNS["queues"]}
    assert cells["LOGGED IN"] == "2"
    assert "-" not in (cells["QUEUE"], cells["WAITING"], cells["AVAILABLE"])


def test_json_output(server, cli, capsys):
    control, url = server
    assert cli("waiting", "--json", "--api", url) == 0
    assert json.loads(capsys.readouterr().out) == control.waiting_rows


def test_empty_listing(server, cli, capsys):
    control, url = server
    control.waiting_rows = []
    assert cli("waiting", "--api", url) == 0
    assert capsys.readouterr().out.strip() == "(no callers waiting)"


def test_client_quotes_agent_ids(server):
    control, url = server
    ApiClient(url, TOKEN).login("sip/alice x")
    assert control.calls == [("login", "sip/alice x")]
    with pytest.raises(ApiError) as info:
        ApiClient(url, TOKEN).login("9999")
    assert info.value.status == 404


def test_load_token(tmp_path):
    assert load_token(None, {TOKEN_ENV: " abc \n"}) == "abc"
    f = tmp_path / "t"
    f.write_text("tok\nignored second line\n")
    assert load_token(f, {}) == "tok"
    f.write_text("\n\n")
    with pytest.raises(TokenError, match="is empty"):
        load_token(f, {})
    with pytest.raises(TokenError, match="cannot read token file"):
        load_token(tmp_path / "missing", {})


def test_format_duration_and_hostile_cells():
    assert [format_duration(x) for x in (0, 59.6, 75, 3725, None, float("nan"))] == \
        ["0:00", "1:00", "1:15", "1:02:05", "-", "-"]
    table = format_table("agents", [{"agent": "10\x1b[2J01", "state": "paused"}], now=0.0)
    assert "\x1b" not in table and "10?[2J01" in table
