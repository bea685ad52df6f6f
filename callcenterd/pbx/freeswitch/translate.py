"""ESL events -> PBX port events.  Pure: no I/O, fed one event at a time.

Only legs the driver tracks (callers handed to us by the ``socket`` app,
agent legs it originated) produce events; the ``-b`` halves of loopback
channels, CHANNEL_STATE noise and other people's calls stay out of the core.

An originated leg can end two ways, in any order on the wire
(mod_event_socket does not order a BACKGROUND_JOB against channel events,
see the captures' README): its CHANNEL_HANGUP_COMPLETE, or the ``-ERR
<CAUSE>`` of the ``bgapi originate`` job (the only news when no channel was
ever created: unknown endpoint, no route).  The first one reports, the other
is swallowed.  Once the leg *answered*, only its channel events count: a
``uuid_bridge`` that lands while the originate job still runs makes the job
end ``-ERR ORIGINATOR_CANCEL`` although the leg stays up and bridged
(esl-bridge-before-originate-job.txt; switch_ivr_originate.c gives up on a
leg that was taken out of its hands, and nobody hangs that leg up).

Device state (:class:`FsDevices`) is derived from the same channel events,
for every channel, ours or not: FreeSWITCH has no device-state event like
Asterisk's DeviceStateChange, so a device is as busy as the channels on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol

from callcenterd.pbx.api import (
    AmdResult,
    AmdVerdict,
    Bridged,
    DeviceState,
    DeviceStatus,
    Dtmf,
    LegAnswered,
    LegHungUp,
    LegRinging,
    Outcome,
    PbxEvent,
    Unbridged,
    outcome_from_q850,
)

# switch_types.h switch_call_cause_t: FreeSWITCH cause name -> code.  Codes
# under 128 are Q.850; the 5xx/6xx ones are FreeSWITCH's own.
CAUSE_CODES: dict[str, int] = {
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "INCOMPATIBLE_DESTINATION": 88,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "INTERWORKING": 127,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 500,
    "SYSTEM_SHUTDOWN": 501,  # every channel, at fsctl shutdown
    "LOSE_RACE": 502,
    "MANAGER_REQUEST": 503,
    "ALLOTTED_TIMEOUT": 602,
    "USER_CHALLENGE": 603,
    "MEDIA_TIMEOUT": 604,
    "PICKED_OFF": 605,
    "USER_NOT_REGISTERED": 606,
    "PROGRESS_TIMEOUT": 607,
    "GATEWAY_DOWN": 609,
    "INVALID_GATEWAY": 608,
}

# Names whose meaning is clearer than their code (FreeSWITCH-only codes, or
# codes Q.850 files under "failed" that a contact center calls no-answer).
_NAME_OUTCOME: dict[str, Outcome] = {
    "USER_BUSY": Outcome.BUSY,
    "NO_ANSWER": Outcome.NO_ANSWER,
    "NO_USER_RESPONSE": Outcome.NO_ANSWER,
    "ALLOTTED_TIMEOUT": Outcome.NO_ANSWER,
    "PROGRESS_TIMEOUT": Outcome.NO_ANSWER,
    "RECOVERY_ON_TIMER_EXPIRE": Outcome.NO_ANSWER,
    "CALL_REJECTED": Outcome.REJECTED,
    "USER_CHALLENGE": Outcome.REJECTED,
    "NORMAL_TEMPORARY_FAILURE": Outcome.CONGESTION,
    "SWITCH_CONGESTION": Outcome.CONGESTION,
    "NORMAL_CIRCUIT_CONGESTION": Outcome.CONGESTION,
    "NETWORK_OUT_OF_ORDER": Outcome.CONGESTION,
    "REQUESTED_CHAN_UNAVAIL": Outcome.CONGESTION,
    "GATEWAY_DOWN": Outcome.CONGESTION,
    "ORIGINATOR_CANCEL": Outcome.CANCELLED,
    "LOSE_RACE": Outcome.CANCELLED,
    "PICKED_OFF": Outcome.CANCELLED,
    "MANAGER_REQUEST": Outcome.CANCELLED,
    "UNALLOCATED_NUMBER": Outcome.FAILED,
    "NO_ROUTE_DESTINATION": Outcome.FAILED,
    "NO_ROUTE_TRANSIT_NET": Outcome.FAILED,
    "CHAN_NOT_IMPLEMENTED": Outcome.FAILED,
    "INVALID_NUMBER_FORMAT": Outcome.FAILED,
    "SUBSCRIBER_ABSENT": Outcome.FAILED,
    "USER_NOT_REGISTERED": Outcome.FAILED,
    "DESTINATION_OUT_OF_ORDER": Outcome.FAILED,
    "INCOMPATIBLE_DESTINATION": Outcome.FAILED,
    "FACILITY_NOT_IMPLEMENTED": Outcome.FAILED,
    "INVALID_GATEWAY": Outcome.FAILED,
    "BEARERCAPABILITY_NOTAVAIL": Outcome.FAILED,
    "INTERWORKING": Outcome.FAILED,
}

_CODE_NAMES = {code: name for name, code in CAUSE_CODES.items()}
# Q.850 26 "non-selected user clearing" has no FreeSWITCH name; LOSE_RACE is
# what FreeSWITCH itself uses for the losers of a ring-all.
_CODE_NAMES[26] = "LOSE_RACE"


def cause_name(cause: int) -> str:
    """The FreeSWITCH cause name for a Q.850 code (for ``uuid_kill``)."""
    return _CODE_NAMES.get(int(cause), "NORMAL_CLEARING")


def outcome_of(cause: str, q850: int | None, answered: bool) -> Outcome:
    """Normalise a FreeSWITCH hangup the way the Asterisk driver does."""
    if answered:
        return Outcome.ANSWERED
    outcome = _NAME_OUTCOME.get(cause)
    if outcome is not None:
        return outcome
    code = q850 if q850 is not None else CAUSE_CODES.get(cause)
    if code is None:
        return Outcome.FAILED  # a cause we cannot read is not a cancel
    return outcome_from_q850(code, False)


def parse_job_result(body: str) -> tuple[bool, str]:
    """``+OK <uuid>\\n`` -> (True, uuid); ``-ERR USER_BUSY\\n`` -> (False, cause).

    mod_commands originate writes ``-ERR <CAUSE>`` (switch_ivr_originate's
    cause name); anything else unexpected is reported as a failure with the
    first word, so garbage never passes for an answer.
    """
    text = body.strip()
    if text.startswith("+OK"):
        return True, text[3:].strip()
    if text.startswith("-ERR"):
        words = text[4:].split()
        return False, words[0] if words else ""
    return False, ""


class EslEventLike(Protocol):
    name: str
    uuid: str
    subclass: str

    def get(self, name: str, default: str | None = None) -> str | None: ...


@dataclass(slots=True)
class _Leg:
    originated: bool = False
    answered: bool = False
    created: bool = False  # a CHANNEL_CREATE was seen (a channel exists)
    we_hung_up: bool = False
    ended: bool = False  # LegHungUp reported; a late duplicate is swallowed
    other: str = ""  # bridged to
    amd_done: bool = False  # an AmdResult was reported (one per leg)
    beeped: bool = False  # mod_avmd heard a beep on it


@dataclass(slots=True)
class FsTranslator:
    """Turns ESL events into port events for the legs it tracks."""

    legs: dict[str, _Leg] = field(default_factory=dict)

    # ------------------------------------------------------------ tracking
    def track(self, leg_id: str, answered: bool = True) -> None:
        """Start reporting a leg that exists already (a caller)."""
        leg = self.legs.setdefault(leg_id, _Leg(created=True))
        leg.answered = leg.answered or answered

    def originating(self, leg_id: str) -> None:
        """A ``bgapi originate`` with ``origination_uuid=leg_id`` is about to go out."""
        self.legs[leg_id] = _Leg(originated=True)

    def originate_refused(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)

    def hanging_up(self, leg_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None:
            leg.we_hung_up = True

    def answered(self, leg_id: str) -> bool:
        """The leg answered and has not ended."""
        leg = self.legs.get(leg_id)
        return leg is not None and leg.answered and not leg.ended

    def tracked(self, leg_id: str) -> bool:
        leg = self.legs.get(leg_id)
        return leg is not None and not leg.ended

    def forget(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)

    # ------------------------------------------------------------ bgapi jobs
    def job_result(self, leg_id: str, body: str) -> list[PbxEvent]:
        """The BACKGROUND_JOB of the leg's originate."""
        leg = self.legs.get(leg_id)
        if leg is None:
            return []
        ok, detail = parse_job_result(body)
        if leg.ended:  # its HANGUP_COMPLETE told us already
            self.forget(leg_id)
            return []
        if ok:
            # switch_ivr_originate returns once the leg answered
            return self._answered(leg_id, leg)
        if leg.answered:
            # -ERR ORIGINATOR_CANCEL after CHANNEL_ANSWER: the bridge won the
            # race against the job (esl-bridge-before-originate-job.txt).  The
            # leg lives on; its CHANNEL_HANGUP_COMPLETE will end it.
            return []
        if leg.we_hung_up:
            outcome = Outcome.CANCELLED
        else:
            outcome = outcome_of(detail, None, False)
        # a channel that exists will still send its HANGUP_COMPLETE: keep the
        # leg to swallow it; none was created -> nothing more will come
        return self._end(leg_id, leg, outcome, CAUSE_CODES.get(detail, 0), detail, keep=leg.created)

    # --------------------------------------------------------------- events
    def feed(self, ev: EslEventLike) -> list[PbxEvent]:
        name = ev.name
        if name == "CUSTOM":
            return self._custom(ev)
        handler = self._handlers.get(name)
        if handler is None:
            return []
        return handler(self, ev)

    def _create(self, ev: EslEventLike) -> list[PbxEvent]:
        leg = self.legs.get(ev.uuid)
        if leg is not None:
            leg.created = True
        return []

    def _progress(self, ev: EslEventLike) -> list[PbxEvent]:
        leg = self.legs.get(ev.uuid)
        if leg is None or not leg.originated or leg.answered or leg.ended:
            return []
        leg.created = True
        return [LegRinging(ev.uuid)]

    def _answer(self, ev: EslEventLike) -> list[PbxEvent]:
        leg = self.legs.get(ev.uuid)
        if leg is None or leg.ended:
            return []
        leg.created = True
        return self._answered(ev.uuid, leg)

    def _answered(self, leg_id: str, leg: _Leg) -> list[PbxEvent]:
        if leg.answered:
            return []
        leg.answered = True
        return [LegAnswered(leg_id)] if leg.originated else []

    def _hangup_complete(self, ev: EslEventLike) -> list[PbxEvent]:
        uid = ev.uuid
        leg = self.legs.get(uid)
        if leg is None:
            return []
        if leg.ended:
            self.forget(uid)
            return []
        cause = ev.get("Hangup-Cause") or ""
        q850 = _int(ev.get("variable_hangup_cause_q850"))
        # Answer-State is "hangup" by now; an answered channel carries
        # variable_answer_epoch != 0 (switch_channel.c), the safer witness
        answered = leg.answered or (_int(ev.get("variable_answer_epoch")) or 0) > 0
        if leg.originated and leg.we_hung_up and not answered:
            outcome = Outcome.CANCELLED
        else:
            outcome = outcome_of(cause, q850, answered)
        code = q850 if q850 is not None else CAUSE_CODES.get(cause, 0)
        # the job result of an unanswered originate may still come: keep it
        keep = leg.originated and not answered
        return self._end(uid, leg, outcome, code, cause, keep=keep)

    def _end(self, leg_id: str, leg: _Leg, outcome: Outcome, cause: int, text: str,
             keep: bool = False) -> list[PbxEvent]:
        leg.ended = True
        events: list[PbxEvent] = []
        if leg.other:
            events.extend(self._unbridge(leg_id, leg))
        events.append(LegHungUp(leg_id, outcome, cause, text))
        if not keep:
            self.forget(leg_id)
        return events

    def _bridge(self, ev: EslEventLike) -> list[PbxEvent]:
        a = ev.get("Bridge-A-Unique-ID") or ev.uuid
        b = ev.get("Bridge-B-Unique-ID") or ev.get("Other-Leg-Unique-ID") or ""
        la, lb = self.legs.get(a), self.legs.get(b)
        if not b or (la is None and lb is None):
            return []
        if la is not None:
            la.other = b
        if lb is not None:
            lb.other = a
        return [Bridged(a, b)]

    def _unbridge_event(self, ev: EslEventLike) -> list[PbxEvent]:
        a = ev.get("Bridge-A-Unique-ID") or ev.uuid
        leg = self.legs.get(a)
        if leg is not None and leg.other:
            return self._unbridge(a, leg)
        b = ev.get("Bridge-B-Unique-ID") or ev.get("Other-Leg-Unique-ID") or ""
        leg = self.legs.get(b)
        if leg is not None and leg.other:
            return self._unbridge(b, leg)
        return []

    def _unbridge(self, leg_id: str, leg: _Leg) -> list[PbxEvent]:
        other = leg.other
        leg.other = ""
        peer = self.legs.get(other)
        if peer is not None and peer.other == leg_id:
            peer.other = ""
        return [Unbridged(other, leg_id)]

    def _dtmf(self, ev: EslEventLike) -> list[PbxEvent]:
        if ev.uuid not in self.legs:
            return []
        digit = ev.get("DTMF-Digit") or ""
        return [Dtmf(ev.uuid, digit)] if digit else []

    def _custom(self, ev: EslEventLike) -> list[PbxEvent]:
        """mod_avmd's events (mod_avmd.c avmd_fire_event): ``avmd::beep``
        (``Beep-Status: DETECTED``) when it hears a voicemail beep -> MACHINE;
        ``avmd::stop`` / ``avmd::timeout`` without a beep -> NOTSURE.  One
        verdict per leg: a beep after the verdict (see :meth:`amd_window_over`)
        is only remembered, for :meth:`beeped`."""
        leg = self.legs.get(ev.uuid)
        if leg is None or leg.ended:
            return []
        if ev.subclass == "avmd::beep":
            leg.beeped = True
            return self._verdict(ev.uuid, leg, AmdVerdict.MACHINE, "beep")
        if ev.subclass == "avmd::timeout" or (
                ev.subclass == "avmd::stop" and (ev.get("Beep-Status") or "").upper() == "NOTDETECTED"):
            return self._verdict(ev.uuid, leg, AmdVerdict.NOTSURE, "timeout")
        return []

    def _verdict(self, leg_id: str, leg: _Leg, verdict: AmdVerdict, cause: str) -> list[PbxEvent]:
        if leg.amd_done:
            return []
        leg.amd_done = True
        return [AmdResult(leg_id, verdict, cause)]

    def amd_window_over(self, leg_id: str) -> list[PbxEvent]:
        """No beep within the AMD window of an answered leg: HUMAN (mod_avmd
        only ever hears beeps; see dialplan/freeswitch/README.md)."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.ended or not leg.answered:
            return []
        return self._verdict(leg_id, leg, AmdVerdict.HUMAN, "no-beep")

    def amd_unavailable(self, leg_id: str) -> list[PbxEvent]:
        """AMD asked for but mod_avmd is not loaded: NOTSURE at once."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.ended:
            return []
        return self._verdict(leg_id, leg, AmdVerdict.NOTSURE, "avmd-unavailable")

    def beeped(self, leg_id: str) -> bool:
        leg = self.legs.get(leg_id)
        return leg is not None and leg.beeped

    _handlers = {
        "CHANNEL_CREATE": _create,
        "CHANNEL_PROGRESS": _progress,
        "CHANNEL_PROGRESS_MEDIA": _progress,
        "CHANNEL_ANSWER": _answer,
        "CHANNEL_HANGUP_COMPLETE": _hangup_complete,
        "CHANNEL_BRIDGE": _bridge,
        "CHANNEL_UNBRIDGE": _unbridge_event,
        "DTMF": _dtmf,
    }


# ------------------------------------------------------------- device state
_LOOPBACK_DIAL = re.compile(r"loopback/([^/]+)/")  # loopback/<exten>/<context>[/<dialplan>]
_LOOPBACK_CHANNEL = re.compile(r"loopback/([^/]+?)(?:-[ab])?\Z")  # loopback/<exten>-a|-b


def device_key(endpoint: str) -> str:
    """The name device state uses for an agent's dial string or a channel name.

    * ``user/1001``, ``user/1001@example.com`` -> ``user/1001`` (a directory
      user: its channels carry ``variable_dialed_user`` or a presence id
      ``1001@domain``, see :func:`channel_devices`);
    * ``loopback/1001/agents`` and the channels it makes, ``loopback/1001-a``
      / ``loopback/1001-b`` (mod_loopback.c names them ``loopback/<exten>-a|b``)
      -> ``loopback/1001``;
    * anything else is returned unchanged.
    """
    if endpoint.startswith("user/"):
        user = endpoint[5:].split("@", 1)[0]
        return f"user/{user}" if user else endpoint
    m = _LOOPBACK_DIAL.match(endpoint) or _LOOPBACK_CHANNEL.match(endpoint)
    if m is not None:
        return f"loopback/{m.group(1)}"
    return endpoint


def channel_devices(ev: EslEventLike | Mapping[str, Any]) -> frozenset[str]:
    """The devices a channel event is about (none for most outside calls).

    ``variable_dialed_user`` is set on a leg dialled through ``user/1001``
    (mod_dptools.c user_outgoing_channel); ``Channel-Presence-ID`` /
    ``variable_presence_id`` (``1001@domain``) on a registered phone's own
    calls and on ``user/`` legs; loopback channels are known by their name.
    A sofia channel name alone (``sofia/internal/1001@10.0.0.5:5060``, the
    contact) says nothing reliable about which user it is: not used.
    """
    keys: set[str] = set()
    dialed = ev.get("variable_dialed_user") or ""
    if dialed:
        keys.add(f"user/{dialed}")
    presence = ev.get("Channel-Presence-ID") or ev.get("variable_presence_id") or ev.get("presence_id") or ""
    user = presence.split("@", 1)[0] if "@" in presence else ""
    if user:
        keys.add(f"user/{user}")
    name = ev.get("Channel-Name") or ev.get("name") or ""
    if name.startswith("loopback/"):
        keys.add(device_key(name))
    return frozenset(keys)


@dataclass(slots=True)
class FsDevices:
    """Device state from channel events: RINGING while a device only has
    unanswered channels, INUSE once one is answered, NOT_INUSE when its last
    channel's CHANNEL_HANGUP_COMPLETE arrived.  Only changes are reported."""

    channels: dict[str, tuple[frozenset[str], bool]] = field(default_factory=dict)  # uuid -> (devices, answered)
    on_device: dict[str, set[str]] = field(default_factory=dict)  # device -> uuids of its channels
    status: dict[str, DeviceStatus] = field(default_factory=dict)  # devices with a channel only

    def feed(self, ev: EslEventLike) -> list[PbxEvent]:
        name, uid = ev.name, ev.uuid
        if not uid or name not in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
            return []
        known = self.channels.get(uid)
        if name == "CHANNEL_HANGUP_COMPLETE":
            if known is None:
                return []
            self._drop(uid)
            return self._refresh(known[0])
        devices = known[0] if known is not None else channel_devices(ev)
        if not devices:
            return []
        answered = name == "CHANNEL_ANSWER" or (known is not None and known[1])
        self._add(uid, devices, answered)
        return self._refresh(devices)

    def _add(self, uid: str, devices: frozenset[str], answered: bool) -> None:
        self.channels[uid] = (devices, answered)
        for device in devices:
            self.on_device.setdefault(device, set()).add(uid)

    def _drop(self, uid: str) -> None:
        devices, _ = self.channels.pop(uid)
        for device in devices:
            uids = self.on_device.get(device)
            if uids is not None:
                uids.discard(uid)
                if not uids:
                    del self.on_device[device]

    def resync(self, rows: Iterable[Mapping[str, Any]]) -> list[PbxEvent]:
        """Start again from ``show channels as json`` rows (after a reconnect:
        hangups missed while down would leave a device busy for ever)."""
        before = set(self.status)
        self.channels.clear()
        self.on_device.clear()
        for row in rows:
            uid = str(row.get("uuid") or "")
            devices = channel_devices({k: str(v) for k, v in row.items() if v is not None})
            if uid and devices:
                self._add(uid, devices, str(row.get("callstate") or "") in ("ACTIVE", "HELD"))
        return self._refresh(before | set(self.on_device))

    def _refresh(self, devices: Iterable[str]) -> list[PbxEvent]:
        out: list[PbxEvent] = []
        for device in sorted(devices):
            states = [self.channels[uid][1] for uid in self.on_device.get(device, ())]
            if not states:
                new = DeviceStatus.NOT_INUSE
            elif any(states):
                new = DeviceStatus.INUSE
            else:
                new = DeviceStatus.RINGING
            old = self.status.get(device)
            if new is DeviceStatus.NOT_INUSE:
                self.status.pop(device, None)  # forget idle devices: no growth with traffic
                if old is None:
                    continue
            else:
                self.status[device] = new
            if new is not old:
                out.append(DeviceState(device, new))
        return out


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None
