"""The FreeSWITCH driver: the PBX port over ESL (inbound socket for control
and events, the dialplan's ``socket`` app for inbound calls).

How a call moves (dialplan in ``dialplan/freeswitch/callcenterd.xml``):

* the dialplan runs ``socket 127.0.0.1:8084 async full``; each connection
  becomes :class:`CallArrived` (leg id = the channel's Unique-ID).  The core
  answers with :meth:`hold`: we answer (unless the dialplan did), stamp the
  ``cc_*`` variables in one ``multiset`` (each app costs a ~20 ms round trip
  on the channel), start ``endless_playback`` of the music and close the
  socket.  In async mode the
  ``socket`` app parks the channel (mod_event_socket.c socket_function ->
  switch_ivr_park) and runs our queued apps inside that park; we never send
  ``resume``, so when the socket closes the caller stays in FreeSWITCH,
  parked, still hearing the music, whether callcenterd runs or not;
* an agent leg is ``bgapi originate {origination_uuid=<leg id>,...}<endpoint>
  &park()``: every event about it carries our leg id;
* a campaign's customer leg is the same originate with ``cc_role=customer``
  and ``hangup_after_bridge=true``; with AMD on, ``avmd <uuid> start`` once
  it answers: a beep is MACHINE, no beep within ``amd_window`` s HUMAN.
  :meth:`play_abandon` / :meth:`leave_message` run ``uuid_transfer <uuid>
  playback:<prompt>,hangup:NORMAL_CLEARING inline`` (the latter after the beep);
* on answer the core asks for :meth:`bridge`: ``cc_connected=1`` on the
  caller, then ``uuid_bridge caller agent``.  An agent leg lives as long as
  its channel events say, whatever its originate job reports: a bridge that
  wins the race against the job makes it end ``-ERR ORIGINATOR_CANCEL``
  while the leg stays up (see translate.py);
* when the bridge starts, the ``socket`` app returns; when it ends, the
  caller runs the dialplan lines after ``socket``
  (esl-outbound-after-bridge-ends-*, no disconnect notice on the socket).
  The shipped dialplan sets ``cc_after_socket=1`` there and, seeing
  ``cc_connected=1``, hangs the caller up: a caller is never put back on
  hold after its agent call, whether callcenterd runs or not;
* a waiting caller hears its position every ``announce_every`` seconds:
  :meth:`update_hold` (sent by the core at that frequency) broadcasts the
  prompts over the music with ``uuid_broadcast`` (see :data:`ANNOUNCE`);
* device state comes from channel events (:class:`FsDevices`): a device with
  a call callcenterd did not make is not rung (``device_key`` maps an agent's
  dial string to the name the events use);
* on (re)connect, :meth:`snapshot` lists channels (``show channels as
  json``) and reads the stamps with ``uuid_getvar``.  ``PbxUp`` is reported
  only once the snapshot is complete: device states (``devices``), live agent
  legs (``agent_legs``, with the caller each is bridged to, from
  ``bridge_to``, which FreeSWITCH clears when a bridge ends) and waiting
  callers.  Every channel that entered our dialplan is dealt with, whatever
  its variables say:

  - bridged (``bridge_to`` set): talking, reported in ``legs`` only;
  - ``cc_connected=1`` and ``cc_after_socket=1``, not bridged: its agent call
    is over and it runs the dialplan after ``socket`` (an older dialplan put
    it back on music).  The driver hangs it up itself, at once: nobody else
    would, and it must not wait for an agent again.  It stays in ``legs`` so
    that a core that knew the call completes it as ended by the agent;
  - anything else with ``cc_queue`` or ``cc_requested_queue`` (also a
    ``cc_connected=1`` caller whose bridge never happened: it is still in the
    ``socket`` app's park): waiting, re-adopted in ``cc_enqueued`` order.  A
    caller that was never stamped (callcenterd died before deciding) is
    stamped and given music now.

  A FreeSWITCH restart is seen by its ``core_uuid`` (or, failing that, its
  boot time from ``status``) changing.

Nothing FreeSWITCH-specific leaks into the core: events and outcomes are the
same as the Asterisk driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from typing import Any, Callable, Mapping, Protocol, Sequence

import structlog

from callcenterd.pbx.api import (
    CallArrived,
    CallerId,
    CommandFailed,
    ConnectionLost,
    DeviceStatus,
    HoldSpec,
    LegRole,
    LiveAgentLeg,
    OriginateRequest,
    PbxDown,
    PbxEvent,
    PbxSnapshot,
    PbxUp,
    UnsafeValue,
    WaitingCall,
    check_prompt,
    check_safe,
    format_skills,
    parse_skills,
)
from callcenterd.pbx.freeswitch.translate import FsDevices, FsTranslator, cause_name, device_key
from callcenterd.protocols.errors import Timeout
from callcenterd.protocols.esl.codec import esl_originate_vars, esl_quote_arg, esl_quote_var

log = structlog.get_logger(__name__)

#: How long an inbound socket waits for the core to decide what to do with
#: the call before the driver holds the caller by itself (stamped with the
#: requested queue, so a later snapshot re-adopts it).
DECISION_TIMEOUT = 10.0
#: Deadline for the snapshot's api commands after a (re)connect.
SNAPSHOT_TIMEOUT = 15.0
#: A bgapi originate job is given the ring timeout plus this margin.
JOB_MARGIN = 15.0
#: A FreeSWITCH whose boot time (from ``status`` uptime) moved by more than
#: this restarted (used only when ``core_uuid`` cannot be read).
BOOT_JITTER = 5.0

#: An UpdateHold announces the position only when at least this fraction of
#: ``announce_every`` went by since the caller was held or last told: the core
#: sends one per announce period, but also one when it re-adopts a caller
#: after a reconnect, which must not talk over the previous announcement.
ANNOUNCE_DUE = 0.8
#: The position prompt, one ``uuid_broadcast`` per app ("You are number <N>
#: in line"): stock sounds of freeswitch-sounds-en-us-callie and mod_say_en.
#: ``{n}`` is the position.
ANNOUNCE = (
    "playback::ivr/ivr-you_are_number.wav",
    "say::en number pronounced {n}",
    "playback::ivr/ivr-in_line.wav",
)

#: Events the driver needs.  mod_event_socket only sends what was asked for
#: and nothing is re-sent after a reconnect, so on_esl_connected asks again.
EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "DTMF",
    "BACKGROUND_JOB",
)
AVMD_EVENTS = ("CUSTOM", "avmd::beep", "avmd::stop", "avmd::timeout")
#: mod_avmd hears beeps, not people: an answered customer leg with AMD on
#: and no beep within this many seconds is reported HUMAN (see README).
AMD_WINDOW = 5.0
#: How long :meth:`FreeswitchDriver.leave_message` waits for the beep
#: before it plays the message anyway.
BEEP_WAIT = 20.0

#: Variables stamped on a held caller (FreeSWITCH variable names are
#: case-insensitive: switch_event_get_header uses strcasecmp).
STAMPS = ("cc_call_id", "cc_queue", "cc_enqueued", "cc_priority", "cc_skills", "cc_connected")
#: What the snapshot reads of every channel: the stamps, what the dialplan
#: sets (``cc_requested_queue``, ``cc_after_socket``), the agent stamp and
#: ``origination_uuid`` set at originate (mod_loopback copies both to the
#: ``-b`` half, whose origination_uuid is then not its own uuid), and
#: ``bridge_to`` (set while bridged, cleared when the bridge ends, see
#: esl-bridge-before-originate-job.txt: CHANNEL_UNBRIDGE keeps only
#: ``last_bridge_to``).
SNAPSHOT_VARS = STAMPS + ("cc_requested_queue", "cc_after_socket", "cc_agent", "origination_uuid", "bridge_to")

_UPTIME = re.compile(
    r"UP (\d+) years?, (\d+) days?, (\d+) hours?, (\d+) minutes?, (\d+) seconds?, (\d+) milliseconds?"
)
_UUIDISH = re.compile(r"[0-9A-Za-z][0-9A-Za-z\-]{7,63}\Z")
_DISPLAY_UNSAFE = re.compile(r"[${}\[\]<>]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class EslControl(Protocol):
    """What the driver needs of an inbound ESL session."""

    closed: bool

    async def api(self, cmd: str, *, timeout: float | None = None) -> str: ...

    async def bgapi_start(self, cmd: str, *, timeout: float | None = None) -> "asyncio.Future[Any]": ...

    async def subscribe(self, names: Any = "ALL") -> str: ...

    def events(self) -> Any: ...


def uptime_seconds(status: str) -> float | None:
    """Seconds since start from ``api status`` (``UP 0 years, 0 days, ...``)."""
    m = _UPTIME.search(status)
    if m is None:
        return None
    y, d, h, mi, s, ms = (int(g) for g in m.groups())
    return (((y * 365 + d) * 24 + h) * 60 + mi) * 60 + s + ms / 1000.0



def _clean_inbound(text: str | None) -> str:
    """Caller ID as FreeSWITCH hands it over: URL-decoding can yield control
    characters (``%0A``); the port refuses those, so they become blanks."""
    return _CONTROL.sub(" ", text or "")


def _display_value(text: str) -> str:
    """A caller-supplied display value (caller ID) made safe to dial with.

    Quoting carries anything but ``${`` and unbalanced brackets; rather than
    refuse an agent leg because of a caller's name, those are dropped.
    """
    try:
        esl_quote_var(text)
        return text
    except UnsafeValue:
        check_safe(text, "caller ID")  # CR/LF stay a hard error
        return _DISPLAY_UNSAFE.sub("", text)


def _getvar_value(body: str) -> str | None:
    """``uuid_getvar`` answers ``_undef_`` for an unset variable
    (mod_commands.c uuid_getvar_function) and ``-ERR ...`` for no channel."""
    value = body.rstrip("\n")
    if value in ("", "_undef_") or value.startswith("-ERR"):
        return None
    return value


def _check_ok(body: str, what: str) -> str:
    if body.lstrip().startswith("-ERR") or body.lstrip().startswith("-USAGE"):
        raise CommandFailed(f"{what}: {body.strip()[:120]}")
    return body


class _Pending:
    """An inbound call still on its outbound socket, waiting for the core."""

    __slots__ = ("call", "decided", "answered")

    def __init__(self, call: Any, answered: bool) -> None:
        self.call = call
        self.decided: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answered = answered

    def release(self) -> None:
        if not self.decided.done():
            self.decided.set_result(None)


class FreeswitchDriver:
    """Implements :class:`callcenterd.pbx.api.PbxPort` for one FreeSWITCH node."""

    def __init__(
        self,
        node: str,
        emit: Callable[[PbxEvent], None],
        *,
        moh_stream: str = "local_stream://moh",
        decision_timeout: float = DECISION_TIMEOUT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        announce: Sequence[str] = ANNOUNCE,
        amd_window: float = AMD_WINDOW,
        beep_wait: float = BEEP_WAIT,
        customer_wait: int = 30,
    ) -> None:
        self.node = node
        self._emit = emit
        self._moh_stream = check_safe(moh_stream, "music-on-hold stream")
        self._decision_timeout = decision_timeout
        self._clock = clock
        self._monotonic = monotonic
        self._announce = tuple(check_safe(a, "announcement") for a in announce)
        #: seconds without a beep after which an AMD leg is HUMAN
        self.amd_window = amd_window
        self.beep_wait = beep_wait
        self._customer_wait = customer_wait
        self._beeps: dict[str, asyncio.Event] = {}  # customer legs with AMD -> set at the beep
        self._esl: EslControl | None = None
        self._translator = FsTranslator()
        self._devices = FsDevices()
        self._told_at: dict[str, float] = {}  # held leg -> when it was held / last heard its position
        self._pending: dict[str, _Pending] = {}
        self._held: set[str] = set()
        self._jobs: set[asyncio.Task[None]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._core_uuid: str | None = None
        self._boot_at: float | None = None
        self._up = False
        self.avmd = False
        self.events_seen = 0
        self.last_event_at: float | None = None
        #: When we last heard from FreeSWITCH before the connection dropped
        #: (the service ends calls lost in a restart there).
        self.lost_sight_at: float | None = None

    device_key = staticmethod(device_key)

    # ------------------------------------------------------------- lifecycle
    @property
    def up(self) -> bool:
        return self._up

    async def on_esl_connected(self, session: EslControl) -> None:
        """Subscribe, resync from a snapshot, report PbxUp, then pump events."""
        if self._pump is not None:
            self._pump.cancel()
        self._esl = session
        await session.subscribe(list(EVENTS))
        module = await session.api("module_exists mod_avmd", timeout=SNAPSHOT_TIMEOUT)
        self.avmd = module.strip() == "true"
        if self.avmd:
            await session.subscribe(list(AVMD_EVENTS))
        snapshot = await self._take_snapshot(session)
        self._up = True
        self._emit(PbxUp(self.node, snapshot))  # complete: devices and agent legs are in it
        self._pump = asyncio.create_task(self._pump_events(session), name=f"fs-events-{self.node}")

    async def on_esl_disconnected(self, reason: object) -> None:
        self._esl = None
        self.lost_sight_at = self.last_event_at or self._clock()
        if self._up:
            self._up = False
            self._emit(PbxDown(self.node, str(reason) if reason else "connection closed"))

    async def close(self) -> None:
        """Stop the event pump and forget in-flight jobs (shutdown)."""
        tasks = [t for t in (self._pump, *self._jobs) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump_events(self, session: EslControl) -> None:
        async for ev in session.events():
            self.events_seen += 1
            self.on_esl_event(ev)

    def on_esl_event(self, ev: Any) -> None:
        self.last_event_at = self._clock()
        for event in self._translator.feed(ev):
            self._emit(event)
        for event in self._devices.feed(ev):
            self._emit(event)
        if ev.name == "CHANNEL_HANGUP_COMPLETE":
            self._unhold(ev.uuid)
            beep = self._beeps.pop(ev.uuid, None)
            if beep is not None:
                beep.set()  # nobody to leave a message to any more
        elif ev.name == "CUSTOM" and ev.subclass == "avmd::beep" and ev.uuid in self._beeps:
            self._beeps[ev.uuid].set()

    # -------------------------------------------------- outbound socket calls
    async def on_outbound_call(self, call: Any) -> None:
        """One inbound call from the ``socket`` app: report it, wait for the
        core's decision (hold / hangup / redirect), then release the socket."""
        leg_id = call.uuid
        data: Mapping[str, str] = call.channel_data
        answered = data.get("Answer-State") == "answered"
        pending = _Pending(call, answered)
        self._pending[leg_id] = pending
        self._translator.track(leg_id)
        requested = call.variable("cc_queue") or data.get("Caller-Destination-Number", "")
        try:
            self._emit(CallArrived(
                leg_id=leg_id,
                caller_id=CallerId(_clean_inbound(data.get("Caller-Caller-ID-Number")),
                                   _clean_inbound(data.get("Caller-Caller-ID-Name"))),
                dnis=_clean_inbound(data.get("Caller-Destination-Number")),
                variables={"queue": _clean_inbound(requested),
                           "priority": _clean_inbound(call.variable("cc_priority") or "")},
                node=self.node,
            ))
            closed = asyncio.ensure_future(call.wait_closed())
            try:
                done, _ = await asyncio.wait({pending.decided, closed}, timeout=self._decision_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not done:
                log.warning("fs.no_decision", leg=leg_id, timeout=self._decision_timeout)
                await self._hold_unowned(pending, _clean_inbound(requested))
        finally:
            self._pending.pop(leg_id, None)

    async def _hold_unowned(self, pending: _Pending, queue: str) -> None:
        """The core never decided: stamp the caller ourselves and hold it, so
        it is re-adopted at the next snapshot (the Asterisk dialplan does the
        same in [callcenterd-inbound])."""
        call = pending.call
        try:
            stamps = {"cc_call_id": call.uuid, "cc_queue": queue, "cc_enqueued": f"{self._clock():.3f}",
                      "cc_priority": "0"}
            await self._socket_hold(pending, stamps, self._moh_stream)
        except (ConnectionLost, Timeout, CommandFailed, UnsafeValue) as exc:
            log.warning("fs.self_hold_failed", leg=call.uuid, error=str(exc))

    async def _socket_hold(self, pending: _Pending, stamps: Mapping[str, str], stream: str) -> None:
        call = pending.call
        if not pending.answered:
            await call.answer()
            pending.answered = True
        await self._stamp_socket(call, stamps)
        # Queue endless_playback and do NOT wait for it: it never completes.
        # The +OK means FreeSWITCH queued it; it runs inside the socket app's
        # park and keeps running after we close the socket.
        reply = await call.send("sendmsg", [
            ("call-command", "execute"),
            ("execute-app-name", "endless_playback"),
            ("execute-app-arg", check_safe(stream, "music-on-hold stream")),
        ])
        if not reply.ok:
            raise CommandFailed(f"endless_playback: {reply.reply_text}")
        self._held_now(call.uuid)

    async def _stamp_socket(self, call: Any, stamps: Mapping[str, str]) -> None:
        """All the stamps in one ``multiset``: each application is a round
        trip on the channel (about 20 ms), and a hold used to take nine."""
        await call.set_vars(dict(stamps))

    # ------------------------------------------------------------ commands
    def _control(self) -> EslControl:
        esl = self._esl
        if esl is None or not self._up or esl.closed:
            raise ConnectionLost(f"FreeSWITCH node {self.node!r} is not connected")
        return esl

    async def _api(self, cmd: str, what: str = "") -> str:
        return _check_ok(await self._control().api(cmd), what or cmd.split(" ", 1)[0])

    async def originate(self, request: OriginateRequest) -> None:
        """``bgapi originate {origination_uuid=<leg id>,...}<endpoint> &park()``.

        Every value goes through :func:`esl_originate_vars` (quoted so that a
        ``,`` ``'`` ``{`` ``}`` cannot end it or add a variable; ``${`` and
        CR/LF refused).  A campaign's customer leg (``role=CUSTOMER``) also
        carries ``cc_role=customer`` and ``hangup_after_bridge=true``; when
        it answers with ``amd`` on, mod_avmd is started on it (the verdict
        comes as :class:`AmdResult`, see :meth:`_start_amd`)."""
        esl = self._control()
        ring = max(1, math.ceil(request.ring_timeout))
        customer = request.role is LegRole.CUSTOMER
        variables: dict[str, str] = {
            "origination_uuid": request.leg_id,
            "cc_call_id": request.call_id,
            "origination_caller_id_number": _display_value(request.caller_id.number),
            "origination_caller_id_name": _display_value(request.caller_id.name),
            "originate_timeout": str(ring),
            "ignore_early_media": "true",
        }
        if customer:
            # park_timeout (switch_ivr_park): an answered lead nobody bridges,
            # plays to or hangs up (callcenterd died) does not stay parked for ever
            variables.update({"cc_role": "customer", "hangup_after_bridge": "true",
                              "park_timeout": str(int(self._customer_wait))})
        for name, value in request.variables.items():
            variables.setdefault(name.lower(), value)
        endpoint = check_safe(request.endpoint, "endpoint")
        if not endpoint or any(c in endpoint for c in " '\"\\{}"):
            raise UnsafeValue("endpoint must be a plain dial string (no blanks, quotes or braces)")
        dial = esl_originate_vars(variables) + endpoint
        command = f"originate {esl_quote_arg(dial)} &park()"
        self._translator.originating(request.leg_id)
        if customer and request.amd:
            self._beeps[request.leg_id] = asyncio.Event()
        try:
            job = await esl.bgapi_start(command)
        except BaseException:
            self._translator.originate_refused(request.leg_id)
            self._beeps.pop(request.leg_id, None)
            raise
        task = asyncio.create_task(self._await_job(request.leg_id, job, ring + JOB_MARGIN, request.amd),
                                   name=f"fs-originate-{request.leg_id}")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _await_job(self, leg_id: str, job: "asyncio.Future[Any]", deadline: float, amd: bool) -> None:
        try:
            async with asyncio.timeout(deadline):
                ev = await job
        except TimeoutError:
            job.cancel()
            log.warning("fs.originate_job_timeout", leg=leg_id, timeout=deadline)
            return
        except (ConnectionLost, asyncio.CancelledError):
            return  # PbxDown covers it: the core withdraws legs ringing there
        for event in self._translator.job_result(leg_id, ev.body):
            self._emit(event)
        if not self._translator.tracked(leg_id):
            self._beeps.pop(leg_id, None)
        if amd and self._translator.answered(leg_id):
            await self._start_amd(leg_id)

    async def _start_amd(self, leg_id: str) -> None:
        """``avmd <uuid> start`` on an answered leg.  A beep is MACHINE (the
        translator); no beep within :attr:`amd_window` s is HUMAN; without
        mod_avmd (or when it fails to start) the verdict is NOTSURE at once,
        so the core never waits for a verdict that cannot come."""
        if not self.avmd:
            log.info("fs.amd_unavailable", leg=leg_id, hint="load mod_avmd (see dialplan/freeswitch/README.md)")
            self._emit_all(self._translator.amd_unavailable(leg_id))
            return
        try:
            await self._api(f"avmd {self._uuid(leg_id)} start", "avmd")
        except (CommandFailed, ConnectionLost, Timeout) as exc:
            log.warning("fs.amd_start_failed", leg=leg_id, error=str(exc))
            self._emit_all(self._translator.amd_unavailable(leg_id))
            return
        beep = self._beeps.get(leg_id)
        if beep is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(beep.wait()), self.amd_window)
        events = self._translator.amd_window_over(leg_id)
        self._emit_all(events)
        if events:  # a person: stop listening for beeps in the conversation
            with contextlib.suppress(CommandFailed, ConnectionLost, Timeout, UnsafeValue):
                await self._api(f"avmd {self._uuid(leg_id)} stop", "avmd")

    def _emit_all(self, events: Sequence[PbxEvent]) -> None:
        for event in events:
            self._emit(event)

    async def play_abandon(self, leg_id: str, prompt: str) -> None:
        """The abandon message, then hang up: ``uuid_transfer <uuid>
        playback:<prompt>,hangup:NORMAL_CLEARING inline`` (one command: the
        inline dialplan runs both apps in order, whatever callcenterd does
        meanwhile; the prompt is a checked file name, so it holds no ``,``
        or ``:`` the inline dialplan would split on)."""
        await self._play_then_hang_up(leg_id, prompt)

    async def leave_message(self, leg_id: str, prompt: str) -> None:
        """Wait for mod_avmd's beep (at most :attr:`beep_wait` s; at once
        when it was heard already), then play ``prompt`` and hang up."""
        check_prompt(prompt)
        beep = self._beeps.get(leg_id)
        if beep is not None and not self._translator.beeped(leg_id):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(beep.wait()), self.beep_wait)
        if not self._translator.tracked(leg_id):
            raise CommandFailed(f"leg {leg_id} hung up before the message")
        await self._play_then_hang_up(leg_id, prompt)

    async def _play_then_hang_up(self, leg_id: str, prompt: str) -> None:
        uuid = self._uuid(leg_id)
        check_prompt(prompt)
        self._beeps.pop(leg_id, None)
        await self._api(f"uuid_transfer {uuid} playback:{prompt},hangup:NORMAL_CLEARING inline", "uuid_transfer")

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        """Bridge a held caller (``leg_a``) with an answered agent leg.

        ``cc_connected=1`` goes on the caller *before* the bridge: the bridge
        may end before a later setvar lands, and the dialplan after
        ``socket`` reads it to hang up instead of holding again.
        """
        a, b = self._uuid(leg_a), self._uuid(leg_b)
        await self._api(f"uuid_setvar {a} cc_connected 1", "uuid_setvar")
        try:
            await self._api(f"uuid_bridge {a} {b}", "uuid_bridge")
        except CommandFailed:
            # no bridge: the caller is still parked in the socket app, waiting
            with contextlib.suppress(CommandFailed, ConnectionLost, Timeout):
                await self._api(f"uuid_setvar {a} cc_connected", "uuid_setvar")
            raise
        self._unhold(leg_a)

    async def hangup(self, leg_id: str, cause: int = 16) -> None:
        name = cause_name(cause)
        pending = self._pending.get(leg_id)
        if pending is not None:
            try:
                await pending.call.hangup(name)
            finally:
                pending.release()
            return
        esl = self._control()
        self._translator.hanging_up(leg_id)
        body = await esl.api(f"uuid_kill {self._uuid(leg_id)} {name}")
        if body.startswith("-ERR"):
            # "No such channel!": gone already, which is what we wanted
            log.debug("hangup.gone", leg=leg_id, reply=body.strip()[:60])

    async def hold(self, call: WaitingCall, spec: HoldSpec) -> None:
        stamps = {
            "cc_call_id": call.call_id,
            "cc_queue": call.queue,
            "cc_enqueued": f"{call.enqueued_at:.3f}",
            "cc_priority": str(call.priority),
            "cc_skills": format_skills(call.skills),
            **self._hold_vars(spec),
        }
        for name, value in stamps.items():
            check_safe(value, name)
        stream = self._moh(spec.moh_class)
        pending = self._pending.get(call.leg_id)
        if pending is not None:
            try:
                await self._socket_hold(pending, stamps, stream)
            finally:
                pending.release()  # the socket closes; the caller stays parked
            return
        self._translator.track(call.leg_id)
        await self._setvars(call.leg_id, stamps)
        if call.leg_id not in self._held:
            await self._api(f"uuid_broadcast {self._uuid(call.leg_id)} "
                            f"{esl_quote_arg('endless_playback::' + stream)} aleg", "uuid_broadcast")
            self._held_now(call.leg_id)

    async def update_hold(self, leg_id: str, spec: HoldSpec) -> None:
        """Refresh the ``cc_*`` stamps; announce the position when it is due."""
        await self._setvars(leg_id, self._hold_vars(spec))
        if spec.announce_every <= 0 or spec.position <= 0 or leg_id not in self._held:
            return
        now = self._monotonic()
        if now - self._told_at.get(leg_id, now) < spec.announce_every * ANNOUNCE_DUE:
            return
        self._told_at[leg_id] = now
        await self._announce_position(leg_id, spec.position)

    async def _announce_position(self, leg_id: str, position: int) -> None:
        """Play the position prompt over the music.

        ``uuid_broadcast <uuid> <app>::<arg> aleg`` (mod_commands.c
        uuid_broadcast_function splits its arguments with
        switch_separate_string, hence the quoting) queues the app on the
        channel; switch_ivr_broadcast cuts ``app::arg`` at the first ``::``.
        The endless_playback of the music parses queued broadcasts between
        frames (switch_ivr_play_file -> switch_ivr_parse_all_events), runs
        them, and when the last one ends sets CF_BREAK (switch_ivr.c
        switch_ivr_parse_event): the current play_file returns BREAK and
        endless_playback, which loops on SUCCESS *and* BREAK (mod_dptools.c
        endless_playback_function), starts the music again.  So the music
        comes back by itself; nothing to re-issue.  The broadcasts are sent
        one by one: api commands run in order on one ESL socket.
        """
        uuid = self._uuid(leg_id)
        n = int(position)
        for prompt in self._announce:
            arg = esl_quote_arg(check_safe(prompt.format(n=n), "announcement"))
            try:
                await self._api(f"uuid_broadcast {uuid} {arg} aleg", "uuid_broadcast")
            except CommandFailed as exc:  # the caller left meanwhile: nothing to tell
                log.info("fs.announce_failed", leg=leg_id, error=str(exc))
                return

    def _held_now(self, leg_id: str) -> None:
        self._held.add(leg_id)
        self._told_at.setdefault(leg_id, self._monotonic())

    def _unhold(self, leg_id: str) -> None:
        self._held.discard(leg_id)
        self._told_at.pop(leg_id, None)

    def _moh(self, moh_class: str) -> str:
        """``default`` -> the configured stream; anything with ``://`` or a
        path is played as given."""
        check_safe(moh_class, "music-on-hold class")
        if moh_class in ("", "default"):
            return self._moh_stream
        if "://" in moh_class or moh_class.startswith("/"):
            return moh_class
        return f"local_stream://{moh_class}"

    @staticmethod
    def _hold_vars(spec: HoldSpec) -> dict[str, str]:
        return {
            "cc_position": str(spec.position),
            "cc_ewt": "" if spec.wait_estimate is None else str(int(spec.wait_estimate)),
            "cc_announce_every": str(int(spec.announce_every)),
        }

    async def _setvars(self, leg_id: str, values: Mapping[str, str]) -> None:
        esl = self._control()
        uuid = self._uuid(leg_id)
        for k, v in values.items():
            if "${" in check_safe(v, k):
                raise UnsafeValue(f"variable {k}: '${{' would be expanded by FreeSWITCH")
        # one uuid_setvar per variable; the session pipelines them (FIFO replies)
        bodies = await asyncio.gather(*(
            esl.api(f"uuid_setvar {uuid} {_var_name(k)} {esl_quote_arg(check_safe(v, k))}".rstrip())
            if v else esl.api(f"uuid_setvar {uuid} {_var_name(k)}")
            for k, v in values.items()
        ))
        for body in bodies:
            _check_ok(body, "uuid_setvar")

    async def moh(self, leg_id: str, on: bool, moh_class: str = "default") -> None:
        pending = self._pending.get(leg_id)
        if on and pending is not None:
            reply = await pending.call.send("sendmsg", [
                ("call-command", "execute"), ("execute-app-name", "endless_playback"),
                ("execute-app-arg", self._moh(moh_class)),
            ])
            if not reply.ok:
                raise CommandFailed(f"endless_playback: {reply.reply_text}")
            return
        uuid = self._uuid(leg_id)
        if on:
            await self._api(f"uuid_broadcast {uuid} {esl_quote_arg('endless_playback::' + self._moh(moh_class))} aleg")
        else:
            await self._api(f"uuid_break {uuid} all")

    async def redirect(self, leg_id: str, destination: str) -> None:
        """``destination`` is ``context,exten[,priority]`` (priority is an
        Asterisk notion and ignored): ``uuid_transfer <uuid> <exten> XML <context>``."""
        parts = [p.strip() for p in check_safe(destination, "destination").split(",")]
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise CommandFailed(f"destination must be 'context,exten[,priority]', got {destination!r}")
        context, exten = parts[0], parts[1]
        for part in (context, exten):
            if not re.fullmatch(r"[A-Za-z0-9_+*#.@\-]+", part):
                raise UnsafeValue("destination context/extension has characters FreeSWITCH would re-parse")
        pending = self._pending.get(leg_id)
        if pending is not None:
            try:
                await pending.call.execute("transfer", f"{exten} XML {context}", timeout=10.0)
            finally:
                pending.release()
            return
        await self._api(f"uuid_transfer {self._uuid(leg_id)} {exten} XML {context}", "uuid_transfer")
        self._unhold(leg_id)

    async def play(self, leg_id: str, prompts: Sequence[str]) -> None:
        call = self._socket(leg_id)
        for prompt in prompts:
            await call.playback(check_safe(prompt, "prompt"))

    async def play_and_collect(self, leg_id: str, prompts: Sequence[str], max_digits: int,
                               timeout: float, terminators: str = "#") -> str:
        call = self._socket(leg_id)
        files = [check_safe(p, "prompt") for p in prompts]
        # file_string:// plays a list (mod_dptools); '!' is its separator
        prompt = "file_string://" + "!".join(files) if len(files) > 1 else (files[0] if files else "silence_stream://250")
        return await call.play_and_get_digits(
            prompt, min_digits=1, max_digits=max_digits, tries=1, timeout_ms=int(timeout * 1000),
            terminators=terminators, regexp=r"\d+" if not terminators else r"[0-9*#]+",
        )

    def _socket(self, leg_id: str) -> Any:
        pending = self._pending.get(leg_id)
        if pending is None:
            raise CommandFailed(f"leg {leg_id!r} has no outbound socket")
        return pending.call

    async def record(self, leg_id: str, on: bool, path: str = "") -> None:
        verb = "start" if on else "stop"
        target = esl_quote_arg(check_safe(path, "recording path")) if path else "all"
        await self._api(f"uuid_record {self._uuid(leg_id)} {verb} {target}", "uuid_record")

    async def set_var(self, leg_id: str, name: str, value: str) -> None:
        pending = self._pending.get(leg_id)
        if pending is not None:
            await pending.call.set_var(_var_name(name), value)
            return
        await self._setvars(leg_id, {name: value})

    async def get_var(self, leg_id: str, name: str) -> str | None:
        return _getvar_value(await self._control().api(f"uuid_getvar {self._uuid(leg_id)} {_var_name(name)}"))

    async def snapshot(self) -> PbxSnapshot:
        return await self._take_snapshot(self._control())

    @staticmethod
    def _uuid(leg_id: str) -> str:
        check_safe(leg_id, "leg id")
        if not leg_id or " " in leg_id:
            raise UnsafeValue("leg id must be one word")
        return leg_id

    # ------------------------------------------------------------ snapshot
    async def _take_snapshot(self, esl: EslControl) -> PbxSnapshot:
        restarted = await self._restarted(esl)
        body = await esl.api("show channels as json", timeout=SNAPSHOT_TIMEOUT)
        try:
            rows = json.loads(body or "{}").get("rows") or []
        except (ValueError, AttributeError):
            raise CommandFailed(f"show channels: not JSON ({body.strip()[:60]!r})") from None
        rows = [r for r in rows if isinstance(r, dict)]
        legs: set[str] = set()
        for row in rows:
            uid = str(row.get("uuid") or "")
            if uid and " " not in uid:
                legs.add(uid)
        self._held.clear()
        self._told_at.clear()
        ordered = sorted(legs)
        # uuid_getvar per variable, pipelined (replies are FIFO on one socket)
        n = len(SNAPSHOT_VARS)
        replies = await asyncio.gather(*(
            esl.api(f"uuid_getvar {uid} {name}", timeout=SNAPSHOT_TIMEOUT) for uid in ordered for name in SNAPSHOT_VARS
        ))
        cid = {str(r.get("uuid")): CallerId(_clean_inbound(str(r.get("cid_num") or "")),
                                              _clean_inbound(str(r.get("cid_name") or ""))) for r in rows}
        waiting: list[WaitingCall] = []
        agent_legs: list[LiveAgentLeg] = []
        after_agent: list[str] = []
        unstamped: list[WaitingCall] = []
        now = self._clock()
        for i, uid in enumerate(ordered):
            v = dict(zip(SNAPSHOT_VARS, (_getvar_value(b) for b in replies[i * n:(i + 1) * n])))
            if v["cc_agent"]:
                if v["origination_uuid"] in (None, uid):  # not the -b half of a loopback agent leg
                    agent_legs.append(LiveAgentLeg(uid, v["cc_agent"], v["cc_call_id"] or "", v["bridge_to"] or ""))
                continue
            queue = v["cc_queue"] or v["cc_requested_queue"]
            if v["bridge_to"] or not queue or uid in self._pending:
                continue  # talking, not ours, or on its socket right now
            if v["cc_connected"] == "1" and v["cc_after_socket"] == "1":
                after_agent.append(uid)
                continue
            if v["cc_connected"] == "1":
                log.warning("snapshot.bridge_never_happened", leg=uid, hint="re-adopted as waiting")
            try:
                enqueued = float(v["cc_enqueued"]) if v["cc_enqueued"] else None
            except ValueError:
                log.warning("snapshot.bad_enqueue_time", leg=uid)
                enqueued = None
            try:
                priority = int(v["cc_priority"] or "0")
            except ValueError:
                priority = 0
            self._translator.track(uid)
            self._held_now(uid)  # a re-adopted caller is not told its position at once
            wc = WaitingCall(
                leg_id=uid, queue=queue, enqueued_at=now if enqueued is None else enqueued, priority=priority,
                call_id=v["cc_call_id"] or uid, caller_id=cid.get(uid, CallerId()),
                skills=parse_skills(v["cc_skills"] or ""),
            )
            waiting.append(wc)
            if enqueued is None and v["cc_after_socket"] != "1":
                unstamped.append(wc)  # callcenterd died before holding it: no stamps, no music
        waiting.sort(key=lambda w: w.enqueued_at)
        for uid in after_agent:
            await self._hang_up_after_agent(esl, uid)
        for wc in unstamped:
            await self._hold_found(esl, wc)
        before = set(self._devices.status)
        self._devices.resync(rows)
        devices = {d: self._devices.status.get(d, DeviceStatus.NOT_INUSE) for d in before | set(self._devices.status)}
        log.info("freeswitch.snapshot", node=self.node, channels=len(legs), waiting=len(waiting),
                 agent_legs=len(agent_legs), hung_up_after_agent=len(after_agent), restarted=restarted)
        return PbxSnapshot(legs=frozenset(legs), waiting=tuple(waiting), restarted=restarted,
                           devices=devices, agent_legs=tuple(agent_legs))

    async def _hang_up_after_agent(self, esl: EslControl, uid: str) -> None:
        """A caller whose agent call is over, found on its way back to hold."""
        log.warning("snapshot.caller_after_agent_call", leg=uid, action="hangup")
        self._translator.track(uid)
        self._translator.hanging_up(uid)
        body = await esl.api(f"uuid_kill {self._uuid(uid)} NORMAL_CLEARING", timeout=SNAPSHOT_TIMEOUT)
        if body.startswith("-ERR"):
            log.debug("hangup.gone", leg=uid, reply=body.strip()[:60])

    async def _hold_found(self, esl: EslControl, wc: WaitingCall) -> None:
        """Stamp and give music to a caller found in our dialplan with neither."""
        log.warning("snapshot.unstamped_caller", leg=wc.leg_id, queue=wc.queue, action="hold")
        uuid = self._uuid(wc.leg_id)
        try:
            check_safe(wc.queue, "queue")
            for name, value in (("cc_call_id", wc.call_id), ("cc_queue", wc.queue),
                                ("cc_enqueued", f"{wc.enqueued_at:.3f}")):
                _check_ok(await esl.api(f"uuid_setvar {uuid} {name} {esl_quote_arg(value)}",
                                        timeout=SNAPSHOT_TIMEOUT), "uuid_setvar")
            _check_ok(await esl.api(f"uuid_broadcast {uuid} {esl_quote_arg('endless_playback::' + self._moh_stream)}"
                                    " aleg", timeout=SNAPSHOT_TIMEOUT), "uuid_broadcast")
        except (CommandFailed, UnsafeValue) as exc:
            log.warning("snapshot.hold_failed", leg=wc.leg_id, error=str(exc))

    async def _restarted(self, esl: EslControl) -> bool:
        """Did FreeSWITCH restart since we last saw it?"""
        core = (await esl.api("global_getvar core_uuid", timeout=SNAPSHOT_TIMEOUT)).strip()
        if _UUIDISH.match(core) and not core.startswith("-ERR"):
            restarted = self._core_uuid is not None and core != self._core_uuid
            self._core_uuid = core
            return restarted
        uptime = uptime_seconds(await esl.api("status", timeout=SNAPSHOT_TIMEOUT))
        if uptime is None:
            return False
        boot = self._clock() - uptime
        restarted = self._boot_at is not None and boot - self._boot_at > BOOT_JITTER
        self._boot_at = boot
        return restarted


def _var_name(name: str) -> str:
    check_safe(name, "variable name")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name):
        raise UnsafeValue(f"bad channel variable name {name[:40]!r}")
    return name
