"""FastAGI codec: environment lines, replies, command building and quoting."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.agi.codec import (
    HANGUP_LINE,
    MAX_COMMAND_BYTES,
    AgiReply,
    ReplyDecoder,
    build_command,
    parse_env_line,
    parse_reply_line,
    quote,
    split_args,
)
from callcenterd.protocols.errors import ProtocolError

FIXTURES = Path("/work/shared/fixtures/asterisk-22")
if not FIXTURES.is_dir():  # checkout next to ../shared
    FIXTURES = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "asterisk-22"


# ---------------------------------------------------------------- environment
@pytest.mark.parametrize(
    "line, expected",
    [
        (b"agi_network: yes\n", ("agi_network", "yes")),
        (b"agi_arg_1: first arg\n", ("agi_arg_1", "first arg")),
        (b"agi_accountcode: \n", ("agi_accountcode", "")),
        (b"agi_channel: Local/500@ivr-00000029;2\n", ("agi_channel", "Local/500@ivr-00000029;2")),
        (b"agi_request: agi://127.0.0.1:4573/ivr\n", ("agi_request", "agi://127.0.0.1:4573/ivr")),
        (b"agi_arg_2:  two leading\n", ("agi_arg_2", " two leading")),
        (b"agi_calleridname: Jos\xc3\xa9\n", ("agi_calleridname", "José")),
        (b"\n", None),
    ],
)
def test_env_line(line, expected):
    assert parse_env_line(line) == expected


@pytest.mark.parametrize("line", [b"hello\n", b"GET / HTTP/1.1\n", b": value\n", b"agi x: y\n", b"200 result=0\n"])
def test_env_garbage_is_a_protocol_error(line):
    with pytest.raises(ProtocolError):
        parse_env_line(line)


def test_env_of_the_capture_parses_completely():
    raw = (FIXTURES / "fastagi-ivr.txt").read_bytes().splitlines(keepends=True)
    env = {}
    for line in raw:
        assert line.startswith(b"A> ")
        item = parse_env_line(line[3:])
        if item is None:
            break
        env[item[0]] = item[1]
    assert len(env) == 24
    assert env["agi_arg_1"] == "first arg" and env["agi_arg_2"] == "second"
    assert env["agi_uniqueid"] == "1795396201.83"


# -------------------------------------------------------------------- replies
@pytest.mark.parametrize(
    "line, reply",
    [
        ("200 result=0", AgiReply(200, 0, None, None, "result=0", "0")),
        ("200 result=1 (T-5678)", AgiReply(200, 1, "T-5678", None, "result=1 (T-5678)", "1")),
        ("200 result=1 (5551234-T-5678)", AgiReply(200, 1, "5551234-T-5678", None, "result=1 (5551234-T-5678)", "1")),
        ("200 result=0 endpos=11360", AgiReply(200, 0, None, 11360, "result=0 endpos=11360", "0")),
        ("200 result=-1 endpos=0", AgiReply(200, -1, None, 0, "result=-1 endpos=0", "-1")),
        ("200 result=123", AgiReply(200, 123, None, None, "result=123", "123")),
        # GET DATA: digits are a string, may be empty, may carry (timeout)
        ("200 result=0123", AgiReply(200, 123, None, None, "result=0123", "0123")),
        ("200 result=12* (timeout)", AgiReply(200, None, "timeout", None, "result=12* (timeout)", "12*")),
        ("200 result= (timeout)", AgiReply(200, None, "timeout", None, "result= (timeout)", "")),
        ("200 result=1 (value with (parens) inside)", AgiReply(200, 1, "value with (parens) inside", None,
                                                              "result=1 (value with (parens) inside)", "1")),
        ("200 result=1 ()", AgiReply(200, 1, "", None, "result=1 ()", "1")),
        # res_agi.c handle_speechrecognize(): extra fields after endpos
        ("200 result=1 (speech) endpos=480 results=1 0: score=900 text=yes",
         AgiReply(200, 1, "speech", 480, "result=1 (speech) endpos=480 results=1 0: score=900 text=yes", "1")),
        ("510 Invalid or unknown command", AgiReply(510, text="Invalid or unknown command")),
        ("511 Command Not Permitted on a dead channel or intercept routine",
         AgiReply(511, text="Command Not Permitted on a dead channel or intercept routine")),
    ],
)
def test_reply_line(line, reply):
    assert parse_reply_line(line) == reply


@pytest.mark.parametrize(
    "line", ["", "hello", "200", "200 resul=0", "2000 result=0", "abc result=0", "200-result=0"]
)
def test_reply_garbage_is_a_protocol_error(line):
    with pytest.raises(ProtocolError):
        parse_reply_line(line)


def _asterisk_lines(name):
    return [raw[3:] for raw in (FIXTURES / name).read_bytes().splitlines(keepends=True) if raw.startswith(b"A> ")]


def test_decoder_on_the_capture_replies():
    lines = _asterisk_lines("fastagi-ivr.txt")
    lines = lines[lines.index(b"\n") + 1:]  # after the environment
    decoder = ReplyDecoder()
    out = [item for item in map(decoder.feed, lines) if item is not None]
    codes = [o if o == HANGUP_LINE else o.code for o in out]
    assert codes == [200] * 12 + [510, 520, 200, HANGUP_LINE, 200, 511]
    usage = out[13]
    assert usage.text.startswith("Invalid command syntax.  Proper usage follows:\nSend the given file")
    assert "<variable>PLAYBACKSTATUS</variable>" in usage.text
    assert usage.text.endswith("\nEnd of proper usage.")
    assert len(usage.text.splitlines()) == 7
    assert not decoder.in_block


def test_decoder_520_block_survives_lines_that_look_like_replies():
    decoder = ReplyDecoder()
    assert decoder.feed(b"520-Invalid command syntax.  Proper usage follows:\n") is None
    assert decoder.feed(b"200 result=0\n") is None  # help text, not a reply
    assert decoder.feed(b"HANGUP\n") is None
    reply = decoder.feed(b"520 End of proper usage.\n")
    assert reply.code == 520 and reply.text.splitlines()[1:3] == ["200 result=0", "HANGUP"]


def test_decoder_520_block_is_bounded():
    decoder = ReplyDecoder(max_block_bytes=200)
    decoder.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(ProtocolError):
        for _ in range(10):
            decoder.feed(b"x" * 40 + b"\n")


# ------------------------------------------------------------------- commands
@pytest.mark.parametrize(
    "verb, args, wire",
    [  # every line as sent in fastagi-ivr.txt
        ("ANSWER", (), b"ANSWER\n"),
        ("VERBOSE", (quote("callcenterd fixture IVR started"), 1), b'VERBOSE "callcenterd fixture IVR started" 1\n'),
        ("GET VARIABLE", ("CC_TICKET",), b"GET VARIABLE CC_TICKET\n"),
        ("GET FULL VARIABLE", (quote("${CALLERID(num)}-${CC_TICKET}"),),
         b'GET FULL VARIABLE "${CALLERID(num)}-${CC_TICKET}"\n'),
        ("STREAM FILE", ("hello-world", quote("")), b'STREAM FILE hello-world ""\n'),
        ("GET DATA", ("beep", 8000, 4), b"GET DATA beep 8000 4\n"),
        ("SET VARIABLE", ("IVR_CHOICE", quote("123")), b'SET VARIABLE IVR_CHOICE "123"\n'),
        ("EXEC", ("NoOp", quote("fastagi was here")), b'EXEC NoOp "fastagi was here"\n'),
    ],
)
def test_build_command_matches_the_capture(verb, args, wire):
    assert build_command(verb, *args) == wire


@pytest.mark.parametrize(
    "value, wire",
    [
        ("two words", '"two words"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("tab\there", '"tab\there"'),
        ("", '""'),
        ("plain", "plain"),
    ],
)
def test_plain_arguments_are_quoted_only_when_needed(value, wire):
    assert build_command("SET VARIABLE", "X", value) == f"SET VARIABLE X {wire}\n".encode()
    assert split_args(f"SET VARIABLE X {wire}") == ["SET", "VARIABLE", "X", value]


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "\n", "x\r\nEXEC System rm"])
def test_cr_lf_nul_are_refused(bad):
    with pytest.raises(UnsafeValue):
        build_command("SET VARIABLE", "X", quote(bad))
    with pytest.raises(UnsafeValue):
        build_command("GET VARIABLE", bad)


def test_overlong_command_is_refused():
    build_command("VERBOSE", quote("x" * (MAX_COMMAND_BYTES - len('VERBOSE ""\n'))))
    with pytest.raises(UnsafeValue):
        build_command("VERBOSE", quote("x" * MAX_COMMAND_BYTES))


def test_bool_is_not_an_argument():
    with pytest.raises(TypeError):
        build_command("SET PRIORITY", True)


# ------------------------------------------------------- Asterisk's splitter
@pytest.mark.parametrize(
    "line, argv",
    [  # behaviour of res_agi.c parse_args(), quirks included
        ("GET DATA beep 8000 4", ["GET", "DATA", "beep", "8000", "4"]),
        ("A  B\t C", ["A", "B", "C"]),
        ('STREAM FILE hello-world ""', ["STREAM", "FILE", "hello-world", ""]),
        ('X "a b" c', ["X", "a b", "c"]),
        ('X ab"c d"e', ["X", "abc de"]),  # a mid-word quote groups without splitting
        (r"X a\ b", ["X", "a b"]),
        (r'X \"a', ["X", '"a']),
        ("X a\\", ["X", "a"]),  # a trailing backslash vanishes
    ],
)
def test_split_args_follows_parse_args(line, argv):
    assert split_args(line) == argv


_safe_text = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=60)


@given(_safe_text, _safe_text)
def test_any_safe_value_arrives_as_one_argument(a, b):
    line = build_command("EXEC", "Playback", quote(a), b).decode()
    assert split_args(line) == ["EXEC", "Playback", a, b]


# ------------------------------------------------- what a session would notice
@pytest.mark.parametrize(
    "line, expected",
    [
        (b"agi_calleridname: Jos\xe9\n", ("agi_calleridname", "Jos\ufffd")),  # Latin-1 from a trunk
        (b"agi_calleridname: \xff\xfe\n", ("agi_calleridname", "\ufffd\ufffd")),
        (b"agi_arg_1: first arg \n", ("agi_arg_1", "first arg ")),  # a trailing space is the caller's
        (b"agi_calleridname: MAX\n", ("agi_calleridname", "MAX")),
        (b"agi_arg_1: tab\t\n", ("agi_arg_1", "tab\t")),
    ],
)
def test_environment_values_arrive_exactly_as_sent_whatever_their_encoding(line, expected):
    assert parse_env_line(line) == expected


def test_a_reply_in_a_broken_encoding_is_still_read():
    reply = ReplyDecoder().feed(b"200 result=1 (Jos\xe9)\n")
    assert reply.result == 1 and reply.data == "Jos\ufffd"


def test_a_usage_block_keeps_its_text_verbatim():
    decoder = ReplyDecoder()
    decoder.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    decoder.feed(b" Usage: GET DATA <file> [timeout] [maxdigits] \n")  # trailing space, as res_agi prints it
    decoder.feed(b" Returns <digits> or X\n")
    reply = decoder.feed(b"520 End of proper usage.\n")
    assert reply.text.splitlines()[1:] == [" Usage: GET DATA <file> [timeout] [maxdigits] ", " Returns <digits> or X",
                                           "End of proper usage."]


def _usage_block_of(size):
    """A 520 block of exactly ``size`` bytes, as lines."""
    first, last = b"520-Invalid command syntax.  Proper usage follows:\n", b"520 End of proper usage.\n"
    filler = size - len(first) - len(last)
    lines = [b"x" * 99 + b"\n"] * (filler // 100)
    if filler % 100:
        lines.append(b"y" * (filler % 100 - 1) + b"\n")
    return [first, *lines, last]


def test_a_usage_block_of_64_kib_is_read_and_one_byte_more_is_refused():
    decoder = ReplyDecoder()
    replies = [decoder.feed(line) for line in _usage_block_of(65536)]
    assert replies[-1].code == 520 and replies[:-1] == [None] * (len(replies) - 1)
    decoder = ReplyDecoder()
    with pytest.raises(ProtocolError):
        for line in _usage_block_of(65537):
            decoder.feed(line)


@pytest.mark.parametrize("parse, line", [
    (lambda line: parse_env_line(line.encode()), "GET / HTTP/1.1"),
    (parse_reply_line, "HTTP/1.1 400 Bad Request"),
    (parse_reply_line, "200 endpos=12"),
])
def test_a_line_that_breaks_the_protocol_is_quoted_in_the_error(parse, line):
    with pytest.raises(ProtocolError) as err:
        parse(line)
    assert repr(line) in str(err.value)


def test_a_command_verb_carrying_a_newline_is_refused_naming_it():
    with pytest.raises(UnsafeValue) as err:
        build_command("GET VARIABLE\nEXEC System", "X")
    assert "AGI command" in str(err.value)
    with pytest.raises(UnsafeValue) as err:
        build_command("GET VARIABLE", "X\nEXEC System")
    assert "AGI argument" in str(err.value)
