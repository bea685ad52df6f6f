"""AMI codec: tables, every real capture in several chunkings, a property test."""

import json
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenterd.pbx.api import UnsafeValue
from callcenterd.protocols.ami.codec import (
    MAX_FRAME_BYTES,
    AmiDecoder,
    Message,
    encode_action,
    encode_message,
    frames_of,
)
from callcenterd.protocols.errors import ProtocolError
from tests.fakes.ami_server import FIXTURES

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def decode_all(data: bytes, *, banner: bool = True) -> list[Message]:
    return AmiDecoder(expect_banner=banner).feed(data)


# ------------------------------------------------------------------ tables
def test_banner_has_no_blank_line_and_first_message_follows_in_same_read():
    dec = AmiDecoder()
    msgs = dec.feed(BANNER + b"Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted\r\n\r\n")
    assert dec.banner == "Asterisk Call Manager/11.0.0"
    assert [(m.kind, m.name, m.action_id) for m in msgs] == [("Response", "Success", "a-1")]


def test_banner_split_over_reads():
    dec = AmiDecoder()
    assert dec.feed(BANNER[:10]) == []
    assert dec.banner is None
    assert dec.feed(BANNER[10:] + b"Event: FullyBooted\r\n\r\n")[0].name == "FullyBooted"
    assert dec.banner == "Asterisk Call Manager/11.0.0"


@pytest.mark.parametrize(
    "banner",
    [b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 400 Bad Request\r\n", b"x" * 2000],
)
def test_not_an_ami_server_is_a_protocol_error(banner):
    with pytest.raises(ProtocolError):
        AmiDecoder().feed(banner)


@pytest.mark.parametrize(
    "frame,kind,name,is_event",
    [
        (b"Event: Hangup\r\nChannel: Local/1@x-1;1\r\n\r\n", "Event", "Hangup", True),
        (b"Response: Error\r\nActionID: 9\r\nMessage: No such channel\r\n\r\n", "Response", "Error", False),
        # OriginateResponse is an event that carries a Response: header (manager.c).
        (
            b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o-2\r\nResponse: Failure\r\n\r\n",
            "Event",
            "OriginateResponse",
            True,
        ),
        (b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n", "Response", "Goodbye", False),
    ],
)
def test_classified_by_first_line(frame, kind, name, is_event):
    (msg,) = decode_all(frame, banner=False)
    assert (msg.kind, msg.name, msg.is_event, msg.is_response) == (kind, name, is_event, not is_event)


def test_repeated_keys_keep_order_and_get_returns_first():
    frame = (
        b"Response: Success\r\nActionID: c-16\r\nMessage: Command output follows\r\n"
        b"Output: support has 0 calls\r\nOutput:    Members: \r\nOutput: \r\nOutput: \r\n\r\n"
    )
    (msg,) = decode_all(frame, banner=False)
    assert msg.get("Output") == "support has 0 calls"
    assert msg.get_all("Output") == ["support has 0 calls", "   Members: ", "", ""]
    assert msg.pairs[0] == ("Response", "Success")
    assert len(msg) == 7


def test_empty_values_and_missing_headers():
    (msg,) = decode_all(b"Event: QueueMember\r\nPausedReason: \r\nActionID: l-5\r\n\r\n", banner=False)
    assert msg.get("PausedReason") == ""
    assert msg.get("Nope") is None
    assert msg.get("Nope", "dflt") == "dflt"
    assert msg.action_id == "l-5"
    assert "PausedReason" in msg and "Nope" not in msg
    with pytest.raises(KeyError):
        msg["Nope"]


def test_get_falls_back_to_case_insensitive():
    (msg,) = decode_all(b"Event: X\r\nUniqueID: 1.2\r\n\r\n", banner=False)
    assert msg.get("Uniqueid") == "1.2"
    assert msg.get_all("uniqueid") == ["1.2"]


def test_event_list_markers():
    data = (
        b"Response: Success\r\nActionID: q-4\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
        b"Event: QueueStatusComplete\r\nActionID: q-4\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
    )
    start, done = decode_all(data, banner=False)
    assert (start.event_list, done.event_list) == ("start", "Complete")
    assert done.get("ListItems") == "0"
    assert done.event_list == "Complete"  # same answer after the full parse


def test_unused_events_stay_unparsed_until_touched():
    (msg,) = decode_all(b"Event: VarSet\r\nChannel: none\r\nVariable: X\r\nValue: 1\r\n\r\n", banner=False)
    assert msg.name == "VarSet"
    assert "unparsed" in repr(msg)  # only the first line was decoded
    assert msg.get("Value") == "1"
    assert "unparsed" not in repr(msg)


def test_utf8_character_split_across_reads_survives():
    frame = "Event: Newchannel\r\nCallerIDName: Zoë Ångström\r\n\r\n".encode()
    cut = frame.index("ë".encode()) + 1  # in the middle of the two-byte ë
    dec = AmiDecoder(expect_banner=False)
    assert dec.feed(frame[:cut]) == []
    (msg,) = dec.feed(frame[cut:])
    assert msg.get("CallerIDName") == "Zoë Ångström"


def test_latin1_bytes_do_not_kill_the_frame():
    (msg,) = decode_all(b"Event: Newchannel\r\nCallerIDName: Zo\xeb\r\nExten: 1\r\n\r\n", banner=False)
    assert msg.get("CallerIDName") == "Zo\ufffd"
    assert msg.get("Exten") == "1"


def test_endless_frame_is_refused():
    dec = AmiDecoder(expect_banner=False, max_frame=1000)
    dec.feed(b"Event: Huge\r\n")
    with pytest.raises(ProtocolError, match="exceeds 1000"):
        for _ in range(20):
            dec.feed(b"Output: " + b"x" * 90 + b"\r\n")


def test_oversized_complete_frame_in_one_read_is_refused():
    dec = AmiDecoder(expect_banner=False, max_frame=100)
    with pytest.raises(ProtocolError):
        dec.feed(b"Event: Huge\r\nOutput: " + b"x" * 200 + b"\r\n\r\n")


def test_default_frame_limit_accepts_a_large_command_reply():
    lines = b"".join(b"Output: Local/1001@agents-00000023;2!agents!1001!3!Up!Wait!120\r\n" for _ in range(5000))
    (msg,) = decode_all(b"Response: Success\r\nActionID: 1\r\n" + lines + b"\r\n", banner=False)
    assert len(msg.get_all("Output")) == 5000
    assert len(lines) < MAX_FRAME_BYTES


def test_garbage_frame_is_skipped_and_counted():
    skipped = []
    dec = AmiDecoder(expect_banner=False, on_skip=lambda frame, why: skipped.append(frame))
    msgs = dec.feed(b"\x00\xff\xfegarbage\r\nmore\r\n\r\nEvent: Hangup\r\nCause: 16\r\n\r\n")
    assert [m.name for m in msgs] == ["Hangup"]
    assert dec.skipped == 1
    assert skipped == [b"\x00\xff\xfegarbage\r\nmore"]


def test_extra_blank_lines_between_frames_are_ignored():
    msgs = decode_all(b"Event: A\r\n\r\n\r\n\r\n\r\nEvent: B\r\n\r\n", banner=False)
    assert [m.name for m in msgs] == ["A", "B"]


def test_lenient_body_lines():
    (msg,) = decode_all(b"Event: X\r\nNoSpace:1\r\nEmpty:\r\njunk line\r\nOk: y\r\n\r\n", banner=False)
    assert msg.pairs == [("Event", "X"), ("NoSpace", "1"), ("Empty", ""), ("Ok", "y")]
    assert msg.defective


def test_client_direction_decodes_actions():
    (msg,) = decode_all(encode_action("Ping", action_id="p-1"), banner=False)
    assert (msg.kind, msg.name, msg.action_id, msg.is_event, msg.is_response) == ("Action", "Ping", "p-1", False, False)


def test_buffered_reports_a_partial_frame():
    dec = AmiDecoder(expect_banner=False)
    dec.feed(b"Event: Half\r\nChan")
    assert dec.buffered == len(b"Event: Half\r\nChan")
    dec.feed(b"nel: x\r\n\r\n")
    assert dec.buffered == 0


# ---------------------------------------------------------------- encoding
def test_encode_action_with_repeated_variables_in_order():
    data = encode_action(
        "Originate",
        [("Channel", "Local/support@inbound/n"), ("Variable", "CC_A=1"), ("Variable", "CC_B=2"), ("Async", True)],
        "cc-1",
    )
    assert data == (
        b"Action: Originate\r\nActionID: cc-1\r\nChannel: Local/support@inbound/n\r\n"
        b"Variable: CC_A=1\r\nVariable: CC_B=2\r\nAsync: true\r\n\r\n"
    )


def test_encode_action_accepts_a_mapping_and_no_action_id():
    assert encode_action("QueueStatus", {"Queue": "support"}) == b"Action: QueueStatus\r\nQueue: support\r\n\r\n"


@pytest.mark.parametrize("bad", ["1001\r\nAction: Hangup", "x\n", "a\rb", "a\x00b"])
@pytest.mark.parametrize("where", ["value", "key", "name", "action_id"])
def test_header_injection_is_refused_without_echoing_the_value(bad, where):
    args = {"name": "Setvar", "headers": [("Variable", "CC_X"), ("Value", "ok")], "action_id": "a-1"}
    if where == "value":
        args["headers"] = [("Variable", "CC_X"), ("Value", bad)]
    elif where == "key":
        args["headers"] = [(bad, "ok")]
    elif where == "name":
        args["name"] = bad
    else:
        args["action_id"] = bad
    with pytest.raises(UnsafeValue) as err:
        encode_action(**args)
    assert bad not in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("key", ["Bad Key", "Key:", "", "Chan;nel"])
def test_malformed_header_names_are_refused(key):
    with pytest.raises(UnsafeValue):
        encode_action("Ping", [(key, "x")])


def test_action_and_actionid_cannot_be_smuggled_in_headers():
    with pytest.raises(ValueError):
        encode_action("Ping", [("Action", "Hangup")])
    with pytest.raises(ValueError):
        encode_action("Ping", [("ActionID", "x")], action_id="y")


def test_non_string_values_are_refused():
    with pytest.raises(UnsafeValue):
        encode_action("Ping", [("X", object())])


# ---------------------------------------------------- real captures, chunked
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CAPTURES = sorted(
    p.name for p in FIXTURES.glob("ami-*.txt") if not p.name.endswith(".client.txt")
)


def chunkings(size: int):
    rng = random.Random(size)  # deterministic "random" chunking per file
    yield "whole", [size]
    yield "1-byte", None
    yield "7-byte", 7
    yield "random", rng


def feed_chunked(data: bytes, how) -> tuple[AmiDecoder, list[Message]]:
    dec = AmiDecoder()
    out: list[Message] = []
    if how is None:
        for i in range(len(data)):
            out += dec.feed(data[i : i + 1])
    elif isinstance(how, int):
        for i in range(0, len(data), how):
            out += dec.feed(data[i : i + how])
    elif isinstance(how, list):
        out += dec.feed(data)
    else:
        i = 0
        while i < len(data):
            n = how.choice([1, 2, 3, 5, 64, 1000, 4096, 65536])
            out += dec.feed(data[i : i + n])
            i += n
    return dec, out


def test_every_capture_is_covered():
    assert len(CAPTURES) >= 19
    assert set(CAPTURES) <= set(MANIFEST["files"])


@pytest.mark.parametrize("capture", CAPTURES)
def test_capture_replay_matches_manifest(capture):
    data = (FIXTURES / capture).read_bytes()
    expected = MANIFEST["files"][capture]
    big = len(data) > 200_000
    results = []
    for label, how in chunkings(len(data)):
        if big and label == "1-byte":
            continue  # 1.7 MB one byte at a time is minutes; 7-byte covers the seams
        dec, msgs = feed_chunked(data, how)
        assert dec.banner == MANIFEST["ami_banner"], label
        assert dec.buffered == 0 and dec.skipped == 0, label
        events = Counter(m.name for m in msgs if m.is_event)
        responses = Counter(m.name for m in msgs if m.is_response)
        assert len(msgs) == expected["messages"], label
        assert sum(events.values()) == expected["events"], label
        assert dict(events) == expected["event_counts"], label
        assert dict(responses) == expected["responses"], label
        lists = sum(1 for m in msgs if m.is_response and m.event_list == "start")
        assert lists == expected["eventlist_responses"], label
        results.append([m.pairs for m in msgs])
    assert all(r == results[0] for r in results[1:])


def test_capture_details_survive_parsing():
    msgs = AmiDecoder().feed((FIXTURES / "ami-lists-while-call-up.txt").read_bytes())
    version = next(m for m in msgs if m.action_id == "lists-while-call-up-15")
    assert version.get("Output").startswith("Asterisk 22.10.1")
    queue_show = next(m for m in msgs if m.action_id == "lists-while-call-up-16")
    assert queue_show.get_all("Output")[-2:] == ["", ""]
    testevent = next(m for m in msgs if m.name == "TestEvent" and m.get("State") == "CallIDChange")
    assert testevent.get_all("State") == ["CallIDChange", "CallIDChange"]
    originate = next(m for m in msgs if m.name == "OriginateResponse")
    assert originate.is_event and originate.get("Response") in ("Success", "Failure")


# ------------------------------------------------------------ property test
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
keys = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALNUM[:52]),
    st.text(st.sampled_from(_ALNUM + "-_"), max_size=15),
)
values = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40
)
messages = st.lists(
    st.tuples(st.sampled_from(["Event", "Response"]), values).flatmap(
        lambda head: st.lists(st.tuples(keys, values), max_size=8).map(lambda body: [head] + body)
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_encode_then_decode_in_any_chunks_round_trips(msgs, cuts):
    data = BANNER + b"".join(encode_message(m) for m in msgs)
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    dec = AmiDecoder()
    out: list[Message] = []
    for a, b in zip(bounds, bounds[1:]):
        out += dec.feed(data[a:b])
    assert [m.pairs for m in out] == msgs
    assert [m.name for m in out] == [m[0][1] for m in msgs]
    assert dec.buffered == 0


# ------------------------------------------------------------ linear decoding
def _feed_in_chunks(dec: AmiDecoder, data: bytes, size: int) -> tuple[list, int]:
    out, feeds = [], 0
    for i in range(0, len(data), size):
        out += dec.feed(data[i : i + size])
        feeds += 1
    return out, feeds


def test_huge_frame_in_1k_reads_is_searched_once_not_per_read():
    """Structural, not timed: each byte is searched for the frame end about
    once (plus one split of the complete frame), whatever the read size.
    Before, every 1 KiB read rescanned the whole buffer: ~7.4 GB of work
    for this 3.9 MB ``Command`` reply (the speed is in bench/ami_ingest.py)."""
    body = b"Output: " + b"z" * 60 + b"\r\n"
    data = b"Asterisk Call Manager/11.0.0\r\nResponse: Follows\r\nActionID: c-1\r\n"
    data += body * (3_900_000 // len(body)) + b"\r\n" + b"Event: After\r\n\r\n"
    dec = AmiDecoder()
    msgs, feeds = _feed_in_chunks(dec, data, 1024)
    assert [m.name for m in msgs] == ["Follows", "After"]
    assert len(msgs[0].get_all("Output")) == 3_900_000 // len(body)
    assert dec.scanned <= 2 * len(data) + 3 * feeds
    assert dec.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.sampled_from([b"Event: A\r\n", b"X: 1\r\n", b"\r\n", b"\r", b"\n"]), max_size=40),
    size=st.integers(min_value=1, max_value=9),
)
def test_any_chunking_gives_what_one_read_gives(parts, size):
    """Frame ends that overlap ("\\r\\n\\r\\n\\r\\n") or straddle reads split the
    same way as when everything arrives at once."""
    data = b"".join(parts)
    whole = AmiDecoder(expect_banner=False)
    expected = [(m.kind, m.name, m.pairs) for m in whole.feed(data)]
    dec = AmiDecoder(expect_banner=False)
    got, _ = _feed_in_chunks(dec, data, size)
    assert [(m.kind, m.name, m.pairs) for m in got] == expected
    assert (dec.buffered, dec.skipped) == (whole.buffered, whole.skipped)


# ------------------------------------- details a driver or an operator would see
def test_a_message_built_from_pairs_is_what_it_says_and_encodes_to_the_wire():
    msg = Message.from_pairs([("Event", "Hangup"), ("Channel", "PJSIP/1001-0001"), ("Cause", 16)])
    assert (msg.kind, msg.name, msg.is_event, msg["Cause"]) == ("Event", "Hangup", True, "16")
    assert list(msg) == [("Event", "Hangup"), ("Channel", "PJSIP/1001-0001"), ("Cause", "16")]
    assert msg.encode() == b"Event: Hangup\r\nChannel: PJSIP/1001-0001\r\nCause: 16\r\n\r\n"
    assert frames_of([msg, msg]) == msg.encode() * 2
    assert msg == decode_all(msg.encode(), banner=False)[0]
    assert msg != Message.from_pairs([("Event", "Hangup")]) and msg != "Event: Hangup"


def test_an_exact_header_name_wins_over_one_that_differs_only_in_case():
    (msg,) = decode_all(b"Event: X\r\nuniqueid: low\r\nUniqueid: exact\r\n\r\n", banner=False)
    assert (msg.get("Uniqueid"), msg.get("uniqueid"), msg.get("UNIQUEID")) == ("exact", "low", "low")
    with pytest.raises(KeyError, match="Linkedid"):
        msg["Linkedid"]


def test_a_lenient_body_line_splits_at_its_first_colon():
    (msg,) = decode_all(b"Event: X\r\nVariable:CC_QUEUE=sales:east\r\n\r\n", banner=False)
    assert msg.get("Variable") == "CC_QUEUE=sales:east"


@pytest.mark.parametrize("frame, kind, name", [
    (b"Action: Queue:Add\r\nQueue: x\r\n\r\n", "Action", "Queue:Add"),  # a colon in the first value
    (b"X-Trace: abc\r\n\r\n", "X-Trace", "abc"),
    (b"Action: Jos\xe9\r\n\r\n", "Action", "Jos\ufffd"),
])
def test_a_frame_that_is_neither_event_nor_response_keeps_its_first_line(frame, kind, name):
    (msg,) = decode_all(frame, banner=False)
    assert (msg.kind, msg.name) == (kind, name)


def test_every_garbage_frame_is_skipped_counted_and_reported_with_a_reason():
    skipped = []
    dec = AmiDecoder(expect_banner=False, on_skip=lambda frame, why: skipped.append((frame, why)))
    msgs = dec.feed(b" Event: Indented\r\n\r\nnot a key: v\r\n\r\nEvent: Hangup\r\n\r\n")
    assert [m.name for m in msgs] == ["Hangup"] and dec.skipped == 2
    assert [frame for frame, _ in skipped] == [b" Event: Indented", b"not a key: v"]
    assert all(isinstance(why, str) and why for _, why in skipped)


def test_booleans_and_numbers_are_written_as_asterisk_reads_them():
    assert encode_action("Originate", [("Async", False), ("Timeout", 30000), ("EarlyMedia", True)]) == (
        b"Action: Originate\r\nAsync: false\r\nTimeout: 30000\r\nEarlyMedia: true\r\n\r\n")


@pytest.mark.parametrize("call, label", [
    (lambda: encode_action("Setvar", [("Value", "a\r\nb")]), "header Value"),
    (lambda: encode_action("Setvar", [("Va\r\nlue", "x")]), "header name"),
    (lambda: encode_action("Setvar", [("Va lue", "x")]), "header name"),
    (lambda: encode_action("Ping", action_id="a\r\nb"), "ActionID"),
])
def test_a_refused_header_is_named(call, label):
    with pytest.raises(UnsafeValue) as err:
        call()
    assert label in str(err.value)


def test_a_header_name_that_is_not_text_is_refused_as_unsafe():
    with pytest.raises(UnsafeValue):
        encode_action("Ping", [(7, "x")])


def test_a_smuggled_action_id_is_refused_naming_it():
    with pytest.raises(ValueError, match="ActionID"):
        encode_action("Ping", [("ActionID", "x")], action_id="y")


def test_the_action_id_of_a_built_or_a_broken_message_is_read():
    assert Message.from_pairs([("Response", "Success"), ("ActionID", "cc-7")]).action_id == "cc-7"
    (msg,) = decode_all(b"Response: Success\r\nActionID: cc-\xe9\r\nEventList: start\r\n\r\n", banner=False)
    assert (msg.action_id, msg.event_list) == ("cc-\ufffd", "start")


def test_a_peer_that_opens_with_a_blank_line_is_not_an_ami_server():
    with pytest.raises(ProtocolError):
        AmiDecoder().feed(b"\r\nAsterisk Call Manager/11.0.0\r\n")


def test_a_banner_may_take_a_kibibyte_and_no_more_and_the_error_says_so():
    from callcenterd.protocols.ami.codec import MAX_BANNER_BYTES

    assert AmiDecoder().feed(b"x" * MAX_BANNER_BYTES) == []
    with pytest.raises(ProtocolError, match=f"no AMI banner in the first {MAX_BANNER_BYTES + 1} bytes"):
        AmiDecoder().feed(b"x" * (MAX_BANNER_BYTES + 1))


def test_a_banner_with_a_broken_byte_is_still_read():
    dec = AmiDecoder()
    dec.feed(b"Asterisk Call Manager/11.0.0 \xff\r\n")
    assert dec.banner == "Asterisk Call Manager/11.0.0 \ufffd"


@pytest.mark.parametrize("banner", [b"", BANNER])
def test_a_partial_frame_may_reach_the_limit_and_no_further(banner):
    dec = AmiDecoder(expect_banner=bool(banner), max_frame=100)
    assert dec.feed(banner + b"Event: Big\r\nX: " + b"y" * (100 - 15)) == []
    assert dec.buffered == 100
    with pytest.raises(ProtocolError):
        dec.feed(b"y")
    assert dec.buffered == 0  # nothing kept once refused


def test_every_byte_fed_is_searched_at_least_once():
    dec = AmiDecoder(expect_banner=False)
    data = b"Event: A\r\nX: 1\r\n\r\n" * 50 + b"Event: Half\r\n"
    _feed_in_chunks(dec, data, 7)
    assert len(data) <= dec.scanned <= 2 * len(data) + 3 * (len(data) // 7 + 1)


def test_event_and_response_names_in_a_broken_encoding_are_still_read():
    msgs = decode_all(b"Event: Jos\xe9\r\n\r\nResponse: Succ\xe9ss\r\n\r\n", banner=False)
    assert [(m.kind, m.name, m.defective) for m in msgs] == [("Event", "Jos\ufffd", False),
                                                             ("Response", "Succ\ufffdss", False)]
    assert not Message.from_pairs([("Event", "X")]).defective


def test_a_frame_read_at_once_is_searched_once_and_split_once():
    frame = b"Event: A\r\nX: 1\r\n\r\n"
    dec = AmiDecoder(expect_banner=False)
    dec.feed(frame)
    assert dec.scanned == 2 * len(frame)


def test_a_frame_started_in_the_banners_read_ends_in_the_next_one():
    dec = AmiDecoder()
    assert dec.feed(BANNER + b"Event: FullyBooted\r\n") == []
    assert [m.name for m in dec.feed(b"Status: Fully Booted\r\n\r\n")] == ["FullyBooted"]


def test_frames_of_exactly_the_limit_pass_and_a_longer_tail_is_refused_at_once():
    content = b"Event: Big\r\nX: " + b"y" * 85  # 100 bytes, then the blank line
    dec = AmiDecoder(expect_banner=False, max_frame=100)
    assert [m.name for m in dec.feed(content + b"\r\n\r\n")] == ["Big"]
    dec = AmiDecoder(expect_banner=False, max_frame=100)
    assert [m.name for m in dec.feed(b"Event: A\r\n\r\n" + b"z" * 100)] == ["A"]  # a tail at the limit waits
    assert dec.buffered == 100
    dec = AmiDecoder(expect_banner=False, max_frame=100)
    with pytest.raises(ProtocolError, match="exceeds 100"):
        dec.feed(b"Event: A\r\n\r\n" + b"z" * 101)
    assert dec.buffered == 0
    dec = AmiDecoder(expect_banner=False, max_frame=100)
    with pytest.raises(ProtocolError, match="exceeds 100"):
        dec.feed(b"Event: A\r\n" + b"z" * 200 + b"\r\n\r\n")
