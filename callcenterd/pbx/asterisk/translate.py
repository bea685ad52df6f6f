"""AMI events -> PBX port events.  Pure: no I/O, fed one message at a time.

Only legs the driver tracks (callers it was handed, agent legs it
originated) produce events, so the flood of ``;2`` Local halves, VarSet and
TestEvent stays out of the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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


class AmiMessage(Protocol):
    name: str

    def get(self, key: str, default: str | None = None) -> str | None: ...


# OriginateResponse Reason (include/asterisk/channel.h AST_CONTROL_*):
# 1 hangup, 3 ringing timed out (no answer), 4 answered, 5 busy, 8 congestion.
# Reason 0 covers rejected / no such extension / unknown technology /
# cancelled: the real cause is in the ;1 leg's Hangup event, when there is one.
_REASON_OUTCOME = {
    1: Outcome.CANCELLED,
    3: Outcome.NO_ANSWER,
    5: Outcome.BUSY,
    8: Outcome.CONGESTION,
}

# app_amd.c AMDSTATUS values (HANGUP is left to the leg's Hangup)
_AMD_VERDICTS = {
    "HUMAN": AmdVerdict.HUMAN,
    "MACHINE": AmdVerdict.MACHINE,
    "NOTSURE": AmdVerdict.NOTSURE,
}

# devicestate.c ast_devstate_str()
_DEVICE_STATES = {
    "NOT_INUSE": DeviceStatus.NOT_INUSE,
    "INUSE": DeviceStatus.INUSE,
    "BUSY": DeviceStatus.BUSY,
    "RINGING": DeviceStatus.RINGING,
    "RINGINUSE": DeviceStatus.RINGING,
    "ONHOLD": DeviceStatus.INUSE,
    "UNAVAILABLE": DeviceStatus.UNAVAILABLE,
    "INVALID": DeviceStatus.UNAVAILABLE,
    "UNKNOWN": DeviceStatus.UNKNOWN,
}


def device_status(state: str) -> DeviceStatus:
    """An Asterisk device state string (``INUSE``...) as a port status."""
    return _DEVICE_STATES.get(state, DeviceStatus.UNKNOWN)


def device_key(device: str) -> str:
    """The name Asterisk's device state uses for a dial string.

    ``Local/1001@agents/n`` -> ``Local/1001@agents`` (core_local.c strips the
    options); ``PJSIP/1001`` stays as it is.
    """
    if device.startswith("Local/"):
        return device.split("/", 2)[0] + "/" + device.split("/", 2)[1]
    return device


@dataclass(slots=True)
class _Leg:
    originated: bool = False
    answered: bool = False
    awaiting_response: bool = False  # an Originate is in flight for it
    cause: int | None = None  # from its Hangup event, if seen first
    we_hung_up: bool = False
    reason_zero: bool = False  # OriginateResponse said Reason 0; the Hangup will say why
    ended: bool = False
    bridge: str = ""
    amd_reported: bool = False


@dataclass(slots=True)
class AmiTranslator:
    """Turns AMI messages into port events for the legs it tracks."""

    legs: dict[str, _Leg] = field(default_factory=dict)
    originates: dict[str, str] = field(default_factory=dict)  # ActionID -> leg id
    channels: dict[str, str] = field(default_factory=dict)  # uniqueid -> channel name
    bridges: dict[str, set[str]] = field(default_factory=dict)  # bridge id -> tracked legs
    #: every live channel AMI told us about: uniqueid -> (channel name, linkedid).
    #: The cross-check for a FastAGI session's identity; dropped at Hangup.
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------ tracking
    def track(self, leg_id: str) -> None:
        """Start reporting a leg that exists already (a caller)."""
        self.legs.setdefault(leg_id, _Leg(answered=True))

    def originating(self, action_id: str, leg_id: str) -> None:
        """An Originate with ``ChannelId: leg_id`` is about to be sent."""
        self.originates[action_id] = leg_id
        self.legs[leg_id] = _Leg(originated=True, awaiting_response=True)

    def originate_refused(self, action_id: str) -> None:
        leg_id = self.originates.pop(action_id, None)
        if leg_id is not None:
            self.legs.pop(leg_id, None)

    def hanging_up(self, leg_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None:
            leg.we_hung_up = True

    def channel_name(self, leg_id: str) -> str:
        """The channel name to address a leg by, or the bare id when no name
        is known (hang-ups only: see :meth:`known_channel`)."""
        return self.channels.get(leg_id, leg_id)

    def known_channel(self, leg_id: str) -> str | None:
        """The channel name seen for a leg, or None.

        A bare id is not safe to act on: Asterisk's channel lookup
        (main/channel.c ast_channel_get_by_name_prefix) also matches a
        *prefix* of a uniqueid, so leg ``X`` can resolve to its Local ``;2``
        half ``X-2`` when the ``;1`` half's Newchannel is not in yet.
        """
        return self.channels.get(leg_id)

    def forget(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)
        self.channels.pop(leg_id, None)

    def reset(self) -> None:
        """The AMI connection dropped: in-flight Originates will never get
        their OriginateResponse on this session."""
        self.originates.clear()
        self.bridges.clear()
        self.seen.clear()

    # --------------------------------------------------------------- events
    def feed(self, msg: AmiMessage) -> list[PbxEvent]:
        handler = self._handlers.get(msg.name)
        if handler is None:
            return []
        return handler(self, msg)

    def _newchannel(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        channel = msg.get("Channel") or ""
        if uid and channel:
            self.seen[uid] = (channel, msg.get("Linkedid") or "")
            if uid in self.legs:
                self.channels[uid] = channel
        return []

    def _newstate(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        leg = self.legs.get(uid)
        if leg is None or not leg.originated or leg.answered:
            return []
        if msg.get("ChannelStateDesc") == "Ringing":
            return [LegRinging(uid)]
        return []

    def _originate_response(self, msg: AmiMessage) -> list[PbxEvent]:
        leg_id = self.originates.pop(msg.get("ActionID") or "", None)
        if leg_id is None:
            return []
        leg = self.legs.get(leg_id)
        if leg is None or leg.ended:
            return []
        leg.awaiting_response = False
        if msg.get("Response") == "Success":
            channel = msg.get("Channel") or ""
            if msg.get("Uniqueid") == leg_id and channel and leg_id not in self.channels:
                # It can come before the leg's Newchannel; it names the ;1
                # half, the one our ChannelId belongs to.  (A failure names
                # a channel that may never have existed: not learnt.)
                self.channels[leg_id] = channel
            leg.answered = True
            return [LegAnswered(leg_id)]
        try:
            reason = int(msg.get("Reason") or 0)
        except ValueError:
            reason = 0
        outcome = _REASON_OUTCOME.get(reason)
        if outcome is None and leg.cause is None and leg_id in self.channels:
            # Reason 0 says only "it failed"; the channel's own Hangup (still
            # to come: the order varies between runs) carries the cause that
            # tells rejected from cancelled from failed.  Wait for it.
            leg.reason_zero = True
            return []
        cause = leg.cause or 0
        if outcome is None:
            outcome = self._reason_zero_outcome(leg, cause)
        # a channel whose Hangup is still to come: report now, swallow it later
        return self._end(leg_id, leg, outcome, cause, keep=leg.cause is None and leg_id in self.channels)

    @staticmethod
    def _reason_zero_outcome(leg: _Leg, cause: int) -> Outcome:
        if cause not in (0, 16):
            return outcome_from_q850(cause, False)
        return Outcome.CANCELLED if leg.we_hung_up else Outcome.FAILED

    def _hangup(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        self.seen.pop(uid, None)
        leg = self.legs.get(uid)
        if leg is None:
            return []
        try:
            cause = int(msg.get("Cause") or 0)
        except ValueError:
            cause = 0
        if leg.ended:
            self.forget(uid)
            return []
        if leg.awaiting_response:
            # Before answer the ;1 half of a Local channel reports cause 0 for
            # a busy callee (core_local.c); OriginateResponse's Reason is the
            # better source.  Remember the cause and wait for it.
            if leg.cause is None or cause:
                leg.cause = cause
            return []
        if leg.reason_zero:
            cause = cause or (leg.cause or 0)
            events = self._end(uid, leg, self._reason_zero_outcome(leg, cause), cause)
            self.forget(uid)
            return events
        outcome = outcome_from_q850(cause, leg.answered)
        if leg.we_hung_up and not leg.answered:
            outcome = Outcome.CANCELLED
        events = self._end(uid, leg, outcome, cause)
        self.forget(uid)
        return events

    def _end(self, leg_id: str, leg: _Leg, outcome: Outcome, cause: int, keep: bool = False) -> list[PbxEvent]:
        leg.ended = True
        events: list[PbxEvent] = []
        if leg.bridge:
            events.extend(self._leave_bridge(leg_id, leg))
        events.append(LegHungUp(leg_id, outcome, cause))
        if not keep:
            self.forget(leg_id)
        return events

    def _hangup_request(self, msg: AmiMessage) -> list[PbxEvent]:
        """An answered leg is being hung up: report it now.

        Once two legs are bridged, their Hangup events race (the agent leg's
        dialplan hangs up as soon as the bridge dissolves), but the request
        on the leg that really hung up comes first (channel.c
        ast_softhangup publishes SoftHangupRequest; the Hangup() app and
        AMI Hangup publish HangupRequest).  Unanswered originated legs wait
        for their OriginateResponse instead.
        """
        uid = msg.get("Uniqueid") or ""
        leg = self.legs.get(uid)
        if leg is None or leg.ended:
            return []
        cause = 0
        if msg.name == "HangupRequest":  # SoftHangupRequest's Cause is a flag set, not Q.850
            try:
                cause = int(msg.get("Cause") or 0)
            except ValueError:
                pass
        if leg.awaiting_response:
            # Hangup(21) before answer: the ;1 HangupRequest carries cause 21,
            # but its Hangup may come only after the OriginateResponse
            # (Reason 0).  Keep the cause for that response.
            if cause:
                leg.cause = cause
            return []
        if not leg.answered:
            return []
        return self._end(uid, leg, Outcome.ANSWERED, cause, keep=True)

    def _bridge_enter(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        leg = self.legs.get(uid)
        if leg is None:
            return []
        bridge_id = msg.get("BridgeUniqueid") or ""
        leg.bridge = bridge_id
        members = self.bridges.setdefault(bridge_id, set())
        events: list[PbxEvent] = [Bridged(other, uid) for other in sorted(members)]
        members.add(uid)
        return events

    def _bridge_leave(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        leg = self.legs.get(uid)
        if leg is None or not leg.bridge:
            return []
        return self._leave_bridge(uid, leg)

    def _leave_bridge(self, uid: str, leg: _Leg) -> list[PbxEvent]:
        members = self.bridges.get(leg.bridge, set())
        members.discard(uid)
        events: list[PbxEvent] = [Unbridged(other, uid) for other in sorted(members)]
        if not members:
            self.bridges.pop(leg.bridge, None)
        leg.bridge = ""
        return events

    def _dtmf_end(self, msg: AmiMessage) -> list[PbxEvent]:
        uid = msg.get("Uniqueid") or ""
        if uid not in self.legs or msg.get("Direction") != "Received":
            return []
        return [Dtmf(uid, msg.get("Digit") or "")]

    def _user_event(self, msg: AmiMessage) -> list[PbxEvent]:
        """``UserEvent(CallCenterAmd,AmdStatus: ${AMDSTATUS},AmdCause: ${AMDCAUSE})``
        from [callcenterd-outbound] -> :class:`AmdResult` (once per leg)."""
        if msg.get("UserEvent") != "CallCenterAmd":
            return []
        uid = msg.get("Uniqueid") or ""
        leg = self.legs.get(uid)
        if leg is None or leg.ended or leg.amd_reported:
            return []
        status = (msg.get("AmdStatus") or "").strip().upper()
        if status == "HANGUP":  # the callee hung up during the analysis: LegHungUp says it
            return []
        leg.amd_reported = True
        verdict = _AMD_VERDICTS.get(status, AmdVerdict.NOTSURE)
        return [AmdResult(uid, verdict, (msg.get("AmdCause") or "").strip())]

    def _device_state(self, msg: AmiMessage) -> list[PbxEvent]:
        return [DeviceState(msg.get("Device") or "", device_status(msg.get("State") or ""))]

    _handlers = {
        "Newchannel": _newchannel,
        "Newstate": _newstate,
        "OriginateResponse": _originate_response,
        "Hangup": _hangup,
        "HangupRequest": _hangup_request,
        "SoftHangupRequest": _hangup_request,
        "BridgeEnter": _bridge_enter,
        "BridgeLeave": _bridge_leave,
        "DTMFEnd": _dtmf_end,
        "DeviceStateChange": _device_state,
        "UserEvent": _user_event,
    }
