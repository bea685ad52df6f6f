"""Queue and agent settings an admin gets wrong: each refusal names the
queue or agent and the setting, and the limits themselves are accepted."""

import pytest
from acd_harness import A, Q, Rig

from callcenterd.core.acd import AgentSpec, Strategy
from callcenterd.core.acd.errors import UnknownAgent, UnknownQueue


@pytest.mark.parametrize("make, message", [
    (lambda: Q(""), "queue name must not be empty"),
    (lambda: Q("bad\nname"), "queue name"),
    (lambda: Q(overflow_destination="x\r\ny"), "overflow destination"),
    (lambda: Q(moh_class="x\ny"), "music on hold class"),
    (lambda: Q(skills={"": 3}), "queue 'sales': empty skill name"),
    (lambda: Q(skills={"a\nb": 3}), "queue 'sales' skill name"),
    (lambda: Q(skills={"fr": 11}), "queue 'sales': skill 'fr' level must be an integer 1..10, got 11"),
    (lambda: Q(skills={"fr": "5"}), "queue 'sales': skill 'fr' level must be an integer 1..10, got '5'"),
    (lambda: A(""), "agent id and device must not be empty"),
    (lambda: A("a\n1"), "agent id"),
    (lambda: AgentSpec(id="a1", device="PJSIP/x\n"), "agent device"),
    (lambda: A("a1", node="pbx\x00"), "agent node"),
    (lambda: A("a1", skills={"fr": 0}), "agent 'a1': skill 'fr' level must be an integer 1..10, got 0"),
    (lambda: A("a1", penalty={"support": 1}), "agent 'a1': penalty for queues it does not serve: ['support']"),
    (lambda: A("a1", weight=0), "agent 'a1': weight must be > 0"),
    (lambda: A("a1", wrapup_time=-1), "agent 'a1': wrapup_time must be >= 0"),
    (lambda: A("a1", busy_backoff=-1), "agent 'a1': busy_backoff must be >= 0"),
    (lambda: A("a1", max_missed=-1), "agent 'a1': max_missed must be >= 0"),
    (lambda: A("a1", max_concurrent=0), "agent 'a1': max_concurrent must be >= 1"),
])
def test_bad_settings_are_refused_naming_what_is_wrong(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_the_limits_themselves_are_accepted():
    Q(skills={"fr": 1, "de": 10})
    A("a1", skills={"fr": 10}, wrapup_time=0, busy_backoff=0, max_missed=0, weight=0.5)
    AgentSpec(id="a2", device="PJSIP/a2")  # no node, no queue: fine


def test_unknown_agent_and_queue_errors_name_them():
    assert str(UnknownAgent("a9")) == "unknown agent 'a9': not in the ACD configuration"
    assert str(UnknownQueue("vip")) == "unknown queue 'vip': not in the ACD configuration"
    assert (UnknownAgent("a9").agent_id, UnknownQueue("vip").queue) == ("a9", "vip")


async def test_an_api_request_for_an_agent_not_in_the_config_answers_404_with_the_reason():
    import aiohttp

    from callcenterd.api.http import ApiServer, build_app

    class Control:  # what the daemon's AcdControl does, on a real ACD
        def __init__(self, acd):
            self.acd = acd

        def login(self, agent_id):
            self.acd.agent_login(agent_id)

        logout = pause = unpause = agents = queues = waiting = None

    r = Rig([Q()], [A("a1")], login=False)
    server = ApiServer(build_app(Control(r.acd), "tok"), "127.0.0.1", 0)
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=server.url) as http:
            resp = await http.post("/v1/agents/a9/login", headers={"Authorization": "Bearer tok"})
            assert resp.status == 404
            assert await resp.json() == {"error": "unknown agent 'a9': not in the ACD configuration"}
    finally:
        await server.stop()


def test_only_a_paused_agent_shows_a_reason():
    from acd_harness import Rig, leg_for
    r = Rig([Q(wrapup_time=5)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    assert (r.acd.agent_state("a1")["state"], r.acd.agent_state("a1")["reason"]) == ("on-call", "")
    r.hangup("cleg-c1")
    assert (r.acd.agent_state("a1")["state"], r.acd.agent_state("a1")["reason"]) == ("wrap-up", "")


@pytest.mark.parametrize("make, message", [
    (lambda: Q(strategy="fastest"), "queue 'sales': unknown strategy 'fastest' (one of ring-all, longest-idle,"),
    (lambda: Q(ring_time=0), "queue 'sales': ring_time must be > 0"),
    (lambda: Q(progressive_every=0), "queue 'sales': progressive_every must be > 0"),
    (lambda: Q(talk_time_prior=0), "queue 'sales': talk_time_prior must be > 0"),
    (lambda: Q(retry_delay=-0.5), "queue 'sales': retry_delay must be >= 0"),
    (lambda: Q(busy_backoff=-0.5), "queue 'sales': busy_backoff must be >= 0"),
    (lambda: Q(wrapup_time=-0.5), "queue 'sales': wrapup_time must be >= 0"),
    (lambda: Q(max_wait=-0.5), "queue 'sales': max_wait must be >= 0"),
    (lambda: Q(announce_every=-0.5), "queue 'sales': announce_every must be >= 0"),
    (lambda: Q(join_empty="maybe"), "queue 'sales': join_empty must be one of yes, no, strict"),
    (lambda: Q(leave_empty="sometimes"), "queue 'sales': leave_empty must be one of yes, no, strict"),
    (lambda: Q(max_callers=-1), "queue 'sales': max_callers must be >= 0"),
    (lambda: Q(progressive_initial=0), "queue 'sales': progressive_initial >= 1 and progressive_add >= 0"),
    (lambda: Q(progressive_add=-1), "queue 'sales': progressive_initial >= 1 and progressive_add >= 0"),
    (lambda: Q(overflow_queue="sales"), "queue 'sales': overflow_queue points to itself"),
    (lambda: Q(skill_relax=((-1, 1),)), "queue 'sales': skill_relax steps must be (after_s >= 0, drop >= 1) in order"),
    (lambda: Q(skill_relax=((10, 0),)), "queue 'sales': skill_relax steps must be"),
    (lambda: Q(skill_relax=((30, 2), (10, 1))), "queue 'sales': skill_relax steps must be"),
    (lambda: A("a1", queues=("sales", "sales")), "agent 'a1': a queue is listed twice"),
])
def test_more_bad_queue_and_agent_settings_are_refused_naming_what_is_wrong(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_the_edges_of_every_setting_are_accepted_and_kept():
    q = Q(ring_time=0.5, progressive_every=0.5, talk_time_prior=0.5, retry_delay=0, busy_backoff=0, wrapup_time=0,
          max_wait=0, announce_every=0, max_callers=0, progressive_initial=1, progressive_add=0,
          skill_relax=[(0, 1), ("30", "2")], join_empty=True, leave_empty=True, strategy="skills")
    assert (q.strategy, q.join_empty, q.leave_empty, q.skill_relax) == (Strategy.SKILLS, "yes", "strict",
                                                                         ((0.0, 1), (30.0, 2)))
    assert (Q(join_empty=False).join_empty, Q(leave_empty=False).leave_empty) == ("strict", "no")
    assert (Q(join_empty="no").join_empty, Q(leave_empty="yes").leave_empty) == ("no", "yes")
    skills, penalty = {"fr": 3}, {"sales": 2}
    a = AgentSpec(id="a1", device="PJSIP/a1", queues=["sales"], skills=skills, penalty=penalty, weight=0.1,
                  max_concurrent=1)
    skills["fr"], penalty["sales"] = 9, 0  # the caller's dicts change later: the spec does not
    assert (a.queues, a.skills, a.penalty) == (("sales",), {"fr": 3}, {"sales": 2})
    qs = {"fr": 3}
    q = Q(skills=qs)
    qs["fr"] = 9
    assert q.skills == {"fr": 3}
