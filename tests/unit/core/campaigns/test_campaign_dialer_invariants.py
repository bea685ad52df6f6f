"""Random sequences of ticks, leads offered (fresh and stale copies), leg
events, dispositions, agents coming and going, pause/stop, and time jumps
across calling windows, against the dialer's invariants:

* never two attempts in flight for one lead;
* never more attempts than max_attempts, nor more than max_attempts_30d in 30 days;
* no Dial outside the window of any zone of the number;
* RecordAttempt (and the UpdateLead counting it) always precede their Dial;
* never more lines up than max_lines;
* no Dial for a lead the store holds as DONE, DNC or DIALLING;
* a guarded (recently dropped) lead is dialled only with an agent reserved;
* no Dial by a tick while every agent is paused or logged out, nor while paused or stopped;
* a leg not answered is never hung up before it has rung min_ring.

A fake store applies UpdateLead and offers leads with their attempt times.
"""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from campaign_rig import LA, NY, Clock, lead, utc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from callcenterd.core.campaigns import commands as c
from callcenterd.core.campaigns.dialer import CampaignDialer, PoolView
from callcenterd.core.campaigns.model import (
    AttemptOutcome,
    CampaignSpec,
    DialMode,
    LeadState,
    RetryRule,
)
from callcenterd.core.campaigns.retry import DAYS_30

AGENTS = ["a1", "a2", "a3"]
ZONE_SETS = [(NY,), (LA,), (NY, LA), ("Europe/London",), (), ("Australia/Lord_Howe",)]
OUTCOMES = list(AttemptOutcome)


def inside_default_window(zone: str, at: float) -> bool:
    local = datetime.fromtimestamp(at, timezone.utc).astimezone(ZoneInfo(zone))
    return 8 <= local.hour < 21


class DialerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.d = None

    @initialize(
        mode=st.sampled_from([DialMode.PROGRESSIVE, DialMode.POWER, DialMode.PREVIEW]),
        ratio=st.sampled_from([0.5, 1.0, 2.5]),
        max_lines=st.integers(1, 4),
        amd=st.booleans(),
        max_attempts=st.integers(1, 4),
        max_30d=st.integers(1, 4),
        start=st.sampled_from([utc(2024, 6, 3, 16), utc(2024, 11, 3, 11), utc(2024, 3, 10, 11), utc(2024, 6, 4, 0, 55)]),
    )
    def setup(self, mode, ratio, max_lines, amd, max_attempts, max_30d, start):
        self.spec = CampaignSpec(
            name="c1", mode=mode, queue="q", dial_string="PJSIP/{number}@t", max_lines=max_lines,
            power_ratio=ratio, amd=amd, max_attempts=max_attempts, max_attempts_30d=max_30d,
            retry={o: RetryRule(delay=60.0) for o in AttemptOutcome},
            drop_redial_guard=3 * 3600.0,
        )
        self.clock = Clock(start)
        ids = iter(range(1, 1_000_000))
        self.d = CampaignDialer(self.spec, self.clock, new_id=lambda: f"x{next(ids)}")
        self.d.start()
        self.store = {i: lead(i, zones=ZONE_SETS[i % len(ZONE_SETS)]) for i in range(1, 9)}
        for i in (9, 10):  # dropped ten minutes ago: guarded
            self.store[i] = lead(i, zones=(NY, LA), last_dropped_at=start - 600, attempts=min(1, max_attempts - 1))
        self.store[11] = lead(11, state=LeadState.CALLBACK, callback_agent="a2", next_at=start + 30)
        self.snapshots = list(self.store.values())
        self.attempt_times = {i: [] for i in self.store}
        self.recorded = set()
        self.live = {}  # attempt id -> lead id
        self.connected = set()  # attempt ids connected to an agent (disposition possible)
        self.ringing = {}  # attempt id -> first ringing report
        self.answered = set()
        self.pool = PoolView()
        self.running = True

    # --------------------------------------------------------- command sink
    def apply(self, cmds, *, from_tick=False):
        reserved_now = {x.attempt_id for x in cmds if isinstance(x, c.ReserveAgent)}
        for x in cmds:
            if isinstance(x, c.RecordAttempt):
                self.recorded.add(x.attempt.attempt_id)
            elif isinstance(x, c.UpdateLead):
                before = self.store[x.lead.lead_id]
                if x.lead.state is LeadState.DIALLING:
                    assert before.state in (LeadState.READY, LeadState.CALLBACK), before
                self.store[x.lead.lead_id] = x.lead
                self.snapshots.append(x.lead)
            elif isinstance(x, c.Dial):
                aid, lid, now = x.attempt_id, x.lead.lead_id, self.clock.t
                assert aid in self.recorded, "Dial before its RecordAttempt"
                assert self.store[lid].state is LeadState.DIALLING, "Dial before the lead was marked"
                assert lid not in self.live.values(), "two attempts in flight for one lead"
                assert self.running, "Dial while paused or stopped"
                zones = x.lead.zones
                assert zones and all(inside_default_window(z, now) for z in zones), (zones, now)
                self.attempt_times[lid].append(now)
                assert len(self.attempt_times[lid]) <= self.spec.max_attempts
                assert x.lead.attempts <= self.spec.max_attempts
                assert sum(1 for t in self.attempt_times[lid] if t > now - DAYS_30) <= self.spec.max_attempts_30d
                dropped = x.lead.last_dropped_at
                if dropped is not None and now - dropped < self.spec.drop_redial_guard:
                    assert aid in reserved_now, "guarded lead dialled without a reserved agent"
                if from_tick:
                    assert self.pool.active(), "Dial with no active agent"
                self.live[aid] = lid
                assert len(self.live) <= self.spec.max_lines
            elif isinstance(x, c.HangupAttempt) and x.attempt_id not in self.answered:
                since = self.ringing.get(x.attempt_id)
                assert since is not None and self.clock.t - since >= self.spec.min_ring, "hung up before min_ring"
            elif isinstance(x, c.CloseAttempt):
                self.live.pop(x.attempt_id)

    def offerable(self):
        return [ld for ld in self.store.values() if ld.state in (LeadState.READY, LeadState.CALLBACK)]

    # ----------------------------------------------------------------- rules
    @rule(data=st.data())
    def offer(self, data):
        leads = data.draw(st.lists(st.sampled_from(list(self.store.values()) + self.snapshots[-20:]), max_size=6))
        recent = {ld.lead_id: list(self.attempt_times[ld.lead_id]) for ld in leads}
        self.apply(self.d.offer_leads(leads, recent_attempts=recent))

    @rule(ready=st.sets(st.sampled_from(AGENTS)), busy=st.sets(st.sampled_from(AGENTS)),
          paused=st.sets(st.sampled_from(AGENTS)))
    def tick(self, ready, busy, paused):
        busy -= ready
        paused -= ready | busy
        self.pool = PoolView(ready=tuple(sorted(ready)), on_call={a: 10.0 for a in busy}, paused=tuple(sorted(paused)))
        self.apply(self.d.tick(self.pool), from_tick=True)

    @rule(ready=st.sets(st.sampled_from(AGENTS), min_size=1), busy=st.sets(st.sampled_from(AGENTS)),
          stale=st.lists(st.integers(0, 200), max_size=3))
    def refill_and_tick(self, ready, busy, stale):
        """What the service does every second: refill the hopper from the store
        (sometimes with an outdated copy too), tick."""
        leads = self.offerable() + [self.snapshots[i % len(self.snapshots)] for i in stale]
        self.apply(self.d.offer_leads(leads, recent_attempts={ld.lead_id: list(self.attempt_times[ld.lead_id]) for ld in leads}))
        self.pool = PoolView(ready=tuple(sorted(ready)), on_call={a: 10.0 for a in busy - ready})
        self.apply(self.d.tick(self.pool), from_tick=True)

    @rule(s=st.sampled_from([1, 2, 5, 15, 60, 61, 600, 3600, 6 * 3600, 20 * 3600]))
    def advance(self, s):
        self.clock.advance(s)

    @rule(which=st.sampled_from(["pause", "resume", "stop", "start"]))
    def lifecycle(self, which):
        self.apply(getattr(self.d, which)())
        self.running = self.d.state.value == "running"

    @precondition(lambda self: self.d is not None and self.live)
    @rule(data=st.data(), event=st.sampled_from(["ringing", "answered", "human", "machine", "connect", "no_agent", "end"]))
    def leg_event(self, data, event):
        aid = data.draw(st.sampled_from(sorted(self.live)))
        d = self.d
        if event == "ringing":
            self.ringing.setdefault(aid, self.clock.t)
            out = d.leg_ringing(aid)
        elif event == "answered":
            self.answered.add(aid)
            out = d.leg_answered(aid)
        elif event in ("human", "machine"):
            out = d.amd_result(aid, event)
        elif event == "connect":
            out = d.agent_connected(aid, data.draw(st.sampled_from(AGENTS)))
            self.connected.add(aid)
        elif event == "no_agent":
            out = d.no_agent(aid)
        else:
            out = d.leg_ended(aid, data.draw(st.sampled_from(OUTCOMES)))
        self.apply(out)

    @precondition(lambda self: self.d is not None and self.connected)
    @rule(data=st.data(), name=st.sampled_from(["sale", "callback", "dnc", "not-interested"]))
    def dispose(self, data, name):
        aid = data.draw(st.sampled_from(sorted(self.connected)))
        self.connected.discard(aid)
        when = self.clock.t + data.draw(st.sampled_from([0, 60, 3600])) if name == "callback" else None
        try:
            self.apply(self.d.disposition(aid, "a1", name, when))
        except LookupError:
            pass  # never connected (dropped first) or already disposed

    @precondition(lambda self: self.d is not None and self.spec.mode is DialMode.PREVIEW)
    @rule(agent=st.sampled_from(AGENTS), accept=st.booleans())
    def preview(self, agent, accept):
        shown = self.d.preview_next(agent)
        if shown is None:
            return
        if accept:
            try:
                self.apply(self.d.preview_accept(agent, shown.lead_id))
            except ValueError:
                pass  # lines busy, window closed...
        else:
            self.apply(self.d.preview_skip(agent, shown.lead_id))

    @invariant()
    def agrees_with_the_dialer(self):
        if self.d is None:
            return
        assert self.d.in_flight() == len(self.live)
        assert len(set(self.live.values())) == len(self.live)


DialerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDialerInvariants = DialerMachine.TestCase
