"""`callcenterd campaign ...` against a real API server (thread) with fake campaigns."""

import pytest

from tests.unit.api.conftest import api_in_thread
from tests.unit.api.test_api_cli import FakeControl


class FakeCampaigns:
    def __init__(self):
        self.calls = []

    def campaigns(self):
        return [self.campaign_status("spring")]

    def campaign_status(self, name):
        if name != "spring":
            raise LookupError(f"unknown campaign {name!r}")
        return {"campaign": "spring", "state": "running", "mode": "progressive", "dialled": 120,
                "human_answers": 40, "machines": 30, "connected": 39, "abandoned": 1,
                "abandoned_24h": {"count": 1, "live_answers": 40, "pct": 2.5},
                "abandoned_30d": {"count": 1, "live_answers": 80, "pct": 1.25}, "abandon_cap_pct": 3.0,
                "remaining": 880, "eta_seconds": 7325.0, "dispositions": {"sale": 7, "not-interested\x1b[31m": 20}}

    def campaign_action(self, name, action):
        self.calls.append((name, action))
        return {"campaign": name, "state": {"start": "running", "pause": "paused"}.get(action, action)}

    def disposition(self, attempt_id, agent, disposition, callback_at):
        self.calls.append((attempt_id, agent, disposition, callback_at))
        return {"ok": True}

    def preview_next(self, agent):
        return None

    def preview_decide(self, agent, lead_id, accept):
        return {}


@pytest.fixture
def campaigns():
    fake = FakeCampaigns()
    with api_in_thread(FakeControl(), fake) as url:
        yield fake, url


def test_campaign_start_and_pause_from_the_cli(campaigns, cli, capsys):
    fake, url = campaigns
    assert cli("campaign", "start", "spring", "--api", url) == 0
    assert cli("campaign", "pause", "spring", "--api", url) == 0
    assert fake.calls == [("spring", "start"), ("spring", "pause")]
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("campaign ")]
    assert printed == ["campaign spring: running", "campaign spring: paused"]


def test_campaign_status_reads_like_a_report(campaigns, cli, capsys):
    _, url = campaigns
    assert cli("campaign", "status", "spring", "--api", url) == 0
    out = capsys.readouterr().out
    assert "campaign spring: running (progressive)" in out
    assert "abandoned 24 h     2.50% (1 of 40 live answers)" in out
    assert "abandoned 30 days  1.25% (1 of 80 live answers)" in out
    assert "time to exhaust    2:02:05" in out
    assert "not-interested?[31m: 20" in out, "no terminal escapes from data"


def test_an_unknown_campaign_is_one_clear_line_and_exit_1(campaigns, cli, capsys):
    _, url = campaigns
    assert cli("campaign", "status", "autumn", "--api", url) == 1
    assert capsys.readouterr().err.strip() == "callcenterd: unknown campaign 'autumn'"


def test_a_disposition_with_a_callback_time(campaigns, cli, capsys):
    fake, url = campaigns
    assert cli("campaign", "dispose", "att-9", "callback", "--agent", "1001",
               "--callback-at", "2026-12-01T10:30", "--api", url) == 0
    assert fake.calls == [("att-9", "1001", "callback", "2026-12-01T10:30")]
