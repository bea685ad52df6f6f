"""A scripted FreeSWITCH for the contract suite, built on the capture-based
fake of tests/fakes/esl_server.py.

It keeps a tiny model of channels and answers the commands the driver sends
(``bgapi originate``, ``uuid_bridge``, ``uuid_kill``, ``uuid_setvar``,
``uuid_getvar``, ``show channels as json``...) with events whose headers are
the captured ones (esl-callcenter-json-all.txt) with the call's uuids, caller
ID and cause put in.  Oddities of the real server are kept on purpose: api
bodies with and without a trailing newline, events sent *before* the reply
of the command that caused them, a BACKGROUND_JOB that overtakes its
``command/reply``, and Event-Sequence numbers that go backwards.

Agents behave like the sandbox Asterisk's ``[agents]`` context, keyed by the
extension in ``loopback/<ext>/agents``: 1XXX/5XXX answer and stay, 2001 rings
forever, 2002 busy, 2003 congestion, 2004 rejects, 4XXX talk then hang up.
Customers come in through the driver's outbound-socket server.

Campaign leads are ``loopback/<number>/sandbox-outbound``, like the sandbox
Asterisk's ``[sandbox-outbound]``: the number's last digit chooses the lead
(0/7/8/9 a person, 1 busy, 2 never answers, 3 an answering machine, 4 hangs
up during the greeting, 5 congestion, 6 an invalid number).  The hangup
causes are the ones the captures carry (USER_BUSY in esl-outbound-sync,
NORMAL_CLEARING everywhere) or FreeSWITCH's own names for the rest
(NO_ANSWER at originate_timeout, NORMAL_CIRCUIT_CONGESTION,
UNALLOCATED_NUMBER), in the captured CHANNEL_HANGUP_COMPLETE headers.  The
captures hold no mod_avmd event (the 2026-11-29 server had mod_avmd loaded
but no call ran it): ``avmd::beep`` is built from the captured CUSTOM
event's header block with the headers mod_avmd.c avmd_fire_event adds
(Unique-ID, Call-command, Beep-Status DETECTED, Frequency...).  A machine
beeps ``beep_after`` s after ``avmd <uuid> start``.  ``uuid_transfer
<uuid> playback:<file>,hangup:<cause> inline`` plays (kept in ``played``)
for ``play_time`` s, then hangs up.  An outside
call (:meth:`FsSwitch.outside_call`) is a channel on an agent's device that
callcenterd did not make: only its channel events tell the driver.
Position prompts the driver broadcasts are kept in ``broadcasts``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenterd.protocols.esl.codec import EslEvent, fs_url_encode
from tests.fakes.esl_server import (
    FakeFreeSwitch,
    FakeOutboundChannel,
    _event_of,
    captured_events,
    fs_parse_brackets,
    fs_separate_string,
)

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "freeswitch" / "callcenterd.xml"


class FsDialplan:
    """The shipped ``callcenterd.xml``, run the way mod_dialplan_xml does:
    a context is hunted when a channel enters it (``transfer``), conditions
    see the channel variables as they are at that moment, ``$1`` is the
    condition's capture and ``${var}`` in action data is expanded when the
    action runs.  Only what the shipped file uses is modelled."""

    def __init__(self, path: Path = DIALPLAN) -> None:
        self.contexts: dict[str, list[list[tuple[str, str, list[tuple[str, str]]]]]] = {}
        for ctx in ET.parse(path).getroot().iter("context"):
            exts = []
            for ext in ctx.iter("extension"):
                exts.append([(c.get("field", ""), c.get("expression", ""),
                              [(a.get("application", ""), a.get("data", "")) for a in c.iter("action")])
                             for c in ext.iter("condition")])
            self.contexts[ctx.get("name", "")] = exts

    @staticmethod
    def expand(data: str, variables: dict[str, str], uuid: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "strepoch()":
                return str(int(time.time()))
            if name == "uuid":
                return uuid
            return variables.get(name.lower(), "")
        return re.sub(r"\$\{([^}]*)\}", one, data)

    def hunt(self, context: str, dest: str, variables: dict[str, str], uuid: str) -> list[tuple[str, str]]:
        """The actions of the first extension whose conditions all match."""
        for conditions in self.contexts[context]:
            actions: list[tuple[str, str]] = []
            for field_, expression, acts in conditions:
                value = dest if field_ == "destination_number" else self.expand(field_, variables, uuid)
                m = re.search(expression, value)
                if m is None:
                    break
                actions += [(app, data.replace("$1", m.group(1) if m.groups() else "")) for app, data in acts]
            else:
                return actions
        return []

    def after(self, context: str, dest: str, app: str) -> list[tuple[str, str]]:
        """The actions that follow ``app`` in ``context``'s matching extension."""
        actions = self.hunt(context, dest, {}, "")
        names = [a for a, _ in actions]
        return actions[names.index(app) + 1:]

    def before(self, context: str, dest: str, app: str) -> list[tuple[str, str]]:
        actions = self.hunt(context, dest, {}, "")
        names = [a for a, _ in actions]
        return actions[:names.index(app)]


CAUSES = {
    "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_ANSWER": 19, "CALL_REJECTED": 21,
    "UNALLOCATED_NUMBER": 1, "NORMAL_CIRCUIT_CONGESTION": 34,
    "NORMAL_TEMPORARY_FAILURE": 41, "ORIGINATOR_CANCEL": 487, "LOSE_RACE": 502,
    "CHAN_NOT_IMPLEMENTED": 66, "SYSTEM_SHUTDOWN": 501,
}
NO_SUCH_CHANNEL = b"-ERR No such channel!\n"  # as captured (uuid_kill / uuid_getvar)


def _templates() -> dict[str, EslEvent]:
    out: dict[str, EslEvent] = {}
    for head, body in captured_events("callcenter-json-all"):
        ev = _event_of(head, body)
        out.setdefault(ev.name, ev)
    return out


@dataclass
class Chan:
    uuid: str
    name: str
    cid_num: str = ""
    cid_name: str = ""
    dest: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    answered: bool = False
    bridged: str = ""
    job: tuple[Any, str] | None = None  # (conn, Job-UUID) of its originate
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    socket: "CustomerSocket | None" = None
    gone: bool = False
    after_socket: bool = False  # the dialplan lines after ``socket`` ran
    hung_up_by_dialplan: str = ""  # the dialplan's hangup cause, if it hung up
    headers: dict[str, str] = field(default_factory=dict)  # put on every event of the channel


class FsSwitch:
    """The fake FreeSWITCH a contract scenario runs against."""

    def __init__(self, *, talk_time: float = 0.3, answer_delay: float = 0.05, job_delay: float = 0.02) -> None:
        self.fake = FakeFreeSwitch()
        self.fake.on_command = self._on_command
        self.talk_time = talk_time
        self.answer_delay = answer_delay
        # How long an answered leg's originate job still runs after its
        # CHANNEL_ANSWER (one 20 ms timer tick in the 2026-11-29 captures).  A
        # uuid_bridge landing inside that window ends the job with
        # -ERR ORIGINATOR_CANCEL while the leg stays up and bridged
        # (esl-bridge-before-originate-job); after it, the job says +OK first
        # and the leg parks (esl-bridge-after-originate-job).
        self.job_delay = job_delay
        self.job_results: list[tuple[str, str]] = []  # (leg uuid, BACKGROUND_JOB body)
        self.core_uuid = str(uuidlib.uuid4())
        self.channels: dict[str, Chan] = {}
        self.originates: list[tuple[dict[str, str], str]] = []  # (parsed vars, endpoint)
        self.killed: list[tuple[str, str]] = []
        self.broadcasts: list[tuple[str, str, str]] = []  # (uuid, app::arg, leg flag) as mod_commands splits them
        self._tpl = _templates()
        self._seq = 5000
        self.dialplan = FsDialplan()
        self.app_delay = 0.0  # per application on a customer's socket (see FakeOutboundChannel)
        self._sockets: list[CustomerSocket] = []
        # campaign leads (loopback/<number>/sandbox-outbound)
        self.avmd_loaded = True  # module_exists mod_avmd (loaded on the 2026-11-29 capture server)
        self.avmd_commands: list[tuple[str, str]] = []  # (uuid, start|stop)
        self.beep_after = 0.15  # a machine's greeting, from avmd start to its beep
        self.lead_talk = 3.0  # a person / machine stays this long, then hangs up
        self.greeting_hangup = 0.1  # lead 4 hangs up this long after answering
        self.play_time = 0.1  # a playback's length
        self.played: list[tuple[str, str]] = []  # (uuid, file) played by uuid_transfer ... inline

    async def start(self) -> int:
        return await self.fake.start()

    async def close(self) -> None:
        for chan in self.channels.values():
            for t in chan.timers:
                t.cancel()
        for s in self._sockets:
            await s.close()
        await self.fake.close()

    # ---------------------------------------------------------------- views
    def alive(self) -> list[Chan]:
        return [c for c in self.channels.values() if not c.gone]

    def ext_up(self, ext: str) -> bool:
        return any(c.name.startswith(f"loopback/{ext}-") for c in self.alive())

    # --------------------------------------------------------------- events
    def event(self, name: str, chan: Chan, *, seq_back: bool = False, **extra: str) -> None:
        tpl = self._tpl[name if name in self._tpl else "CHANNEL_ANSWER"]
        h = {k: v for k, v in tpl.headers.items()
             if not k.startswith(("variable_", "Other-", "Bridge-", "Content-"))}
        self._seq += 1
        seq = self._seq - 2 if seq_back else self._seq  # Event-Sequence is not monotonic on the wire
        h.update({
            "Event-Name": name, "Event-Sequence": str(seq), "Core-UUID": self.core_uuid,
            "Unique-ID": chan.uuid, "Channel-Call-UUID": chan.uuid, "Channel-Name": chan.name,
            "Caller-Unique-ID": chan.uuid, "Caller-Caller-ID-Number": chan.cid_num,
            "Caller-Caller-ID-Name": chan.cid_name, "Caller-Destination-Number": chan.dest,
            "Answer-State": "answered" if chan.answered else "ringing",
            "variable_answer_epoch": "1700000000" if chan.answered else "0",
        })
        h.update(chan.headers)
        h.update(extra)
        self.fake.emit(EslEvent(h, format="json"))

    def _job(self, chan: Chan, body: str) -> None:
        if chan.job is None:
            return
        conn, job = chan.job
        chan.job = None
        self.job_results.append((chan.uuid, body))
        conn.send_event(EslEvent({
            "Event-Name": "BACKGROUND_JOB", "Core-UUID": self.core_uuid, "Event-Sequence": self._next(),
            "Job-UUID": job, "Job-Command": "originate",
        }, body, format="json"))

    def _next(self) -> str:
        self._seq += 1
        return str(self._seq)

    def hangup(self, chan: Chan, cause: str, *, before_job: bool = True) -> None:
        """A channel ends: unbridge, HANGUP_COMPLETE (and the originate job)."""
        if chan.gone:
            return
        chan.gone = True
        for t in chan.timers:
            t.cancel()
        if chan.bridged:
            other = self.channels.get(chan.bridged)
            self.event("CHANNEL_UNBRIDGE", chan, **{"Other-Leg-Unique-ID": chan.bridged,
                                                   "Bridge-A-Unique-ID": chan.uuid,
                                                   "Bridge-B-Unique-ID": chan.bridged})
            chan.vars.pop("bridge_to", None)
            if other is not None:
                other.bridged = ""
                other.vars.pop("bridge_to", None)
                if other.vars.get("hangup_after_bridge") == "true" and not other.gone:
                    asyncio.get_running_loop().call_soon(self.hangup, other, "NORMAL_CLEARING")
                if other.socket is not None and not other.gone:
                    # the caller's socket app returned when the bridge began:
                    # now it runs the dialplan lines after ``socket``
                    other.socket.bridge_ended(chan.uuid)
                    asyncio.get_running_loop().call_soon(self.run_after_socket, other)
            chan.bridged = ""
        if chan.socket is not None and not chan.socket.released:
            chan.socket.remote_hangup(cause)
        job_body = f"-ERR {cause}\n"
        if not before_job:
            self._job(chan, job_body)
        self.event("CHANNEL_HANGUP_COMPLETE", chan, seq_back=True, **{
            "Hangup-Cause": cause, "variable_hangup_cause_q850": str(CAUSES.get(cause, 16)),
        })
        self._job(chan, job_body)

    def shutdown(self) -> None:
        """``fsctl shutdown``: every channel hung up with SYSTEM_SHUTDOWN
        (switch_core.c switch_core_destroy -> switch_core_session_hupall),
        then the shutdown notice and the socket closes."""
        for chan in list(self.alive()):
            self.hangup(chan, "SYSTEM_SHUTDOWN")
        self.fake.shutdown()

    # -------------------------------------------------------------- customer
    async def customer(self, port: int, queue: str, patience: float, number: str, name: str,
                       variables: dict[str, str] | None = None) -> Chan:
        """A customer calls ``queue``; ``variables`` are what the dialplan set
        before ``socket`` (e.g. ``cc_priority`` from an IVR), so they arrive as
        ``variable_*`` headers of the socket's CHANNEL_DATA."""
        chan = Chan(str(uuidlib.uuid4()), f"loopback/{queue}-a", number, name, queue,
                    vars={k.lower(): v for k, v in (variables or {}).items()})
        self.channels[chan.uuid] = chan
        self.event("CHANNEL_CREATE", chan)
        for app, data in self.dialplan.before("callcenterd-inbound", queue, "socket"):
            self._run_app(chan, app, data)
        sock = CustomerSocket(self, chan, port)
        sock.app_delay = self.app_delay
        chan.socket = sock
        self._sockets.append(sock)
        loop = asyncio.get_running_loop()
        chan.timers.append(loop.call_later(patience, self.hangup, chan, "NORMAL_CLEARING"))
        try:
            await sock.start()
        except OSError:
            # callcenterd is down: the socket app fails at once and the
            # dialplan goes on with the lines after it
            sock.released = True
            self.run_after_socket(chan)
        return chan

    # ------------------------------------------------- the shipped dialplan
    def run_after_socket(self, chan: Chan) -> None:
        """The caller runs the lines after ``socket`` (callcenterd down, or
        its bridge with an agent ended), then what they transfer to."""
        if chan.gone or chan.after_socket:
            return
        chan.after_socket = True
        actions = self.dialplan.after("callcenterd-inbound", chan.dest, "socket")
        while actions:
            app, data = actions.pop(0)
            data = self.dialplan.expand(data, chan.vars, chan.uuid)
            if app == "transfer":
                dest, _, context = data.partition(" XML ")
                actions = self.dialplan.hunt(context, dest, chan.vars, chan.uuid)
                continue
            if not self._run_app(chan, app, data):
                return

    def _run_app(self, chan: Chan, app: str, data: str) -> bool:
        """One dialplan app on ``chan``; False when the channel stops there."""
        if chan.socket is not None:
            chan.socket.dialplan_runs(app, data, chan.vars, completes=app not in ("endless_playback", "hangup"))
        if app == "set":
            name, _, value = data.partition("=")
            chan.vars[name.lower()] = value
        elif app == "answer":
            chan.answered = True
        elif app == "endless_playback":
            chan.vars["cc_moh_playing"] = data
            return False
        elif app == "hangup":
            chan.hung_up_by_dialplan = data or "NORMAL_CLEARING"
            self.hangup(chan, chan.hung_up_by_dialplan)
            return False
        return True

    # ---------------------------------------------------------- outside call
    def outside_call(self, ext: str, seconds: float, *, answer: bool = True,
                     headers: dict[str, str] | None = None) -> Chan:
        """A call on ``ext``'s device that callcenterd did not make (somebody
        dialled the agent directly): CHANNEL_CREATE, CHANNEL_ANSWER, and the
        hangup ``seconds`` later.  ``headers`` adds e.g. ``variable_dialed_user``."""
        chan = Chan(str(uuidlib.uuid4()), f"loopback/{ext}-a", "5550000", "Outside", ext, headers=dict(headers or {}))
        self.channels[chan.uuid] = chan
        self.event("CHANNEL_CREATE", chan)
        if answer:
            chan.answered = True
            self.event("CHANNEL_ANSWER", chan)
        loop = asyncio.get_running_loop()
        chan.timers.append(loop.call_later(seconds, self.hangup, chan, "NORMAL_CLEARING"))
        return chan

    def announced(self, uuid: str) -> list[int]:
        """Positions told to a caller, from the ``say::`` broadcasts it got."""
        out = []
        for target, app, _ in self.broadcasts:
            m = re.fullmatch(r"say::en number pronounced (\d+)", app)
            if target == uuid and m is not None:
                out.append(int(m.group(1)))
        return out

    # ------------------------------------------------------------- commands
    def _on_command(self, conn: Any, cmd: str) -> bool:
        if not conn.authed:
            return False
        line = cmd.split("\n", 1)[0]
        verb, _, rest = line.partition(" ")
        if verb == "bgapi" and rest.startswith("originate "):
            m = re.search(r"^Job-UUID: (\S+)$", cmd, re.M)
            self._originate(conn, rest[len("originate "):], m.group(1) if m else str(uuidlib.uuid4()))
            return True
        if verb != "api":
            return False
        name, _, args = rest.partition(" ")
        handler = getattr(self, f"_api_{name}", None)
        if handler is None:
            if rest in ("show channels as json", "global_getvar core_uuid"):
                handler = self._api_show if name == "show" else self._api_global_getvar
            else:
                return False  # the captured reply (status, ...)
        body = handler(conn, args)
        if body is not None:
            conn.api_response(body)
        return True

    def _api_show(self, conn: Any, args: str) -> bytes:
        rows = [{"uuid": c.uuid, "name": c.name, "cid_num": c.cid_num, "cid_name": c.cid_name, "dest": c.dest,
                 "callstate": "ACTIVE" if c.answered else "RINGING",
                 "presence_id": c.headers.get("Channel-Presence-ID", "")} for c in self.alive()]
        if not rows:
            return b'{"row_count": 0}\n'  # as captured
        return (json.dumps({"row_count": len(rows), "rows": rows}) + "\n").encode()

    def _api_global_getvar(self, conn: Any, args: str) -> bytes:
        return self.core_uuid.encode()  # no trailing newline, like eval/expr

    def _api_module_exists(self, conn: Any, args: str) -> bytes:
        return b"true" if args.strip() == "mod_avmd" and self.avmd_loaded else b"false"

    def _api_avmd(self, conn: Any, args: str) -> bytes:
        """``avmd <uuid> start|stop`` (mod_avmd.c avmd_api_main)."""
        if not self.avmd_loaded:
            return b"-ERR avmd Command not found!\n"
        argv = args.split()
        chan = self._chan(argv[0]) if argv else None
        if chan is None or len(argv) < 2 or argv[1] not in ("start", "stop"):
            return b"-ERR, no such session or bad command\n"
        self.avmd_commands.append((chan.uuid, argv[1]))
        if argv[1] == "start":
            if chan.vars.get("sandbox_lead") == "machine":
                loop = asyncio.get_running_loop()
                chan.timers.append(loop.call_later(self.beep_after, self._beep, chan))
        return b"+OK\n"

    def _beep(self, chan: Chan) -> None:
        if chan.gone:
            return
        tpl = self._tpl["CUSTOM"]
        h = {k: v for k, v in tpl.headers.items() if k.startswith(("Event-", "FreeSWITCH-", "Core-UUID"))
             and not k.startswith("Event-Subclass")}
        h.update({"Event-Name": "CUSTOM", "Event-Subclass": "avmd::beep", "Core-UUID": self.core_uuid,
                  "Event-Sequence": self._next(), "Unique-ID": chan.uuid, "Call-command": "avmd",
                  "Beep-Status": "DETECTED", "Frequency": "1000.000000", "Frequency-variance": "0.000004",
                  "Amplitude": "0.496063", "Amplitude-variance": "0.000012", "Detection-time": "1420"})
        self.fake.emit(EslEvent(h, format="json"))

    def _chan(self, uuid: str) -> Chan | None:
        chan = self.channels.get(uuid)
        return chan if chan is not None and not chan.gone else None

    def _api_uuid_kill(self, conn: Any, args: str) -> bytes | None:
        uuid, _, cause = args.partition(" ")
        chan = self._chan(uuid)
        if chan is None:
            return NO_SUCH_CHANNEL
        self.killed.append((uuid, cause or "NORMAL_CLEARING"))
        # the hangup events go out BEFORE the +OK of the uuid_kill
        self.hangup(chan, cause or "NORMAL_CLEARING")
        conn.api_response(b"+OK\n")
        return None

    def _api_uuid_bridge(self, conn: Any, args: str) -> bytes | None:
        a, _, b = args.partition(" ")
        ca, cb = self._chan(a), self._chan(b)
        if ca is None or cb is None:
            return b"-ERR Invalid uuid\n"
        ca.bridged, cb.bridged = b, a
        # As captured (esl-bridge-*-originate-job): the api/response "+OK <b>"
        # comes first; a job still running for either leg then ends
        # -ERR ORIGINATOR_CANCEL, although its leg is up (and never parks);
        # the parked legs unpark, and CHANNEL_BRIDGE comes last.
        conn.api_response(f"+OK {b}\n".encode())
        for chan in (ca, cb):
            if chan.job is not None and chan.answered:
                self._job(chan, "-ERR ORIGINATOR_CANCEL\n")
        for chan, peer in ((ca, b), (cb, a)):
            self.event("CHANNEL_UNPARK", chan)
            if chan.socket is not None:
                chan.socket.bridge_started(peer)
        ca.vars["bridge_to"], cb.vars["bridge_to"] = b, a  # cleared at the unbridge (last_bridge_to stays)
        self.event("CHANNEL_BRIDGE", ca, **{"Other-Leg-Unique-ID": b, "Bridge-A-Unique-ID": a, "Bridge-B-Unique-ID": b})
        return None

    def _api_uuid_setvar(self, conn: Any, args: str) -> bytes:
        argv = fs_separate_string(args, " ", 3)
        chan = self._chan(argv[0]) if argv else None
        if chan is None:
            return NO_SUCH_CHANNEL
        if len(argv) == 3:
            chan.vars[argv[1].lower()] = argv[2]
        elif len(argv) == 2:
            chan.vars.pop(argv[1].lower(), None)
        return b"+OK\n"

    def _api_uuid_getvar(self, conn: Any, args: str) -> bytes:
        uuid, _, name = args.partition(" ")
        chan = self._chan(uuid)
        if chan is None:
            return NO_SUCH_CHANNEL
        return chan.vars.get(name.lower(), "_undef_").encode()  # no trailing newline

    def _api_uuid_broadcast(self, conn: Any, args: str) -> bytes:
        # mod_commands.c uuid_broadcast_function: switch_separate_string(' ') into 4
        argv = fs_separate_string(args, " ", 4)
        if len(argv) < 2:
            return b"-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
        if self._chan(argv[0]) is None:
            return NO_SUCH_CHANNEL
        self.broadcasts.append((argv[0], argv[1], argv[2] if len(argv) > 2 else ""))
        return b"+OK Message sent\n"

    def _api_uuid_transfer(self, conn: Any, args: str) -> bytes:
        argv = fs_separate_string(args, " ")
        chan = self._chan(argv[0]) if argv else None
        if chan is None:
            return NO_SUCH_CHANNEL
        if len(argv) >= 3 and argv[2] == "inline":
            # the inline dialplan: app:arg,app:arg (switch_core_standard_on_routing -> inline hunt)
            apps = [a.partition(":")[::2] for a in fs_separate_string(argv[1], ",")]
            loop = asyncio.get_running_loop()
            delay = 0.0
            for app, arg in apps:
                if app == "playback":
                    self.played.append((chan.uuid, arg))
                    chan.timers.append(loop.call_later(delay, lambda c=chan, a=arg: self.event(
                        "CHANNEL_EXECUTE", c, Application="playback", **{"Application-Data": a})))
                    delay += self.play_time
                elif app == "hangup":
                    chan.timers.append(loop.call_later(delay, self.hangup, chan, arg or "NORMAL_CLEARING"))
        return b"+OK\n"

    # ------------------------------------------------------------ originate
    def _originate(self, conn: Any, arg: str, job: str) -> None:
        argv = fs_separate_string(arg, " ")
        variables, endpoint = fs_parse_brackets(argv[0])
        self.originates.append((variables, endpoint))
        ack = lambda: conn.reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n")  # noqa: E731
        parts = endpoint.split("/")
        ext = parts[1] if len(parts) > 2 and parts[0] == "loopback" else ""
        uuid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        loop = asyncio.get_running_loop()
        if ext and parts[2] == "sandbox-outbound":
            self._lead(conn, job, uuid, ext, variables, ack)
            return
        if not ext:
            # no channel at all (unknown technology): only the job says so
            ack()
            conn.send_event(EslEvent({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job, "Event-Sequence": self._next(),
                                      "Job-Command": "originate"}, "-ERR CHAN_NOT_IMPLEMENTED\n", format="json"))
            return
        chan = Chan(uuid, f"loopback/{ext}-a", variables.get("origination_caller_id_number", ""),
                    variables.get("origination_caller_id_name", ""), ext,
                    vars={k.lower(): v for k, v in variables.items()}, job=(conn, job))
        self.channels[uuid] = chan
        if ext == "2002":
            # busy: the BACKGROUND_JOB overtakes the command/reply, the channel
            # events come last (the order is not guaranteed on the wire)
            chan.gone = True
            self._job(chan, "-ERR USER_BUSY\n")
            ack()
            self.event("CHANNEL_CREATE", chan)
            self.event("CHANNEL_HANGUP_COMPLETE", chan, **{"Hangup-Cause": "USER_BUSY",
                                                          "variable_hangup_cause_q850": "17"})
            return
        ack()
        self.event("CHANNEL_CREATE", chan)
        if ext in ("2003", "2004"):
            cause = "NORMAL_TEMPORARY_FAILURE" if ext == "2003" else "CALL_REJECTED"
            chan.timers.append(loop.call_later(self.answer_delay, self.hangup, chan, cause))
            return
        if ext.startswith("2"):
            self.event("CHANNEL_PROGRESS", chan)
            timeout = float(variables.get("originate_timeout", "60"))
            chan.timers.append(loop.call_later(timeout, self.hangup, chan, "NO_ANSWER"))
            return
        chan.timers.append(loop.call_later(self.answer_delay, self._answer, chan, ext))

    # ---------------------------------------------------------------- leads
    LEADS = {"0": "person", "7": "person", "8": "person", "9": "person", "1": "busy", "2": "no-answer",
             "3": "machine", "4": "greeting-hangup", "5": "congestion", "6": "invalid"}

    def _lead(self, conn: Any, job: str, uuid: str, number: str, variables: dict[str, str], ack: Any) -> None:
        """A campaign's call to a sandbox lead (see the module docstring)."""
        kind = self.LEADS.get(number[-1:], "person")
        chan = Chan(uuid, f"loopback/{number}-a", variables.get("origination_caller_id_number", ""),
                    variables.get("origination_caller_id_name", ""), number,
                    vars={**{k.lower(): v for k, v in variables.items()}, "sandbox_lead": kind}, job=(conn, job))
        self.channels[uuid] = chan
        loop = asyncio.get_running_loop()
        if kind == "busy":
            # as for agent 2002: the job may overtake the reply; USER_BUSY as in esl-outbound-sync
            chan.gone = True
            self._job(chan, "-ERR USER_BUSY\n")
            ack()
            self.event("CHANNEL_CREATE", chan)
            self.event("CHANNEL_HANGUP_COMPLETE", chan, **{"Hangup-Cause": "USER_BUSY",
                                                          "variable_hangup_cause_q850": "17"})
            return
        ack()
        self.event("CHANNEL_CREATE", chan)
        if kind in ("congestion", "invalid"):
            cause = "NORMAL_CIRCUIT_CONGESTION" if kind == "congestion" else "UNALLOCATED_NUMBER"
            chan.timers.append(loop.call_later(self.answer_delay, self.hangup, chan, cause))
            return
        if kind == "no-answer":
            self.event("CHANNEL_PROGRESS", chan)
            timeout = float(variables.get("originate_timeout", "60"))
            chan.timers.append(loop.call_later(timeout, self.hangup, chan, "NO_ANSWER"))
            return
        chan.timers.append(loop.call_later(self.answer_delay, self._lead_answers, chan, kind))

    def _lead_answers(self, chan: Chan, kind: str) -> None:
        if chan.gone:
            return
        chan.answered = True
        self.event("CHANNEL_ANSWER", chan)
        loop = asyncio.get_running_loop()
        chan.timers.append(loop.call_later(self.job_delay, self._job_done, chan))
        stay = self.greeting_hangup if kind == "greeting-hangup" else self.lead_talk
        chan.timers.append(loop.call_later(stay, self._lead_leaves, chan))

    def _lead_leaves(self, chan: Chan) -> None:
        """The lead hangs up, unless it is talking to an agent (then the agent ends it)."""
        if not chan.gone and not chan.bridged:
            self.hangup(chan, "NORMAL_CLEARING")

    def _answer(self, chan: Chan, ext: str) -> None:
        if chan.gone:
            return
        chan.answered = True
        self.event("CHANNEL_ANSWER", chan)
        loop = asyncio.get_running_loop()
        if self.job_delay > 0:
            chan.timers.append(loop.call_later(self.job_delay, self._job_done, chan))
        else:
            self._job_done(chan)
        if ext.startswith("4"):
            loop = asyncio.get_running_loop()
            chan.timers.append(loop.call_later(self.talk_time, self.hangup, chan, "NORMAL_CLEARING"))


    def _job_done(self, chan: Chan) -> None:
        """The originate job of an answered leg ends: +OK, then the leg runs
        its ``&park()`` (esl-bridge-after-originate-job).  A bridge that came
        first already ended the job."""
        if chan.gone or chan.job is None:
            return
        self._job(chan, f"+OK {chan.uuid}\n")
        self.event("CHANNEL_EXECUTE", chan, Application="park")
        self.event("CHANNEL_PARK", chan)


class CustomerSocket(FakeOutboundChannel):
    """The ``socket`` app of one customer's channel, tied to the switch model."""

    def __init__(self, switch: FsSwitch, chan: Chan, port: int) -> None:
        super().__init__(port, caller=chan.cid_num, dnis=chan.dest)
        self.uuid = chan.uuid
        self.switch = switch
        self.chan = chan
        self.released = False

    def _connect_reply(self) -> bytes:
        head = super()._connect_reply()
        # the captured call had no name, and FreeSWITCH leaves empty headers out:
        # put ours right after the number, URL-encoded like the rest
        name = fs_url_encode(self.chan.cid_name).encode()
        head = re.sub(rb"(?m)^Caller-Caller-ID-Name: .*\n", b"", head)
        head = re.sub(rb"(?m)^(Caller-Caller-ID-Number: .*)$",
                      lambda m: m.group(1) + b"\nCaller-Caller-ID-Name: " + name, head, count=1)
        # channel variables set by the dialplan before ``socket`` ride along as
        # variable_<name> (mod_event_socket.c: switch_channel_event_set_data)
        if self.chan.answered:  # the dialplan answered before ``socket``
            head = head.replace(b"Answer-State: ringing", b"Answer-State: answered")
        extra = b"".join(f"variable_{k}: {fs_url_encode(v)}\n".encode() for k, v in self.chan.vars.items())
        return head.rstrip(b"\n") + b"\n" + extra + b"\n"

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await super()._run(reader, writer)
        finally:
            self.released = True  # the channel stays parked in the model

    def _execute(self, h: dict[str, str]) -> bool:
        app, arg = h.get("execute-app-name", ""), h.get("execute-app-arg", "")
        if app == "answer":
            self.chan.answered = True
        elif app == "set":
            name, _, value = arg.partition("=")
            self.chan.vars[name.lower()] = value
        elif app == "multiset":
            for piece in fs_separate_string(arg, " "):
                name, _, value = piece.partition("=")
                self.chan.vars[name.lower()] = value
        elif app == "endless_playback":
            self.chan.vars["cc_moh_playing"] = arg
        return super()._execute(h)
