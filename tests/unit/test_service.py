"""The core loop: PBX events in, ACD decisions executed on a driver, facts out."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from callcenterd.core import facts as f
from callcenterd.core.acd.engine import Acd
from callcenterd.core.acd.specs import AgentSpec, QueueSpec
from callcenterd.pbx.api import (
    Bridged,
    CallArrived,
    CallerId,
    CommandFailed,
    LegAnswered,
    LegHungUp,
    Outcome,
    PbxDown,
    PbxSnapshot,
    PbxUp,
)
from callcenterd.service import CallCenter


class FakeDriver:
    """Records port calls in order; can be told to fail a method."""

    node = "ast1"

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail: dict[str, Exception] = {}
        self.slow: dict[str, float] = {}

    async def _record(self, name, *args):
        if name in self.slow:
            await asyncio.sleep(self.slow[name])
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail[name]

    async def originate(self, request):
        await self._record("originate", request)

    async def bridge(self, a, b):
        await self._record("bridge", a, b)

    async def hangup(self, leg, cause=16):
        await self._record("hangup", leg)

    async def hold(self, call, spec):
        await self._record("hold", call, spec)

    async def update_hold(self, leg, spec):
        await self._record("update_hold", leg, spec)

    async def redirect(self, leg, destination):
        await self._record("redirect", leg, destination)

    def names(self):
        return [c[0] for c in self.calls]


@pytest.fixture
async def center():
    ids = itertools.count(1)
    acd = Acd(
        [QueueSpec("support", ring_time=5, retry_delay=1), QueueSpec("sales", ring_time=5)],
        [AgentSpec("1001", "PJSIP/1001", node="ast1", queues=("support",)),
         AgentSpec("1002", "PJSIP/1002", node="ast1", queues=("support",))],
        asyncio.get_running_loop().time, rng=random.Random(1), new_id=lambda: f"leg-{next(ids)}",
    )
    driver = FakeDriver()
    from callcenterd.core.journeys.builder import JourneyBuilder

    c = CallCenter(acd, {"ast1": driver}, clock=asyncio.get_running_loop().time,
                   new_id=lambda: f"call-{next(ids)}", queue_priority={"support": 0, "sales": 5},
                   default_queue="support", journeys=JourneyBuilder())
    seen: list = []
    c.add_listener(seen.append)
    task = asyncio.create_task(c.run())
    yield c, driver, seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def arrive(c, leg="caller-1", queue="support", priority=""):
    c.emit(CallArrived(leg, CallerId("5550001", "Ann"), "100", {"queue": queue, "priority": priority}, "ast1"))


async def test_arrival_is_held_then_an_agent_is_dialled_and_bridged(center):
    c, driver, seen = center
    c.control("agent_login", "1001")
    arrive(c)
    await asyncio.sleep(0.05)
    assert driver.names()[:2] == ["hold", "originate"]
    hold, originate = driver.calls[0], driver.calls[1]
    assert hold[1].queue == "support" and originate[1].endpoint == "PJSIP/1001"
    assert originate[1].caller_id == CallerId("5550001", "Ann")
    c.emit(LegAnswered(originate[1].leg_id))
    await asyncio.sleep(0.05)
    assert driver.calls[-1] == ("bridge", "caller-1", originate[1].leg_id)
    assert any(isinstance(x, f.CallerConnected) and x.agent == "1001" for x in seen)


async def test_a_failed_originate_moves_on_to_the_next_agent(center):
    c, driver, seen = center
    driver.fail["originate"] = CommandFailed("Originate: no such device")
    c.control("agent_login", "1001")
    c.control("agent_login", "1002")
    arrive(c)
    await asyncio.sleep(0.1)
    originated = [call[1].endpoint for call in driver.calls if call[0] == "originate"]
    assert originated[:2] == ["PJSIP/1001", "PJSIP/1002"] or originated[:2] == ["PJSIP/1002", "PJSIP/1001"]
    assert [x.reason for x in seen if isinstance(x, f.AgentRingNoAnswer)][:1] == ["failed"]


async def test_unknown_queue_falls_back_to_the_default_and_bad_priority_is_ignored(center):
    c, driver, seen = center
    arrive(c, queue="no-such-queue", priority="urgent!")
    await asyncio.sleep(0.05)
    enq = [x for x in seen if isinstance(x, f.CallerEnqueued)]
    assert enq and enq[0].queue == "support" and enq[0].priority == 0


async def test_queue_default_priority_applies_and_dialplan_priority_is_clamped(center):
    c, driver, seen = center
    arrive(c, leg="a", queue="sales")
    arrive(c, leg="b", queue="support", priority="100000")
    await asyncio.sleep(0.05)
    enq = {x.queue: x.priority for x in seen if isinstance(x, f.CallerEnqueued)}
    assert enq == {"sales": 5, "support": 100}


async def test_commands_on_one_leg_run_in_order_even_when_one_is_slow(center):
    c, driver, seen = center
    driver.slow["originate"] = 0.05
    c.control("agent_login", "1001")
    arrive(c)
    await settle()
    c.emit(LegHungUp("caller-1", Outcome.ANSWERED))  # caller gives up while the agent leg is being dialled
    await asyncio.sleep(0.2)
    # the agent leg's Hangup waited for its (slow) Originate to be sent first
    agent_leg = next(call[1].leg_id for call in driver.calls if call[0] == "originate")
    on_leg = [call[0] for call in driver.calls
              if (call[0] == "originate" and call[1].leg_id == agent_leg) or (call[0] == "hangup" and call[1] == agent_leg)]
    assert on_leg == ["originate", "hangup"]
    assert any(isinstance(x, f.CallEnded) and x.outcome == "abandoned" for x in seen)


async def test_journeys_open_at_a_restart_are_closed_once_unless_the_call_is_re_adopted(center):
    from callcenterd.core.journeys.record import Journey
    from callcenterd.pbx.api import WaitingCall

    c, driver, seen = center
    c.restore_journeys([
        Journey(call_id="gone", node="ast1", started_at=1.0, enqueued_at=1.0, queue="support"),
        Journey(call_id="still-waiting", node="ast1", started_at=2.0, enqueued_at=2.0, queue="support"),
    ])
    snapshot = PbxSnapshot(legs=frozenset({"leg-w"}), waiting=(
        WaitingCall(leg_id="leg-w", queue="support", enqueued_at=2.0, call_id="still-waiting"),))
    c.emit(PbxUp("ast1", snapshot))
    await asyncio.sleep(0.05)
    ended = [(x.call_id, x.outcome) for x in seen if isinstance(x, f.CallEnded)]
    assert ended == [("gone", "interrupted")]
    c.emit(PbxUp("ast1", snapshot))  # a later reconnect closes nothing twice
    await asyncio.sleep(0.05)
    assert [(x.call_id, x.outcome) for x in seen if isinstance(x, f.CallEnded)] == [("gone", "interrupted")]


async def test_restored_agents_are_back_without_new_queue_log_membership_lines(center):
    c, driver, seen = center
    c.restore_agents({"1001": {"logged_in": True, "paused": True, "reason": "lunch"}})
    assert c.acd.agent_state("1001")["state"] == "paused"
    assert not [x for x in seen if isinstance(x, (f.AgentLoggedIn, f.AgentPaused))]
    assert [x.state for x in seen if isinstance(x, f.AgentStateChanged) and x.agent == "1001"][-1] == "paused"


async def test_an_originate_timeout_tries_another_agent_and_blames_nobody(center):
    from callcenterd.pbx.api import Timeout

    c, driver, seen = center
    driver.fail["originate"] = Timeout("Originate: no response")
    c.control("agent_login", "1001")
    arrive(c)
    await asyncio.sleep(0.05)
    withdrawn = [x for x in seen if isinstance(x, f.AgentRingNoAnswer)]
    assert withdrawn and withdrawn[0].reason == "pbx-timeout"
    assert c.acd.agent_state("1001")["missed"] == 0


async def test_a_caller_held_by_the_dialplan_alone_gets_a_journey_and_a_place(center):
    from callcenterd.pbx.api import CallHeld, WaitingCall

    c, driver, seen = center
    c.emit(CallHeld("ast1", WaitingCall("1795.3", "support", 1000.5, call_id="1795.3", caller_id=CallerId("555", "Al"))))
    await settle()
    started = [x for x in seen if isinstance(x, f.CallStarted)]
    assert [(s.call_id, s.at, s.caller_name, s.pbx_uniqueid) for s in started] == [("1795.3", 1000.5, "Al", "1795.3")]
    assert [x.call_id for x in seen if isinstance(x, f.CallerEnqueued)] == ["1795.3"]
    c.emit(CallHeld("ast1", WaitingCall("1795.3", "support", 1000.5, call_id="1795.3")))  # seen twice: once only
    await settle()
    assert len([x for x in seen if isinstance(x, f.CallStarted)]) == 1


async def test_the_journey_carries_the_pbx_ids_and_the_raw_caller_name(center):
    c, driver, seen = center
    c.emit(CallArrived("1795.4", CallerId("555", "Bob?"), "100", {"queue": "support"}, "ast1",
                       linked_id="1795.2", caller_raw="Bob\\r"))
    await settle()
    started = [x for x in seen if isinstance(x, f.CallStarted)][0]
    assert (started.pbx_uniqueid, started.pbx_linkedid, started.caller_name_raw) == ("1795.4", "1795.2", "Bob\\r")
    journey = c._journeys.get(started.call_id)
    assert (journey.pbx_uniqueid, journey.pbx_linkedid, journey.caller_name_raw) == ("1795.4", "1795.2", "Bob\\r")
async def test_a_completed_call_saves_the_queues_handle_stats_to_the_store(center, tmp_path):
    """The talk time just measured reaches the store, so estimates survive a restart."""
    from callcenterd.store.sqlite import SqliteStore

    c, driver, seen = center
    store = await SqliteStore.open(tmp_path / "state.db")
    c._store = store
    c.control("agent_login", "1001")
    arrive(c)
    await asyncio.sleep(0.05)
    leg = next(call[1].leg_id for call in driver.calls if call[0] == "originate")
    c.emit(LegAnswered(leg))
    await asyncio.sleep(0.05)
    c.emit(LegHungUp("caller-1", Outcome.ANSWERED))
    await asyncio.sleep(0.1)
    saved = await store.load_handle_stats()
    await store.close()
    assert saved["support"]["samples"] == 1
    assert saved["support"]["talk_mean"] < 120  # the prior moved towards the ~0.05 s call
async def _connected_call(c, driver):
    c.control("agent_login", "1001")
    arrive(c)
    await asyncio.sleep(0.05)
    originate = next(x for x in driver.calls if x[0] == "originate")[1]
    c.emit(LegAnswered(originate.leg_id))
    await asyncio.sleep(0.05)
    return originate.leg_id


async def test_a_caller_hung_up_by_a_pbx_shutting_down_did_not_abandon(center):
    """FreeSWITCH hangs every channel up with SYSTEM_SHUTDOWN at fsctl shutdown."""
    c, driver, seen = center
    arrive(c)  # nobody logged in: the caller waits
    await asyncio.sleep(0.05)
    c.emit(LegHungUp("caller-1", Outcome.ANSWERED, 501, "SYSTEM_SHUTDOWN"))
    await asyncio.sleep(0.05)
    assert not [x for x in seen if isinstance(x, f.CallerAbandoned)]  # no queue_log ABANDON
    assert [x.outcome for x in seen if isinstance(x, f.CallEnded)] == ["pbx-shutdown"]


async def test_calls_lost_in_a_pbx_restart_end_when_the_pbx_was_last_heard(center):
    c, driver, seen = center
    await _connected_call(c, driver)
    driver.lost_sight_at = asyncio.get_running_loop().time() - 30.0  # last event 30 s before the PbxDown
    c.emit(PbxDown("ast1", "connection closed"))
    await asyncio.sleep(0.05)
    c.emit(PbxUp("ast1", PbxSnapshot(restarted=True)))
    await asyncio.sleep(0.05)
    (ended,) = [x for x in seen if isinstance(x, f.CallEnded)]
    assert ended.outcome == "pbx-restart" and ended.at == driver.lost_sight_at


async def test_answered_at_is_the_bridge_time(center):
    c, driver, seen = center
    agent_leg = await _connected_call(c, driver)
    connected = next(x for x in seen if isinstance(x, f.CallerConnected))
    await asyncio.sleep(0.1)
    c.emit(Bridged("caller-1", agent_leg))
    await asyncio.sleep(0.05)
    bridged_at = asyncio.get_running_loop().time()
    journey = c._journeys.get(connected.call_id)
    assert connected.at + 0.1 <= journey.answered_at <= bridged_at


async def test_a_caller_held_by_the_dialplan_while_we_were_down_keeps_its_name_and_times(center):
    from callcenterd.pbx.api import WaitingCall

    c, driver, seen = center
    enqueued = asyncio.get_running_loop().time() - 100.0  # cc_enqueued stamped by the dialplan
    c.emit(PbxUp("ast1", PbxSnapshot(legs=frozenset({"leg-d"}), waiting=(
        WaitingCall("leg-d", "support", enqueued, call_id="leg-d", caller_id=CallerId("5550009", "Dora")),))))
    await asyncio.sleep(0.05)
    (started,) = [x for x in seen if isinstance(x, f.CallStarted)]
    (enq,) = [x for x in seen if isinstance(x, f.CallerEnqueued)]
    assert (started.caller_name, started.caller_number, started.at) == ("Dora", "5550009", enqueued)
    assert enq.at == enqueued and enq.readopted is False  # queue_log writes its ENTERQUEUE
    journey = c._journeys.get("leg-d")
    assert (journey.caller_name, journey.started_at, journey.enqueued_at) == ("Dora", enqueued, enqueued)
