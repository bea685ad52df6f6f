"""Config -> core specs, and building the runtime without starting it."""

from pathlib import Path


from callcenterd.config import config_from_mapping, load_config
from callcenterd.core.acd.specs import Strategy
from callcenterd.wiring import agent_specs, build, queue_specs

REPO = Path(__file__).resolve().parents[2]


def _config(**queues):
    return config_from_mapping({
        "pbx": {"ast1": {"type": "asterisk", "ami": {"username": "cc", "secret": "s"}}},
        "queues": queues or {"support": {}},
        "agents": {"1001": {"device": "Local/1001@agents/n", "queues": list(queues or ["support"]),
                            "busy_backoff": 4, "penalty": 2, "skills": {"sales": 7}}},
    })


def test_example_config_maps_onto_acd_specs():
    config = load_config(REPO / "config" / "callcenterd.yaml")
    queues = {q.name: q for q in queue_specs(config)}
    sales = queues["sales"]
    assert sales.strategy is Strategy.SKILLS and sales.skills == {"sales": 5}
    assert sales.overflow_queue == "support" and sales.max_wait == 300
    assert sales.skill_relax == ((60.0, 2), (120.0, 4))  # min_level_delta -2/-4 -> drops 2/4
    assert sales.join_empty == "strict" and queues["support"].leave_empty == "no"
    assert queues["support"].talk_time_prior == 120.0  # documented default of the estimate's prior
    agents = {a.id: a for a in agent_specs(config)}
    assert agents["1003"].penalty == {"sales": 1, "support": 1}
    assert agents["1001"].node == "ast1"  # the only node


def test_relax_every_becomes_cumulative_steps():
    config = _config(sales={"strategy": "skills", "skills": {"sales": 5}, "skill_relax": {"every": 30, "step": 2}})
    (sales,) = queue_specs(config)
    assert sales.skill_relax[:3] == ((30.0, 2), (60.0, 4), (90.0, 6))


def test_announcements_off_when_position_is_not_announced():
    config = _config(support={"announce_frequency": 45, "announce_position": False})
    assert queue_specs(config)[0].announce_every == 0.0
    config = _config(support={"announce_frequency": 45})
    assert queue_specs(config)[0].announce_every == 45.0


def test_agent_fields_reach_the_acd():
    (agent,) = agent_specs(_config())
    assert agent.busy_backoff == 4.0 and agent.penalty == {"support": 2} and agent.skills == {"sales": 7}


async def test_build_wires_drivers_and_device_aliases(tmp_path):
    config = config_from_mapping({
        "pbx": {"ast1": {"type": "asterisk", "ami": {"username": "cc", "secret": "s"}}},
        "queues": {"support": {}},
        "agents": {"1001": {"device": "Local/1001@agents/n", "queues": ["support"]}},
        "cdr": {"directory": str(tmp_path / "cdr")},
        "store": {"path": str(tmp_path / "state.db")},
    })
    runtime = await build(config, with_api=False)
    try:
        assert set(runtime.drivers) == {"ast1"}
        assert runtime.center.device_aliases == {"Local/1001@agents": "Local/1001@agents/n"}
        assert runtime.drivers["ast1"].devices == {"Local/1001@agents"}
        assert len(runtime.call_servers) == 1 and len(runtime.supervisors) == 1
    finally:
        await runtime.store.close()
