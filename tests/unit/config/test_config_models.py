"""Model rules: strictness, choices, secrets, sizes."""

import pytest
from pydantic import SecretStr

from callcenterd.config import ConfigError, config_from_mapping
from callcenterd.config.models import AmiConfig, CdrConfig, QueueConfig, resolve_secret


def base(**extra):
    data = {"pbx": {"a": {"type": "asterisk", "ami": {"username": "u", "secret_env": "X"}}}}
    data.update(extra)
    return data


def messages(data):
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data)
    return info.value.messages


def test_numbers_must_be_numbers():
    assert QueueConfig.model_validate({"ring_time": 15}).ring_time == 15.0
    assert messages(base(queues={"q": {"ring_time": "15"}})) == ["queues.q.ring_time: Input should be a valid number"]


def test_strategy_and_empty_policies():
    queue = QueueConfig.model_validate({"strategy": "skills", "join_empty": "strict", "leave_when_empty": "no"})
    assert (queue.strategy, queue.join_empty, queue.leave_when_empty) == ("skills", "strict", "no")
    assert messages(base(queues={"q": {"strategy": "fastest"}}))[0].startswith("queues.q.strategy: Input should be")


def test_ring_progressively_gets_defaults_when_chosen():
    queue = QueueConfig.model_validate({"strategy": "ring-progressively"})
    assert (queue.ring_progressively.start, queue.ring_progressively.step) == (1, 1)


def test_skill_relax_forms():
    steps = QueueConfig.model_validate({"skill_relax": [{"after": 30, "min_level_delta": -1}]})
    assert steps.skill_relax[0].min_level_delta == -1
    every = QueueConfig.model_validate({"skill_relax": {"every": 20, "step": 2}})
    assert every.skill_relax.every == 20
    assert messages(base(queues={"q": {"skill_relax": [{"after": 60, "min_level_delta": -1},
                                                        {"after": 30, "min_level_delta": -2}]}})) == [
        "queues.q.skill_relax: skill_relax steps must be sorted by 'after'"
    ]  # fmt: skip
    assert messages(base(queues={"q": {"skill_relax": 5}})) == [
        "queues.q.skill_relax: Input should be a list of {after, min_level_delta} or {every, step}"
    ]


def test_skill_levels_are_1_to_10():
    assert messages(base(agents={"x": {"device": "PJSIP/1", "skills": {"fr": 0}}})) == [
        "agents.x.skills.fr: Input should be greater than or equal to 1"
    ]


def test_overflow_needs_exactly_one_target():
    assert messages(base(queues={"q": {"overflow": {}}})) == ["queues.q.overflow: give exactly one of queue or destination"]
    queue = QueueConfig.model_validate({"overflow": {"destination": "sales-overflow,s,1"}})
    assert queue.overflow.destination == "sales-overflow,s,1"
    assert messages(base(queues={"q": {"overflow": {"destination": "only-context"}}})) == [
        "queues.q.overflow: destination must be 'context,exten,priority'"
    ]


@pytest.mark.parametrize("device", ["PJSIP/1001", "Local/1001@agents/n", "user/1001", "SIP/peer-1"])
def test_devices_accepted(device):
    assert config_from_mapping(base(agents={"x": {"device": device}})).agents["x"].device == device


@pytest.mark.parametrize("device", ["1001", "PJSIP/", "PJSIP/10 01", "PJSIP/1001\r\nAction: Originate"])
def test_devices_refused(device):
    (message,) = messages(base(agents={"x": {"device": device}}))
    assert message.startswith("agents.x.device: ")


def test_names_are_checked():
    (message,) = messages(base(queues={"a|b": {}}))
    assert message.startswith("queues.a|b: names must be")


@pytest.mark.parametrize("size,expected", [(1048576, 1048576), ("64MiB", 64 * 2**20), ("500MB", 500 * 10**6), ("1GiB", 2**30)])
def test_cdr_sizes(size, expected):
    assert CdrConfig.model_validate({"max_bytes": size}).max_bytes == expected


def test_secret_sources_exactly_one():
    with pytest.raises(ValueError, match="one of secret, secret_env, secret_file is required"):
        AmiConfig.model_validate({"username": "u"})
    with pytest.raises(ValueError, match="give only one of"):
        AmiConfig.model_validate({"username": "u", "secret": "a", "secret_file": "/x"})


def test_secret_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("CC_TEST_SECRET", "from-env")
    assert resolve_secret(None, "CC_TEST_SECRET", None, "AMI secret").get_secret_value() == "from-env"
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text("from-file\n")
    assert resolve_secret(None, None, str(secret_file), "AMI secret").get_secret_value() == "from-file"
    assert resolve_secret(SecretStr("inline"), None, None, "x").get_secret_value() == "inline"
    monkeypatch.delenv("CC_TEST_SECRET")
    with pytest.raises(ConfigError, match="environment variable CC_TEST_SECRET is not set"):
        resolve_secret(None, "CC_TEST_SECRET", None, "AMI secret")
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret(None, None, str(tmp_path / "missing"), "AMI secret")


def test_numeric_secret_is_a_string():
    ami = AmiConfig.model_validate({"username": "u", "secret": 12345})
    assert ami.secret.get_secret_value() == "12345"


def test_api_off_loopback_needs_a_token():
    assert messages(base(api={"host": "0.0.0.0"})) == [
        "api: one of token, token_env, token_file is required when host is not loopback"
    ]
    config = config_from_mapping(base(api={"host": "0.0.0.0", "token_env": "TOK"}))
    assert config.api.has_token


def test_postgresql_is_refused_until_supported():
    refused = "store.backend: postgresql is not supported yet (nothing would be stored); use sqlite"
    assert messages(base(store={"backend": "postgresql"})) == [refused]
    assert messages(base(store={"backend": "postgresql", "dsn_env": "PG"})) == [refused]
    assert messages(base(store={"dsn": "postgresql://x"})) == [
        "store.dsn: dsn is only used by backend postgresql, which is not supported yet"
    ]
    assert messages(base(store={"backend": "mysql"})) == ["store.backend: Input should be 'sqlite'"]
    assert config_from_mapping(base(store={"backend": "sqlite"})).store.backend == "sqlite"


def test_kpi_and_logging_choices():
    config = config_from_mapping(base(kpi={"interval_minutes": 30}, logging={"level": "DEBUG", "format": "json"}))
    assert (config.kpi.interval_minutes, config.logging.level) == (30, "debug")
    assert messages(base(kpi={"interval_minutes": 20})) == ["kpi.interval_minutes: Input should be 15, 30 or 60"]


def test_agent_wrapup_overrides_queue():
    config = config_from_mapping(base(
        queues={"q": {"wrapup_time": 10}},
        agents={"x": {"device": "PJSIP/1", "queues": ["q"], "wrapup_time": 3}, "y": {"device": "PJSIP/2", "queues": ["q"]}},
    ))  # fmt: skip
    assert (config.agent_wrapup("x", "q"), config.agent_wrapup("y", "q")) == (3, 10)
    assert config.agent_name("x") == "x"


@pytest.mark.parametrize("mode", ["0644", "0664", "0666", "0770", "0700", "0604"])
def test_cdr_file_mode_wider_than_0660_is_refused(mode):
    (message,) = messages(base(cdr={"file_mode": mode}))
    assert message.startswith(f"cdr.file_mode: file_mode {mode} grants ")
    assert message.endswith("set cdr.allow_wide_file_mode: true to allow it")


@pytest.mark.parametrize("mode", ["0640", "0600", "0660", "0440", "0400", "640"])
def test_cdr_file_mode_up_to_0660_is_accepted(mode):
    assert config_from_mapping(base(cdr={"file_mode": mode})).cdr.file_mode == mode


def test_cdr_wide_file_mode_with_the_explicit_override():
    config = config_from_mapping(base(cdr={"file_mode": "0644", "allow_wide_file_mode": True}))
    assert config.cdr.file_mode_int == 0o644
