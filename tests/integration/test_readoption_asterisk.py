"""Callers keep their place: callcenterd killed, or its AMI link cut, while
callers wait in the real sandbox Asterisk."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error

import pytest

from acd_rig import AcdRig, clean_pbx, wait_for
from callcenterd.core import facts as f
from callcenterd.sandbox.asterisk import free_tcp_port
from daemon_proc import QUEUE, Daemon, daemon_config

pytestmark = pytest.mark.asterisk


async def test_sigkill_while_three_callers_wait_then_restart_keeps_order_and_times(asterisk, tmp_path):
    await clean_pbx(asterisk)
    port = free_tcp_port()
    daemon = Daemon(daemon_config(asterisk, tmp_path, port), port, tmp_path / "daemon.log")
    daemon.start()
    rig = AcdRig(asterisk, tmp_path, queues={}, agents={}, login=False)  # only for its traffic session
    try:
        await wait_for(daemon.up, "daemon API up", timeout=30)
        daemon.post("/v1/agents/1001/login")
        daemon.post("/v1/agents/1001/pause", {"reason": "training"})
        with pytest.raises(urllib.error.HTTPError) as unknown:
            daemon.post("/v1/agents/9999/login")
        assert unknown.value.code == 404 and "9999" in json.loads(unknown.value.read())["error"]
        from callcenterd.protocols.ami.session import AmiSession

        traffic = await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user,
                                           asterisk.ami_secret, events="off")
        try:
            for i in range(3):
                await traffic.action("Originate", [
                    ("Channel", "Local/support@customers/n"), ("Application", "Wait"), ("Data", "90"),
                    ("CallerID", f'"Waiter {i}" <55501{i}>'), ("Async", "true"),
                ])
                await wait_for(lambda i=i: len(daemon.waiting()) == i + 1, f"caller {i} waiting")
                await asyncio.sleep(0.3)
            before = daemon.waiting()
            assert [w["position"] for w in before] == [1, 2, 3]

            daemon.kill(signal.SIGKILL)
            # the callers are still in Asterisk, on hold
            assert rig.channel_count() >= 6  # 3 customers x 2 Local halves

            daemon.start()
            await wait_for(lambda: len(daemon.waiting()) == 3, "callers re-adopted", timeout=30)
            after = daemon.waiting()
            assert [w["call_id"] for w in after] == [w["call_id"] for w in before]
            for b, a in zip(before, after):
                assert abs(a["enqueued_at"] - b["enqueued_at"]) < 0.002, (b, a)

            # the agent's login and pause came back from the store
            agent = next(a for a in daemon.get("/v1/agents")["agents"] if a["agent"] == "1001")
            assert agent["state"] == "paused" and agent["reason"] == "training"
            # served in that order once the agent is back
            daemon.post("/v1/agents/1001/unpause")
            await wait_for(lambda: [w["call_id"] for w in daemon.waiting()] == [w["call_id"] for w in before[1:]],
                           "first caller taken first")
        finally:
            await traffic.close()
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
        asterisk.cli("channel request hangup all")
    journeys = [json.loads(line) for p in (tmp_path / "cdr").glob("journeys-*.jsonl")
                for line in p.read_text().splitlines() if line.strip()]
    # nothing was written twice across the kill
    ids = [j["call_id"] for j in journeys]
    assert len(ids) == len(set(ids))


async def test_ami_link_drop_while_callers_wait_readopts_in_order(asterisk, tmp_path):
    rig = AcdRig(asterisk, tmp_path, queues={"support": QUEUE}, agents={"1001": {"device": "Local/1001@agents/n",
                                                                               "queues": ["support"]}})
    async with rig:
        rig.control("agent_pause", "1001", "meeting")
        calls = []
        for _ in range(2):
            number = await rig.customer("support", patience=40)
            calls.append(await rig.call_id(number))
            await rig.fact(f.CallerEnqueued, call_id=calls[-1])
        before = rig.runtime.center.acd.waiting_view()
        supervisor = rig.runtime.supervisors[0]
        driver = rig.runtime.drivers["sandbox"]
        session = supervisor.session
        session._writer.transport.abort()  # the TCP link dies; Asterisk stays up
        await wait_for(lambda: not driver.up, "driver saw the drop", timeout=10)
        await wait_for(lambda: driver.up and supervisor.session is not session, "reconnected", timeout=20)
        after = rig.runtime.center.acd.waiting_view()
        assert [w["call_id"] for w in after] == [w["call_id"] for w in before] == calls
        assert [w["enqueued_at"] for w in after] == [w["enqueued_at"] for w in before]
        assert not rig.of(f.CallEnded)  # nobody was lost
        rig.control("agent_unpause", "1001")
        connected = await rig.fact(f.CallerConnected)
        assert connected.call_id == calls[0]


async def test_sigkill_during_a_conversation_keeps_the_agent_busy_and_writes_the_journey_once(asterisk, tmp_path):
    await clean_pbx(asterisk)
    port = free_tcp_port()
    daemon = Daemon(daemon_config(asterisk, tmp_path, port), port, tmp_path / "daemon.log")
    daemon.start()
    from callcenterd.protocols.ami.session import AmiSession

    traffic = None
    try:
        await wait_for(daemon.up, "daemon API up", timeout=30)
        daemon.post("/v1/agents/1001/login")
        traffic = await AmiSession.connect(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user,
                                           asterisk.ami_secret, events="off")
        await traffic.action("Originate", [
            ("Channel", "Local/support@customers/n"), ("Application", "Wait"), ("Data", "10"),
            ("CallerID", '"Talker" <5550100>'), ("Async", "true")])
        await wait_for(lambda: any(a["state"] == "on-call" for a in daemon.get("/v1/agents")["agents"]),
                       "agent 1001 talking")
        talking_since = time.monotonic()
        daemon.kill(signal.SIGKILL)

        daemon.start()
        await wait_for(daemon.up, "daemon back", timeout=30)
        await traffic.action("Originate", [
            ("Channel", "Local/support@customers/n"), ("Application", "Wait"), ("Data", "30"),
            ("CallerID", '"Next" <5550101>'), ("Async", "true")])
        await wait_for(lambda: len(daemon.waiting()) == 1, "second caller waiting")
        # the agent is still on the first call: on-call in the API, not rung
        agent = next(a for a in daemon.get("/v1/agents")["agents"] if a["agent"] == "1001")
        assert agent["state"] == "on-call" and len(agent["call_ids"]) == 1
        await asyncio.sleep(1.0)
        assert len(daemon.waiting()) == 1
        # once the first call ends (the customer hangs up after 10 s) the
        # second caller gets the agent
        await wait_for(lambda: not daemon.waiting(), "second caller served", timeout=25)
        assert time.monotonic() - talking_since >= 8
    finally:
        if traffic is not None:
            await traffic.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGTERM)
        asterisk.cli("channel request hangup all")
    journeys = [json.loads(line) for p in (tmp_path / "cdr").glob("journeys-*.jsonl")
                for line in p.read_text().splitlines() if line.strip()]
    first = [j for j in journeys if j["caller_number"] == "5550100"]
    assert len(first) == 1, journeys
    # the call went on across the restart and is written once, complete
    assert first[0]["outcome"] == "answered" and first[0]["agent"] == "1001"
    assert first[0]["completed_by"] == "caller" and first[0]["talk_s"] >= 8
    assert first[0]["started_at"] and first[0]["enqueued_at"]  # the checkpoint kept them
