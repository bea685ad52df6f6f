"""FreeSWITCH Event Socket (ESL) codec: pure, bytes in, messages out.

Framing (mod_event_socket.c, read_packet / the listener's writes):

* a frame is a block of ``Name: value`` lines ending with ``\\n\\n``;
* when the block has ``Content-Length: N``, exactly N body bytes follow with no
  separator, and the next frame starts right after them;
* events are frames whose Content-Type is ``text/event-plain|json|xml``; the
  event itself is in the body.  A plain event body is again a header block,
  URL-encoded (switch_event_serialize -> switch_url_encode), optionally
  followed by its own ``Content-Length`` and body (BACKGROUND_JOB, sendevent).

The decoder only splits frames and parses the small outer header block; an
event body is decoded lazily the first time it is looked at
(:attr:`EslMessage.event`).  So framing is cheap and a consumer that drops an
event pays nothing for it.

Command encoding is line based (mod_event_socket reads a command up to a blank
line), so CR, LF and NUL in anything we send are refused, never escaped.
The quoting helpers for originate variables and API arguments model
switch_utils.c ``switch_separate_string`` / ``cleanup_separated_string`` and
switch_event.c ``switch_event_create_brackets``; see :func:`esl_quote_var`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Iterable, Mapping
from xml.etree import ElementTree

from callcenterd.pbx.api import UnsafeValue, check_safe
from callcenterd.protocols.errors import ProtocolError

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_HEADER_BYTES",
    "CT_AUTH_REQUEST",
    "CT_COMMAND_REPLY",
    "CT_API_RESPONSE",
    "CT_EVENT_PLAIN",
    "CT_EVENT_JSON",
    "CT_EVENT_XML",
    "CT_DISCONNECT_NOTICE",
    "CT_RUDE_REJECTION",
    "CT_LOG_DATA",
    "EslMessage",
    "EslEvent",
    "EslDecoder",
    "encode_command",
    "encode_sendmsg",
    "encode_frame",
    "encode_event_plain",
    "encode_event_json",
    "fs_url_encode",
    "fs_url_decode",
    "esl_quote_var",
    "esl_quote_arg",
    "esl_originate_vars",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024  # one body; a CHANNEL_DATA with huge vars is ~10 KiB
MAX_HEADER_BYTES = 256 * 1024  # outer header block; the outbound connect reply is ~5 KiB

CT_AUTH_REQUEST = "auth/request"
CT_COMMAND_REPLY = "command/reply"
CT_API_RESPONSE = "api/response"
CT_EVENT_PLAIN = "text/event-plain"
CT_EVENT_JSON = "text/event-json"
CT_EVENT_XML = "text/event-xml"
CT_DISCONNECT_NOTICE = "text/disconnect-notice"
CT_RUDE_REJECTION = "text/rude-rejection"
CT_LOG_DATA = "log/data"

_EVENT_TYPES = frozenset({CT_EVENT_PLAIN, CT_EVENT_JSON, CT_EVENT_XML})
_KNOWN_TYPES = _EVENT_TYPES | {
    CT_AUTH_REQUEST,
    CT_COMMAND_REPLY,
    CT_API_RESPONSE,
    CT_DISCONNECT_NOTICE,
    CT_RUDE_REJECTION,
    CT_LOG_DATA,
}


# ------------------------------------------------------------ URL encoding
def fs_url_decode(value: str) -> str:
    """Decode a plain-event value like switch_url_decode (switch_utils.c).

    Only ``%XX`` is decoded; ``+`` stays a plus (switch_url_encode writes a
    space as ``%20``, and a literal ``+`` as ``%2B``), hence ``unquote`` and
    never ``unquote_plus``.  Decoded bytes are UTF-8.
    """
    return urllib.parse.unquote(value, errors="replace") if "%" in value else value


# switch_utils.c switch_url_encode: the "unsafe" set, plus everything outside
# 0x20..0x7e.  ',', "'", '/', '(', ')', '!' stay literal (as the captures show).
_FS_UNSAFE = set('\r\n #%&+:;<=>?@[\\]^`{|}"')
_FS_ENCODE = {
    b: (f"%{b:02X}" if (b < 0x20 or b > 0x7E or chr(b) in _FS_UNSAFE) else chr(b))
    for b in range(256)
}


def fs_url_encode(value: str) -> str:
    """Encode like switch_url_encode, minus one quirk: FreeSWITCH leaves an
    existing ``%XX`` with uppercase hex digits alone (so its encoding is
    lossy); we always encode ``%`` so that decode(encode(v)) == v."""
    if value.isascii() and value.isalnum():
        return value
    return "".join(_FS_ENCODE[b] for b in value.encode("utf-8"))


_ENCODED_EOL = re.compile(rb"%0[aAdD]")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() and int() take '²', '١٢'


def _content_length(value: str, what: str) -> int:
    """A Content-Length as FreeSWITCH writes it (``%d``, ASCII digits), else ProtocolError."""
    if not _CONTENT_LENGTH.fullmatch(value):
        raise ProtocolError(f"bad {what} {value[:20]!r}")
    return int(value)


# ----------------------------------------------------------------- messages
class EslEvent:
    """One FreeSWITCH event, whatever its wire encoding.

    ``headers`` is an ordered dict (wire order).  FreeSWITCH can repeat a
    header (the captures repeat Channel-Write-Codec-Name); the last value
    wins, as json.loads does for the JSON encoding.  The event body (BACKGROUND_JOB
    result, sendevent body) is :attr:`body`, not a header.
    """

    __slots__ = ("headers", "body", "format")

    def __init__(self, headers: dict[str, str], body: str = "", format: str = "plain") -> None:
        self.headers = headers
        self.body = body
        self.format = format

    # Parsing ---------------------------------------------------------------
    @classmethod
    def from_plain(cls, raw: bytes) -> "EslEvent":
        """``Name: url-encoded-value`` lines, blank line, optional body."""
        end = raw.find(b"\n\n")
        head = raw if end < 0 else raw[:end]
        headers: dict[str, str] = {}
        # Fast path: switch_url_encode turns every CR/LF inside a value into
        # %0D/%0A, so when the block holds none of them, decoding the whole
        # block at once cannot create a new line; the first ": " of a line is
        # still the separator (header names carry no ':').
        whole = not _ENCODED_EOL.search(head)
        text = head.decode("utf-8", "replace")
        if whole and "%" in text:
            text = urllib.parse.unquote(text, errors="replace")
        for line in text.split("\n"):
            if not line:
                continue
            name, sep, value = line.partition(": ")
            if not sep:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ProtocolError(f"malformed line in plain event: {line[:60]!r}")
            if not whole and "%" in value:
                value = urllib.parse.unquote(value, errors="replace")
            headers[name] = value
        body = ""
        if end >= 0:
            rest = raw[end + 2 :]
            clen = headers.get("Content-Length")
            if clen is not None:
                rest = rest[: _content_length(clen, "inner Content-Length")]
            body = rest.decode("utf-8", "replace")
        return cls(headers, body, "plain")

    @classmethod
    def from_json(cls, raw: bytes) -> "EslEvent":
        """One JSON object of strings (not URL-encoded); the body is ``_body``."""
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ProtocolError("JSON event is not an object")
            body = obj.pop("_body", "")
            for k, v in obj.items():
                if not isinstance(v, str):
                    # multi-valued headers come as lists; keep FreeSWITCH's plain form
                    obj[k] = "ARRAY::" + "|:".join(map(str, v)) if isinstance(v, list) else str(v)
            body = body if isinstance(body, str) else str(body)
        except ValueError as exc:
            raise ProtocolError(f"bad JSON event: {exc}") from None
        except RecursionError:
            # json.loads recurses per nesting level: "[[[[..." from a peer must
            # not escape the codec as anything but a ProtocolError.
            raise ProtocolError("bad JSON event: nested too deeply") from None
        return cls(obj, body, "json")

    @classmethod
    def from_xml(cls, raw: bytes) -> "EslEvent":
        """``<event><headers>..</headers><Content-Length/><body/></event>``;
        values URL-encoded like plain."""
        try:
            root = ElementTree.fromstring(raw)
        except ElementTree.ParseError as exc:
            raise ProtocolError(f"bad XML event: {exc}") from None
        headers: dict[str, str] = {}
        node = root.find("headers")
        for child in node if node is not None else ():
            headers[child.tag] = fs_url_decode(child.text or "")
        body = ""
        body_node = root.find("body")
        if body_node is not None and body_node.text is not None:
            body = body_node.text
            clen = root.findtext("Content-Length")
            if clen:
                body = body.encode("utf-8")[: _content_length(clen, "XML Content-Length")].decode("utf-8", "replace")
            headers["Content-Length"] = clen or str(len(body.encode()))
        return cls(headers, body, "xml")

    # Access ----------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def __contains__(self, name: object) -> bool:
        return name in self.headers

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str:
        return self.headers.get("Event-Subclass", "")

    @property
    def uuid(self) -> str:
        return self.headers.get("Unique-ID", "")

    @property
    def job_uuid(self) -> str:
        return self.headers.get("Job-UUID", "")

    @property
    def sequence(self) -> int | None:
        seq = self.headers.get("Event-Sequence")
        return int(seq) if seq is not None and seq.isdigit() else None

    def variable(self, name: str, default: str | None = None) -> str | None:
        """A channel variable carried by a channel event (``variable_<name>``)."""
        return self.headers.get("variable_" + name, default)

    def __repr__(self) -> str:
        sub = f" {self.subclass}" if self.subclass else ""
        return f"<EslEvent {self.name}{sub} seq={self.sequence} uuid={self.uuid or '-'}>"


class EslMessage:
    """One top-level ESL frame: the outer headers (raw, not URL-decoded) and
    the body bytes.  ``event`` decodes an event body on first access."""

    __slots__ = ("headers", "body", "_event")

    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._event: EslEvent | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")

    @property
    def ok(self) -> bool:
        """command/reply: ``+OK...``; api/response: the body does not start with ``-ERR``."""
        if self.content_type == CT_API_RESPONSE:
            return not self.body.startswith(b"-ERR")
        return self.reply_text.startswith("+OK")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_event(self) -> bool:
        return self.headers.get("Content-Type") in _EVENT_TYPES

    @property
    def event(self) -> EslEvent | None:
        if self._event is None:
            ct = self.headers.get("Content-Type")
            if ct == CT_EVENT_JSON:
                self._event = EslEvent.from_json(self.body)
            elif ct == CT_EVENT_PLAIN:
                self._event = EslEvent.from_plain(self.body)
            elif ct == CT_EVENT_XML:
                self._event = EslEvent.from_xml(self.body)
        return self._event

    def decoded_headers(self) -> dict[str, str]:
        """Outer headers URL-decoded: the outbound ``connect`` reply is a
        serialized CHANNEL_DATA event (``Reply-Text: %2BOK%0A``)."""
        return {k: fs_url_decode(v) for k, v in self.headers.items()}

    def __repr__(self) -> str:
        extra = f" {self.reply_text!r}" if "Reply-Text" in self.headers else ""
        return f"<EslMessage {self.content_type}{extra} body={len(self.body)}B>"


# ------------------------------------------------------------------ decoder
class EslDecoder:
    """Incremental frame splitter.  ``feed()`` any chunking of the stream.

    After a :class:`ProtocolError` the stream position is unknown; the decoder
    stays failed and the connection must be dropped.
    """

    __slots__ = ("_buf", "_pending", "_max_frame", "_max_header", "_failed")

    def __init__(self, max_frame: int = MAX_FRAME_BYTES, max_header: int = MAX_HEADER_BYTES) -> None:
        self._buf = bytearray()
        self._pending: tuple[dict[str, str], int] | None = None  # headers awaiting body
        self._max_frame = max_frame
        self._max_header = max_header
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[EslMessage]:
        if self._failed:
            raise ProtocolError("decoder already failed; drop the connection")
        buf = self._buf
        buf += data
        out: list[EslMessage] = []
        pos = 0
        n = len(buf)
        try:
            while True:
                if self._pending is not None:
                    headers, need = self._pending
                    if n - pos < need:
                        break
                    out.append(EslMessage(headers, bytes(buf[pos : pos + need])))
                    pos += need
                    self._pending = None
                    continue
                # Blank lines between frames are tolerated (a peer or proxy that
                # ends a frame with an extra LF); skip them before the headers.
                while pos < n and buf[pos] == 0x0A:
                    pos += 1
                end = buf.find(b"\n\n", pos)
                if end < 0:
                    if n - pos > self._max_header:
                        raise ProtocolError(f"header block over {self._max_header} bytes")
                    break
                if end - pos > self._max_header:
                    raise ProtocolError(f"header block over {self._max_header} bytes")
                headers = self._parse_headers(bytes(buf[pos:end]))
                pos = end + 2
                clen = headers.get("Content-Length")
                if clen is None:
                    out.append(EslMessage(headers))
                    continue
                need = _content_length(clen, "Content-Length")
                if need > self._max_frame:
                    raise ProtocolError(f"frame body of {need} bytes over the {self._max_frame} limit")
                if need == 0:
                    out.append(EslMessage(headers))
                else:
                    self._pending = (headers, need)
        except ProtocolError:
            self._failed = True
            raise
        finally:
            if pos:
                del buf[:pos]
        return out

    @staticmethod
    def _parse_headers(block: bytes) -> dict[str, str]:
        headers: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").split("\n"):
            name, sep, value = line.partition(": ")
            if not sep:
                name, sep, value = line.partition(":")
            if not sep or not name or not name.isprintable():
                raise ProtocolError(f"malformed ESL header line {line[:60]!r}")
            headers[name] = value
        ct = headers.get("Content-Type")
        if ct is None:
            raise ProtocolError("ESL frame without Content-Type")
        return headers


# ----------------------------------------------------------------- encoding
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")


def _line(value: str, what: str) -> str:
    check_safe(value, what)
    return value


def encode_frame(headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """Low-level frame writer (used by the fakes): header lines, blank line, body."""
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    return (head + "\n").encode("utf-8") + body


def encode_command(
    command: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: str | bytes = b"",
) -> bytes:
    """One ESL command: the command line, optional header lines, a blank line
    and an optional body (announced with Content-Length).

    CR, LF and NUL in the command or in any header are refused
    (:class:`UnsafeValue`): mod_event_socket reads commands line by line up to
    a blank line, so a newline would end our command and start another one.
    """
    _line(command, "ESL command")
    if not command.strip():
        raise UnsafeValue("empty ESL command")
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines = [command]
    for name, value in items:
        _line(name, "ESL header name")
        _line(value, f"ESL header {name}")
        if not _HEADER_NAME.match(name):
            raise UnsafeValue(f"bad ESL header name {name[:40]!r}")
        if name.lower() == "content-length":
            raise UnsafeValue("Content-Length is computed from the body")
        lines.append(f"{name}: {value}")
    raw_body = body.encode("utf-8") if isinstance(body, str) else body
    if raw_body:
        lines.append(f"Content-Length: {len(raw_body)}")
    return ("\n".join(lines) + "\n\n").encode("utf-8") + raw_body


def encode_sendmsg(
    uuid: str,
    call_command: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> bytes:
    """``sendmsg [<uuid>]`` with ``call-command`` (execute, hangup, ...).

    An empty uuid addresses the outbound socket's own channel.  Header values
    are sent raw: switch_ivr_parse_event reads execute-app-arg verbatim.
    """
    if uuid:
        _line(uuid, "channel uuid")
        if " " in uuid:
            raise UnsafeValue("channel uuid contains a space")
    items = list(headers.items() if isinstance(headers, Mapping) else headers)
    return encode_command(f"sendmsg {uuid}".rstrip(), [("call-command", call_command), *items])


def encode_event_plain(headers: Mapping[str, str], body: str = "") -> bytes:
    """Serialize an event like switch_event_serialize (text/event-plain body)."""
    out = "".join(f"{k}: {fs_url_encode(v)}\n" for k, v in headers.items() if k != "Content-Length")
    raw_body = body.encode("utf-8")
    if raw_body:
        return (out + f"Content-Length: {len(raw_body)}\n\n").encode("utf-8") + raw_body
    return (out + "\n").encode("utf-8")


def encode_event_json(headers: Mapping[str, str], body: str = "") -> bytes:
    """Serialize an event like switch_event_serialize_json (text/event-json body)."""
    obj = {k: v for k, v in headers.items() if k != "Content-Length"}
    if body:
        obj["Content-Length"] = str(len(body.encode("utf-8")))
        obj["_body"] = body
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------ quoting
# switch_utils.c, switch_separate_string() and its helpers:
#   * separate_string_char_delim / separate_string_blank_delim split on the
#     delimiter outside single quotes; a backslash (ESCAPE_META) skips the next
#     character;
#   * cleanup_separated_string() then, on every piece: skips leading blanks,
#     removes paired single quotes, turns \' \" \\ \<delim> into the bare
#     character (and \n \r \t \s into newline/CR/tab/space), and trims trailing
#     blanks that are outside quotes.
#   * a buffer that starts with "^^X" uses X as delimiter instead
#     (the ``{^^:a=1:b=2}`` syntax).
# switch_event.c switch_event_create_brackets() (used by switch_ivr_originate.c
# for {..}, [..] and <..>) finds the closing bracket with switch_find_end_paren
# (counts nesting, IGNORES quotes), splits the inside with
# switch_separate_string(',') and then each piece with switch_separate_string('=')
# (at most 2 parts).  So a value in ``{k=v}`` goes through TWO cleanups, and
# inside an ``originate`` API argument (mod_commands.c splits its arguments with
# switch_separate_string(' ')) through a THIRD one.
#
# One quoting level is: wrap in single quotes, backslash-escape '\' and "'".
# Inside quotes a ',', '=', ' ' or '^^' is plain text; the escaped quote is
# never taken as a quote.  Brackets cannot be escaped (find_end_paren ignores
# quotes and backslashes), so unbalanced ones are refused.

_PLAIN_VAR = re.compile(r"[A-Za-z0-9_.@:/+\-#*]*\Z")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_BRACKETS = (("{", "}"), ("[", "]"), ("<", ">"))


def _quote_once(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_balanced(value: str) -> None:
    for open_, close in _BRACKETS:
        depth = 0
        for ch in value:
            if ch == open_:
                depth += 1
            elif ch == close:
                depth -= 1
                if depth < 0:
                    break
        if depth != 0:
            raise UnsafeValue(
                f"value has unbalanced {open_}{close}: FreeSWITCH's switch_find_end_paren "
                "cannot be told to ignore them"
            )


def esl_quote_var(value: str) -> str:
    """Quote one channel-variable value for ``{name=<value>}`` / ``[..]``.

    The result survives switch_event_create_brackets (two cleanup passes, see
    above) as exactly ``value``.  Refused (:class:`UnsafeValue`): CR/LF/NUL,
    unbalanced ``{} [] <>``, and ``${`` (channel-variable expansion can call
    an API: ``${system(...)}``).  Values made only of ``[A-Za-z0-9_.@:/+-#*]``
    are sent as they are.
    """
    check_safe(value, "channel variable value")
    if "${" in value:
        raise UnsafeValue("channel variable value contains '${' (variable/API expansion)")
    _check_balanced(value)
    if value and _PLAIN_VAR.match(value):
        return value
    return _quote_once(_quote_once(value))


def esl_quote_arg(text: str) -> str:
    """Quote one argument of an API/app that splits its arguments on blanks
    (switch_separate_string(' '): ``originate``, ``callcenter_config``,
    ``uuid_setvar``, ``play_and_get_digits``...).  Plain text is unchanged;
    anything with a blank, quote, backslash or nothing at all is quoted once.
    """
    check_safe(text, "API argument")
    if text and not any(c in text for c in " '\"\\\t"):
        return text
    return _quote_once(text)


def esl_originate_vars(variables: Mapping[str, str]) -> str:
    """``{k=v,k2=v2}`` for the front of an originate/bridge dial string.

    Names must look like channel variable names; values go through
    :func:`esl_quote_var`.  Returns ``""`` when there is nothing to set.
    """
    parts = []
    for name, value in variables.items():
        check_safe(name, "channel variable name")
        if not _VAR_NAME.match(name):
            raise UnsafeValue(f"bad channel variable name {name[:40]!r}")
        parts.append(f"{name}={esl_quote_var(value)}")
    return "{" + ",".join(parts) + "}" if parts else ""
