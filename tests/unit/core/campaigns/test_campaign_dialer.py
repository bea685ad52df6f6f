"""The campaign dialer's rules, one by one, with a fake clock."""

import pytest
from campaign_rig import LA, NY, Clock, dialer, dials, lead, of, pool, spec, utc

from callcenterd.core.campaigns import commands as c
from callcenterd.core.campaigns.compliance import AbandonLedger
from callcenterd.core.campaigns.dialer import (
    CampaignDialer,
    DialerState,
    PreviewError,
    UnknownAttempt,
)
from callcenterd.core.campaigns.model import AttemptOutcome as O
from callcenterd.core.campaigns.model import DialMode, LeadState, MachineAction
from callcenterd.core.campaigns.retry import UnknownDisposition
from callcenterd.pbx.api import AmdVerdict


def dial_one(d, ld=None, agents=("a1",)):
    d.offer_leads([ld or lead(1)])
    out = d.tick(pool(ready=agents))
    (dl,) = dials(out)
    return dl


# ------------------------------------------------------------- dialling
def test_progressive_dials_one_line_per_ready_agent():
    d, _ = dialer()
    d.offer_leads([lead(i) for i in range(1, 6)])
    out = d.tick(pool(ready=["a1", "a2"], on_call=["a3"]))
    assert len(dials(out)) == 2
    assert dials(d.tick(pool(ready=["a1", "a2"], on_call=["a3"]))) == []  # the two lines still ring


def test_the_attempt_is_recorded_and_counted_before_it_is_dialled():
    d, clock = dialer()
    d.offer_leads([lead(1, attempts=2)])
    out = d.tick(pool(ready=["a1"]))
    kinds = [type(x) for x in out]
    assert kinds == [c.RecordAttempt, c.UpdateLead, c.Dial]
    rec, upd, dl = out
    assert rec.attempt.attempt_id == dl.attempt_id and rec.attempt.lead_id == 1
    assert rec.attempt.started_at == clock.t
    assert upd.lead.state is LeadState.DIALLING and upd.lead.attempts == 3


def test_the_endpoint_carries_only_the_numbers_digits():
    d, _ = dialer()
    hostile = lead(1, name='Eve"\r\nAction: Originate;{x}^^', fields={"note": "${SHELL(rm -rf /)}"})
    dl = dial_one(d, hostile)
    assert dl.endpoint == "PJSIP/12125550001@trunk"
    assert dl.variables == {"CC_CAMPAIGN": "c1", "CC_LEAD_ID": "1", "CC_ATTEMPT_ID": dl.attempt_id}
    req = dl.request()
    assert req.leg_id == req.call_id == dl.attempt_id and req.caller_id.number == "+12125550000"


def test_the_e164_placeholder_keeps_the_plus():
    d, _ = dialer(dial_string="sofia/gateway/gw1/{e164}")
    assert dial_one(d).endpoint == "sofia/gateway/gw1/+12125550001"


def test_a_lead_whose_number_is_not_e164_is_never_dialled():
    d, _ = dialer()
    d.offer_leads([lead(1, phone="+1212555;0001"), lead(2, phone="12125550002")])
    assert dials(d.tick(pool(ready=["a1", "a2"]))) == []
    assert d.why_not(lead(1, phone="+1212555;0001")) == "number is not E.164"


def test_a_dial_string_without_a_number_placeholder_is_refused():
    with pytest.raises(ValueError, match="dial_string"):
        CampaignDialer(spec(dial_string="PJSIP/trunk"), Clock())


def test_a_lead_offered_twice_has_one_attempt_in_flight():
    d, _ = dialer()
    d.offer_leads([lead(1), lead(1)])
    out = d.tick(pool(ready=["a1", "a2"]))
    assert len(dials(out)) == 1
    d.offer_leads([lead(1)])  # the store offers the stale READY copy again
    assert dials(d.tick(pool(ready=["a1", "a2"]))) == []
    assert d.why_not(lead(1)) == "an attempt is in flight"


def test_a_lead_is_never_dialled_beyond_its_maximum_attempts():
    d, clock = dialer(max_attempts=2)
    dl = dial_one(d, lead(1, attempts=1))
    out = d.leg_ended(dl.attempt_id, O.BUSY)
    (upd,) = of(out, c.UpdateLead)
    assert upd.lead.state is LeadState.DONE and upd.lead.attempts == 2
    clock.advance(3600)
    d.offer_leads([lead(1, attempts=1)])  # a stale copy from before the attempt
    assert dials(d.tick(pool(ready=["a1"]))) == []
    d.offer_leads([lead(1, attempts=2)])
    assert dials(d.tick(pool(ready=["a1"]))) == []


def test_the_30_day_cap_counts_the_attempts_the_store_reports():
    d, clock = dialer(max_attempts_30d=2)
    recent = {1: [clock.t - 5 * 86400, clock.t - 86400]}
    d.offer_leads([lead(1, attempts=2)], recent_attempts=recent)
    assert dials(d.tick(pool(ready=["a1"]))) == []
    d.offer_leads([lead(2, attempts=2)], recent_attempts={2: [clock.t - 40 * 86400, clock.t - 86400]})
    assert len(dials(d.tick(pool(ready=["a1"])))) == 1


def test_a_lead_not_yet_due_waits():
    d, clock = dialer()
    d.offer_leads([lead(1, next_at=clock.t + 60)])
    assert dials(d.tick(pool(ready=["a1"]))) == []


def test_power_mode_dials_the_ratio_but_never_beyond_max_lines():
    d, _ = dialer(mode=DialMode.POWER, power_ratio=3.0, max_lines=5)
    d.offer_leads([lead(i) for i in range(1, 11)])
    out = d.tick(pool(ready=["a1", "a2", "a3"]))
    assert len(dials(out)) == 5
    assert d.in_flight() == 5


def test_lines_connected_to_agents_still_count_against_max_lines():
    d, _ = dialer(max_lines=1)
    d.offer_leads([lead(1), lead(2)])
    dl = dials(d.tick(pool(ready=["a1"])))[0]
    d.leg_answered(dl.attempt_id)
    d.agent_connected(dl.attempt_id, "a1")
    assert dials(d.tick(pool(ready=["a2"]), )) == []


# --------------------------------------------------------------- windows
def test_no_dial_after_the_window_closes_even_from_the_hopper():
    clock = Clock(utc(2024, 6, 4, 0, 59, 50))  # 20:59:50 EDT
    d, _ = dialer(clock)
    d.offer_leads([lead(1)])
    clock.t = utc(2024, 6, 4, 1, 0, 0)  # 21:00:00 EDT
    assert dials(d.tick(pool(ready=["a1"]))) == []
    assert d.status()["hopper"] == 0


def test_a_number_in_two_zones_waits_for_both():
    clock = Clock(utc(2024, 6, 3, 13, 0))  # 09:00 New York, 06:00 Los Angeles
    d, _ = dialer(clock)
    d.offer_leads([lead(1, zones=(NY, LA)), lead(2, zones=(NY,))])
    out = d.tick(pool(ready=["a1", "a2"]))
    assert [x.lead.lead_id for x in dials(out)] == [2]


def test_a_lead_without_a_zone_is_not_dialled():
    d, _ = dialer()
    d.offer_leads([lead(1, zones=())])
    assert dials(d.tick(pool(ready=["a1"]))) == []
    assert d.why_not(lead(1, zones=())) == "no time zone"


# ---------------------------------------------------------- agents leave
def test_dialling_stops_at_once_when_the_last_agent_pauses_and_ringing_lines_go_on():
    d, clock = dialer()
    d.offer_leads([lead(i) for i in range(1, 6)])
    dl = dials(d.tick(pool(ready=["a1"])))[0]
    out = d.tick(pool(paused=["a1"]))
    assert dials(out) == [] and of(out, c.HangupAttempt) == []
    out = d.leg_answered(dl.attempt_id)
    (ctp,) = of(out, c.ConnectToPool)
    assert ctp.max_wait == 2.0 and ctp.queue == "sales"
    out = d.no_agent(dl.attempt_id)
    assert of(out, c.PlayAbandonMessage) == [c.PlayAbandonMessage(dl.attempt_id, "sorry")]
    out = d.leg_ended(dl.attempt_id, O.CONNECTED)
    assert of(out, c.CloseAttempt)[0].outcome is O.DROPPED
    (upd,) = of(out, c.UpdateLead)
    assert upd.lead.last_dropped_at == clock.t
    assert d.ledger.counts_24h() == (1, 1)


def test_dialling_stops_when_the_last_agent_logs_out():
    d, _ = dialer(mode=DialMode.POWER, power_ratio=2.0)
    d.offer_leads([lead(i) for i in range(1, 6)])
    assert dials(d.tick(pool())) == []


def test_pause_stops_new_lines_and_resume_restarts_them():
    d, _ = dialer()
    d.offer_leads([lead(1)])
    d.pause()
    assert dials(d.tick(pool(ready=["a1"]))) == []
    d.resume()
    assert len(dials(d.tick(pool(ready=["a1"])))) == 1


def test_a_stopped_campaign_dials_nothing_and_takes_no_leads():
    d, _ = dialer()
    d.stop()
    d.offer_leads([lead(1)])
    assert d.hopper_room() > 0 and d.status()["hopper"] == 0
    assert dials(d.tick(pool(ready=["a1"]))) == []
    assert d.status()["state"] == "stopped"


def test_stop_hangs_up_a_ringing_leg_only_after_the_minimum_ring():
    d, clock = dialer(min_ring=15)
    dl = dial_one(d)
    d.leg_ringing(dl.attempt_id)
    clock.advance(5)
    assert of(d.stop(), c.HangupAttempt) == []
    clock.advance(9)
    assert of(d.tick(pool(ready=["a1"])), c.HangupAttempt) == []
    clock.advance(1)
    assert of(d.tick(pool(ready=["a1"])), c.HangupAttempt) == [c.HangupAttempt(dl.attempt_id)]
    assert of(d.tick(pool(ready=["a1"])), c.HangupAttempt) == []  # once


def test_stop_leaves_a_leg_never_reported_ringing_to_the_pbx_ring_timeout():
    d, clock = dialer(min_ring=15)
    dial_one(d)
    clock.advance(60)
    assert of(d.stop(), c.HangupAttempt) == []


def test_the_minimum_ring_counts_from_the_ringing_not_the_dial():
    d, clock = dialer(min_ring=15)
    dl = dial_one(d)
    clock.advance(10)
    d.leg_ringing(dl.attempt_id)
    clock.advance(14)
    assert of(d.stop(), c.HangupAttempt) == []
    clock.advance(1)
    assert of(d.tick(pool()), c.HangupAttempt) == [c.HangupAttempt(dl.attempt_id)]


def test_a_dial_asks_the_pbx_to_ring_at_least_the_minimum():
    d, _ = dialer(ring_timeout=8, min_ring=15)
    assert dial_one(d).ring_timeout == 15


# ------------------------------------------------------------ abandonment
def test_a_spent_abandonment_budget_dials_only_with_an_agent_reserved_for_each_call():
    d, clock = dialer(mode=DialMode.POWER, power_ratio=3.0)
    for _ in range(97):
        d.ledger.record_connected()
    for _ in range(3):
        d.ledger.record_dropped()
    d.offer_leads([lead(n) for n in range(1, 6)])
    out = d.tick(pool(ready=["a1", "a2"]))
    assert len(dials(out)) == 2, "one line per free agent, not three: no over-dialling"
    reserved = [cmd for cmd in out if isinstance(cmd, c.ReserveAgent)]
    assert sorted(r.agent for r in reserved) == ["a1", "a2"], "each line has its agent held: it cannot drop"
    assert dials(d.tick(pool(ready=["a1", "a2"]))) == [], "no line beyond the reserved agents"


def test_the_30_day_budget_holds_agents_for_each_call_even_when_the_last_24h_are_clean():
    clock = Clock()
    events = [(clock.t - 5 * 86400, "connected")] * 60 + [(clock.t - 5 * 86400, "dropped")] * 2
    ledger = AbandonLedger.from_events(events, clock)
    d = CampaignDialer(spec(mode=DialMode.POWER, power_ratio=2.0), clock, ledger=ledger)
    d.start()
    d.offer_leads([lead(1), lead(2), lead(3)])
    assert d.ledger.counts_24h() == (0, 0)
    out = d.tick(pool(ready=["a1"]))
    assert len(dials(out)) == 1 and [r.agent for r in of(out, c.ReserveAgent)] == ["a1"]


def test_status_reports_abandonment_in_both_windows():
    d, clock = dialer()
    d.offer_leads([lead(1), lead(2)])
    a, b = dials(d.tick(pool(ready=["a1", "a2"])))
    for x in (a, b):
        d.leg_answered(x.attempt_id)
    d.agent_connected(a.attempt_id, "a1")
    d.no_agent(b.attempt_id)
    s = d.status()
    assert s["abandoned_24h"] == {"count": 1, "live_answers": 2, "pct": 50.0}
    assert s["abandoned_30d"]["pct"] == 50.0
    assert (s["dialled"], s["human_answers"], s["connected"], s["abandoned"]) == (2, 2, 1, 1)


# ------------------------------------------------------------- drop guard
def test_a_recently_dropped_number_is_redialled_only_with_a_reserved_agent():
    d, clock = dialer()
    guarded = lead(1, last_dropped_at=clock.t - 3600)
    d.offer_leads([guarded, lead(2)])
    out = d.tick(pool(ready=["a1", "a2"]))
    by_lead = {x.lead.lead_id: x for x in dials(out)}
    assert set(by_lead) == {1, 2}
    (res,) = of(out, c.ReserveAgent)
    assert res == c.ReserveAgent("a1", by_lead[1].attempt_id)
    assert out.index(res) < out.index(by_lead[1])
    ctp = of(d.leg_answered(by_lead[1].attempt_id), c.ConnectToPool)[0]
    assert ctp.reserved_agent == "a1"
    assert of(d.agent_connected(by_lead[1].attempt_id, "a1"), c.ReleaseAgent) == [c.ReleaseAgent("a1", by_lead[1].attempt_id)]


def test_a_recently_dropped_number_waits_without_a_ready_agent():
    d, clock = dialer(mode=DialMode.POWER, power_ratio=3.0)
    d.offer_leads([lead(1, last_dropped_at=clock.t - 3600)])
    assert dials(d.tick(pool(wrapup=["a1"], on_call=["a2"]))) == []
    # with one ready agent, the guarded lead takes it; power has no free agent left to dial for
    d.offer_leads([lead(2), lead(3), lead(4)])
    out = d.tick(pool(ready=["a1"], on_call=["a2"]))
    assert [x.lead.lead_id for x in dials(out)] == [1]


def test_a_reserved_agent_is_not_counted_as_free_by_the_pacer():
    d, clock = dialer()
    d.offer_leads([lead(1, last_dropped_at=clock.t - 3600), lead(2), lead(3)])
    out = d.tick(pool(ready=["a1", "a2"]))
    assert sorted(x.lead.lead_id for x in dials(out)) == [1, 2]  # not 3: a1 is held for lead 1


def test_the_guard_ends_after_72_hours():
    d, clock = dialer()
    d.offer_leads([lead(1, last_dropped_at=clock.t - 72 * 3600)])
    out = d.tick(pool(ready=["a1"]))
    assert len(dials(out)) == 1 and of(out, c.ReserveAgent) == []


def test_a_reservation_ends_when_the_agent_logs_out():
    d, clock = dialer()
    d.offer_leads([lead(1, last_dropped_at=clock.t - 3600)])
    dl = dials(d.tick(pool(ready=["a1"])))[0]
    out = d.tick(pool())
    assert of(out, c.ReleaseAgent) == [c.ReleaseAgent("a1", dl.attempt_id)]
    assert of(d.leg_answered(dl.attempt_id), c.ConnectToPool)[0].reserved_agent == ""


def test_the_attempt_is_dropped_when_its_reserved_agent_never_takes_it():
    d, _ = dialer()
    d.offer_leads([lead(1, last_dropped_at=d._clock() - 3600)])
    dl = dials(d.tick(pool(ready=["a1"])))[0]
    d.leg_answered(dl.attempt_id)
    out = d.no_agent(dl.attempt_id)
    assert of(out, c.ReleaseAgent) and of(out, c.PlayAbandonMessage)


# -------------------------------------------------------------------- AMD
def test_a_machine_is_hung_up_and_counted():
    d, _ = dialer(amd=True)
    dl = dial_one(d)
    assert dl.amd is True
    assert d.leg_answered(dl.attempt_id) == []  # AMD listens first
    assert d.amd_result(dl.attempt_id, AmdVerdict.MACHINE) == [c.HangupAttempt(dl.attempt_id)]
    out = d.leg_ended(dl.attempt_id, O.CONNECTED)
    assert of(out, c.CloseAttempt)[0].outcome is O.MACHINE
    assert of(out, c.UpdateLead)[0].lead.state is LeadState.READY
    assert d.status()["machines"] == 1 and d.ledger.counts_24h() == (0, 0)


def test_a_machine_gets_the_message_when_the_campaign_says_so():
    d, _ = dialer(amd=True, machine_action=MachineAction.MESSAGE)
    dl = dial_one(d)
    d.leg_answered(dl.attempt_id)
    assert d.amd_result(dl.attempt_id, "machine") == [c.LeaveMachineMessage(dl.attempt_id, "hello machine")]


def test_an_unsure_amd_verdict_is_treated_as_a_person():
    d, _ = dialer(amd=True)
    dl = dial_one(d)
    d.leg_answered(dl.attempt_id)
    assert of(d.amd_result(dl.attempt_id, AmdVerdict.NOTSURE), c.ConnectToPool)


def test_a_person_who_hangs_up_during_the_greeting_is_not_a_drop():
    d, _ = dialer(amd=True)
    dl = dial_one(d)
    d.leg_answered(dl.attempt_id)
    out = d.leg_ended(dl.attempt_id, O.CONNECTED)
    assert of(out, c.CloseAttempt)[0].outcome is O.HUNGUP
    assert d.ledger.counts_24h() == (0, 0)


def test_the_pbx_outcome_counts_for_a_leg_never_answered():
    d, _ = dialer()
    dl = dial_one(d)
    out = d.leg_ended(dl.attempt_id, O.NO_ANSWER)
    assert of(out, c.CloseAttempt)[0].outcome is O.NO_ANSWER
    assert of(out, c.UpdateLead)[0].lead.last_outcome == "no-answer"


def test_late_events_for_an_ended_attempt_are_ignored():
    d, _ = dialer()
    dl = dial_one(d)
    d.leg_ended(dl.attempt_id, O.BUSY)
    for call in (lambda: d.leg_ringing(dl.attempt_id), lambda: d.leg_answered(dl.attempt_id),
                 lambda: d.no_agent(dl.attempt_id), lambda: d.leg_ended(dl.attempt_id, O.BUSY),
                 lambda: d.agent_connected(dl.attempt_id, "a1")):
        assert call() == []
    assert d.ledger.counts_30d() == (0, 0)


# ----------------------------------------------------------- dispositions
def connected_call(d, agent="a1", ld=None):
    dl = dial_one(d, ld, agents=(agent,))
    d.leg_answered(dl.attempt_id)
    d.agent_connected(dl.attempt_id, agent)
    return dl


def test_a_dnc_disposition_adds_the_number_to_the_dnc_list():
    d, _ = dialer()
    dl = connected_call(d)
    d.leg_ended(dl.attempt_id, O.CONNECTED)
    out = d.disposition(dl.attempt_id, "a1", "dnc")
    assert of(out, c.AddDnc) == [c.AddDnc("+12125550001", "disposition dnc by agent a1")]
    assert of(out, c.UpdateLead)[0].lead.state is LeadState.DNC
    assert of(out, c.RecordDisposition) == [c.RecordDisposition(dl.attempt_id, "a1", "dnc", None)]
    assert d.status()["dispositions"] == {"dnc": 1}


def test_a_disposition_during_the_call_applies_when_it_ends():
    d, clock = dialer()
    dl = connected_call(d)
    assert of(d.disposition(dl.attempt_id, "a1", "callback", clock.t + 7200), c.UpdateLead) == []
    out = d.leg_ended(dl.attempt_id, O.CONNECTED)
    upd = of(out, c.UpdateLead)[0].lead
    assert (upd.state, upd.next_at, upd.callback_agent) == (LeadState.CALLBACK, clock.t + 7200, "a1")


def test_a_disposition_needs_a_known_name_and_attempt():
    d, _ = dialer()
    dl = connected_call(d)
    with pytest.raises(UnknownDisposition, match="'maybe'"):
        d.disposition(dl.attempt_id, "a1", "maybe")
    with pytest.raises(ValueError, match="callback time"):
        d.disposition(dl.attempt_id, "a1", "callback")
    with pytest.raises(UnknownAttempt, match="nope"):
        d.disposition("nope", "a1", "sale")


def test_a_connected_lead_is_done_until_its_disposition_says_otherwise():
    d, _ = dialer()
    dl = connected_call(d)
    out = d.leg_ended(dl.attempt_id, O.CONNECTED)
    assert of(out, c.UpdateLead)[0].lead.state is LeadState.DONE
    assert of(d.disposition(dl.attempt_id, "a1", "sale"), c.UpdateLead)[0].lead.disposition == "sale"
    with pytest.raises(UnknownAttempt):
        d.disposition(dl.attempt_id, "a1", "sale")  # once


# ------------------------------------------------------------- callbacks
def callback_lead(d, clock, agent="a1", delay=3600.0):
    dl = connected_call(d, agent)
    d.leg_ended(dl.attempt_id, O.CONNECTED)
    out = d.disposition(dl.attempt_id, agent, "callback", clock.t + delay)
    return of(out, c.UpdateLead)[0].lead


def test_a_due_callback_goes_to_its_agent_reserved():
    d, clock = dialer()
    cb = callback_lead(d, clock)
    clock.advance(3600)
    d.offer_leads([cb])
    out = d.tick(pool(ready=["a2", "a1"]))
    (dl,) = dials(out)
    assert of(out, c.ReserveAgent) == [c.ReserveAgent("a1", dl.attempt_id)]
    assert of(d.leg_answered(dl.attempt_id), c.ConnectToPool)[0].reserved_agent == "a1"


def test_a_callback_waits_for_its_busy_agent_then_takes_any_after_the_grace():
    d, clock = dialer()
    cb = callback_lead(d, clock)
    clock.advance(3600)
    d.offer_leads([cb])
    assert dials(d.tick(pool(ready=["a2"], on_call=["a1"]))) == []
    clock.advance(299)
    assert dials(d.tick(pool(ready=["a2"], on_call=["a1"]))) == []
    clock.advance(1)
    out = d.tick(pool(ready=["a2"], on_call=["a1"]))
    assert len(dials(out)) == 1 and of(out, c.ReserveAgent)[0].agent == "a2"


def test_a_callback_is_not_dialled_before_its_time():
    d, clock = dialer()
    cb = callback_lead(d, clock)
    clock.advance(3599)
    d.offer_leads([cb])
    assert dials(d.tick(pool(ready=["a1"]))) == []


# --------------------------------------------------------------- preview
def test_preview_shows_a_lead_and_dials_it_on_accept_with_the_agent_reserved():
    d, _ = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1), lead(2)])
    assert dials(d.tick(pool(ready=["a1"]))) == []  # preview never dials by itself
    shown = d.preview_next("a1")
    assert shown.lead_id == 1 and shown.state is LeadState.PREVIEW
    assert d.preview_next("a1").lead_id == 1  # the same lead until accepted or skipped
    assert d.preview_next("a2").lead_id == 2  # another agent gets another lead
    out = d.preview_accept("a1", 1)
    (dl,) = dials(out)
    assert of(out, c.ReserveAgent) == [c.ReserveAgent("a1", dl.attempt_id)]


def test_a_skipped_lead_goes_to_other_agents_not_back_to_the_skipper():
    d, _ = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1)])
    assert d.preview_next("a1").lead_id == 1
    d.preview_skip("a1", 1)
    assert d.preview_next("a1") is None
    assert d.preview_next("a2").lead_id == 1


def test_preview_refuses_a_lead_the_agent_does_not_hold():
    d, _ = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1)])
    d.preview_next("a1")
    with pytest.raises(PreviewError, match="'a2' has no preview of lead 1"):
        d.preview_accept("a2", 1)


def test_preview_accept_rechecks_the_window():
    clock = Clock(utc(2024, 6, 4, 0, 59, 0))  # 20:59 EDT
    d, _ = dialer(clock, mode=DialMode.PREVIEW)
    d.offer_leads([lead(1)])
    d.preview_next("a1")
    clock.advance(60)
    with pytest.raises(PreviewError, match="outside the calling window"):
        d.preview_accept("a1", 1)


def test_preview_may_redial_a_dropped_number_because_the_agent_is_reserved():
    d, clock = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1, last_dropped_at=clock.t - 60)])
    d.preview_next("a1")
    assert len(dials(d.preview_accept("a1", 1))) == 1


def test_preview_is_off_while_paused():
    d, _ = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1)])
    d.pause()
    assert d.preview_next("a1") is None
    assert d.state is DialerState.PAUSED


def test_a_lead_on_a_preview_screen_is_not_offered_to_the_hopper_again():
    d, _ = dialer(mode=DialMode.PREVIEW)
    d.offer_leads([lead(1)])
    d.preview_next("a1")
    d.offer_leads([lead(1)])
    assert d.preview_next("a2") is None
    assert 1 in d.held_lead_ids()


# ----------------------------------------------------------------- status
def test_status_estimates_the_time_to_exhaust_the_list():
    d, clock = dialer()
    for i in range(1, 4):
        dl = dial_one(d, lead(i, attempts=4))  # the fifth and last attempt
        d.leg_ended(dl.attempt_id, O.BUSY)
    s = d.status(remaining=30)
    assert s["leads_finished_last_hour"] == 3
    assert s["eta_seconds"] == pytest.approx(10 * 3600)
    assert s["outcomes"] == {"busy": 3}
    assert d.status()["eta_seconds"] is None


def test_pacing_input_shows_the_pool_and_lines():
    d, _ = dialer(amd=True)
    d.offer_leads([lead(1), lead(2)])
    a, b = dials(d.tick(pool(ready=["a1", "a2"], wrapup=["a3"], on_call=["a4"])))
    d.leg_answered(a.attempt_id)
    inp = d.pacing_input()
    assert (inp.agents_staffed, inp.agents_ready, inp.agents_in_wrapup, inp.agents_on_call) == (4, 2, 1, 1)
    assert (inp.lines_ringing, inp.lines_answering, inp.lines_up) == (1, 1, 2)
    assert inp.answer_rate is None  # no completed dial yet
    d.leg_ended(b.attempt_id, O.NO_ANSWER)
    assert d.pacing_input().answer_rate == 0.0 and d.pacing_input().answer_samples == 1
