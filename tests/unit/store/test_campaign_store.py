"""CampaignStore against real SQLite files: the no-double-dial promises live in the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from callcenterd.core.campaigns.model import AttemptRecord, Lead, LeadState
from callcenterd.store.campaigns import INTERRUPTED, CampaignStore
from callcenterd.store.sqlite import SqliteStore


@pytest.fixture
async def leads(tmp_path):
    s = await SqliteStore.open(tmp_path / "state.db")
    yield CampaignStore(s)
    await s.close()


def _lead(phone, name="", **kw):
    return Lead(0, "spring", phone, name, zones=("America/New_York",), fields=kw)


async def _one(leads, phone="+12125550100"):
    await leads.merge_leads("spring", [_lead(phone)])
    [lead] = await leads.due_leads("spring", 0.0, 10)
    return lead


async def test_reloading_a_list_merges_instead_of_doubling(leads):
    assert await leads.merge_leads("spring", [_lead("+12125550100", "Ann"), _lead("+12125550101")]) == (2, 0)
    lead = (await leads.due_leads("spring", 0.0, 10))[0]
    lead.attempts, lead.last_outcome = 0, "busy"
    await leads.save_lead(lead)
    assert await leads.merge_leads("spring", [_lead("+12125550100", "Ann Smith", account="42"),
                                              _lead("+12125550102")]) == (1, 1)
    rows = await leads.due_leads("spring", 0.0, 10)
    assert len(rows) == 3
    ann = next(r for r in rows if r.phone == "+12125550100")
    assert (ann.name, ann.fields, ann.last_outcome) == ("Ann Smith", {"account": "42"}, "busy")
    assert await leads.merge_leads("autumn", [_lead("+12125550100")]) == (1, 0), "campaigns are separate"


async def test_hostile_names_are_stored_as_data(leads):
    name = 'Bob\r\nAction: Originate; "x" {y} ^^z'
    await leads.merge_leads("spring", [_lead("+12125550100", name, note="a\nb")])
    [lead] = await leads.due_leads("spring", 0.0, 10)
    assert (lead.name, lead.fields) == (name, {"note": "a\nb"})


async def test_a_lead_is_dialled_at_most_once_at_a_time(leads):
    lead = await _one(leads)
    assert await leads.begin_attempt(AttemptRecord("a1", "spring", lead.lead_id, lead.phone, 10.0), 5)
    assert not await leads.begin_attempt(AttemptRecord("a2", "spring", lead.lead_id, lead.phone, 11.0), 5)
    assert [a.attempt_id for a in await leads.open_attempts()] == ["a1"]
    assert (await leads.lead(lead.lead_id)).state is LeadState.DIALLING
    assert await leads.due_leads("spring", 100.0, 10) == [], "a lead being dialled is not due"


async def test_a_lead_is_never_dialled_beyond_its_maximum_attempts(leads):
    lead = await _one(leads)
    for n in range(2):
        assert await leads.begin_attempt(AttemptRecord(f"a{n}", "spring", lead.lead_id, lead.phone, n), 2)
        lead.state = LeadState.READY
        await leads.end_attempt(f"a{n}", "busy", n + 0.5, lead)
    assert not await leads.begin_attempt(AttemptRecord("a9", "spring", lead.lead_id, lead.phone, 9.0), 2)
    assert (await leads.lead(lead.lead_id)).attempts == 2
    assert await leads.attempt_times(lead.lead_id, 0.5) == [1.0]
    assert await leads.outcome_counts("spring") == {"busy": 2}


async def test_dnc_stops_a_lead_and_is_shared_by_every_campaign(leads):
    await leads.merge_leads("spring", [_lead("+12125550100"), _lead("+12125550101")])
    await leads.add_dnc(["+12125550100"], "disposition dnc", 5.0)
    assert [ld.phone for ld in await leads.due_leads("spring", 0.0, 10)] == ["+12125550101"]
    assert await leads.dnc_numbers("autumn") == {"+12125550100"}
    await leads.add_dnc(["+12125550101"], "campaign file", 6.0, campaign="spring")
    assert await leads.dnc_numbers("autumn") == {"+12125550100"}
    assert await leads.dnc_numbers("spring") == {"+12125550100", "+12125550101"}


async def test_callbacks_come_first_then_the_longest_due(leads):
    await leads.merge_leads("spring", [_lead(f"+1212555010{n}") for n in range(3)])
    a, b, c = await leads.due_leads("spring", 0.0, 10)
    a.next_at, b.next_at, c.state, c.next_at = 50.0, 20.0, LeadState.CALLBACK, 90.0
    for ld in (a, b, c):
        await leads.save_lead(ld)
    assert [ld.lead_id for ld in await leads.due_leads("spring", 100.0, 10)] == [c.lead_id, b.lead_id, a.lead_id]
    assert [ld.lead_id for ld in await leads.due_leads("spring", 60.0, 10)] == [b.lead_id, a.lead_id]


async def test_ledger_keeps_30_days_and_prunes_older_rows(leads):
    for at, kind in ((1.0, "connected"), (2.0, "dropped"), (100.0, "connected")):
        await leads.add_ledger_event("spring", at, kind)
    assert await leads.ledger_events("spring", 1.5) == [(2.0, "dropped"), (100.0, "connected")]
    assert await leads.ledger_events("spring", 0.0) == [(2.0, "dropped"), (100.0, "connected")], "pruned for good"
    with pytest.raises(ValueError, match="kind"):
        await leads.add_ledger_event("spring", 3.0, "machine")


async def test_campaign_state_survives_and_is_validated(leads):
    await leads.save_campaign_state("spring", "running", 1.0)
    await leads.save_campaign_state("spring", "paused", 2.0)
    assert await leads.campaign_states() == {"spring": "paused"}
    with pytest.raises(ValueError, match="running"):
        await leads.save_campaign_state("spring", "dialing", 3.0)


def test_an_attempt_recorded_before_a_sigkill_is_never_replayed(tmp_path):
    """The daemon records the attempt, then dies before or after its Originate:
    the next start sees the open attempt and the lead is not dialled again."""
    db = tmp_path / "state.db"
    child = textwrap.dedent(f"""
        import asyncio, os, signal
        from callcenterd.core.campaigns.model import AttemptRecord, Lead
        from callcenterd.store.campaigns import CampaignStore
        from callcenterd.store.sqlite import SqliteStore
        async def main():
            s = await SqliteStore.open({str(db)!r})
            leads = CampaignStore(s)
            await leads.merge_leads("spring", [Lead(0, "spring", "+12125550100")])
            [lead] = await leads.due_leads("spring", 0.0, 1)
            assert await leads.begin_attempt(AttemptRecord("a1", "spring", lead.lead_id, lead.phone, 10.0), 5)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=os.getcwd(), capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    async def after_restart():
        s = await SqliteStore.open(db)
        try:
            leads = CampaignStore(s)
            [open_attempt] = await leads.open_attempts()
            lead = await leads.lead(open_attempt.lead_id)
            assert (lead.state, lead.attempts) == (LeadState.DIALLING, 1)
            assert not await leads.begin_attempt(AttemptRecord("a2", "spring", lead.lead_id, lead.phone, 20.0), 5)
            lead.state = LeadState.READY
            await leads.close_interrupted("a1", 20.0, lead)
            assert (await leads.attempt("a1")).outcome == INTERRUPTED
            assert await leads.open_attempts() == []
            assert (await leads.lead(lead.lead_id)).attempts == 1, "the interrupted attempt counts"
        finally:
            await s.close()

    import asyncio
    asyncio.run(after_restart())
