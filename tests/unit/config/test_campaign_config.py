"""Campaign files: validation with file:line:key errors, references, conversion to CampaignSpec."""

import textwrap
from datetime import date, time
from pathlib import Path

import pytest

from callcenterd.config import ConfigError, config_from_mapping, load_config
from callcenterd.config import campaigns as cc
from callcenterd.config.campaigns import load_campaigns, render_dial_string
from callcenterd.core.campaigns.model import AttemptOutcome, DialMode, MachineAction

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "examples" / "campaign.yaml"

MAIN = {
    "pbx": {
        "ast1": {"type": "asterisk", "ami": {"username": "cc", "secret": "x"}},
    },
    "queues": {"sales": {"skills": {"sales": 5}}, "support": {}},
    "agents": {
        "1001": {"device": "PJSIP/1001", "queues": ["sales"], "skills": {"sales": 7, "lang_fr": 3}},
    },
}

GOOD = """\
pool:
  queue: sales
  skills: {lang_fr: 1}
mode: power
power_ratio: 1.5
caller_id: {number: "+442079460000", name: ACME}
dial: {template: "PJSIP/{number}@trunk"}
max_lines: 4
windows:
  weekdays: {start: "09:00", end: "20:00"}
  weekend: closed
  wed: [{start: "14:00", end: "18:00"}, {start: "09:00", end: "12:00"}]
  holidays: {country: GB, subdiv: ENG}
  closed_dates: ["2026-12-24"]
retry:
  busy: 30m
  no-answer: 3600
  failed: never
  max_attempts: 3
amd: {enabled: true, on_machine: message, message: custom/leave-msg}
abandon: {message: custom/abandon, after: 1.5s, cap: 2%}
min_ring: 20
ring_timeout: 30
dnc: {files: [dnc.txt]}
dispositions:
  wrong-person: {final: false}
  deceased: {dnc: true}
list:
  default_region: GB
  delimiter: ";"
  columns: {phone: Phone, name: Name, fields: [Account, Notes]}
"""

MINIMAL = """\
pool: {queue: sales}
mode: progressive
caller_id: {number: "15555550100"}
dial: {template: "PJSIP/{number}@trunk"}
abandon: {message: custom/abandon}
"""


@pytest.fixture
def main_config():
    return config_from_mapping(MAIN)


@pytest.fixture
def write(tmp_path):
    directory = tmp_path / "campaigns"
    directory.mkdir()

    def write(text: str, name: str = "spring.yaml") -> Path:
        path = directory / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def errors_of(directory: Path, config) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_campaigns(directory, config)
    return info.value.messages


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


# ------------------------------------------------------------------ example
def test_example_campaign_validates_against_the_example_and_demo_configs():
    for main in ("callcenterd.yaml", "demo.yaml"):
        config = load_config(REPO / "config" / main)
        loaded = load_campaigns(EXAMPLE.parent, config)
        assert loaded["example"].spec.queue == "sales"
        assert loaded["example"].spec.node in config.pbx


def test_example_documents_every_campaign_key():
    text = EXAMPLE.read_text()
    models = [cc.CampaignFile, cc.PoolConfig, cc.CallerIdConfig, cc.DialConfig, cc.WindowsConfig,
              cc.HolidaysConfig, cc.RetryConfig, cc.AmdConfig, cc.AbandonConfig, cc.DncConfig,
              cc.DispositionConfig, cc.ListConfig, cc.ListColumnsConfig]  # fmt: skip
    missing = [
        f"{model.__name__}.{info.alias or name}"
        for model in models
        for name, info in model.model_fields.items()
        if f"{info.alias or name}:" not in text
    ]
    assert missing == []


def test_docs_describe_every_campaign_key():
    text = (REPO / "docs" / "campaigns.md").read_text()
    keys = {info.alias or name for name, info in cc.CampaignFile.model_fields.items()}
    keys |= set(cc.RetryConfig.model_fields) - {"no_answer"} | {"no-answer"}
    missing = sorted(key for key in keys if f"`{key}" not in text)
    assert missing == []


# ---------------------------------------------------------------- good file
def test_good_file_becomes_a_campaign_spec(write, main_config):
    path = write(GOOD)
    (path.parent / "dnc.txt").write_text("+442079460001\n")
    campaign = load_campaigns(path.parent, main_config)["spring"]
    spec = campaign.spec
    assert spec.name == "spring"  # from the file name
    assert spec.mode is DialMode.POWER and spec.power_ratio == 1.5
    assert spec.queue == "sales" and dict(spec.skills) == {"lang_fr": 1}
    assert spec.node == "ast1" and spec.dial_string == "PJSIP/{number}@trunk"
    assert (spec.caller_id_number, spec.caller_id_name) == ("+442079460000", "ACME")
    assert spec.max_lines == 4

    week = spec.windows.weekdays
    assert [(w.start, w.end) for w in week[0]] == [(time(9), time(20))]
    assert [(w.start, w.end) for w in week[2]] == [(time(9), time(12)), (time(14), time(18))]  # sorted
    assert week[5] == () and week[6] == ()
    assert (spec.windows.holiday_country, spec.windows.holiday_subdiv) == ("GB", "ENG")
    assert spec.windows.closed_dates == {date(2026, 12, 24)}

    assert spec.retry[AttemptOutcome.BUSY].delay == 1800 and spec.retry[AttemptOutcome.BUSY].retry
    assert spec.retry[AttemptOutcome.NO_ANSWER].delay == 3600
    assert spec.retry[AttemptOutcome.FAILED].retry is False
    assert spec.retry[AttemptOutcome.MACHINE].delay == 4 * 3600  # default kept
    assert spec.retry[AttemptOutcome.DROPPED].delay == 72 * 3600
    assert spec.max_attempts == 3 and spec.max_attempts_30d == 10
    assert spec.amd and spec.machine_action is MachineAction.MESSAGE
    assert spec.machine_message == "custom/leave-msg"
    assert (spec.abandon_message, spec.abandon_after, spec.abandon_cap) == ("custom/abandon", 1.5, 0.02)
    assert (spec.min_ring, spec.ring_timeout, spec.drop_redial_guard) == (20, 30, 72 * 3600)

    assert set(spec.dispositions) == {"sale", "callback", "not-interested", "dnc", "wrong-person", "deceased"}
    assert spec.dispositions["callback"].callback and not spec.dispositions["callback"].final
    assert spec.dispositions["dnc"].dnc
    assert not spec.dispositions["wrong-person"].final
    assert spec.dispositions["deceased"].final and spec.dispositions["deceased"].dnc

    assert spec.default_region == "GB"
    assert campaign.columns.phone == "Phone" and campaign.columns.fields == ("Account", "Notes")
    assert campaign.columns.delimiter == ";"
    assert campaign.columns.explicit == {"name"}
    assert campaign.dnc_files == ((path.parent / "dnc.txt").resolve(),)
    assert campaign.source_file == path


def test_minimal_file_gets_the_documented_defaults(write, main_config):
    path = write(MINIMAL)
    spec = load_campaigns(path.parent, main_config)["spring"].spec
    assert all([(w.start, w.end) for w in day] == [(time(8), time(21))] for day in spec.windows.weekdays)
    assert spec.retry[AttemptOutcome.BUSY].delay == 15 * 60
    assert spec.retry[AttemptOutcome.CONGESTION].delay == 10 * 60
    assert spec.retry[AttemptOutcome.HUNGUP].delay == 2 * 3600
    assert spec.retry[AttemptOutcome.FAILED].retry is False
    assert (spec.max_attempts, spec.max_attempts_30d) == (5, 10)
    assert (spec.min_ring, spec.ring_timeout, spec.abandon_cap, spec.abandon_after) == (15, 25, 0.03, 2)
    assert not spec.amd and spec.machine_action is MachineAction.HANGUP
    assert spec.default_region == "US"


def test_name_key_overrides_the_file_name(write, main_config):
    path = write("name: autumn\n" + MINIMAL)
    assert list(load_campaigns(path.parent, main_config)) == ["autumn"]


def test_abandon_cap_accepts_percent_and_fraction(write, main_config):
    path = write(MINIMAL.replace("abandon: {message: custom/abandon}",
                                 "abandon: {message: custom/abandon, cap: 0.025}"))
    assert load_campaigns(path.parent, main_config)["spring"].spec.abandon_cap == 0.025


def test_per_node_templates(write):
    config = config_from_mapping({**MAIN, "pbx": {
        "ast1": {"type": "asterisk", "ami": {"username": "cc", "secret": "x"}},
        "fs1": {"type": "freeswitch", "esl": {"password": "x"}},
    }, "agents": {"1001": {"device": "PJSIP/1001", "node": "ast1", "skills": {"sales": 5}}}})
    path = write(MINIMAL.replace(
        'dial: {template: "PJSIP/{number}@trunk"}',
        'dial:\n  node: fs1\n  template: {ast1: "PJSIP/{number}@trunk", fs1: "sofia/gateway/trunk/{e164}"}',
    ))
    campaign = load_campaigns(path.parent, config)["spring"]
    assert campaign.spec.node == "fs1" and campaign.spec.dial_string == "sofia/gateway/trunk/{e164}"
    assert dict(campaign.dial_strings) == {"ast1": "PJSIP/{number}@trunk", "fs1": "sofia/gateway/trunk/{e164}"}


def test_render_dial_string_substitutes_the_number():
    assert render_dial_string("PJSIP/{number}@trunk", "+15555550123") == "PJSIP/15555550123@trunk"
    assert render_dial_string("sofia/gateway/t/{e164}", "+15555550123") == "sofia/gateway/t/+15555550123"


def test_missing_directory_means_no_campaigns(tmp_path, main_config):
    assert load_campaigns(tmp_path / "nope", main_config) == {}


# ------------------------------------------------------------------ errors
BAD = [
    # (replace this line of MINIMAL or add, with: ..., key in the message, words in the message)
    ("mode: progressive", "mode: turbo", "mode", "preview"),
    ("mode: progressive", "mode: progressive\nmax_lines: 0", "max_lines", "greater than or equal to 1"),
    ("mode: progressive", "mode: progressive\nmin_ring: 10", "min_ring", "at least 15"),
    ("mode: progressive", "mode: progressive\nring_timeout: 12", "ring_timeout", "at least min_ring"),
    ("mode: progressive", "mode: power", "power_ratio", "power mode needs power_ratio"),
    ("mode: progressive", "mode: progressive\npower_ratio: 2", "power_ratio", "only used in power mode"),
    ("mode: progressive", "mode: power\npower_ratio: 1.0", "power_ratio", "greater than 1"),
    ("mode: progressive", "mode: progressive\ndrop_redial_guard: 24h", "drop_redial_guard", "at least 72h"),
    ("mode: progressive", "mode: progressive\nretry: {busy: soon}", "retry.busy", "never"),
    ("mode: progressive", "mode: progressive\nretry: {no_answer: 1h}", "retry.no_answer", "Extra inputs"),
    ("mode: progressive", "mode: progressive\nretry: {max_attempts: 0}", "retry.max_attempts", "greater"),
    ("mode: progressive", "mode: progressive\namd: {enabled: true, on_machine: message}", "amd", "needs message"),
    ("mode: progressive", "mode: progressive\namd: {enabled: yes}", "amd.enabled", "boolean"),
    ("mode: progressive", "mode: progressive\ndispositions: {sale: {final: false}}", "dispositions", "built-in"),
    ("mode: progressive", "mode: progressive\ndispositions: {promo: {sms: true}}", "dispositions.promo.sms",
     "Extra inputs"),
    ("mode: progressive", "mode: progressive\nlist: {default_region: XX}", "list.default_region", "unknown region"),
    ("mode: progressive", "mode: progressive\nlist: {delimiter: ':'}", "list.delimiter", "Input should be"),
    ("mode: progressive", "mode: progressive\nlist: {columns: {phone: A, name: A}}", "list.columns", "mapped twice"),
    ("mode: progressive", "mode: progressive\ncolour: blue", "colour", "Extra inputs"),
    ("mode: progressive", "mode: progressive\nwindows: {mon: {start: '9am', end: '17:00'}}",
     "windows.mon.start", "HH:MM"),
    ("mode: progressive", "mode: progressive\nwindows: {mon: {start: '18:00', end: '09:00'}}",
     "windows.mon", "end must be after start"),
    ("mode: progressive", ("mode: progressive\nwindows: {tue: [{start: '09:00', end: '13:00'}, "
     "{start: '12:00', end: '18:00'}]}"), "windows.tue", "overlap"),
    ("mode: progressive", "mode: progressive\nwindows: {sat: shut}", "windows.sat", "closed"),
    ("mode: progressive", "mode: progressive\nwindows: {closed_dates: [24/12/2026]}", "windows.closed_dates[0]",
     "YYYY-MM-DD"),
    ("mode: progressive", "mode: progressive\nwindows: {holidays: {country: XX}}", "windows.holidays.country",
     "unknown holiday country"),
    ("mode: progressive", "mode: progressive\nwindows: {holidays: {country: US, subdiv: ZZ}}",
     "windows.holidays.subdiv", "no subdivision"),
    ("abandon: {message: custom/abandon}", "abandon: {message: custom/abandon, cap: 5%}", "abandon.cap",
     "at most 3%"),
    ("abandon: {message: custom/abandon}", "abandon: {message: custom/abandon, cap: 0.05}", "abandon.cap",
     "at most 3%"),
    ("abandon: {message: custom/abandon}", "abandon: {message: custom/abandon, after: 5s}", "abandon.after",
     "at most 2 s"),
    ("abandon: {message: custom/abandon}", "abandon: {message: 'abandon,skip'}", "abandon.message", "prompt"),
    ("abandon: {message: custom/abandon}", "abandon: {}", "abandon.message", "needs abandon.message"),
    ('caller_id: {number: "15555550100"}', 'caller_id: {number: "555-0100"}', "caller_id.number", "digits"),
    ('caller_id: {number: "15555550100"}', 'caller_id: {number: "15555550100", name: "A\\"<b>"}',
     "caller_id.name", "must not contain"),
    ('caller_id: {number: "15555550100"}', "caller_id: {}", "caller_id.number", "Field required"),
    ("pool: {queue: sales}", "pool: {queue: nosuch}", "pool.queue", "unknown queue 'nosuch'"),
    ("pool: {queue: sales}", "pool: {queue: sales, skills: {klingon: 1}}", "pool.skills.klingon",
     "skill 'klingon'"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {node: ast9, template: "PJSIP/{number}@trunk"}',
     "dial.node", "unknown pbx node 'ast9'"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/{name}@trunk"}', "dial.template",
     "unknown placeholder {name}"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/{number:>12}@trunk"}',
     "dial.template", "unknown placeholder"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/0123@trunk"}', "dial.template",
     "must contain {number}"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/{number}@trunk {x"}',
     "dial.template", "unbalanced"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/{number}@trunk\\r\\nAction: x"}',
     "dial.template", "control"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: "PJSIP/{number}@trunk foo"}',
     "dial.template", "spaces"),
    ('dial: {template: "PJSIP/{number}@trunk"}', "dial: {template: [a, b]}", "dial.template",
     "a dial string or a mapping"),
    ('dial: {template: "PJSIP/{number}@trunk"}', 'dial: {template: {ast9: "PJSIP/{number}@t"}}',
     "dial.template.ast9", "unknown pbx node"),
]


@pytest.mark.parametrize("old, new, key, words", BAD, ids=[f"{b[2]}:{b[3]}" for b in BAD])
def test_each_bad_key_is_reported_with_file_line_and_key(write, main_config, old, new, key, words):
    assert old in MINIMAL
    text = MINIMAL.replace(old, new)
    path = write(text)
    messages = errors_of(path.parent, main_config)
    first_key = key.split(".")[0].split("[")[0]
    # Each bad value is on one line: the line of its top-level key (1 when that key is absent).
    line = line_of(text, f"{first_key}:") if f"{first_key}:" in text else 1
    matching = [m for m in messages if m.startswith(f"{path}:{line}: {key}: ")]
    assert matching, messages
    assert words in matching[0], matching


def test_error_names_the_exact_line_of_a_nested_key(write, main_config):
    text = MINIMAL + "retry:\n  busy: 15m\n  machine: 4h\n  dropped: soon\n"
    path = write(text)
    assert errors_of(path.parent, main_config) == [
        f"{path}:9: retry.dropped: a retry delay is 'never', seconds, or like 30m, 2h, 1d"
    ]


def test_min_ring_below_15_seconds_is_refused(write, main_config):
    text = MINIMAL + "min_ring: 10\n"
    path = write(text)
    assert errors_of(path.parent, main_config) == [
        f"{path}:6: min_ring: min_ring must be at least 15 s (the legal minimum ring time); got 10"
    ]


def test_windows_covering_no_hour_are_a_config_error(write, main_config):
    text = MINIMAL + "windows:\n  weekdays: closed\n  weekend: closed\n"
    path = write(text)
    messages = errors_of(path.parent, main_config)
    assert messages == [(f"{path}:6: windows: the calling windows cover no hour of the week: no call could ever "
                        "be placed")]


def test_windows_closed_except_one_day_are_fine(write, main_config):
    path = write(MINIMAL + "windows:\n  weekdays: closed\n  weekend: closed\n  sun: {start: '10:00', end: '24:00'}\n")
    week = load_campaigns(path.parent, main_config)["spring"].spec.windows.weekdays
    assert [bool(day) for day in week] == [False] * 6 + [True]
    assert week[6][0].end == time.max


def test_unknown_queue_names_the_known_ones(write, main_config):
    text = MINIMAL.replace("queue: sales", "queue: sale")
    path = write(text)
    assert errors_of(path.parent, main_config) == [
        f"{path}:1: pool.queue: unknown queue 'sale' (queues: sales, support)"
    ]


def test_bad_template_placeholder_is_refused(write, main_config):
    text = MINIMAL.replace("{number}", "{phone}")
    path = write(text)
    assert errors_of(path.parent, main_config) == [
        f"{path}:4: dial.template: unknown placeholder {{phone}}: only {{number}} and {{e164}} are allowed"
    ]


def test_reference_and_schema_errors_come_out_together(write, main_config):
    text = MINIMAL.replace("queue: sales", "queue: nosuch").replace("mode: progressive", "mode: turbo")
    path = write(text)
    messages = errors_of(path.parent, main_config)
    assert [m.split(": ")[1] for m in messages] == ["pool.queue", "mode"]


def test_every_file_is_reported(write, main_config):
    a = write(MINIMAL.replace("mode: progressive", "mode: turbo"), "a.yaml")
    b = write(MINIMAL + "min_ring: 5\n", "b.yaml")
    write(MINIMAL, "c.yaml")
    messages = errors_of(a.parent, main_config)
    assert [m.split(":")[0] for m in messages] == [str(a), str(b)]


def test_two_files_with_the_same_campaign_name_are_refused(write, main_config):
    write(MINIMAL, "autumn.yaml")
    b = write("name: autumn\n" + MINIMAL, "b.yaml")
    assert errors_of(b.parent, main_config) == [
        f"{b}:1: name: campaign 'autumn' is already defined in {b.parent / 'autumn.yaml'}"
    ]


def test_missing_dnc_file_names_its_line(write, main_config):
    path = write(MINIMAL + "dnc:\n  files:\n    - national.txt\n")
    assert errors_of(path.parent, main_config) == [
        f"{path}:8: dnc.files[0]: DNC file not found: {path.parent / 'national.txt'}"
    ]


def test_several_pbx_nodes_need_dial_node(write):
    config = config_from_mapping({**MAIN, "pbx": {
        "ast1": {"type": "asterisk", "ami": {"username": "cc", "secret": "x"}},
        "ast2": {"type": "asterisk", "ami": {"username": "cc", "secret": "x"}},
    }, "agents": {"1001": {"device": "PJSIP/1001", "node": "ast1", "skills": {"sales": 5}}}})
    path = write(MINIMAL)
    assert errors_of(path.parent, config) == [
        f"{path}:4: dial: node is required when there are several pbx nodes (ast1, ast2)"
    ]


def test_empty_and_malformed_files(write, main_config):
    empty = write("", "a.yaml")
    listed = write("- 1\n- 2\n", "b.yaml")
    broken = write("pool: {queue: sales\n", "c.yaml")
    messages = errors_of(empty.parent, main_config)
    assert messages[0] == f"{empty}:1: the campaign file is empty"
    assert messages[1] == f"{listed}:1: the top level must be a mapping of campaign keys"
    assert messages[2].startswith(f"{broken}:")


def test_file_name_that_is_not_a_campaign_name_needs_name(write, main_config):
    path = write(MINIMAL, "my campaign.yaml")
    (message,) = errors_of(path.parent, main_config)
    assert message.startswith(f"{path}:1: (top level): the file name 'my campaign' is not a valid campaign name")
