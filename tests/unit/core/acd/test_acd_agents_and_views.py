"""Agent control (log in/out, pause, device state, restore after a restart)
and the views the API, CLI and live status show, key by key."""

import itertools
import random

import pytest
from acd_harness import A, FakeClock, Q, Rig, leg_for, of, offered

from callcenterd.core import commands as cmd
from callcenterd.core import facts as f
from callcenterd.core.acd import Acd, Strategy
from callcenterd.pbx.api import DeviceStatus, HoldSpec, Outcome

T = FakeClock().now


# ------------------------------------------------------------------ views
def busy_floor():
    """Two queues, two nodes; one call done (12.34 s), callers ringing and waiting."""
    queues = [Q(), Q("support", strategy=Strategy.LINEAR)]
    agents = [A("a1", queues=("sales", "support")), A("a2"), A("far", node="pbx2"),
              A("s1", queues=("support",)), A("s2", queues=("support",))]
    r = Rig(queues, agents)
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1", "c0"))
    r.advance(12.34)
    r.hangup("cleg-c0")  # sales talk: the 120 s prior counts as one call -> (120 + 12.34) / 2
    r.run(r.acd.agent_pause("a2", "lunch"))
    r.advance(2)
    r.call("sales", call_id="c1")  # rings a1
    r.call("sales", call_id="c2", priority=3)  # waits, ahead of c1
    r.advance(1.25)
    r.call("support", call_id="c3")  # rings s1
    r.call("sales", call_id="c4", node="pbx2")  # rings far
    r.advance(2.5004)
    return r


def test_queues_view_shows_each_queue_across_nodes():
    assert busy_floor().acd.queues_view() == [
        {"queue": "sales", "strategy": "longest-idle", "waiting": 3, "staffed": 2, "available": 0,
         "aht": 66.2, "longest_wait": 3.8},
        {"queue": "support", "strategy": "linear", "waiting": 1, "staffed": 3, "available": 1,
         "aht": 120.0, "longest_wait": 2.5},  # no call yet: the talk-time prior
    ]


def test_waiting_view_lists_callers_in_order_with_their_wait():
    rows = busy_floor().acd.waiting_view()
    assert [(w["call_id"], w["queue"], w["node"], w["position"], w["priority"], w["ringing"]) for w in rows] == [
        ("c2", "sales", "pbx1", 1, 3, []),
        ("c1", "sales", "pbx1", 2, 0, ["a1"]),
        ("c3", "support", "pbx1", 1, 0, ["s1"]),
        ("c4", "sales", "pbx2", 1, 0, ["far"]),
    ]
    assert [(w["enqueued_at"], w["waited"]) for w in rows] == [
        (T + 14.34, 3.75), (T + 14.34, 3.75), (T + 15.59, 2.5), (T + 15.59, 2.5)]
    assert all(isinstance(w["wait_estimate"], float) for w in rows)


def test_agents_view_shows_state_reason_and_counters():
    view = {a["agent"]: a for a in busy_floor().acd.agents_view()}
    assert view["a1"] == {"agent": "a1", "node": "pbx1", "device": "PJSIP/a1", "state": "ringing", "reason": "",
                          "paused": False, "queues": ["sales", "support"], "calls": 1, "talk_time": 12.34,
                          "missed": 0, "idle_since": None, "call_ids": ["c1"]}
    assert (view["a2"]["state"], view["a2"]["reason"], view["a2"]["paused"]) == ("paused", "lunch", True)
    assert view["s2"]["state"] == "available" and view["s2"]["idle_since"] == T


# ---------------------------------------------------------- agent control
def test_logging_out_twice_is_one_logout():
    r = Rig([Q()], [A("a1")])
    out = r.run(r.acd.agent_logout("a1"))
    assert of(out, f.AgentLoggedOut) == [f.AgentLoggedOut(T, "a1", ("sales",))]
    assert r.run(r.acd.agent_logout("a1")) == []


def test_logging_out_while_ringing_withdraws_the_offer_to_the_next_agent():
    r = Rig([Q()], [A("a1"), A("a2")])
    r.call("sales", call_id="c1")
    r.advance(2)
    out = r.run(r.acd.agent_logout("a1"))
    assert of(out, f.AgentRingNoAnswer) == [f.AgentRingNoAnswer(T + 2, "c1", "sales", "a1", 2000, "logged-out")]
    assert offered(out) == [("c1", "a2")]


@pytest.mark.parametrize("setup", ["wrap-up", "back-off"])
def test_logging_out_cancels_wrap_up_and_back_off(setup):
    r = Rig([Q(wrapup_time=30, busy_backoff=30, retry_delay=0)], [A("a1")])
    r.call("sales", call_id="c1")
    if setup == "wrap-up":
        r.answer(leg_for(r.out, "a1"))
        r.hangup("cleg-c1")
    else:
        r.hangup(leg_for(r.out, "a1"), Outcome.BUSY)
        r.hangup("cleg-c1")
    r.run(r.acd.agent_logout("a1"))
    assert r.acd.next_deadline() is None
    r.run(r.acd.agent_login("a1"))
    assert r.acd.agent_state("a1")["state"] == "available"


def test_a_paused_agent_logging_out_leaves_its_callers_waiting_when_leave_empty_is_no():
    r = Rig([Q(leave_empty="no")], [A("a1")])
    r.run(r.acd.agent_pause("a1", "x"))
    r.call("sales", call_id="c1")
    out = r.run(r.acd.agent_logout("a1"))
    assert of(out, f.CallerExitEmpty) == [] and r.acd.waiting_view()[0]["call_id"] == "c1"


def test_unpause_is_recorded_and_clears_reason_and_misses():
    r = Rig([Q(ring_time=5, retry_delay=0)], [A("a1", max_missed=3)])
    r.call("sales", call_id="c1")
    r.advance(5)  # one miss
    r.hangup("cleg-c1")
    r.run(r.acd.agent_pause("a1", "coffee"))
    r.advance(1)
    out = r.run(r.acd.agent_unpause("a1"))
    assert of(out, f.AgentUnpaused) == [f.AgentUnpaused(T + 6, "a1", ("sales",))]
    assert r.acd.export_state() == {"a1": {"logged_in": True, "paused": False, "reason": ""}}
    assert r.acd.agent_state("a1")["missed"] == 0


def test_a_logout_forgets_the_pause_reason():
    r = Rig([Q()], [A("a1")])
    r.run(r.acd.agent_pause("a1", "lunch"))
    r.run(r.acd.agent_logout("a1"))
    r.run(r.acd.agent_login("a1"))
    assert r.acd.export_state() == {"a1": {"logged_in": True, "paused": False, "reason": ""}}


def test_a_device_nobody_uses_changes_nothing():
    r = Rig([Q()], [A("a1")])
    assert r.run(r.acd.device_state("PJSIP/printer", DeviceStatus.INUSE)) == []


def test_restoring_agents_skips_unknown_ones_and_keeps_going():
    log = []

    class Log:
        def warning(self, event, **kw):
            log.append((event, kw))

        debug = info = warning

    ids = itertools.count(1)
    acd = Acd([Q()], [A("a1"), A("a2")], FakeClock(), rng=random.Random(1), new_id=lambda: f"leg-{next(ids)}",
              log=Log())
    acd.import_state({"gone": {"logged_in": True}, "a1": {"logged_in": True, "paused": True},
                      "a2": {"logged_in": True, "paused": True, "reason": "lunch"}})
    assert log == [("acd.import_unknown_agent", {"agent": "gone"})]
    assert acd.export_state() == {"a1": {"logged_in": True, "paused": True, "reason": ""},
                                  "a2": {"logged_in": True, "paused": True, "reason": "lunch"}}
    assert acd.agent_state("a1")["reason"] == ""


def test_a_queue_with_nobody_waiting_shows_no_longest_wait():
    r = Rig([Q()], [A("a1")])
    assert r.acd.queues_view()[0]["longest_wait"] == 0.0


def test_position_announcements_carry_the_music_period_position_and_estimate():
    r = Rig([Q(announce_every=30, moh_class="jazz")], [A("a1", node="pbx2")], node="pbx2")
    r.call("sales", call_id="c0")
    r.answer(leg_for(r.out, "a1"))
    r.call("sales", call_id="c1")
    out = r.advance(30)
    (update,) = of(out, cmd.UpdateHold)
    estimate = r.acd.waiting_view()[0]["wait_estimate"]
    assert estimate is not None
    assert update == cmd.UpdateHold("pbx2", "cleg-c1", HoldSpec("jazz", 30.0, 1, estimate))


def test_a_pause_is_recorded_with_its_time_queues_and_reason_and_none_when_not_given():
    r = Rig([Q(), Q("support")], [A("a1", queues=("sales", "support")), A("a2")])
    r.clock.now = T + 12
    out = r.run(r.acd.agent_pause("a1", "lunch"))
    assert of(out, f.AgentPaused) == [f.AgentPaused(T + 12, "a1", ("sales", "support"), "lunch")]
    out = r.run(r.acd.agent_pause("a2"))
    assert of(out, f.AgentPaused) == [f.AgentPaused(T + 12, "a2", ("sales",), "")]
    assert (r.acd.agent_state("a2")["state"], r.acd.agent_state("a2")["reason"]) == ("paused", "")


def test_a_pause_reason_that_would_break_a_line_is_refused_naming_it():
    from callcenterd.pbx.api import UnsafeValue

    r = Rig([Q()], [A("a1")])
    with pytest.raises(UnsafeValue) as err:
        r.acd.agent_pause("a1", "lunch\r\nAction: Originate")
    assert "pause reason" in str(err.value)
    assert not r.acd.agent_state("a1")["paused"]


def test_logging_in_again_keeps_an_agents_place_and_records_nothing():
    r = Rig([Q()], [A("a1"), A("a2")], login=False)
    out = r.run(r.acd.agent_login("a1"))
    assert of(out, f.AgentLoggedIn) == [f.AgentLoggedIn(T, "a1", ("sales",))]
    r.clock.now = T + 10
    r.run(r.acd.agent_login("a2"))
    r.clock.now = T + 20
    assert r.acd.agent_login("a1") == []
    assert offered(r.call("sales", call_id="c1")) == [("c1", "a1")]  # still idle the longest


def test_logging_back_in_during_a_call_cancels_the_pending_logout():
    r = Rig([Q()], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    r.run(r.acd.agent_logout("a1"))
    out = r.run(r.acd.agent_login("a1"))
    assert of(out, f.AgentLoggedIn) == []  # it never left
    r.hangup("cleg-c1")
    assert r.acd.agent_state("a1")["state"] == "available"
    assert offered(r.call("sales", call_id="c2")) == [("c2", "a1")]


def test_each_change_of_an_agents_shown_state_is_recorded_once_with_its_time():
    r = Rig([Q()], [A("a1")], login=False)
    r.clock.now = T + 3
    r.run(r.acd.agent_login("a1"))
    r.clock.now = T + 7
    r.run(r.acd.agent_pause("a1", "lunch"))
    r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.INUSE))  # no change shown
    r.run(r.acd.device_state("PJSIP/a1", DeviceStatus.NOT_INUSE))
    r.clock.now = T + 9
    r.run(r.acd.agent_unpause("a1"))
    assert of(r.out, f.AgentStateChanged) == [
        f.AgentStateChanged(T + 3, "a1", "available", ""),
        f.AgentStateChanged(T + 7, "a1", "paused", "lunch"),
        f.AgentStateChanged(T + 9, "a1", "available", ""),
    ]
