"""Queue and agent settings an admin gets wrong: each refusal names the
queue or agent and the setting, and the limits themselves are accepted."""

import pytest
from acd_harness import A, Q

from callcenterd.core.acd import AgentSpec
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
    assert "'a9'" in str(UnknownAgent("a9"))
    assert "'vip'" in str(UnknownQueue("vip"))


def test_only_a_paused_agent_shows_a_reason():
    from acd_harness import Rig, leg_for
    r = Rig([Q(wrapup_time=5)], [A("a1")])
    r.call("sales", call_id="c1")
    r.answer(leg_for(r.out, "a1"))
    assert (r.acd.agent_state("a1")["state"], r.acd.agent_state("a1")["reason"]) == ("on-call", "")
    r.hangup("cleg-c1")
    assert (r.acd.agent_state("a1")["state"], r.acd.agent_state("a1")["reason"]) == ("wrap-up", "")
