"""FsTranslator: ESL events -> port events, from the real captures and tables."""

from __future__ import annotations

import pytest

from callcenterd.pbx.api import (
    AmdResult,
    AmdVerdict,
    Bridged,
    DeviceState,
    DeviceStatus,
    Dtmf,
    LegAnswered,
    LegHungUp,
    Outcome,
    Unbridged,
    outcome_from_q850,
)
from callcenterd.pbx.asterisk.translate import AmiTranslator
from callcenterd.pbx.freeswitch.translate import (
    CAUSE_CODES,
    FsDevices,
    FsTranslator,
    channel_devices,
    device_key,
    cause_name,
    outcome_of,
    parse_job_result,
)
from callcenterd.protocols.esl.codec import EslEvent
from tests.fakes.esl_server import _event_of, captured_events


def _capture(name: str) -> list[EslEvent]:
    return [_event_of(h, b) for h, b in captured_events(name)]


@pytest.mark.parametrize("fmt", ["plain", "json", "xml"])
def test_captured_originate_reports_answer_then_answered_hangup(fmt):
    """The loopback A leg of the captured originate, tracked as ours."""
    events = _capture(f"inbound-events-{fmt}-originate")
    a_leg = next(e.uuid for e in events if e.name == "CHANNEL_CREATE" and e.get("Channel-Name", "").endswith("-a"))
    b_leg = next(e.uuid for e in events if e.name == "CHANNEL_CREATE" and e.uuid != a_leg)
    t = FsTranslator()
    t.originating(a_leg)
    out = [p for ev in events for p in t.feed(ev)]
    assert out == [LegAnswered(a_leg), LegHungUp(a_leg, Outcome.ANSWERED, 16, "NORMAL_CLEARING")]
    assert b_leg not in t.legs and a_leg not in t.legs  # nothing left behind
    # the job result ("+OK <uuid>") that follows changes nothing
    job = next(e for e in events if e.name == "BACKGROUND_JOB")
    assert t.job_result(a_leg, job.body) == []


def test_captured_callcenter_bridge_reports_bridged_and_unbridged():
    events = _capture("callcenter-json-all")
    bridge = next(e for e in events if e.name == "CHANNEL_BRIDGE")
    a, b = bridge.get("Bridge-A-Unique-ID"), bridge.get("Bridge-B-Unique-ID")
    assert a and b
    t = FsTranslator()
    t.track(a)
    t.track(b)
    out = [p for ev in events for p in t.feed(ev) if isinstance(p, (Bridged, Unbridged))]
    assert out[0] == Bridged(a, b)
    assert isinstance(out[1], Unbridged) and {out[1].leg_a, out[1].leg_b} == {a, b}


def _ev(name: str, uuid: str, **headers: str) -> EslEvent:
    return EslEvent({"Event-Name": name, "Unique-ID": uuid, **headers})


@pytest.mark.parametrize("job_first", [True, False])
def test_busy_reported_once_whatever_the_order(job_first):
    t = FsTranslator()
    t.originating("L1")
    create = _ev("CHANNEL_CREATE", "L1")
    hangup = _ev("CHANNEL_HANGUP_COMPLETE", "L1", **{"Hangup-Cause": "USER_BUSY", "variable_hangup_cause_q850": "17"})
    if job_first:
        out = t.job_result("L1", "-ERR USER_BUSY\n") + t.feed(create) + t.feed(hangup)
    else:
        out = t.feed(create) + t.feed(hangup) + t.job_result("L1", "-ERR USER_BUSY\n")
    assert out == [LegHungUp("L1", Outcome.BUSY, 17, "USER_BUSY")]
    assert t.legs == {}


def test_job_error_without_channel_is_failed_and_forgotten():
    t = FsTranslator()
    t.originating("L2")
    assert t.job_result("L2", "-ERR CHAN_NOT_IMPLEMENTED\n") == [
        LegHungUp("L2", Outcome.FAILED, 66, "CHAN_NOT_IMPLEMENTED")
    ]
    assert t.legs == {}


def test_our_own_hangup_of_a_ringing_leg_is_cancelled():
    t = FsTranslator()
    t.originating("L3")
    t.feed(_ev("CHANNEL_CREATE", "L3"))
    t.hanging_up("L3")
    out = t.feed(_ev("CHANNEL_HANGUP_COMPLETE", "L3", **{"Hangup-Cause": "NO_ANSWER", "variable_hangup_cause_q850": "19"}))
    assert out == [LegHungUp("L3", Outcome.CANCELLED, 19, "NO_ANSWER")]
    assert t.job_result("L3", "-ERR NO_ANSWER\n") == []


def test_answer_is_reported_once_from_event_or_job():
    t = FsTranslator()
    t.originating("L4")
    assert t.job_result("L4", "+OK L4\n") == [LegAnswered("L4")]
    assert t.feed(_ev("CHANNEL_ANSWER", "L4")) == []


def test_caller_legs_do_not_report_answers_and_others_are_ignored():
    t = FsTranslator()
    t.track("C1")
    assert t.feed(_ev("CHANNEL_ANSWER", "C1")) == []
    assert t.feed(_ev("CHANNEL_HANGUP_COMPLETE", "X9", **{"Hangup-Cause": "NORMAL_CLEARING"})) == []
    assert t.feed(_ev("DTMF", "C1", **{"DTMF-Digit": "5"})) == [Dtmf("C1", "5")]
    assert t.feed(_ev("DTMF", "X9", **{"DTMF-Digit": "5"})) == []


def test_avmd_beep_is_a_machine():
    t = FsTranslator()
    t.originating("L5")
    beep = EslEvent({"Event-Subclass": "avmd::beep", "Event-Name": "CUSTOM", "Unique-ID": "L5"})
    assert t.feed(beep) == [AmdResult("L5", AmdVerdict.MACHINE, "beep")]


# Same normalised outcome as Asterisk for the same Q.850 cause.
@pytest.mark.parametrize("name, expected", [
    ("USER_BUSY", Outcome.BUSY),
    ("NO_ANSWER", Outcome.NO_ANSWER),
    ("NO_USER_RESPONSE", Outcome.NO_ANSWER),
    ("ALLOTTED_TIMEOUT", Outcome.NO_ANSWER),
    ("CALL_REJECTED", Outcome.REJECTED),
    ("NORMAL_TEMPORARY_FAILURE", Outcome.CONGESTION),
    ("SWITCH_CONGESTION", Outcome.CONGESTION),
    ("NORMAL_CIRCUIT_CONGESTION", Outcome.CONGESTION),
    ("ORIGINATOR_CANCEL", Outcome.CANCELLED),
    ("UNALLOCATED_NUMBER", Outcome.FAILED),
    ("NO_ROUTE_DESTINATION", Outcome.FAILED),
    ("CHAN_NOT_IMPLEMENTED", Outcome.FAILED),
    ("NORMAL_CLEARING", Outcome.CANCELLED),
])
def test_cause_names_normalise(name, expected):
    assert outcome_of(name, None, False) is expected
    assert outcome_of(name, CAUSE_CODES[name], True) is Outcome.ANSWERED
    code = CAUSE_CODES[name]
    if code < 128 and name not in ("NO_USER_RESPONSE",):
        # the Q.850 path (what the Asterisk driver uses) agrees
        assert outcome_from_q850(code, False) is expected


def test_unknown_name_falls_back_to_the_q850_code():
    assert outcome_of("SOMETHING_NEW", 17, False) is Outcome.BUSY
    assert outcome_of("SOMETHING_NEW", None, False) is Outcome.FAILED


def test_asterisk_and_freeswitch_agree_on_a_busy_leg():
    """Asterisk: OriginateResponse Reason 5; FreeSWITCH: -ERR USER_BUSY."""

    class Msg:
        def __init__(self, name, **h):
            self.name, self._h = name, h

        def get(self, key, default=None):
            return self._h.get(key, default)

    ami = AmiTranslator()
    ami.originating("a1", "L")
    (ast,) = ami.feed(Msg("OriginateResponse", ActionID="a1", Response="Failure", Reason="5"))
    fs = FsTranslator()
    fs.originating("L")
    (fsev,) = fs.job_result("L", "-ERR USER_BUSY\n")
    assert ast.outcome is fsev.outcome is Outcome.BUSY


def test_job_result_parsing():
    assert parse_job_result("+OK 6d567255-13c4-4e97-802e-4d33c97433e2\n") == (True, "6d567255-13c4-4e97-802e-4d33c97433e2")
    assert parse_job_result("-ERR USER_BUSY\n") == (False, "USER_BUSY")
    assert parse_job_result("-ERR no_such Command not found!\n") == (False, "no_such")
    assert parse_job_result("garbage") == (False, "")


def test_cause_name_for_uuid_kill():
    assert cause_name(16) == "NORMAL_CLEARING"
    assert cause_name(19) == "NO_ANSWER"
    assert cause_name(26) == "LOSE_RACE"
    assert cause_name(12345) == "NORMAL_CLEARING"


# ------------------------------------------------------------- device state
@pytest.mark.parametrize("endpoint, key", [
    ("user/1001", "user/1001"),
    ("user/1001@example.com", "user/1001"),
    ("loopback/1001/agents", "loopback/1001"),
    ("loopback/1001/agents/XML", "loopback/1001"),
    ("loopback/1001-a", "loopback/1001"),  # the channels mod_loopback makes for it
    ("loopback/1001-b", "loopback/1001"),
    ("loopback/sales-a/agents", "loopback/sales-a"),
    ("loopback/sales-a-b", "loopback/sales-a"),
    ("sofia/internal/1001@10.0.0.5", "sofia/internal/1001@10.0.0.5"),
])
def test_device_key(endpoint, key):
    assert device_key(endpoint) == key


def test_channel_devices_from_dialed_user_presence_and_loopback_name():
    assert channel_devices({"variable_dialed_user": "1001", "Channel-Name": "sofia/internal/1001@10.0.0.5:5060"}) \
        == {"user/1001"}
    assert channel_devices({"Channel-Presence-ID": "1002@example.com"}) == {"user/1002"}
    assert channel_devices({"Channel-Name": "loopback/4000-b"}) == {"loopback/4000"}
    # a PSTN call on a gateway: no device of ours
    assert channel_devices({"Channel-Name": "sofia/gateway/carrier/15551234", "Channel-Presence-ID": ""}) == set()


def test_captured_callcenter_call_rings_then_uses_then_frees_the_agent_device():
    """mod_callcenter's agent contact loopback/4000 bridged to the "phone"
    loopback/4001, in the capture: every device goes ringing -> in use -> idle,
    and an idle device is forgotten."""
    d = FsDevices()
    out = [e for ev in _capture("callcenter-json-all") for e in d.feed(ev)]
    for device in ("loopback/3000", "loopback/4000", "loopback/4001"):
        assert [e.status for e in out if e.device == device] == [
            DeviceStatus.RINGING, DeviceStatus.INUSE, DeviceStatus.NOT_INUSE], device
    assert d.channels == {} and d.on_device == {} and d.status == {}


def test_device_stays_in_use_while_any_channel_is_answered():
    class Ev:
        def __init__(self, name, uuid, **h):
            self.name, self.uuid, self.subclass, self.h = name, uuid, "", h

        def get(self, k, default=None):
            return self.h.get(k, default)

    d = FsDevices()
    user = {"variable_dialed_user": "1001"}
    assert d.feed(Ev("CHANNEL_CREATE", "a", **user)) == [DeviceState("user/1001", DeviceStatus.RINGING)]
    assert d.feed(Ev("CHANNEL_ANSWER", "a", **user)) == [DeviceState("user/1001", DeviceStatus.INUSE)]
    assert d.feed(Ev("CHANNEL_CREATE", "b", **user)) == []  # call waiting: still in use
    assert d.feed(Ev("CHANNEL_HANGUP_COMPLETE", "a", **user)) == [DeviceState("user/1001", DeviceStatus.RINGING)]
    assert d.feed(Ev("CHANNEL_HANGUP_COMPLETE", "b", **user)) == [DeviceState("user/1001", DeviceStatus.NOT_INUSE)]
    assert d.feed(Ev("CHANNEL_HANGUP_COMPLETE", "b", **user)) == []  # a duplicate changes nothing
    assert d.feed(Ev("CHANNEL_CREATE", "c", **{"Channel-Name": "sofia/gateway/x/1"})) == []


def test_resync_clears_devices_whose_hangup_was_missed_and_adopts_busy_ones():
    d = FsDevices()
    d.resync([{"uuid": "a", "name": "loopback/1001-a", "callstate": "ACTIVE"}])
    assert d.status == {"loopback/1001": DeviceStatus.INUSE}
    out = d.resync([{"uuid": "b", "name": "x", "presence_id": "2002@dom", "callstate": "RINGING"}])
    assert out == [DeviceState("loopback/1001", DeviceStatus.NOT_INUSE), DeviceState("user/2002", DeviceStatus.RINGING)]
