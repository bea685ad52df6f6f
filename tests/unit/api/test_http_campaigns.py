"""The campaign routes of the HTTP API, served for real on 127.0.0.1:0."""

import aiohttp
import pytest

from callcenterd.api.http import ApiServer, build_app
from tests.unit.api.test_http_api import TOKEN, FakeControl


class FakeCampaigns:
    def __init__(self):
        self.calls = []

    def campaigns(self):
        return [{"campaign": "spring", "state": "stopped"}]

    def campaign_status(self, name):
        if name != "spring":
            raise LookupError(f"unknown campaign {name!r}")
        return {"campaign": name, "state": "running", "dialled": 3}

    async def campaign_action(self, name, action):
        if action == "resume":
            raise ValueError(f"campaign {name} is not paused")
        self.calls.append((name, action))
        return {"campaign": name, "state": action}

    def disposition(self, attempt_id, agent, disposition, callback_at):
        self.calls.append((attempt_id, agent, disposition, callback_at))
        return {"ok": True}

    def preview_next(self, agent):
        return {"lead_id": 7, "phone": "+12125550100"} if agent == "1001" else None

    def preview_decide(self, agent, lead_id, accept):
        self.calls.append((agent, lead_id, accept))
        return {"ok": True}


@pytest.fixture
async def api():
    campaigns = FakeCampaigns()
    server = ApiServer(build_app(FakeControl(), TOKEN, campaigns), "127.0.0.1", 0)
    await server.start()
    session = aiohttp.ClientSession(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    yield session, campaigns
    await session.close()
    await server.stop()


async def test_campaign_start_pause_stop_and_status(api):
    session, campaigns = api
    for action in ("start", "pause", "stop"):
        async with session.post(f"/v1/campaigns/spring/{action}") as r:
            assert r.status == 200 and (await r.json())["state"] == action
    assert campaigns.calls == [("spring", "start"), ("spring", "pause"), ("spring", "stop")]
    async with session.get("/v1/campaigns/spring") as r:
        assert (await r.json())["dialled"] == 3
    async with session.get("/v1/campaigns") as r:
        assert (await r.json())["campaigns"][0]["campaign"] == "spring"


async def test_campaign_errors_are_specific(api):
    session, _ = api
    async with session.get("/v1/campaigns/autumn") as r:
        assert (r.status, (await r.json())["error"]) == (404, "unknown campaign 'autumn'")
    async with session.post("/v1/campaigns/spring/resume") as r:
        assert (r.status, (await r.json())["error"]) == (409, "campaign spring is not paused")
    async with session.post("/v1/campaigns/spring/explode") as r:
        assert r.status == 404 and "start, pause, resume, stop" in (await r.json())["error"]


async def test_an_agent_submits_a_disposition_with_a_callback_time(api):
    session, campaigns = api
    body = {"agent": "1001", "disposition": "callback", "callback_at": "2026-12-01T10:30"}
    async with session.post("/v1/attempts/att-1/disposition", json=body) as r:
        assert r.status == 200
    assert campaigns.calls == [("att-1", "1001", "callback", "2026-12-01T10:30")]


@pytest.mark.parametrize("body, why", [
    ({"disposition": "sale"}, "'agent' is required"),
    ({"agent": "1001", "disposition": "sale\r\nX: y"}, "printable"),
    ({"agent": "1001", "disposition": "sale", "callback_at": 5}, "local time"),
])
async def test_a_bad_disposition_request_is_refused(api, body, why):
    session, campaigns = api
    async with session.post("/v1/attempts/att-1/disposition", json=body) as r:
        assert r.status == 400 and why in (await r.json())["error"]
    assert campaigns.calls == []


async def test_preview_shows_the_lead_and_takes_the_agents_decision(api):
    session, campaigns = api
    async with session.get("/v1/agents/1001/preview") as r:
        assert (await r.json())["lead"]["lead_id"] == 7
    async with session.get("/v1/agents/1002/preview") as r:
        assert (await r.json())["lead"] is None
    async with session.post("/v1/agents/1001/preview/7/skip") as r:
        assert r.status == 200
    async with session.post("/v1/agents/1001/preview/x/accept") as r:
        assert r.status == 400
    assert campaigns.calls == [("1001", 7, False)]


async def test_without_campaigns_the_routes_say_so():
    server = ApiServer(build_app(FakeControl(), TOKEN), "127.0.0.1", 0)
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=server.url,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            async with s.get("/v1/campaigns") as r:
                assert r.status == 404 and "no campaigns" in (await r.json())["error"]
    finally:
        await server.stop()


async def test_campaign_routes_need_the_token(api):
    session, campaigns = api
    async with aiohttp.ClientSession(base_url=str(session._base_url)) as anon:
        async with anon.post("/v1/campaigns/spring/start") as r:
            assert r.status == 401
    assert campaigns.calls == []
