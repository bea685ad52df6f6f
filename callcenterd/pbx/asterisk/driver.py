"""The Asterisk driver: the PBX port over AMI (control, events) and FastAGI
(inbound calls).

How a call moves (dialplan in ``dialplan/asterisk/extensions_callcenterd.conf``):

* ``[callcenterd-inbound]`` runs ``AGI(agi://.../inbound,<queue>)``.  The AGI
  session becomes :class:`CallArrived`; the core answers with :meth:`hold`,
  which stamps ``CC_*`` variables on the channel through the AGI session and
  ends it, so the dialplan moves the caller to ``[callcenterd-hold]``.  The
  caller waits *in Asterisk*, so it survives a restart of callcenterd.
* An agent leg is an async ``Originate`` into ``[callcenterd-agent]`` with
  ``ChannelId`` = our leg id, so every event about it carries that id.
* A campaign's customer leg (``role=CUSTOMER``) is an async ``Originate``
  into ``[callcenterd-outbound]``: ``AMD()`` when ``CC_AMD=1``, its verdict as
  UserEvent ``CallCenterAmd`` (-> :class:`AmdResult`), then a silent wait for
  :meth:`bridge` (customer leg as ``leg_a``).  :meth:`play_abandon` and
  :meth:`leave_message` stamp ``CC_PROMPT`` and Redirect it to
  ``[callcenterd-outbound-abandon]`` / ``[callcenterd-outbound-machine]``.
  Only ids, flags and the caller ID go to Asterisk, never lead data.
* On answer the core asks for :meth:`bridge`; we mark both legs
  ``CC_CONNECTED=1`` and send the AMI ``Bridge`` action.
* On reconnect, :meth:`snapshot` lists held callers from ``Status`` (with
  their ``CC_*`` variables) so the core can re-adopt them in order, the
  agent legs still up (and what they are bridged to), and every agent
  device's state.  ``PbxUp`` goes out only once all of that is read and the
  AMI session takes actions (:meth:`on_ami_ready`).
* Caller data is cleaned at the boundary (:func:`clean_caller_text`), and a
  FastAGI session's identity comes from the channel itself, never from an
  ``agi_`` environment that caller data can forge.
* A caller that reaches ``[callcenterd-hold]`` without our decision (its AGI
  failed or timed out) is adopted from its ``CallCenterHold`` UserEvent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import structlog

from callcenterd.pbx.api import (
    CallArrived,
    CallerId,
    CallHeld,
    CommandFailed,
    ConnectionLost,
    DeviceStatus,
    HoldSpec,
    LegAnswered,
    LegRole,
    LiveAgentLeg,
    OriginateRequest,
    PbxDown,
    PbxEvent,
    PbxSnapshot,
    PbxUp,
    Timeout,
    WaitingCall,
    check_prompt,
    check_safe,
    clean_caller_text,
    escape_caller_text,
    format_skills,
    parse_skills,
)
from callcenterd.pbx.asterisk.translate import AmiTranslator, device_key, device_status

log = structlog.get_logger(__name__)

#: How long an inbound AGI session waits for the core to decide what to do
#: with the call before it hands the caller back to the dialplan (which then
#: holds the caller by itself; see [callcenterd-inbound]).
AGI_DECISION_TIMEOUT = 10.0
#: How long a bridge waits for a caller that just left its AGI session to
#: reach [callcenterd-hold] (its UserEvent CallCenterHold).
HOLD_ARRIVAL_TIMEOUT = 5.0
#: Deadline for the snapshot's list actions after a (re)connect.
SNAPSHOT_TIMEOUT = 15.0
#: How long a bridge waits to learn the agent leg's channel name (from its
#: Newchannel or OriginateResponse) before giving up on that leg.
CHANNEL_NAME_TIMEOUT = 3.0
#: Deadline of the one AGI command that asks a new call who it really is.
AGI_IDENTITY_TIMEOUT = 5.0
#: What the channel itself reports (res_agi.c GET FULL VARIABLE evaluates in
#: the channel the AGI socket belongs to, whatever its environment said).
_IDENTITY_EXPR = "${UNIQUEID}|${CHANNEL}|${CHANNEL(linkedid)}"


class AmiControl(Protocol):
    """What the driver needs of the AMI supervisor."""

    async def action(self, name: str, headers: Any = (), *, timeout: float | None = None,
                     action_id: str | None = None) -> Any: ...

    async def action_list(self, name: str, headers: Any = (), *, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class AsteriskContexts:
    hold: str = "callcenterd-hold"
    agent: str = "callcenterd-agent"
    outbound: str = "callcenterd-outbound"  # a campaign's customer leg: AMD, then wait for the bridge
    abandon: str = "callcenterd-outbound-abandon"  # play ${CC_PROMPT}, hang up
    machine: str = "callcenterd-outbound-machine"  # wait for the beep/silence, play ${CC_PROMPT}, hang up


def _caller_id_header(cid: CallerId) -> str:
    """``"Name" <number>`` with the characters callerid.c would re-parse removed."""
    name = cid.name.replace('"', "").replace("<", "").replace(">", "").replace("\\", "")
    number = cid.number.replace("<", "").replace(">", "").replace('"', "")
    if name:
        return f'"{name}" <{number}>'
    return f"<{number}>" if number else ""


def _known(value: str | None) -> str:
    """res_agi.c writes ``unknown`` for an absent caller ID / DNID."""
    return "" if value in (None, "unknown") else value


def _caller(number: str, name: str) -> tuple[CallerId, str]:
    """A clean caller ID, and the escaped raw name when cleaning changed it."""
    clean = CallerId(clean_caller_text(number), clean_caller_text(name))
    return clean, (escape_caller_text(name) if clean.name != name else "")



class AsteriskDriver:
    """Implements :class:`callcenterd.pbx.api.PbxPort` for one Asterisk node."""

    def __init__(
        self,
        node: str,
        emit: Callable[[PbxEvent], None],
        *,
        contexts: AsteriskContexts = AsteriskContexts(),
        agent_wait: int = 30,
        customer_wait: int = 30,
        beep_wait: int = 20,
    ) -> None:
        self.node = node
        self._emit = emit
        self._contexts = contexts
        self._agent_wait = agent_wait
        self._customer_wait = customer_wait
        self._beep_wait = beep_wait
        self._ami: AmiControl | None = None
        self._translator = AmiTranslator()
        self._agi_calls: dict[str, tuple[Any, asyncio.Future[None]]] = {}
        self._held: set[str] = set()
        self._arriving: dict[str, asyncio.Event] = {}  # handed to the dialplan, not yet in hold
        self._startup: str | None = None
        self._shutting_down = False
        self._up = False
        self._snapshot: PbxSnapshot | None = None  # read on connect, reported when ready
        self._named: dict[str, asyncio.Event] = {}  # legs a bridge waits to learn the name of
        self._late: set[str] = set()  # originates that timed out: hang up whatever shows up
        self._tasks: set[asyncio.Task[Any]] = set()
        #: device names (as Asterisk reports them) of the agents on this node
        self.devices: set[str] = set()

    device_key = staticmethod(device_key)

    def attach(self, ami: AmiControl) -> None:
        self._ami = ami

    @property
    def up(self) -> bool:
        return self._up

    # ------------------------------------------------------- AMI callbacks
    async def on_ami_connected(self, session: Any) -> None:
        """Logged in: read the whole snapshot before anything is routed."""
        self._translator.reset()
        # a late leg still up now is in the snapshot's agent legs: the core
        # hangs it up as an orphan; one that never appeared is forgotten
        self._late.clear()
        self._snapshot = await self._take_snapshot(session)

    async def on_ami_ready(self, session: Any = None) -> None:
        """The AMI session now takes actions: report PbxUp with the snapshot.

        Reported any earlier, the core's first Originates and Setvars fail
        (the supervisor is still "logging-in") and agents still on a call
        from before our restart look free: double booking."""
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is None:
            return
        self._up = True
        self._emit(PbxUp(self.node, snapshot))

    async def _device_states(self, ami: Any) -> dict[str, DeviceStatus]:
        """Every agent device's state.  Local-channel states are not cached
        (core_local.c), so DeviceStateList would miss them: read
        DEVICE_STATE() (func_devstate) for each device instead."""
        devices = sorted(self.devices)
        replies = await asyncio.gather(*(
            ami.action("Getvar", [("Variable", f"DEVICE_STATE({device})")], timeout=SNAPSHOT_TIMEOUT)
            for device in devices
        ), return_exceptions=True)
        states: dict[str, DeviceStatus] = {}
        for device, reply in zip(devices, replies):
            if isinstance(reply, BaseException):
                log.warning("asterisk.device_state_unknown", node=self.node, device=device,
                            error=str(reply) or type(reply).__name__)
                continue
            states[device] = device_status(reply.get("Value") or "")
        return states

    async def on_ami_disconnected(self, reason: object) -> None:
        if self._up:
            self._up = False
            self._emit(PbxDown(self.node, str(reason)))

    def on_ami_event(self, msg: Any) -> None:
        name = msg.name
        if self._shutdown_seen(msg):
            return
        uid = msg.get("Uniqueid") or ""
        for event in self._translator.feed(msg):
            if self._late and isinstance(event, LegAnswered) and event.leg_id in self._late:
                continue  # the core gave up on it; it is hung up below
            self._emit(event)
        if uid in self._named and self._translator.known_channel(uid):
            self._named.pop(uid).set()
        if uid in self._late and name in ("Newchannel", "OriginateResponse"):
            self._spawn(self._hang_up_late(uid, msg.get("Channel") or ""))
        if name == "Hangup":
            self._held.discard(uid)
            self._late.discard(uid)
            arriving = self._arriving.pop(uid, None)
            if arriving is not None:
                arriving.set()
        elif name == "UserEvent" and msg.get("UserEvent") == "CallCenterHold":
            arriving = self._arriving.pop(uid, None)
            if arriving is not None:
                arriving.set()
            elif uid and uid not in self._held and uid not in self._agi_calls:
                self._adopt_held(msg)

    def _adopt_held(self, msg: Any) -> None:
        """A caller in [callcenterd-hold] we never decided on: its AGI session
        failed or timed out, and the dialplan stamped and held it itself.
        Report it so the core queues it (it ignores a leg it already has)."""
        uid = msg.get("Uniqueid") or ""
        queue = msg.get("Queue") or ""
        try:
            enqueued = float(msg.get("Enqueued") or "")
        except ValueError:
            log.warning("asterisk.hold_unstamped", node=self.node, leg=uid)
            return
        if not queue:
            log.warning("asterisk.hold_unstamped", node=self.node, leg=uid)
            return
        try:
            priority = int(msg.get("Priority") or 0)
        except ValueError:
            priority = 0
        self._translator.track(uid)
        self._translator.channels[uid] = msg.get("Channel") or uid
        self._held.add(uid)
        caller, _raw = _caller(_known(msg.get("CallerIDNum")), _known(msg.get("CallerIDName")))
        call_id = msg.get("CallId") or ""
        log.info("asterisk.hold_adopted", node=self.node, leg=uid, queue=queue)
        self._emit(CallHeld(self.node, WaitingCall(
            leg_id=uid, queue=clean_caller_text(queue), enqueued_at=enqueued, priority=priority,
            call_id=clean_caller_text(call_id) if call_id not in ("", "(null)") else uid,
            caller_id=caller, skills=parse_skills(msg.get("Skills") or ""),
        )))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hang_up_late(self, leg_id: str, channel: str) -> None:
        """A leg whose Originate timed out showed up after all: the core has
        moved on to another agent, so end it now rather than let it sit in
        Wait(CC_AGENT_WAIT) with the agent's phone off-hook."""
        self._late.discard(leg_id)
        log.info("asterisk.late_leg_hung_up", node=self.node, leg=leg_id, channel=channel)
        try:
            await self._control().action("Hangup", [("Channel", check_safe(channel or leg_id, "channel")),
                                                    ("Cause", "16")])
        except Exception as exc:  # gone already, or the link dropped: nothing to keep
            log.debug("asterisk.late_leg_hangup_failed", leg=leg_id, error=str(exc) or type(exc).__name__)

    def _shutdown_seen(self, msg: Any) -> bool:
        """The PBX is going down: its calls are lost, not abandoned.

        ``core stop/restart`` soft-hangs-up every channel with
        AST_SOFTHANGUP_SHUTDOWN (= 4, include/asterisk/channel.h) before the
        ``Shutdown`` event; the hangups that follow must not reach the core
        as callers abandoning.  We report PbxDown at the first sign, swallow
        the rest, and the snapshot after reconnect says ``restarted``.
        """
        name = msg.name
        if not self._shutting_down:
            if name == "Shutdown" or (name == "SoftHangupRequest" and msg.get("Cause") == "4"):
                self._shutting_down = True
                if self._up:
                    self._up = False
                    self._emit(PbxDown(self.node, "PBX shutting down"))
                return True
            return False
        return name in ("Hangup", "HangupRequest", "SoftHangupRequest", "OriginateResponse",
                        "BridgeLeave", "DeviceStateChange", "UserEvent")

    # ----------------------------------------------------- FastAGI inbound
    async def on_agi_session(self, agi: Any) -> None:
        """One inbound call: report it, then wait for the core's decision."""
        env = agi.env
        identity = await self._agi_identity(agi)
        if identity is None:
            return
        leg_id, channel, linked_id = identity
        args = [clean_caller_text(a) for a in getattr(agi, "args", [])]
        requested = args[0] if args else clean_caller_text(env.get("agi_extension", ""))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._agi_calls[leg_id] = (agi, done)
        self._translator.track(leg_id)
        self._translator.channels[leg_id] = channel
        try:
            cid, raw = _caller(_known(env.get("agi_callerid")), _known(env.get("agi_calleridname")))
            self._emit(CallArrived(
                leg_id=leg_id,
                caller_id=cid,
                dnis=clean_caller_text(_known(env.get("agi_dnid")) or _known(env.get("agi_extension"))),
                variables={
                    "queue": requested,
                    "priority": args[1] if len(args) > 1 else "",
                    "script": clean_caller_text(env.get("agi_network_script", "")),
                },
                node=self.node,
                linked_id=linked_id,
                caller_raw=raw,
            ))
            try:
                await asyncio.wait_for(asyncio.shield(done), AGI_DECISION_TIMEOUT)
            except TimeoutError:
                log.warning("agi.no_decision", leg=leg_id, timeout=AGI_DECISION_TIMEOUT)
        finally:
            self._agi_calls.pop(leg_id, None)

    async def _agi_identity(self, agi: Any) -> tuple[str, str, str] | None:
        """``(uniqueid, channel, linkedid)`` as the channel itself reports them.

        The environment is only a claim: res_agi.c setup_env() writes caller
        data unescaped, so a caller ID name can add ``agi_channel`` /
        ``agi_uniqueid`` lines.  The AGI socket belongs to exactly one
        channel, so we ask it, and cross-check with what AMI saw of that
        uniqueid.  None: the call is gone or its identity does not hold up.
        """
        env = agi.env
        try:
            reply = await agi.get_full_variable(_IDENTITY_EXPR, timeout=AGI_IDENTITY_TIMEOUT)
        except Exception as exc:
            log.info("agi.identity_unknown", error=str(exc) or type(exc).__name__)
            return None
        uid, _, rest = (reply or "").partition("|")
        channel, _, linked_id = rest.partition("|")
        if not uid or not channel:
            log.warning("agi.identity_unknown", reply=(reply or "")[:80])
            return None
        if getattr(agi, "tampered", False) or env.get("agi_uniqueid") != uid or env.get("agi_channel") != channel:
            # never log the forged values themselves verbatim: escape them
            log.warning("agi.forged_environment", leg=uid, channel=channel,
                        forged=list(getattr(agi, "forged", ())),
                        claimed=escape_caller_text(env.get("agi_channel", ""))[:80])
        seen = self._translator.seen.get(uid)
        if seen is not None and seen[0] != channel:
            log.error("agi.identity_mismatch", leg=uid, agi_channel=channel, ami_channel=seen[0])
            return None
        return uid, channel, linked_id or (seen[1] if seen else "")

    # ------------------------------------------------------------ commands
    def _control(self) -> AmiControl:
        if self._ami is None or not self._up:
            raise ConnectionLost(f"Asterisk node {self.node!r} is not connected")
        return self._ami

    async def originate(self, request: OriginateRequest) -> None:
        """An async ``Originate`` with ``ChannelId`` = our leg id.

        An agent leg goes to ``[callcenterd-agent]``; a campaign's customer
        leg (``role=CUSTOMER``) to ``[callcenterd-outbound]``, which runs
        ``AMD()`` when ``CC_AMD=1`` (reported by its ``CallCenterAmd``
        UserEvent) and then waits ``CC_CUSTOMER_WAIT`` s, answered and
        silent, for :meth:`bridge`.  A customer leg carries only ids and
        flags (plain tokens, see OriginateRequest) and the caller ID."""
        ami = self._control()
        aid = f"cc-orig-{request.leg_id}"
        customer = request.role is LegRole.CUSTOMER
        headers: list[tuple[str, str]] = [
            ("Channel", request.endpoint),
            ("Context", self._contexts.outbound if customer else self._contexts.agent),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Timeout", str(int(request.ring_timeout * 1000))),
            ("Async", "true"),
            ("ChannelId", request.leg_id),
            ("OtherChannelId", request.leg_id + "-2"),
        ]
        cid = _caller_id_header(request.caller_id)
        if cid:
            headers.append(("CallerID", cid))
        if customer:
            variables = {"CC_CALL_ID": request.call_id, "CC_ROLE": "customer", "CC_AMD": "1" if request.amd else "0",
                         "CC_CUSTOMER_WAIT": str(self._customer_wait)}
        else:
            variables = {"CC_CALL_ID": request.call_id, "CC_AGENT_WAIT": str(self._agent_wait)}
        variables.update(request.variables)
        for name, value in variables.items():
            headers.append(("Variable", f"{check_safe(name, 'variable name')}={check_safe(value, name)}"))
        self._translator.originating(aid, request.leg_id)
        try:
            await ami.action("Originate", headers, action_id=aid)
        except Timeout:
            # No answer to the action, yet Asterisk may still place the call:
            # whatever shows up for this leg is hung up at once.
            self._translator.originate_refused(aid)
            self._late.add(request.leg_id)
            raise
        except BaseException:
            self._translator.originate_refused(aid)
            raise

    async def play_abandon(self, leg_id: str, prompt: str) -> None:
        """``CC_PROMPT`` on the customer leg, then a Redirect to
        ``[callcenterd-outbound-abandon]``: Playback, Hangup."""
        await self._outbound_to(leg_id, prompt, self._contexts.abandon)

    async def leave_message(self, leg_id: str, prompt: str) -> None:
        """``CC_PROMPT`` on the customer leg, then a Redirect to
        ``[callcenterd-outbound-machine]``: WaitForSilence (the rest of the
        greeting and the beep), Playback, Hangup."""
        await self._outbound_to(leg_id, prompt, self._contexts.machine)

    async def _outbound_to(self, leg_id: str, prompt: str, context: str) -> None:
        ami = self._control()
        channel = self._translator.known_channel(leg_id)
        if channel is None:
            raise CommandFailed(f"no channel name known for leg {leg_id}")
        check_prompt(prompt)
        # one Setvar per variable, pipelined before the Redirect (in order on one session)
        await self._setvars(ami, leg_id, {"CC_PROMPT": prompt, "CC_BEEP_WAIT": str(self._beep_wait)})
        await ami.action("Redirect", [("Channel", channel), ("Context", context), ("Exten", "s"), ("Priority", "1")])

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        """Bridge a held caller, or a campaign's answered customer leg
        (``leg_a``) with an answered agent leg."""
        ami = self._control()
        arriving = self._arriving.get(leg_a)
        if arriving is not None:
            # The caller may still be leaving its AGI session for
            # [callcenterd-hold]; bridging it mid-AGI would break that session.
            try:
                await asyncio.wait_for(arriving.wait(), HOLD_ARRIVAL_TIMEOUT)
            except TimeoutError:
                raise CommandFailed(f"caller {leg_a} did not reach the hold context") from None
        a, b = await self._channel_for_bridge(leg_a), await self._channel_for_bridge(leg_b)
        await ami.action("Bridge", [("Channel1", a), ("Channel2", b), ("Tone", "no")])
        self._held.discard(leg_a)
        # When the bridge ends Asterisk resumes the caller after the
        # MusicOnHold it was yanked from (main/features.c action_bridge sets an
        # after-bridge goto); this mark makes [callcenterd-hold] hang it up
        # instead of holding it again.  Set only once bridged: set earlier, a
        # caller leaving MusicOnHold at that instant would be hung up.
        await ami.action("Setvar", [("Channel", a), ("Variable", "CC_CONNECTED"), ("Value", "1")])

    async def _channel_for_bridge(self, leg_id: str) -> str:
        """The leg's channel name, waiting briefly when its Newchannel has
        not arrived yet (OriginateResponse can come first).  Never a bare
        id: see AmiTranslator.known_channel."""
        name = self._translator.known_channel(leg_id)
        if name is not None:
            return name
        event = self._named.setdefault(leg_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), CHANNEL_NAME_TIMEOUT)
        except TimeoutError:
            raise CommandFailed(f"no channel name known for leg {leg_id}: not bridging by bare id") from None
        finally:
            self._named.pop(leg_id, None)
        name = self._translator.known_channel(leg_id)
        if name is None:
            raise CommandFailed(f"no channel name known for leg {leg_id}")
        return name

    async def hangup(self, leg_id: str, cause: int = 16) -> None:
        pending = self._agi_calls.get(leg_id)
        if pending is not None:
            agi, done = pending
            try:
                await agi.hangup()
            finally:
                if not done.done():
                    done.set_result(None)
            return
        ami = self._control()
        self._translator.hanging_up(leg_id)
        try:
            await ami.action("Hangup", [("Channel", self._translator.channel_name(leg_id)), ("Cause", str(int(cause)))])
        except CommandFailed as exc:
            # "No such channel": it is gone already, which is what we wanted.
            log.debug("hangup.gone", leg=leg_id, error=str(exc))

    async def hold(self, call: WaitingCall, spec: HoldSpec) -> None:
        stamps = {
            "CC_CALL_ID": call.call_id,
            "CC_QUEUE": call.queue,
            "CC_ENQUEUED": f"{call.enqueued_at:.3f}",
            "CC_PRIORITY": str(call.priority),
            "CC_SKILLS": format_skills(call.skills),
            **self._hold_vars(spec),
        }
        for name, value in stamps.items():
            check_safe(value, name)
        pending = self._agi_calls.get(call.leg_id)
        if pending is not None:
            agi, done = pending
            try:
                for name, value in stamps.items():
                    await agi.set_variable(name, value)
            finally:
                if not done.done():
                    done.set_result(None)  # AGI ends; dialplan goes to hold
            self._held.add(call.leg_id)
            self._arriving.setdefault(call.leg_id, asyncio.Event())
            return
        ami = self._control()
        self._translator.track(call.leg_id)
        await self._setvars(ami, call.leg_id, stamps)
        if call.leg_id not in self._held:
            await ami.action("Redirect", [
                ("Channel", self._translator.channel_name(call.leg_id)),
                ("Context", self._contexts.hold), ("Exten", "s"), ("Priority", "1"),
            ])
            self._held.add(call.leg_id)

    async def update_hold(self, leg_id: str, spec: HoldSpec) -> None:
        await self._setvars(self._control(), leg_id, self._hold_vars(spec))

    @staticmethod
    def _hold_vars(spec: HoldSpec) -> dict[str, str]:
        return {
            "CC_POSITION": str(spec.position),
            "CC_EWT": "" if spec.wait_estimate is None else str(int(spec.wait_estimate)),
            "CC_ANNOUNCE_EVERY": str(int(spec.announce_every)),
            "CC_MOH": check_safe(spec.moh_class, "music-on-hold class"),
        }

    async def _setvars(self, ami: AmiControl, leg_id: str, values: Mapping[str, str]) -> None:
        channel = self._translator.channel_name(leg_id)
        # AMI Setvar takes one variable per action; the session pipelines them.
        await asyncio.gather(*(
            ami.action("Setvar", [("Channel", channel), ("Variable", k), ("Value", v)])
            for k, v in values.items()
        ))

    async def moh(self, leg_id: str, on: bool, moh_class: str = "default") -> None:
        pending = self._agi_calls.get(leg_id)
        if pending is None:
            raise CommandFailed("music on hold outside an AGI session: use hold()")
        await pending[0].set_music(on, moh_class)

    async def redirect(self, leg_id: str, destination: str) -> None:
        """``destination`` is ``context,exten[,priority]``."""
        parts = [p.strip() for p in check_safe(destination, "destination").split(",")]
        if len(parts) not in (2, 3) or not all(parts):
            raise CommandFailed(f"destination must be 'context,exten[,priority]', got {destination!r}")
        context, exten = parts[0], parts[1]
        priority = parts[2] if len(parts) == 3 else "1"
        pending = self._agi_calls.get(leg_id)
        if pending is not None:
            agi, done = pending
            try:
                await agi.set_context(context)
                await agi.set_extension(exten)
                await agi.set_priority(priority)
            finally:
                if not done.done():
                    done.set_result(None)
            return
        ami = self._control()
        await ami.action("Redirect", [
            ("Channel", self._translator.channel_name(leg_id)),
            ("Context", context), ("Exten", exten), ("Priority", priority),
        ])
        self._held.discard(leg_id)

    async def play(self, leg_id: str, prompts: Sequence[str]) -> None:
        agi = self._agi(leg_id)
        for prompt in prompts:
            await agi.stream_file(check_safe(prompt, "prompt"))

    async def play_and_collect(self, leg_id: str, prompts: Sequence[str], max_digits: int,
                               timeout: float, terminators: str = "#") -> str:
        agi = self._agi(leg_id)
        prompt = "&".join(check_safe(p, "prompt") for p in prompts) or "silence/1"
        digits, _timed_out = await agi.get_data(prompt, int(timeout * 1000), max_digits)
        return digits

    def _agi(self, leg_id: str) -> Any:
        pending = self._agi_calls.get(leg_id)
        if pending is None:
            raise CommandFailed(f"leg {leg_id!r} has no FastAGI session")
        return pending[0]

    async def record(self, leg_id: str, on: bool, path: str = "") -> None:
        ami = self._control()
        channel = self._translator.channel_name(leg_id)
        if on:
            await ami.action("MixMonitor", [("Channel", channel), ("File", check_safe(path, "recording path"))])
        else:
            await ami.action("StopMixMonitor", [("Channel", channel)])

    async def set_var(self, leg_id: str, name: str, value: str) -> None:
        pending = self._agi_calls.get(leg_id)
        if pending is not None:
            await pending[0].set_variable(name, value)
            return
        await self._setvars(self._control(), leg_id, {check_safe(name, "variable name"): check_safe(value, name)})

    async def get_var(self, leg_id: str, name: str) -> str | None:
        pending = self._agi_calls.get(leg_id)
        if pending is not None:
            return await pending[0].get_variable(name)
        resp = await self._control().action("Getvar", [
            ("Channel", self._translator.channel_name(leg_id)), ("Variable", check_safe(name, "variable name")),
        ])
        value = resp.get("Value")
        return value if value else None

    async def snapshot(self) -> PbxSnapshot:
        return await self._take_snapshot(self._control())

    # ------------------------------------------------------------ snapshot
    async def _take_snapshot(self, ami: Any) -> PbxSnapshot:
        status = await ami.action("CoreStatus", timeout=SNAPSHOT_TIMEOUT)
        startup = f"{status.get('CoreStartupDate')} {status.get('CoreStartupTime')}"
        restarted = self._shutting_down or (self._startup is not None and startup != self._startup)
        self._startup = startup
        self._shutting_down = False
        _resp, items = await ami.action_list("Status", [
            ("Variables", "CC_CALL_ID,CC_QUEUE,CC_ENQUEUED,CC_PRIORITY,CC_SKILLS,CC_CONNECTED,CC_AGENT"),
        ], timeout=SNAPSHOT_TIMEOUT)
        devices = await self._device_states(ami)
        legs: set[str] = set()
        waiting: list[WaitingCall] = []
        agent_items: list[tuple[str, str, dict[str, str]]] = []
        bridges: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        self._held.clear()
        for item in items:
            uid = item.get("Uniqueid") or ""
            if not uid:
                continue
            legs.add(uid)
            channel = names[uid] = item.get("Channel") or uid
            variables = dict(
                v.split("=", 1) for v in item.get_all("Variable") if "=" in v
            )
            bridge_id = item.get("BridgeID") or ""
            if bridge_id:
                bridges.setdefault(bridge_id, []).append(uid)
            if _unset(variables.get("CC_AGENT")) and not (channel.startswith("Local/") and channel.endswith(";2")):
                agent_items.append((uid, bridge_id, variables))
                continue
            if item.get("Context") != self._contexts.hold or variables.get("CC_CONNECTED") == "1":
                continue
            queue = variables.get("CC_QUEUE", "")
            if not queue or queue == "(null)":
                continue
            try:
                enqueued = float(variables.get("CC_ENQUEUED", ""))
            except ValueError:
                log.warning("snapshot.bad_enqueue_time", leg=uid)
                continue
            try:
                priority = int(variables.get("CC_PRIORITY", "0"))
            except ValueError:
                priority = 0
            call_id = variables.get("CC_CALL_ID", "")
            self._translator.track(uid)
            self._translator.channels[uid] = item.get("Channel") or uid
            self._held.add(uid)
            waiting.append(WaitingCall(
                leg_id=uid,
                queue=queue,
                enqueued_at=enqueued,
                priority=priority,
                call_id=call_id if call_id and call_id != "(null)" else uid,
                caller_id=CallerId(item.get("CallerIDNum") or "", item.get("CallerIDName") or ""),
                skills=parse_skills(variables.get("CC_SKILLS", "")),
            ))
        waiting.sort(key=lambda w: (w.enqueued_at, _uniqueid_order(w.leg_id)))
        agents = []
        agent_uids = {uid for uid, _, _ in agent_items}
        for uid, bridge_id, variables in agent_items:
            peers = [p for p in bridges.get(bridge_id, ()) if p != uid and p not in agent_uids] if bridge_id else []
            agents.append(LiveAgentLeg(
                leg_id=uid, agent=variables.get("CC_AGENT", ""), call_id=_unset(variables.get("CC_CALL_ID")),
                bridged_to=peers[0] if peers else "", queue=_unset(variables.get("CC_QUEUE")),
            ))
            for leg in (uid, *peers[:1]):
                self._translator.track(leg)
                self._translator.channels[leg] = names[leg]
        log.info("asterisk.snapshot", node=self.node, channels=len(legs), waiting=len(waiting),
                 agent_legs=len(agents), restarted=restarted)
        return PbxSnapshot(legs=frozenset(legs), waiting=tuple(waiting), restarted=restarted,
                           devices=devices, agent_legs=tuple(agents))


def _unset(value: str | None) -> str:
    """A channel variable from Status: ``(null)`` and absent are both unset."""
    return "" if value in (None, "(null)") else value


def _uniqueid_order(uid: str) -> tuple[float, int, str]:
    """Asterisk uniqueids (``1795396180.71``) in creation order: epoch, then
    the sequence number as a number (``.100`` after ``.71``)."""
    head, _, seq = uid.partition(".")
    try:
        return float(head), int(seq), uid
    except ValueError:
        return float("inf"), 0, uid
