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
* On answer the core asks for :meth:`bridge`; we mark both legs
  ``CC_CONNECTED=1`` and send the AMI ``Bridge`` action.
* On reconnect, :meth:`snapshot` lists held callers from ``Status`` (with
  their ``CC_*`` variables) so the core can re-adopt them in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import structlog

from callcenterd.pbx.api import (
    CallArrived,
    CallerId,
    CommandFailed,
    ConnectionLost,
    DeviceState,
    HoldSpec,
    OriginateRequest,
    PbxDown,
    PbxEvent,
    PbxSnapshot,
    PbxUp,
    WaitingCall,
    check_safe,
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


class AmiControl(Protocol):
    """What the driver needs of the AMI supervisor."""

    async def action(self, name: str, headers: Any = (), *, timeout: float | None = None,
                     action_id: str | None = None) -> Any: ...

    async def action_list(self, name: str, headers: Any = (), *, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class AsteriskContexts:
    hold: str = "callcenterd-hold"
    agent: str = "callcenterd-agent"


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



class AsteriskDriver:
    """Implements :class:`callcenterd.pbx.api.PbxPort` for one Asterisk node."""

    def __init__(
        self,
        node: str,
        emit: Callable[[PbxEvent], None],
        *,
        contexts: AsteriskContexts = AsteriskContexts(),
        agent_wait: int = 30,
    ) -> None:
        self.node = node
        self._emit = emit
        self._contexts = contexts
        self._agent_wait = agent_wait
        self._ami: AmiControl | None = None
        self._translator = AmiTranslator()
        self._agi_calls: dict[str, tuple[Any, asyncio.Future[None]]] = {}
        self._held: set[str] = set()
        self._arriving: dict[str, asyncio.Event] = {}  # handed to the dialplan, not yet in hold
        self._startup: str | None = None
        self._shutting_down = False
        self._up = False
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
        """Resync: snapshot what the PBX has, then report PbxUp."""
        self._translator.reset()
        snapshot = await self._take_snapshot(session)
        self._up = True
        self._emit(PbxUp(self.node, snapshot))
        await self._replay_device_states(session)

    async def _replay_device_states(self, ami: Any) -> None:
        """Devices busy right now (an agent still talking on a call bridged
        before our restart) must not be rung.  Local-channel states are not
        cached (core_local.c), so DeviceStateList would miss them: read
        DEVICE_STATE() (func_devstate) for every agent device instead."""
        devices = sorted(self.devices)
        if not devices:
            return
        replies = await asyncio.gather(*(
            ami.action("Getvar", [("Variable", f"DEVICE_STATE({device})")], timeout=SNAPSHOT_TIMEOUT)
            for device in devices
        ), return_exceptions=True)
        for device, reply in zip(devices, replies):
            if isinstance(reply, BaseException):
                log.warning("asterisk.device_state_unknown", node=self.node, device=device,
                            error=str(reply) or type(reply).__name__)
                continue
            self._emit(DeviceState(device, device_status(reply.get("Value") or "")))

    async def on_ami_disconnected(self, reason: object) -> None:
        if self._up:
            self._up = False
            self._emit(PbxDown(self.node, str(reason)))

    def on_ami_event(self, msg: Any) -> None:
        name = msg.name
        if self._shutdown_seen(msg):
            return
        for event in self._translator.feed(msg):
            self._emit(event)
        if name == "Hangup":
            uid = msg.get("Uniqueid") or ""
            self._held.discard(uid)
            arriving = self._arriving.pop(uid, None)
            if arriving is not None:
                arriving.set()
        elif name == "UserEvent" and msg.get("UserEvent") == "CallCenterHold":
            arriving = self._arriving.pop(msg.get("Uniqueid") or "", None)
            if arriving is not None:
                arriving.set()

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
        leg_id = env.get("agi_uniqueid", "")
        if not leg_id:
            log.warning("agi.no_uniqueid", script=env.get("agi_network_script"))
            return
        args = list(getattr(agi, "args", []))
        requested = args[0] if args else env.get("agi_extension", "")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._agi_calls[leg_id] = (agi, done)
        self._translator.track(leg_id)
        self._translator.channels[leg_id] = env.get("agi_channel", leg_id)
        try:
            cid = CallerId(_known(env.get("agi_callerid")), _known(env.get("agi_calleridname")))
            self._emit(CallArrived(
                leg_id=leg_id,
                caller_id=cid,
                dnis=_known(env.get("agi_dnid")) or _known(env.get("agi_extension")),
                variables={
                    "queue": requested,
                    "priority": args[1] if len(args) > 1 else "",
                    "script": env.get("agi_network_script", ""),
                },
                node=self.node,
            ))
            try:
                await asyncio.wait_for(asyncio.shield(done), AGI_DECISION_TIMEOUT)
            except TimeoutError:
                log.warning("agi.no_decision", leg=leg_id, timeout=AGI_DECISION_TIMEOUT)
        finally:
            self._agi_calls.pop(leg_id, None)

    # ------------------------------------------------------------ commands
    def _control(self) -> AmiControl:
        if self._ami is None or not self._up:
            raise ConnectionLost(f"Asterisk node {self.node!r} is not connected")
        return self._ami

    async def originate(self, request: OriginateRequest) -> None:
        ami = self._control()
        aid = f"cc-orig-{request.leg_id}"
        headers: list[tuple[str, str]] = [
            ("Channel", request.endpoint),
            ("Context", self._contexts.agent),
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
        variables = {"CC_CALL_ID": request.call_id, "CC_AGENT_WAIT": str(self._agent_wait)}
        variables.update(request.variables)
        for name, value in variables.items():
            headers.append(("Variable", f"{check_safe(name, 'variable name')}={check_safe(value, name)}"))
        self._translator.originating(aid, request.leg_id)
        try:
            await ami.action("Originate", headers, action_id=aid)
        except BaseException:
            self._translator.originate_refused(aid)
            raise

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        """Bridge a held caller (``leg_a``) with an answered agent leg."""
        ami = self._control()
        arriving = self._arriving.get(leg_a)
        if arriving is not None:
            # The caller may still be leaving its AGI session for
            # [callcenterd-hold]; bridging it mid-AGI would break that session.
            try:
                await asyncio.wait_for(arriving.wait(), HOLD_ARRIVAL_TIMEOUT)
            except TimeoutError:
                raise CommandFailed(f"caller {leg_a} did not reach the hold context") from None
        a, b = self._translator.channel_name(leg_a), self._translator.channel_name(leg_b)
        await ami.action("Bridge", [("Channel1", a), ("Channel2", b), ("Tone", "no")])
        self._held.discard(leg_a)
        # When the bridge ends Asterisk resumes the caller after the
        # MusicOnHold it was yanked from (main/features.c action_bridge sets an
        # after-bridge goto); this mark makes [callcenterd-hold] hang it up
        # instead of holding it again.  Set only once bridged: set earlier, a
        # caller leaving MusicOnHold at that instant would be hung up.
        await ami.action("Setvar", [("Channel", a), ("Variable", "CC_CONNECTED"), ("Value", "1")])

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
            ("Variables", "CC_CALL_ID,CC_QUEUE,CC_ENQUEUED,CC_PRIORITY,CC_SKILLS,CC_CONNECTED"),
        ], timeout=SNAPSHOT_TIMEOUT)
        legs: set[str] = set()
        waiting: list[WaitingCall] = []
        self._held.clear()
        for item in items:
            uid = item.get("Uniqueid") or ""
            if not uid:
                continue
            legs.add(uid)
            variables = dict(
                v.split("=", 1) for v in item.get_all("Variable") if "=" in v
            )
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
        waiting.sort(key=lambda w: w.enqueued_at)
        log.info("asterisk.snapshot", node=self.node, channels=len(legs), waiting=len(waiting), restarted=restarted)
        return PbxSnapshot(legs=frozenset(legs), waiting=tuple(waiting), restarted=restarted)
