"""ESL codec: tables, every real capture in random chunkings, round-trip fuzz."""

import json
import random
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.errors import ProtocolError
from callcenterd.protocols.esl.codec import (
    EslDecoder,
    EslEvent,
    encode_command,
    encode_event_json,
    encode_event_plain,
    encode_sendmsg,
    fs_url_decode,
    fs_url_encode,
)
from tests.fakes.esl_server import FIXTURES

CAPTURES = sorted(p.name for p in FIXTURES.glob("esl-*.txt") if not p.name.endswith(".client.txt"))


def _chunks(data: bytes, rng: random.Random, max_size: int) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, max_size)
        out.append(data[i : i + n])
        i += n
    return out


def _expected(data: bytes) -> tuple[int, Counter]:
    """Counts taken from the capture text itself, not from the decoder: every
    frame has exactly one ``Content-Type: <type>\\n``.  Not anchored at a line
    start: a JSON event or an ``expr`` body has no trailing newline, so the
    next frame's first line is glued to it.  Event bodies never hold
    ``Content-Type`` with this capitalisation (sendevent's echo is lowercase)."""
    types = Counter(m.decode() for m in re.findall(rb"Content-Type: ([a-z/\-]+)\n", data))
    return sum(types.values()), types


def test_all_captures_present():
    """Every server-side capture the fixtures README describes is here (and
    nothing undescribed): a missing file would silently shrink the replays."""
    described = set(re.findall(r"`(esl-[a-z0-9-]+\.txt)`", (FIXTURES / "README.md").read_text()))
    assert described and set(CAPTURES) == described


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_capture_in_random_chunks(name, seed):
    data = (FIXTURES / name).read_bytes()
    n_frames, types = _expected(data)
    rng = random.Random(f"{name}-{seed}")
    dec = EslDecoder()
    msgs = []
    sizes = [1, 7, 300, 5000] if len(data) < 50_000 else [13, 300, 5000, 70_000]  # byte-wise on the small ones
    for chunk in _chunks(data, rng, sizes[seed % len(sizes)]):
        msgs.extend(dec.feed(chunk))
    assert dec.buffered == 0
    assert len(msgs) == n_frames
    assert Counter(m.content_type for m in msgs) == types
    # every event decodes and names itself
    for m in msgs:
        if m.is_event:
            assert m.event.name, m
            assert m.event.sequence is not None


def test_readme_event_counts_plain_originate():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-events-plain-originate.txt").read_bytes())
    names = Counter(m.event.name for m in msgs if m.is_event)
    assert names == {
        "API": 1, "BACKGROUND_JOB": 1, "CALL_UPDATE": 1, "CHANNEL_ANSWER": 2, "CHANNEL_CALLSTATE": 5,
        "CHANNEL_CREATE": 2, "CHANNEL_DESTROY": 2, "CHANNEL_EXECUTE": 4, "CHANNEL_EXECUTE_COMPLETE": 4,
        "CHANNEL_HANGUP": 2, "CHANNEL_HANGUP_COMPLETE": 2, "CHANNEL_ORIGINATE": 1, "CHANNEL_OUTGOING": 1,
        "CHANNEL_PARK": 1, "CHANNEL_STATE": 13, "CHANNEL_UNPARK": 1, "CODEC": 4, "PLAYBACK_START": 1,
        "PLAYBACK_STOP": 1,
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["plain", "json", "xml"])
def test_three_encodings_decode_to_the_same_events(fmt):
    """The plain, json and xml originate captures are three runs of one flow."""
    msgs = EslDecoder().feed((FIXTURES / f"esl-inbound-events-{fmt}-originate.txt").read_bytes())
    events = [m.event for m in msgs if m.is_event]
    job = next(e for e in events if e.name == "BACKGROUND_JOB")
    assert job.body.startswith("+OK ") and job.body.endswith("\n") and len(job.body) == 41
    assert job.get("Job-Command") == "originate"
    assert job.get("Job-Command-Arg") == (
        "{origination_caller_id_number=15551230000,origination_caller_id_name='Test Caller'}"
        "loopback/1000/default &park"
    )
    a_leg = job.body[4:].strip()
    creates = [e for e in events if e.name == "CHANNEL_CREATE"]
    assert a_leg in {e.uuid for e in creates}
    assert events[0].get("FreeSWITCH-IPv6") == "fd00::2"  # %3A decoded (plain/xml), raw in json
    assert events[0].get("Event-Date-GMT").endswith(" GMT")


def test_event_sequence_not_monotonic_on_the_wire():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-events-json-originate.txt").read_bytes())
    seqs = [m.event.sequence for m in msgs if m.is_event]
    api = next(m.event for m in msgs if m.is_event and m.event.name == "API")
    assert seqs != sorted(seqs)
    assert api.sequence < seqs[0]  # the API event comes after higher sequences


def test_bgapi_reply_headers_and_job_event_in_misc():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-misc-commands.txt").read_bytes())
    replies = [m for m in msgs if m.content_type == "command/reply"]
    own = "9f2788d1-22a0-4493-b61c-d023de25631e"
    echo = next(m for m in replies if m.headers.get("Job-UUID") == own)
    assert echo.reply_text == f"+OK Job-UUID: {own}"
    jobs = {m.event.job_uuid: m.event for m in msgs if m.is_event and m.event.name == "BACKGROUND_JOB"}
    assert jobs[own].body.startswith("FreeSWITCH Version 1.10.12")
    assert jobs[own].get("Content-Length") == "114"
    failed = next(e for e in jobs.values() if e.get("Job-Command") == "no_such_command_xyz")
    assert failed.body == "-ERR no_such_command_xyz Command not found!\n"


def test_sendevent_echo_url_decoding_and_lowercase_content_length():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-misc-commands.txt").read_bytes())
    ev = next(m.event for m in msgs if m.is_event and m.event.name == "CUSTOM")
    assert ev.subclass == "my::subclass"
    assert list(ev.headers)[0] == "Event-Subclass"  # CUSTOM: subclass before name
    assert ev.get("X-Note") == "hello world"
    assert ev.get("X-Special") == "a:b%c&d=e"
    assert ev.get("content-length") == "11" and ev.get("Content-Length") == "11"
    assert ev.body == "body-bytes\n"


def test_api_bodies_keep_their_odd_trailing_newlines():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-misc-commands.txt").read_bytes())
    bodies = [m.body for m in msgs if m.content_type == "api/response"]
    assert b"14" in bodies  # expr: no newline
    assert b"+OK" in bodies and b"+OK\n" in bodies  # db insert vs others
    assert "vm has ümlaut and \"quotes\"" in [b.decode() for b in bodies]  # eval, UTF-8 raw
    out = EslDecoder().feed((FIXTURES / "esl-outbound-async-full.txt").read_bytes())
    assert next(m.body for m in out if m.content_type == "api/response") == b"\n0 total.\n"


def test_outbound_connect_reply_is_one_urlencoded_block():
    msgs = EslDecoder().feed((FIXTURES / "esl-outbound-async-full.txt").read_bytes())
    connect = msgs[0]
    assert connect.content_type == "command/reply" and connect.body == b""
    assert connect.reply_text == "%2BOK%0A"
    data = connect.decoded_headers()
    assert data["Reply-Text"] == "+OK\n"
    assert data["Socket-Mode"] == "async" and data["Control"] == "full"
    assert data["Event-Name"] == "CHANNEL_DATA"
    assert data["variable_current_application_data"] == "127.0.0.1:8084 async full"
    notice = msgs[-1]
    assert notice.content_type == "text/disconnect-notice"
    assert notice.headers["Content-Disposition"] == "linger" and notice.headers["Linger-Time"] == "-1"
    assert notice.body == b""


def test_log_data_frame_extra_headers():
    msgs = EslDecoder().feed((FIXTURES / "esl-inbound-misc-commands.txt").read_bytes())
    logm = next(m for m in msgs if m.content_type == "log/data")
    assert logm.headers["Log-Level"] == "5"
    assert logm.headers["User-Data"] == ""
    assert logm.body.endswith(b"hello from esl capture\n")


# ----------------------------------------------------------------- tables
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a%20b", "a b"),
        ("a+b", "a+b"),  # switch_url_decode leaves '+' alone
        ("%2BOK%0A", "+OK\n"),
        ("support%40default", "support@default"),
        ("callcenter%3A%3Ainfo", "callcenter::info"),
        ("%C3%9Cmlaut", "Ümlaut"),
        ("100%", "100%"),  # dangling percent stays
        ("%zz", "%zz"),
    ],
)
def test_url_decode_table(raw, expected):
    assert fs_url_decode(raw) == expected


@pytest.mark.parametrize(
    "value, encoded",
    [
        ("a b", "a%20b"),
        ("+OK", "%2BOK"),
        ("support@default", "support%40default"),
        ("O'Brien, (x)/!", "O'Brien,%20(x)/!"),  # , ' / ( ) ! stay literal
        ("50%", "50%25"),
        ("é", "%C3%A9"),
    ],
)
def test_url_encode_table(value, encoded):
    assert fs_url_encode(value) == encoded


def test_plain_event_lossy_uppercase_percent_is_decoded():
    """FreeSWITCH does not re-encode an existing %XX with uppercase hex, so a
    literal '%41' arrives as '%41' and decodes to 'A' (documented loss)."""
    ev = EslEvent.from_plain(b"Event-Name: CUSTOM\nX: %41\n\n")
    assert ev.get("X") == "A"


@pytest.mark.parametrize(
    "data, error",
    [
        (b"garbage without colon\n\n", "malformed"),
        (b"\x00\xff\xfe\n\n", "malformed"),
        (b"Reply-Text: +OK\n\n", "without Content-Type"),
        (b"Content-Type: api/response\nContent-Length: -3\n\n", "Content-Length"),
        (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "limit"),
    ],
)
def test_bad_frames_raise_protocol_error_and_stay_failed(data, error):
    dec = EslDecoder(max_frame=1 << 20)
    with pytest.raises(ProtocolError, match=error):
        dec.feed(data)
    with pytest.raises(ProtocolError):
        dec.feed(b"Content-Type: auth/request\n\n")


def test_header_block_without_end_is_bounded():
    dec = EslDecoder(max_header=1000)
    dec.feed(b"Content-Type: x\n" + b"X: y\n" * 100)
    with pytest.raises(ProtocolError, match="header block"):
        dec.feed(b"X: y\n" * 200)


def test_event_accessors():
    body = encode_event_plain(
        {"Event-Name": "BACKGROUND_JOB", "Event-Sequence": "42", "Unique-ID": "u-1", "Job-UUID": "j-1"},
        "+OK done\n",
    )
    frame = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body
    (msg,) = EslDecoder().feed(frame)
    ev = msg.event
    assert (ev.name, ev.sequence, ev.uuid, ev.job_uuid, ev.body) == ("BACKGROUND_JOB", 42, "u-1", "j-1", "+OK done\n")
    assert list(ev.headers)[:2] == ["Event-Name", "Event-Sequence"]


# --------------------------------------------------------------- encoding
def test_encode_command_and_sendmsg():
    assert encode_command("api status") == b"api status\n\n"
    assert encode_command("bgapi version", {"Job-UUID": "x"}) == b"bgapi version\nJob-UUID: x\n\n"
    assert encode_command("sendevent CUSTOM", [("Event-Subclass", "a::b")], "hi\n") == (
        b"sendevent CUSTOM\nEvent-Subclass: a::b\nContent-Length: 3\n\nhi\n"
    )
    assert encode_sendmsg("", "hangup", {"hangup-cause": "USER_BUSY"}) == (
        b"sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"
    )
    assert encode_sendmsg("abc", "execute", {"execute-app-name": "answer"}).startswith(b"sendmsg abc\n")


@pytest.mark.parametrize(
    "command, headers",
    [
        ("api status\n\nexit", {}),
        ("api status\rx", {}),
        ("api st\x00atus", {}),
        ("", {}),
        ("sendmsg", {"execute-app-arg": "x\nevent-lock: true"}),
        ("sendmsg", {"bad name": "x"}),
        ("sendmsg", {"Content-Length": "5"}),
    ],
)
def test_encode_command_refuses_injection(command, headers):
    with pytest.raises(UnsafeValue):
        encode_command(command, headers)


def test_sendmsg_refuses_uuid_injection():
    with pytest.raises(UnsafeValue):
        encode_sendmsg("abc\ncall-command: hangup", "execute")


# ------------------------------------------------------------ round trips
_names = st.from_regex(r"[A-Z][A-Za-z0-9\-]{0,20}", fullmatch=True).filter(
    lambda n: n not in ("Content-Length", "Content-Type")
)
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.dictionaries(_names, _values, min_size=1, max_size=8), _values, st.sampled_from(["plain", "json"])),
        min_size=1,
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=50),
)
def test_roundtrip_any_chunking(events, cuts):
    stream = b""
    for headers, body, fmt in events:
        headers = {"Event-Name": "CUSTOM", **headers}
        raw = encode_event_plain(headers, body) if fmt == "plain" else encode_event_json(headers, body)
        stream += b"Content-Length: %d\nContent-Type: text/event-%s\n\n" % (len(raw), fmt.encode()) + raw
        stream += b"Content-Type: api/response\nContent-Length: 3\n\nok\n"
    dec = EslDecoder()
    msgs, i, k = [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        msgs.extend(dec.feed(stream[i : i + n]))
        i, k = i + n, k + 1
    assert dec.buffered == 0
    evs = [m.event for m in msgs if m.is_event]
    assert len(evs) == len(events)
    assert sum(m.body == b"ok\n" for m in msgs) == len(events)
    for ev, (headers, body, _fmt) in zip(evs, events):
        expected = {"Event-Name": "CUSTOM", **headers}
        got = {k: v for k, v in ev.headers.items() if k != "Content-Length"}
        assert got == expected
        assert ev.body == body


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_except_protocol_error(data):
    dec = EslDecoder(max_frame=1000, max_header=500)
    try:
        for m in dec.feed(data):
            if m.is_event:
                try:
                    m.event
                except ProtocolError:
                    pass
    except ProtocolError:
        pass


def test_json_event_non_string_values_are_stringified():
    ev = EslEvent.from_json(json.dumps({"Event-Name": "X", "N": 5, "A": ["a", "b"]}).encode())
    assert ev.get("N") == "5" and ev.get("A") == "ARRAY::a|:b"


def test_plain_value_with_encoded_newline_stays_one_header():
    ev = EslEvent.from_plain(b"Event-Name: X\nA: line1%0Aline2%3A%20x\nB: %3A\n\n")
    assert ev.get("A") == "line1\nline2: x" and ev.get("B") == ":"
    assert list(ev.headers) == ["Event-Name", "A", "B"]


# ------------------------------------------------- only ProtocolError leaves
@pytest.mark.parametrize("clen", ["²", "١٢", "12\u00a0", " 12", "1_2", "+5", "٣"])
def test_non_ascii_or_odd_content_length_is_a_protocol_error(clen):
    """int() and str.isdigit() accept Unicode digits; FreeSWITCH writes %d."""
    dec = EslDecoder()
    frame = f"Content-Type: api/response\nContent-Length: {clen}\n\n".encode() + b"x" * 20
    with pytest.raises(ProtocolError, match="Content-Length"):
        dec.feed(frame)


@pytest.mark.parametrize("clen", ["²", "١٢"])
def test_non_ascii_inner_content_length_is_a_protocol_error(clen):
    plain = f"Event-Name: BACKGROUND_JOB\nContent-Length: {clen}\n\n+OK\n".encode()
    with pytest.raises(ProtocolError, match="inner Content-Length"):
        EslEvent.from_plain(plain)
    xml = f"<event><headers/><Content-Length>{clen}</Content-Length><body>x</body></event>".encode()
    with pytest.raises(ProtocolError, match="XML Content-Length"):
        EslEvent.from_xml(xml)


@pytest.mark.parametrize("nested", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_deeply_nested_json_event_is_a_protocol_error(nested):
    frame = b"Content-Type: text/event-json\nContent-Length: %d\n\n" % len(nested) + nested
    (msg,) = EslDecoder(max_frame=1 << 20).feed(frame)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        msg.event


@pytest.mark.parametrize("blank", [b"\n", b"\n\n", b"\n\n\n\n\n"])
def test_blank_lines_between_frames_are_tolerated(blank):
    reply = b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    api = b"Content-Type: api/response\nContent-Length: 3\n\n+OK"
    stream = blank + reply + blank + api + blank + reply
    for cut in range(len(stream) + 1):  # any chunking
        dec = EslDecoder()
        msgs = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert [m.content_type for m in msgs] == ["command/reply", "api/response", "command/reply"]
        assert msgs[1].body == b"+OK" and dec.buffered == 0


# ------------------------------------- details a driver or an operator would see
def test_a_value_in_a_broken_encoding_is_still_read():
    assert fs_url_decode("Jos%E9") == "Jos\ufffd"


def _xml(inner: str) -> bytes:
    return f"<event>{inner}</event>".encode()


def test_xml_events_decode_like_the_others():
    ev = EslEvent.from_xml(_xml("<headers><Event-Name>CUSTOM</Event-Name><Caller-Name/></headers>"))
    assert (ev.name, ev.headers["Caller-Name"], ev.body, ev.format) == ("CUSTOM", "", "", "xml")
    assert "Content-Length" not in ev
    ev = EslEvent.from_xml(_xml("<body>+OK</body>"))  # a job result with no headers block
    assert (ev.headers, ev.body) == ({"Content-Length": "3"}, "+OK")
    ev = EslEvent.from_xml(_xml("<headers/><Content-Length>3</Content-Length><body>Jo\u00e9!</body>"))
    assert (ev.body, ev.headers["Content-Length"]) == ("Jo\ufffd", "3")  # cut inside the é, as FreeSWITCH counted


def test_a_broken_xml_event_is_a_protocol_error_saying_so():
    with pytest.raises(ProtocolError) as err:
        EslEvent.from_xml(b"<event><headers>")
    assert "bad XML event" in str(err.value)


def test_an_absent_header_or_variable_gives_the_default():
    ev = EslEvent({"Event-Name": "CHANNEL_ANSWER", "variable_cc_queue": "sales"})
    assert (ev.get("Event-Name"), ev.get("Nope", "dflt"), ev.get("Nope")) == ("CHANNEL_ANSWER", "dflt", None)
    assert (ev.variable("cc_queue"), ev.variable("cc_agent", "none"), ev.variable("cc_agent")) == ("sales", "none",
                                                                                                  None)
    assert "Event-Name" in ev and "Unique-ID" not in ev


def test_a_serialized_event_has_no_body_unless_given_one_and_one_content_length():
    assert encode_event_plain({"Event-Name": "CUSTOM"}) == b"Event-Name: CUSTOM\n\n"
    assert encode_event_plain({"Event-Name": "CUSTOM", "Content-Length": "99"}, "hi") == (
        b"Event-Name: CUSTOM\nContent-Length: 2\n\nhi")


def test_a_channel_uuid_with_a_space_or_a_newline_is_refused_naming_it():
    for bad in ("abc def", "abc\ncall-command: hangup"):
        with pytest.raises(UnsafeValue) as err:
            encode_sendmsg(bad, "execute")
        assert "channel uuid" in str(err.value)


@pytest.mark.parametrize("raw, headers, body", [
    (b"Event-Name: BACKGROUND_JOB\nContent-Length: 11\n\n+OK a\n\nb\n\nc\n", None, "+OK a\n\nb\n\nc"),  # blank lines in the body
    (b"Event-Name: CUSTOM\n", {"Event-Name": "CUSTOM"}, ""),  # no blank line, no body
    (b"Event-Name: CUSTOM", {"Event-Name": "CUSTOM"}, ""),  # not even the last newline
    (b"\n\nhello", {}, "hello"),  # a body and nothing else
    (b"Caller-Caller-ID-Name: Smith%3A%20John\nEvent-Name: X\n\n", {"Caller-Caller-ID-Name": "Smith: John",
                                                                    "Event-Name": "X"}, ""),
    (b"Event-Name: X\nvariable_sip_h_X-Tag:a:b\n\n", {"Event-Name": "X", "variable_sip_h_X-Tag": "a:b"}, ""),
    (b"Event-Name: X\nvariable_pct: %2541\n\n", {"Event-Name": "X", "variable_pct": "%41"}, ""),  # decoded once
    (b"Event-Name: X\nCaller-Caller-ID-Name: Jos%E9\n\n", {"Event-Name": "X", "Caller-Caller-ID-Name": "Jos\ufffd"}, ""),
    (b"Event-Name: X\nCaller-Caller-ID-Name: Jos\xe9\n\n", {"Event-Name": "X", "Caller-Caller-ID-Name": "Jos\ufffd"}, ""),
    (b"Event-Name: X\nA: line%0Abreak\nB: Jos%E9\n\n", {"Event-Name": "X", "A": "line\nbreak", "B": "Jos\ufffd"}, ""),
    (b"Event-Name: X\nContent-Length: 3\n\nJo\xe9", None, "Jo\ufffd"),
])
def test_plain_events_decode_exactly(raw, headers, body):
    ev = EslEvent.from_plain(raw)
    if headers is not None:
        assert ev.headers == headers
    assert (ev.body, ev.format) == (body, "plain")


def test_a_plain_event_line_without_a_colon_is_a_protocol_error_quoting_it():
    with pytest.raises(ProtocolError) as err:
        EslEvent.from_plain(b"Event-Name: X\nno colon here\n\n")
    assert "'no colon here'" in str(err.value)


def test_json_events_are_written_as_freeswitch_writes_them():
    assert encode_event_json({"Event-Name": "CUSTOM", "Caller-Name": "Jos\u00e9", "Content-Length": "99"}) == (
        '{"Event-Name":"CUSTOM","Caller-Name":"Jos\u00e9"}'.encode())
    assert encode_event_json({"Event-Name": "CUSTOM"}, "h\u00e9") == (
        '{"Event-Name":"CUSTOM","Content-Length":"3","_body":"h\u00e9"}'.encode())


@pytest.mark.parametrize("command, headers, message", [
    ("api status\r\nexit", {}, "ESL command contains a forbidden control character"),
    ("  ", {}, "empty ESL command"),
    ("sendmsg", {"bad\nname": "x"}, "ESL header name contains a forbidden control character"),
    ("sendmsg", {"execute-app-arg": "x\nevent-lock: true"}, "ESL header execute-app-arg contains"),
    ("sendmsg", {"bad name": "x"}, "bad ESL header name 'bad name'"),
    ("sendmsg", {"content-length": "5"}, "Content-Length is computed from the body"),
])
def test_a_refused_command_says_which_part_is_wrong(command, headers, message):
    with pytest.raises(UnsafeValue) as err:
        encode_command(command, headers)
    assert message in str(err.value)


def test_a_json_event_that_is_not_an_object_is_refused_saying_so_and_odd_bodies_become_text():
    with pytest.raises(ProtocolError, match="JSON event is not an object"):
        EslEvent.from_json(b'["Event-Name", "CUSTOM"]')
    ev = EslEvent.from_json(b'{"Event-Name": "BACKGROUND_JOB", "_body": 42}')
    assert (ev.body, ev.format) == ("42", "json")


def test_an_event_made_in_code_has_no_body_and_is_plain():
    ev = EslEvent({"Event-Name": "CUSTOM"})
    assert (ev.body, ev.format) == ("", "plain")


def test_a_broken_json_event_is_refused_saying_so():
    with pytest.raises(ProtocolError, match="bad JSON event"):
        EslEvent.from_json(b'{"Event-Name": ')
    with pytest.raises(ProtocolError, match="bad JSON event: nested too deeply"):
        EslEvent.from_json(b"[" * 100_000 + b"]" * 100_000)


def test_a_failed_decoder_refuses_more_input_saying_why():
    dec = EslDecoder()
    with pytest.raises(ProtocolError):
        dec.feed(b"Content-Type: command/reply\nContent-Length: x\n\n")
    with pytest.raises(ProtocolError, match="decoder already failed; drop the connection"):
        dec.feed(b"Content-Type: command/reply\n\n")


def test_lenient_outer_header_lines_split_at_the_first_colon_and_names_must_be_printable():
    (msg,) = EslDecoder().feed(b"Content-Type:command/reply\nReply-Text:+OK job:1\n\n")
    assert msg.headers == {"Content-Type": "command/reply", "Reply-Text": "+OK job:1"}
    with pytest.raises(ProtocolError, match="malformed ESL header line"):
        EslDecoder().feed(b"Content-Type: command/reply\nBad\x01Name: x\n\n")


def test_header_blocks_and_bodies_may_reach_their_limits_and_no_further():
    head = b"Content-Type: api/response\nX: " + b"a" * 30  # 60 bytes
    dec = EslDecoder(max_header=60)
    assert dec.feed(head) == [] and dec.buffered == 60
    with pytest.raises(ProtocolError, match="header block over 60 bytes"):
        dec.feed(b"a")
    assert [m.content_type for m in EslDecoder(max_header=60).feed(head + b"\n\n")] == ["api/response"]
    with pytest.raises(ProtocolError, match="header block over 60 bytes"):
        EslDecoder(max_header=60).feed(head + b"a\n\n")
    frame = b"Content-Type: api/response\nContent-Length: 10\n\n" + b"b" * 10
    assert [m.body for m in EslDecoder(max_frame=10).feed(frame)] == [b"b" * 10]
    with pytest.raises(ProtocolError, match="over the 9 limit"):
        EslDecoder(max_frame=9).feed(frame)


def test_a_plain_event_with_a_stray_leading_newline_keeps_every_header():
    assert EslEvent.from_plain(b"\nEvent-Name: CUSTOM\nJob-UUID: j-1\n\n").headers == {"Event-Name": "CUSTOM",
                                                                                      "Job-UUID": "j-1"}
