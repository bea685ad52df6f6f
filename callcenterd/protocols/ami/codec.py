"""Asterisk Manager Interface codec: bytes in, messages out.  No I/O.

Wire format (main/manager.c, Asterisk 22):

* On connect the server writes one banner line, ``Asterisk Call Manager/11.0.0\\r\\n``,
  with *no* blank line after it.
* Every message after that is ``Key: Value\\r\\n`` lines ended by an empty line,
  so frames are split on ``\\r\\n\\r\\n`` *before* anything is decoded: a UTF-8
  character cut in two by a TCP read can never be mangled.
* Keys repeat (``Output:``, ``Variable:``, ``State:``), so a message is an
  ordered list of pairs, never a dict.
* A message is classified by its FIRST line: ``OriginateResponse`` is an event
  that carries a ``Response:`` header.

Parsing is lazy.  During a burst about a third of the events are ``VarSet``
and ``Newexten`` nobody reads; the decoder only cuts the frame and reads its
first line.  The other headers are decoded on first access.

Bad input policy (documented choice):

* A frame whose first line is not ``Key: Value`` is *skipped* and counted in
  :attr:`AmiDecoder.skipped` (the session logs a rate-limited warning).  One
  line of noise must not take the call center down.
* A frame (or banner) bigger than ``max_frame`` raises :class:`ProtocolError`:
  a peer that never sends ``\\r\\n\\r\\n`` must not make us grow without bound.
* Body lines without a colon are dropped and the message is flagged
  :attr:`Message.defective`.
* Bytes that are not UTF-8 (a Latin-1 caller ID name passes through Asterisk
  untouched) are replaced with U+FFFD instead of failing the frame.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

from callcenterd.pbx.api import UnsafeValue, check_safe
from callcenterd.protocols.errors import ProtocolError

__all__ = [
    "BANNER_PREFIX",
    "MAX_FRAME_BYTES",
    "AmiDecoder",
    "Message",
    "encode_action",
    "encode_message",
]

FRAME_END = b"\r\n\r\n"
LINE_END = b"\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"
#: Largest frame we accept.  The biggest real message is a ``Command`` reply
#: (``core show channels`` on a busy box: a few hundred KiB).
MAX_FRAME_BYTES = 4 * 1024 * 1024
#: The banner is one short line; anything longer is not an AMI server.
MAX_BANNER_BYTES = 1024

_EVENT = "Event"
_RESPONSE = "Response"
_MISSING = object()

Headers = Union[Mapping[str, object], Iterable[tuple[str, object]]]


class Message:
    """One AMI message: an ordered list of ``(key, value)`` pairs.

    ``kind`` is the key of the first line (``Event``, ``Response`` or, for the
    client->server direction, ``Action``) and ``name`` its value.
    """

    __slots__ = ("kind", "name", "_raw", "_pairs", "_index", "_lindex", "_defective")

    def __init__(self, kind: str, name: str, raw: bytes | None = None) -> None:
        self.kind = kind
        self.name = name
        self._raw = raw
        self._pairs: list[tuple[str, str]] | None = None
        self._index: dict[str, str] | None = None
        self._lindex: dict[str, str] | None = None
        self._defective = False

    # ----------------------------------------------------------- building
    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> "Message":
        """Build a message from pairs; the first pair gives kind and name."""
        pairs = [(str(k), str(v)) for k, v in pairs]
        if not pairs:
            raise ValueError("a message needs at least one header")
        msg = cls(pairs[0][0], pairs[0][1])
        msg._pairs = pairs
        return msg

    def encode(self) -> bytes:
        """The message on the wire (validated like an action)."""
        return encode_message(self.pairs)

    # ----------------------------------------------------------- parsing
    def _parse(self) -> list[tuple[str, str]]:
        text = self._raw.decode("utf-8", "replace")  # type: ignore[union-attr]
        lines = text.split("\r\n")
        try:
            pairs = [(k, v) for k, v in (line.split(": ", 1) for line in lines)]
        except ValueError:
            pairs = self._parse_slow(lines)
        self._pairs = pairs
        return pairs

    def _parse_slow(self, lines: list[str]) -> list[tuple[str, str]]:
        # manager.c always writes "Key: Value"; be lenient with "Key:" and
        # "Key:Value", and drop lines that have no colon at all.
        pairs = []
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep:
                self._defective = True
                continue
            if value.startswith(" "):
                value = value[1:]
            pairs.append((key, value))
        return pairs

    # ------------------------------------------------------------ access
    @property
    def pairs(self) -> list[tuple[str, str]]:
        """All headers in wire order, the first line included."""
        pairs = self._pairs
        if pairs is None:
            pairs = self._parse()
        return list(pairs)

    @property
    def defective(self) -> bool:
        """True when some body line was not ``Key: Value`` and was dropped."""
        if self._pairs is None:
            self._parse()
        return self._defective

    def get(self, key: str, default: str | None = None) -> str | None:
        """Value of the first header called ``key`` (case-insensitive fallback)."""
        index = self._index
        if index is None:
            pairs = self._pairs if self._pairs is not None else self._parse()
            index = self._index = dict(reversed(pairs))  # first occurrence wins
        value = index.get(key, _MISSING)
        if value is _MISSING:
            lindex = self._lindex
            if lindex is None:
                lindex = self._lindex = {k.lower(): v for k, v in reversed(self._pairs)}  # type: ignore[arg-type]
            value = lindex.get(key.lower(), default)
        return value  # type: ignore[return-value]

    def get_all(self, key: str) -> list[str]:
        """Values of every header called ``key``, in order (case-insensitive)."""
        pairs = self._pairs if self._pairs is not None else self._parse()
        lkey = key.lower()
        return [v for k, v in pairs if k == key or k.lower() == lkey]

    def __getitem__(self, key: str) -> str:
        value = self.get(key, _MISSING)  # type: ignore[arg-type]
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def _fast_header(self, key: bytes, name: str) -> str | None:
        """Read one header without parsing the frame (C-speed find).

        Used for ActionID / EventList, which the session checks on list
        items; manager.c always spells them this way.
        """
        raw = self._raw
        if raw is None or self._pairs is not None:
            return self.get(name)
        start = raw.find(key)
        if start < 0:
            return None
        start += len(key)
        end = raw.find(LINE_END, start)
        value = raw[start:] if end < 0 else raw[start:end]
        return value.decode("utf-8", "replace")

    @property
    def is_event(self) -> bool:
        return self.kind == _EVENT

    @property
    def is_response(self) -> bool:
        return self.kind == _RESPONSE

    @property
    def action_id(self) -> str | None:
        return self._fast_header(b"\r\nActionID: ", "ActionID")

    @property
    def event_list(self) -> str | None:
        """``start`` on a list's response, ``Complete`` on its last event."""
        return self._fast_header(b"\r\nEventList: ", "EventList")

    @property
    def message(self) -> str | None:
        """The human-readable ``Message:`` header of a response."""
        return self.get("Message")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self._pairs if self._pairs is not None else self._parse())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.pairs == other.pairs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._pairs is None:
            return f"<Message {self.kind}: {self.name} (unparsed, {len(self._raw or b'')} bytes)>"
        return f"<Message {self._pairs!r}>"


class AmiDecoder:
    """Incremental decoder: feed it whatever the socket returned.

    ``expect_banner=False`` decodes the client->server direction (fake servers,
    captures of what a client sent).  ``on_skip(frame, reason)`` is called for
    every frame that was skipped as garbage.
    """

    __slots__ = ("banner", "skipped", "scanned", "_buf", "_scan", "_expect_banner", "_max_frame", "_on_skip")

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_frame: int = MAX_FRAME_BYTES,
        on_skip: Callable[[bytes, str], None] | None = None,
    ) -> None:
        self.banner: str | None = None
        self.skipped = 0
        #: Bytes looked at while searching for frame ends, over the decoder's
        #: life: stays within about twice the bytes fed, whatever the chunking.
        self.scanned = 0
        self._buf = bytearray()
        # Leading bytes of _buf already searched: no frame end starts before
        # _scan - 3, so the next search resumes there instead of at 0.  Without
        # it, a 3.9 MB frame read in 1 KiB chunks rescanned (and recopied) the
        # whole buffer on every read: quadratic, 4.8 s of a blocked event loop.
        self._scan = 0
        self._expect_banner = expect_banner
        self._max_frame = max_frame
        self._on_skip = on_skip

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the end of a frame (0 between frames)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """Take more bytes; return the messages they completed."""
        buf = self._buf
        if buf:
            buf += data  # amortised O(len(data)); the held-back bytes are not copied
            src: bytes | bytearray = buf
        else:
            src = data
        base = 0
        if self._expect_banner:
            end = src.find(LINE_END)  # within MAX_BANNER_BYTES: bounded
            if end < 0:
                if len(src) > MAX_BANNER_BYTES:
                    raise ProtocolError(f"no AMI banner in the first {len(src)} bytes")
                self._hold(src, 0, 0)
                return []
            banner = bytes(src[:end]).decode("utf-8", "replace")
            if not banner.startswith(BANNER_PREFIX):
                raise ProtocolError(f"not an AMI server, banner is {banner[:80]!r}")
            self.banner = banner
            self._expect_banner = False
            base = end + 2
        search_from = max(base, self._scan - (len(FRAME_END) - 1))
        last = src.rfind(FRAME_END, search_from)  # only the bytes not searched yet
        self.scanned += len(src) - search_from
        if last < 0:
            if len(src) - base > self._max_frame:
                self._hold(b"", 0, 0)
                raise ProtocolError(f"AMI frame exceeds {self._max_frame} bytes without an end")
            self._hold(src, base, len(src) - base)
            return []
        stop = last + len(FRAME_END)
        region = bytes(src[base:stop])  # complete frames only: split once, never again
        self.scanned += len(region)
        frames = region.split(FRAME_END)
        leftover = frames.pop()  # b"" unless frame ends overlap ("\r\n\r\n\r\n")
        tail_len = len(leftover) + len(src) - stop
        if tail_len > self._max_frame:
            self._hold(b"", 0, 0)
            raise ProtocolError(f"AMI frame exceeds {self._max_frame} bytes without an end")
        # rfind found the last frame end: none starts in what is held back.
        self._buf = bytearray(leftover) + src[stop:] if leftover else bytearray(src[stop:])
        self._scan = tail_len
        if len(region) > self._max_frame:
            for frame in frames:
                if len(frame) > self._max_frame:
                    raise ProtocolError(f"AMI frame of {len(frame)} bytes exceeds {self._max_frame}")
        out = []
        append = out.append
        for frame in frames:
            # Hot path: only the first line is decoded.
            end = frame.find(b"\r\n")
            key, sep, value = (frame if end < 0 else frame[:end]).partition(b": ")
            if key == b"Event":
                append(Message(_EVENT, value.decode("utf-8", "replace"), frame))
            elif key == b"Response":
                append(Message(_RESPONSE, value.decode("utf-8", "replace"), frame))
            else:
                msg = self._odd_frame(frame)
                if msg is not None:
                    append(msg)
        return out

    def _hold(self, src: bytes | bytearray, start: int, scanned: int) -> None:
        """Keep ``src[start:]`` for the next feed; its first ``scanned`` bytes are searched."""
        if src is not self._buf or start:
            self._buf = bytearray(src[start:])
        self._scan = scanned

    def _odd_frame(self, frame: bytes) -> Message | None:
        """A frame that is not an Event or a Response (rare path)."""
        stripped = frame.lstrip(b"\r\n")  # extra blank lines between frames
        if not stripped:
            return None
        end = stripped.find(LINE_END)
        head = stripped if end < 0 else stripped[:end]
        key, sep, value = head.partition(b":")
        if sep and key and _is_token(key):
            if value.startswith(b" "):
                value = value[1:]
            return Message(key.decode("ascii"), value.decode("utf-8", "replace"), stripped)
        self.skipped += 1
        if self._on_skip is not None:
            self._on_skip(frame, "first line is not 'Key: Value'")
        return None


def _is_token(key: bytes) -> bool:
    return key.replace(b"-", b"").replace(b"_", b"").isalnum() and key.isascii()


# ------------------------------------------------------------------ encoding
def _pairs_of(headers: Headers) -> Iterable[tuple[str, object]]:
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _text(value: object, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # AMI's ast_true() spelling
    if isinstance(value, int):
        return str(value)
    return check_safe(value, what)  # type: ignore[arg-type]


def _check_key(key: object) -> str:
    key = check_safe(key, "header name")  # type: ignore[arg-type]
    if not key or not _is_token(key.encode("utf-8")):
        raise UnsafeValue("header name must be letters, digits, '-' or '_'")
    return key


def encode_message(pairs: Iterable[tuple[str, object]]) -> bytes:
    """Encode ``(key, value)`` pairs as one frame.  CR/LF/NUL are refused."""
    parts = []
    for key, value in pairs:
        key = _check_key(key)
        parts.append(f"{key}: {_text(value, f'header {key}')}\r\n")
    if not parts:
        raise ValueError("a message needs at least one header")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_action(name: str, headers: Headers = (), action_id: str | None = None) -> bytes:
    """Encode an action.  ``headers`` may be a mapping or a list of pairs
    (Originate sends one ``Variable:`` line per variable).

    Any key or value holding CR, LF or NUL raises :class:`UnsafeValue` before a
    byte is written: that is how header injection is stopped.
    """
    pairs: list[tuple[str, object]] = [("Action", _check_key(name))]
    if action_id is not None:
        pairs.append(("ActionID", check_safe(action_id, "ActionID")))
    for key, value in _pairs_of(headers):
        lkey = key.lower() if isinstance(key, str) else key
        if lkey == "action" or (lkey == "actionid" and action_id is not None):
            raise ValueError(f"header {key!r} is set by encode_action itself")
        pairs.append((key, value))
    return encode_message(pairs)


def frames_of(messages: Sequence[Message]) -> bytes:
    """Concatenate encoded messages (handy for fakes and tests)."""
    return b"".join(m.encode() for m in messages)
