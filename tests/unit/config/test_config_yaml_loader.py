"""The strict YAML loader: scalar typing, string keys, duplicates, origins."""

from pathlib import Path

import pytest
import yaml

from callcenterd.config.yaml_loader import Origin, YamlError, load_yaml


def value_of(scalar: str):
    data, _ = load_yaml(f"v: {scalar}\n", "t.yaml")
    return data["v"]


@pytest.mark.parametrize(
    "scalar",
    ["08:30", "NO", "no", "No", "yes", "Yes", "on", "off", "y", "n",
     "0123", "0o17", "0x1F", "1_000", "1:30:00", "2024-01-01", "+1 555 0100", ".inf", "0b101"],
)  # fmt: skip
def test_yaml_11_surprises_stay_strings(scalar):
    assert value_of(scalar) == scalar


def test_the_three_classic_traps_explicitly():
    data, _ = load_yaml("open: 08:30\ncountry: NO\npin: 0123\n", "t.yaml")
    assert data == {"open": "08:30", "country": "NO", "pin": "0123"}


@pytest.mark.parametrize(
    "scalar,expected",
    [("true", True), ("True", True), ("TRUE", True), ("tRuE", True),
     ("false", False), ("False", False), ("FALSE", False)],
)  # fmt: skip
def test_only_true_false_are_bools(scalar, expected):
    assert value_of(scalar) is expected


@pytest.mark.parametrize("scalar,expected", [("0", 0), ("15", 15), ("-5", -5), ("+7", 7), ("86400", 86400)])
def test_plain_decimal_ints(scalar, expected):
    got = value_of(scalar)
    assert type(got) is int and got == expected


@pytest.mark.parametrize("scalar,expected", [("1.5", 1.5), ("-.5", -0.5), ("0.25", 0.25), ("2e3", 2000.0), ("1.", 1.0)])
def test_plain_floats(scalar, expected):
    got = value_of(scalar)
    assert type(got) is float and got == expected


@pytest.mark.parametrize("scalar", ["null", "Null", "NULL", "~", ""])
def test_nulls(scalar):
    assert value_of(scalar) is None


def test_quoted_values_are_strings():
    data, _ = load_yaml("a: '15'\nb: \"true\"\n", "t.yaml")
    assert data == {"a": "15", "b": "true"}


def test_mapping_keys_are_always_strings():
    data, _ = load_yaml("1001: a\ntrue: b\n1.5: c\n", "t.yaml")
    assert list(data) == ["1001", "true", "1.5"]


def test_pyyaml_safe_loader_is_untouched():
    load_yaml("a: NO\n", "t.yaml")
    assert yaml.safe_load("a: NO\nb: 8:30\nc: 0123\n") == {"a": False, "b": 510, "c": 83}


def test_duplicate_key_names_file_and_line():
    with pytest.raises(YamlError) as info:
        load_yaml("queues:\n  sales:\n    ring_time: 1\n    ring_time: 2\n", "conf.d/10-sales.yaml")
    assert str(info.value).startswith("conf.d/10-sales.yaml:4: ")
    assert "duplicate key 'ring_time'" in str(info.value)


def test_duplicate_keys_in_different_mappings_are_fine():
    data, _ = load_yaml("a: {x: 1}\nb: {x: 2}\n", "t.yaml")
    assert data == {"a": {"x": 1}, "b": {"x": 2}}


def test_origins_cover_nested_keys_and_list_items():
    text = "queues:\n  sales:\n    ring_time: 15\nagents:\n  a:\n    queues:\n      - sales\n      - support\n"
    data, origins = load_yaml(text, "main.yaml")
    assert origins[("queues",)] == Origin("main.yaml", 1)
    assert origins[("queues", "sales", "ring_time")] == Origin("main.yaml", 3)
    assert origins[("agents", "a", "queues")] == Origin("main.yaml", 6)
    assert origins[("agents", "a", "queues", 1)] == Origin("main.yaml", 8)
    assert data["agents"]["a"]["queues"] == ["sales", "support"]


def test_syntax_error_has_line_but_not_the_line_text():
    text = "pbx:\n  a:\n    secret: hunter2-XYZ [\n  b: ]\n"
    with pytest.raises(YamlError) as info:
        load_yaml(text, "x.yaml")
    message = str(info.value)
    assert message.startswith("x.yaml:")
    assert "hunter2" not in message


def test_empty_document():
    data, origins = load_yaml("# only a comment\n", "x.yaml")
    assert data is None and origins[()] == Origin("x.yaml", 1)


def test_explicit_int_tag_with_leading_zero_is_refused():
    with pytest.raises(YamlError, match="x.yaml:1: a !!int must be a plain decimal"):
        load_yaml("a: !!int 0123\n", "x.yaml")


def test_recursive_alias_is_a_clean_error():
    with pytest.raises(YamlError, match=r"^x\.yaml:1: .*recursive"):
        load_yaml("a: &x [1, *x]\n", "x.yaml")


# ------------------------------------------------------------- alias bombs
def _laughs(levels: int, width: int) -> str:
    lines = ['l0: &l0 "lol"']
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_quickly_and_located():
    """In a child process with a deadline: before the limit it never returned."""
    import subprocess
    import sys

    code = (
        "from callcenterd.config.yaml_loader import YamlError, load_yaml\n"
        "try:\n"
        f"    load_yaml({_laughs(9, 9)!r}, 'bomb.yaml')\n"
        "except YamlError as exc:\n"
        "    print(exc)\n"
    )
    repo = Path(__file__).resolve().parents[3]  # this checkout's callcenterd
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, cwd=repo)
    assert done.stdout.startswith("bomb.yaml:") and "aliases expand to more than 100000 values" in done.stdout


def test_a_small_bomb_is_refused_too():
    """4^9 = 262,144 values: before the limit this loaded (slowly) as data."""
    with pytest.raises(YamlError, match="alias bomb"):
        load_yaml(_laughs(9, 4), "bomb.yaml")


def test_ordinary_alias_reuse_is_accepted():
    text = "d: &d {queues: [sales, support], skills: {en: 5, fr: 3}}\nagents:\n" + "\n".join(
        f'  "{1000 + n}": *d' for n in range(2000)) + "\n"
    data, _ = load_yaml(text, "ok.yaml")
    assert len(data["agents"]) == 2000 and data["agents"]["1999"]["skills"] == {"en": 5, "fr": 3}
