"""Quoting of originate variables and API arguments against a model of
FreeSWITCH's own parsers (tests/fakes/esl_server.py: fs_separate_string,
fs_parse_brackets, written after switch_utils.c / switch_event.c)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.esl.codec import esl_originate_vars, esl_quote_arg, esl_quote_var
from tests.fakes.esl_server import fs_parse_brackets, fs_separate_string

HOSTILE = [
    "Test Caller",
    "O'Brien, Jr.",
    "a,b,c",
    "k=v",
    "x',evil=1,y='",
    "^^:a:b",
    "^^,x",
    "'quoted'",
    '"double"',
    "back\\slash",
    "trailing\\",
    "\\'",
    " leading and trailing ",
    "",
    "{balanced}",
    "[also] <fine>",
    "tab\there",
    "ünïcödé ☎",
    "&park",
    "a\\nb",
]


def _through_originate_api(variables: dict[str, str]) -> tuple[dict[str, str], str, list[str]]:
    """What mod_commands' originate + switch_ivr_originate make of our string."""
    dial = esl_originate_vars(variables) + "loopback/1000/default"
    argv = fs_separate_string(esl_quote_arg(dial) + " &park", " ")
    parsed, rest = fs_parse_brackets(argv[0])
    return parsed, rest, argv


def test_model_matches_the_captured_originate():
    """Sanity of the oracle: the command of the captures parses as FreeSWITCH did
    (the events show Caller-Caller-ID-Name 'Test Caller')."""
    argv = fs_separate_string(
        "{origination_caller_id_number=15551230000,origination_caller_id_name='Test Caller'}"
        "loopback/1000/default &park",
        " ",
    )
    assert argv[1] == "&park"
    assert fs_parse_brackets(argv[0]) == (
        {"origination_caller_id_number": "15551230000", "origination_caller_id_name": "Test Caller"},
        "loopback/1000/default",
    )


def test_model_honours_custom_delimiter():
    assert fs_parse_brackets("{^^:a=1,2:b=3}x") == ({"a": "1,2", "b": "3"}, "x")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_arrives_as_one_literal_value(value):
    parsed, rest, argv = _through_originate_api({"origination_caller_id_name": value, "after": "ok"})
    assert parsed == {"origination_caller_id_name": value, "after": "ok"}
    assert rest == "loopback/1000/default"
    assert argv[1:] == ["&park"]


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_var_alone_survives_bracket_parsing(value):
    # bridge / sendmsg execute: no blank split in front, just the brackets
    assert fs_parse_brackets("{v=" + esl_quote_var(value) + "}sofia/x")[0] == {"v": value}


def test_unquoted_capture_style_would_break_on_comma():
    """Why quoting is needed: the naive form splits a comma value in two."""
    parsed, _ = fs_parse_brackets("{name=Smith, John,x=1}loopback/1")
    assert parsed.get("name") != "Smith, John"


def test_plain_values_stay_readable():
    assert esl_quote_var("15551230000") == "15551230000"
    assert esl_originate_vars({"a": "1", "b": "sip:x@y"}) == "{a=1,b=sip:x@y}"
    assert esl_quote_arg("agent1001@default") == "agent1001@default"
    assert esl_quote_arg("Logged Out") == "'Logged Out'"  # as callcenter_config needs it
    assert fs_separate_string("agent set status a@d " + esl_quote_arg("Logged Out"), " ")[-1] == "Logged Out"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "${system(rm -rf /)}", "x}y", "{x", "a]b", "<x"])
def test_refused_values(value):
    with pytest.raises(UnsafeValue):
        esl_quote_var(value)


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a,b", "x}", "a\nb", "1abc"])
def test_refused_variable_names(name):
    with pytest.raises(UnsafeValue):
        esl_originate_vars({name: "v"})


def test_quote_arg_refuses_newline():
    with pytest.raises(UnsafeValue):
        esl_quote_arg("a\nb")


_safe_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00{}[]<>$"), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), _safe_text, min_size=1, max_size=4))
def test_any_value_round_trips_through_originate(variables):
    parsed, rest, argv = _through_originate_api(variables)
    assert parsed == variables
    assert rest == "loopback/1000/default" and argv[1:] == ["&park"]


@settings(max_examples=300, deadline=None)
@given(st.lists(_safe_text, min_size=1, max_size=5))
def test_any_args_round_trip_through_blank_split(args):
    line = " ".join(esl_quote_arg(a) for a in args)
    assert fs_separate_string(line, " ") == args


# ------------------------------------- what an operator reads when one is refused
@pytest.mark.parametrize("call, label", [
    (lambda: esl_quote_var("a\r\nb"), "channel variable value"),
    (lambda: esl_quote_arg("a\r\nb"), "API argument"),
    (lambda: esl_originate_vars({"a\r\nb": "v"}), "channel variable name"),
])
def test_a_refused_value_is_named_but_never_echoed(call, label):
    with pytest.raises(UnsafeValue) as err:
        call()
    assert label in str(err.value) and "\n" not in str(err.value) and "a\\r\\nb" not in str(err.value)


def test_a_value_that_would_expand_a_variable_is_refused_saying_why():
    with pytest.raises(UnsafeValue) as err:
        esl_quote_var("${system(id)}")
    assert "channel variable value contains '${'" in str(err.value)


def test_a_bad_variable_name_is_refused_naming_it():
    with pytest.raises(UnsafeValue) as err:
        esl_originate_vars({"a b": "v"})
    assert "bad channel variable name 'a b'" in str(err.value)


def test_nested_brackets_are_balanced_and_a_close_before_its_open_is_not():
    assert fs_parse_brackets("{v=" + esl_quote_var("a{b{c}}d") + "}sofia/x")[0] == {"v": "a{b{c}}d"}
    for bad in ("{}}{", "a]b[", "><"):
        with pytest.raises(UnsafeValue) as err:
            esl_quote_var(bad)
        assert "unbalanced" in str(err.value)


def test_no_variables_give_no_braces():
    assert esl_originate_vars({}) == ""


def test_an_argument_with_capital_letters_is_not_quoted():
    assert esl_quote_arg("MAX") == "MAX" and esl_quote_arg("Available") == "Available"
