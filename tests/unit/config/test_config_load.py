"""load_config: conf.d merging, located errors, references, secrets."""

from pathlib import Path

import pytest

from callcenterd.config import ConfigError, load_config
from callcenterd.config.models import AsteriskNode


REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "callcenterd.yaml"

MINIMAL = """\
pbx:
  ast1:
    type: asterisk
    ami: {username: cc, secret: hunter2-XYZ}
queues:
  sales: {}
  support: {}
agents:
  "1001": {device: PJSIP/1001, queues: [sales]}
"""


def errors_of(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.messages


# ------------------------------------------------------------- example file
def test_example_config_validates():
    config = load_config(EXAMPLE)
    assert sorted(config.queues) == ["sales", "support"]
    assert len(config.agents) == 3
    node = config.pbx["ast1"]
    assert isinstance(node, AsteriskNode) and node.ami.secret_env == "CALLCENTERD_AMI_SECRET"
    assert all(agent.device.startswith("Local/") for agent in config.agents.values())
    # 'join_empty: yes' / 'leave_when_empty: no' stay strings thanks to the loader
    assert config.queues["support"].join_empty == "yes"
    assert config.queues["support"].leave_when_empty == "no"
    assert config.queues["sales"].overflow.queue == "support"


def test_example_documents_every_option():
    """Each field of each model appears in the example (active or commented)."""
    from callcenterd.config import models

    text = EXAMPLE.read_text()
    sections = [models.AmiConfig, models.FastAgiConfig, models.AsteriskContexts, models.EslConfig,
                models.EslOutboundConfig, models.QueueConfig, models.AgentConfig, models.CdrConfig,
                models.StoreConfig, models.ApiConfig, models.KpiConfig, models.LoggingConfig,
                models.SystemdConfig, models.Config]  # fmt: skip
    missing = [
        f"{model.__name__}.{field}"
        for model in sections
        for field in model.model_fields
        if f"{field}:" not in text
    ]
    assert missing == []


def test_defaults_are_filled(write_config):
    config = load_config(write_config(MINIMAL))
    sales = config.queues["sales"]
    assert (sales.strategy, sales.ring_time, sales.retry_delay, sales.wrapup_time) == ("longest-idle", 15, 5, 10)
    assert (sales.join_empty, sales.leave_when_empty, sales.max_wait, sales.max_callers) == ("yes", "no", 0, 0)
    agent = config.agents["1001"]
    assert agent.node == "ast1"  # the only pbx node
    assert (agent.max_missed, agent.busy_backoff, agent.max_concurrent) == (3, 10, 1)
    assert config.cdr.formats == ["csv", "jsonl", "queue_log"]
    assert config.cdr.max_bytes == 64 * 2**20 and config.cdr.file_mode_int == 0o640
    assert config.kpi.service_level_denominator == "offered-minus-short"
    assert (config.api.port, config.store.backend, config.logging.level) == (8480, "sqlite", "info")


# ------------------------------------------------------------------ conf.d
def test_conf_d_deep_merges_and_replaces_lists(write_config):
    path = write_config(
        MINIMAL,
        {
            "10-sales.yaml": """\
                queues:
                  sales: {ring_time: 25, strategy: ring-all}
                agents:
                  "1001": {queues: [support]}
                """,
            "20-later.yaml": "queues:\n  sales: {ring_time: 30}\n",
            "05-ignored.yaml.disabled": "queues: {sales: {ring_time: nonsense}}\n",
        },
    )
    config = load_config(path)
    assert config.queues["sales"].ring_time == 30  # 20- applied after 10-
    assert config.queues["sales"].strategy == "ring-all"  # 10- kept where 20- is silent
    assert config.agents["1001"].queues == ["support"]  # list replaced, not appended
    assert config.agents["1001"].device == "PJSIP/1001"  # sibling key kept


def test_error_in_override_names_the_override_file_and_line(write_config):
    path = write_config(MINIMAL, {"10-sales.yaml": "# sales tuning\nqueues:\n  sales:\n    ring_time: abc\n"})
    messages = errors_of(path)
    expected = f"{path.parent / 'conf.d' / '10-sales.yaml'}:4: queues.sales.ring_time: Input should be a valid number"
    assert messages == [expected]


def test_replaced_subtree_takes_the_override_origins(write_config):
    main = MINIMAL.replace("  sales: {}", "  sales:\n    overflow: {queue: support}")
    path = write_config(main, {"10-x.yaml": "queues:\n  sales:\n    overflow:\n      queue: nowhere\n"})
    assert errors_of(path) == [
        f"{path.parent / 'conf.d' / '10-x.yaml'}:4: queues.sales.overflow.queue: overflow to unknown queue 'nowhere'"
    ]


def test_yaml_anchors_are_not_shared_after_merge(write_config):
    main = MINIMAL.replace("  sales: {}\n  support: {}", "  sales: &q {ring_time: 10}\n  support: *q")
    path = write_config(main, {"10-x.yaml": "queues:\n  sales: {ring_time: 40}\n"})
    config = load_config(path)
    assert (config.queues["sales"].ring_time, config.queues["support"].ring_time) == (40, 10)


def test_unreadable_and_malformed_files_are_all_reported(write_config):
    path = write_config(MINIMAL, {"10-a.yaml": "queues: [\n", "20-b.yaml": "- a list\n"})
    messages = errors_of(path)
    assert len(messages) == 2
    assert messages[0].startswith(f"{path.parent / 'conf.d' / '10-a.yaml'}:2: ")
    assert messages[1] == f"{path.parent / 'conf.d' / '20-b.yaml'}:1: the top level must be a mapping of sections"


def test_missing_main_file(tmp_path):
    messages = errors_of(tmp_path / "nope.yaml")
    assert messages == [f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"]


# ------------------------------------------------------------- all errors
BROKEN = """\
pbx:
  ast1:
    type: asterisk
    ami:
      username: cc
      secret: hunter2-XYZ
      port: "5038"
      colour: blue
  fs1:
    type: freeswitch
    esl: {password: hunter2-XYZ, password_env: FS_PW}
queues:
  sales:
    ring_time: abc
    join_empty: maybe
    overflow: {queue: nowhere}
    skills: {klingon: 5}
  support:
    overflow: {queue: support}
agents:
  "1001":
    device: PJSIP/1001
    node: ast9
    queues: [sales, ghost]
  "1002":
    device: PJSIP/1002
cdr:
  file_mode: 0999
"""


def test_every_error_is_reported_at_once_with_file_line_and_key(write_config):
    path = write_config(BROKEN)
    f = str(path)
    assert errors_of(path) == [
        f"{f}:7: pbx.ast1.ami.port: Input should be a valid integer",
        f"{f}:8: pbx.ast1.ami.colour: Extra inputs are not permitted",
        f"{f}:11: pbx.fs1.esl: give only one of password, password_env, password_file (got password, password_env)",
        f"{f}:14: queues.sales.ring_time: Input should be a valid number",
        f"{f}:15: queues.sales.join_empty: Input should be 'yes', 'no' or 'strict'",
        f"{f}:16: queues.sales.overflow.queue: overflow to unknown queue 'nowhere'",
        f"{f}:17: queues.sales.skills.klingon: no agent has the required skill 'klingon'",
        f"{f}:19: queues.support.overflow.queue: a queue cannot overflow to itself",
        f"{f}:23: agents.1001.node: unknown pbx node 'ast9'",
        f"{f}:24: agents.1001.queues[1]: unknown queue 'ghost'",
        f"{f}:25: agents.1002: node is required when there are several pbx nodes (ast1, fs1)",
        f'{f}:28: cdr.file_mode: file_mode must be an octal string like "0640"',
    ]


def test_secret_never_appears_in_errors_or_repr(write_config):
    messages = errors_of(write_config(BROKEN))
    assert messages and not any("hunter2" in m for m in messages)
    config = load_config(write_config(MINIMAL))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    assert "hunter2" not in config.model_dump_json()
    assert config.pbx["ast1"].ami.resolve_secret().get_secret_value() == "hunter2-XYZ"


def test_wrongly_typed_secret_is_not_echoed(write_config):
    text = MINIMAL.replace("secret: hunter2-XYZ", "secret: [hunter2-XYZ]")
    messages = errors_of(write_config(text))
    assert messages == [f"{write_config(text)}:4: pbx.ast1.ami.secret: Input should be a valid string"]


def test_missing_required_field_is_named(write_config):
    path = write_config(MINIMAL.replace('{device: PJSIP/1001, queues: [sales]}', '{queues: [sales]}'))
    assert errors_of(path) == [f"{path}:9: agents.1001.device: Field required"]


def test_no_pbx_node(write_config):
    path = write_config("pbx: {}\n")
    assert errors_of(path) == [f"{path}:1: pbx: Dictionary should have at least 1 item after validation, not 0"]


def test_load_refuses_store_backend_postgresql_where_it_is_written(write_config):
    path = write_config(MINIMAL + "store:\n  path: /tmp/x.db\n  backend: postgresql\n")
    assert errors_of(path) == [
        f"{path}:12: store.backend: postgresql is not supported yet (nothing would be stored); use sqlite"
    ]


def test_syntax_error_in_one_conf_d_file_does_not_hide_the_others(write_config):
    path = write_config(MINIMAL, {
        "10-broken.yaml": "queues:\n  sales: {ring_time: 5\n",
        "20-agents.yaml": "agents:\n  \"1001\": {max_missed: many}\n",
        "30-queues.yaml": "queues:\n  support:\n    strategy: fastest\n",
    })  # fmt: skip
    conf_d = path.parent / "conf.d"
    messages = errors_of(path)
    assert len(messages) == 3
    assert messages[0].startswith(f"{conf_d / '10-broken.yaml'}:")
    assert messages[1] == f"{conf_d / '20-agents.yaml'}:2: agents.1001.max_missed: Input should be a valid integer"
    assert messages[2].startswith(f"{conf_d / '30-queues.yaml'}:3: queues.support.strategy: Input should be")


def test_errors_the_broken_file_may_explain_are_not_reported(write_config):
    """The unreadable file may define the pbx node or the queue others refer to."""
    path = write_config("agents:\n  \"1001\": {device: PJSIP/1001, queues: [sales]}\n",
                        {"10-pbx.yaml": "pbx: {ast1: {type: asterisk\n"})
    messages = errors_of(path)
    assert len(messages) == 1 and messages[0].startswith(f"{path.parent / 'conf.d' / '10-pbx.yaml'}:")


def test_wide_cdr_file_mode_is_refused_where_it_is_written(write_config):
    path = write_config(MINIMAL, {"10-cdr.yaml": "cdr:\n  fsync: always\n  file_mode: \"0644\"\n"})
    assert errors_of(path) == [
        f"{path.parent / 'conf.d' / '10-cdr.yaml'}:3: cdr.file_mode: file_mode 0644 grants 0004 beyond 0660 "
        "(call records hold caller numbers and names); set cdr.allow_wide_file_mode: true to allow it"
    ]
