"""An outbound campaign end to end on the real sandbox Asterisk.

callcenterd runs in-process (wiring.build with a campaign loaded from YAML),
dials the sandbox's Local-channel leads (``[sandbox-outbound]``: the last
digit of the number chooses how the lead behaves, see docs/campaigns.md) and
hands the people who answer to agents through the ACD.  Checked: the store's
attempts and leads, the dispositions, the journeys, and the abandonment
ledger.
"""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

from acd_rig import AcdRig, wait_for
from callcenterd.config.campaigns import load_campaigns
from callcenterd.core import facts as f
from callcenterd.core.campaigns.model import Lead, LeadState

pytestmark = pytest.mark.asterisk

QUEUE = {"strategy": "longest-idle", "ring_time": 5, "retry_delay": 0, "wrapup_time": 0, "announce_frequency": 0}

# the last digit: 0 person, 1 busy, 2 never answers, 3 machine, 4 hangs up during the greeting
PERSON, BUSY, NO_ANSWER, MACHINE, HANGS_UP = "+12125550100", "+12125550101", "+12125550102", "+12125550103", \
    "+12125550104"


def campaign_yaml(*, amd: bool, max_lines: int = 5) -> str:
    return textwrap.dedent(f"""\
        pool: {{queue: outbound}}
        mode: progressive
        caller_id: {{number: "+15555550100", name: Sandbox Sales}}
        dial: {{template: "Local/{{number}}@sandbox-outbound/n"}}
        max_lines: {max_lines}
        windows:
          weekdays: {{start: "00:00", end: "24:00"}}
          weekend: {{start: "00:00", end: "24:00"}}
        amd: {{enabled: {str(amd).lower()}}}
        abandon: {{message: beep}}
        min_ring: 15
        ring_timeout: 16
        list: {{default_region: US, columns: {{timezone: tz}}}}
        """)


class CampaignRig(AcdRig):
    """AcdRig plus one campaign, ``spring``, read from YAML in the work dir."""

    def __init__(self, asterisk, workdir, *, agents, campaign: str, **kw):
        super().__init__(asterisk, workdir, queues={"outbound": QUEUE}, agents=agents, **kw)
        (workdir / "campaigns").mkdir(exist_ok=True)
        (workdir / "campaigns" / "spring.yaml").write_text(campaign)

    def campaigns(self, config):
        return load_campaigns(self.workdir / "campaigns", config)

    @property
    def service(self):
        return self.runtime.campaigns

    @property
    def leads(self):
        return self.service._store

    async def load(self, *phones: str) -> None:
        await self.leads.merge_leads("spring", [Lead(0, "spring", p, f"Lead {p[-1]}", zones=("UTC",))
                                                for p in phones])

    async def attempts(self) -> dict[str, list]:
        """phone -> [(outcome, agent)] of its closed attempts."""
        rows = await self.leads._store._run(lambda c: c.execute(
            "SELECT phone, outcome, agent, attempt_id FROM attempt WHERE ended_at IS NOT NULL"
            " ORDER BY started_at").fetchall())
        out: dict[str, list] = {}
        for phone, outcome, agent, aid in rows:
            out.setdefault(phone, []).append((outcome, agent, aid))
        return out

    async def lead_of(self, phone: str) -> Lead:
        [row] = await self.leads._store._run(lambda c: c.execute(
            "SELECT lead_id FROM lead WHERE phone = ?", (phone,)).fetchall())
        return await self.leads.lead(row[0])


async def wait_outcomes(rig: CampaignRig, phones, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = await rig.attempts()
        if all(p in got for p in phones):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"attempts closed so far: {got}; waiting for {phones}")
        await asyncio.sleep(0.3)


async def test_a_progressive_campaign_dials_each_kind_of_lead_and_hands_people_to_agents(asterisk, tmp_path):
    agents = {a: {"device": f"Local/{a}@agents/n", "queues": ["outbound"]} for a in ("4001", "4002", "4003")}
    rig = CampaignRig(asterisk, tmp_path, agents=agents, campaign=campaign_yaml(amd=True))
    async with rig:
        await rig.load(PERSON, BUSY, NO_ANSWER, MACHINE, HANGS_UP)
        started = time.time()
        await rig.service.campaign_action("spring", "start")
        got = await wait_outcomes(rig, [PERSON, BUSY, NO_ANSWER, MACHINE, HANGS_UP], timeout=90)
        outcome = {p: got[p][0][0] for p in got}
        assert outcome == {PERSON: "connected", BUSY: "busy", NO_ANSWER: "no-answer", MACHINE: "machine",
                           HANGS_UP: "hungup"}, got
        # the person reached an agent of the pool through the ACD
        aid = got[PERSON][0][2]
        connected = rig.of(f.CallerConnected, call_id=aid)
        assert connected and connected[0].agent in agents
        # the 15 s minimum ring: the never-answering lead rang at least that long
        no_answer_aid = got[NO_ANSWER][0][2]
        ended = await rig.fact(f.CallEnded, call_id=no_answer_aid)
        begun = rig.of(f.CallStarted, call_id=no_answer_aid)[0]
        assert ended.at - begun.at >= 15.0, "gave up ringing before the minimum ring time"
        # the agent's disposition closes the lead; a busy lead comes back after its retry delay
        await wait_for(lambda: rig.of(f.CallEnded, call_id=aid), "the connected call ends")
        await rig.service.disposition(aid, connected[0].agent, "sale", None)
        sold = await rig.lead_of(PERSON)
        assert (sold.state, sold.disposition, sold.attempts) == (LeadState.DONE, "sale", 1)
        busy = await rig.lead_of(BUSY)
        assert busy.state is LeadState.READY and busy.next_at >= started + 15 * 60 - 5
        assert (await rig.lead_of(MACHINE)).attempts == 1
        status = await rig.service.campaign_status("spring")
        assert (status["dialled"], status["connected"], status["machines"]) == (5, 1, 1)
        assert status["dispositions"] == {"sale": 1}
    journeys = {j["call_id"]: j for j in rig.journeys()}
    person = journeys[aid]
    assert (person["direction"], person["campaign"], person["outcome"], person["amd"]) == \
        ("outbound", "spring", "answered", "human")
    assert person["lead_id"] == sold.lead_id and person["agent"] == connected[0].agent
    outbound = [j for j in journeys.values() if j["direction"] == "outbound"]
    assert sorted(j["outcome"] for j in outbound) == sorted(["answered", "busy", "no-answer", "machine", "hungup"])


async def test_a_person_with_no_agent_within_2_s_hears_the_abandon_message_and_counts_as_dropped(asterisk, tmp_path):
    agents = {"5001": {"device": "Local/5001@agents/n", "queues": ["outbound"]}}
    rig = CampaignRig(asterisk, tmp_path, agents=agents, campaign=campaign_yaml(amd=False, max_lines=1))
    async with rig:
        await rig.load(PERSON)
        await rig.service.campaign_action("spring", "start")
        started = await rig.fact(f.CallStarted)
        assert started.direction == "outbound"
        rig.control("agent_pause", "5001", "coffee")  # the agent leaves while the lead rings
        got = await wait_outcomes(rig, [PERSON], timeout=30)
        assert got[PERSON][0][0] == "dropped"
        timed_out = await rig.fact(f.CallerTimedOut, call_id=started.call_id)
        enqueued = rig.of(f.CallerEnqueued, call_id=started.call_id)[0]  # right at the answer (no AMD)
        assert 1.9 <= timed_out.at - enqueued.at <= 2.5, "no agent within 2 s of the answer: the message"
        lead = await rig.lead_of(PERSON)
        assert lead.next_at >= time.time() + 71 * 3600, "a dropped number is not redialled within 72 h"
        status = await rig.service.campaign_status("spring")
        assert status["abandoned"] == 1 and status["abandoned_24h"]["count"] == 1
        events = await rig.leads.ledger_events("spring", 0.0)
        assert [kind for _, kind in events] == ["dropped"]
    [journey] = [j for j in rig.journeys() if j["call_id"] == started.call_id]
    assert (journey["direction"], journey["outcome"]) == ("outbound", "dropped")
