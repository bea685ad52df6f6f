"""FastAGI codec: pure parsing and building of AGI lines, no I/O.

Wire format (Asterisk res_agi.c, checked against the Asterisk 22 captures in
``fixtures/asterisk-22/fastagi-*.txt``):

* Asterisk opens with an environment block: ``agi_<key>: <value>\\n`` lines
  ended by an empty line.  Values may be empty (``agi_accountcode: ``) and
  may contain spaces (``agi_arg_1: first arg``).
* Then the AGI server sends one command per line and Asterisk answers each
  one.  Every line ends with a bare ``\\n``.
* Replies: ``200 result=<n>[ (data)][ endpos=<n>]``, ``510 ...``, ``511 ...``
  and a multi-line usage error ``520-...`` ... ``520 End of proper usage.``.
* ``HANGUP`` is an unsolicited line Asterisk writes once the channel is gone
  (run_agi() ``needhup``); it can come before any reply, or while idle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callcenterd.pbx.api import UnsafeValue, check_safe
from callcenterd.protocols.errors import ProtocolError

__all__ = [
    "AgiReply",
    "HANGUP_LINE",
    "MAX_COMMAND_BYTES",
    "ReplyDecoder",
    "build_command",
    "parse_env_line",
    "parse_reply_line",
    "quote",
    "split_args",
]

# res_agi.c: ``#define AGI_BUF_LEN 2048`` is the buffer a command line is read
# into (with its NUL).  A longer line is not one command any more.
MAX_COMMAND_BYTES = 2047

HANGUP_LINE = "HANGUP"

# Codes Asterisk uses (res_agi.c agi_handle_command()).
CODE_SUCCESS = 200
CODE_INVALID = 510  # "Invalid or unknown command"
CODE_DEAD = 511  # "Command Not Permitted on a dead channel or intercept routine"
CODE_USAGE = 520  # multi-line "Invalid command syntax.  Proper usage follows:"

_ENV_KEY = re.compile(r"agi_[A-Za-z0-9_]+\Z")
_CODE_LINE = re.compile(r"(\d{3})([ -])(.*)\Z", re.S)
# ``result=`` may be empty: GET DATA answers ``200 result= (timeout)`` when the
# caller pressed nothing (res_agi.c handle_getdata()).  Data may hold
# parentheses, so it runs to the last ")".  SPEECH RECOGNIZE appends more
# fields after endpos (``results=1 0: score=...``): they stay in ``text``.
_SUCCESS_BODY = re.compile(
    r"result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?: endpos=(?P<endpos>-?\d+))?(?: .*)?\Z", re.S
)
_INT = re.compile(r"-?\d+\Z")


# ------------------------------------------------------------- environment
def _decode(line: bytes) -> str:
    # Caller names are whatever the trunk sent; never fail on their encoding.
    return line.decode("utf-8", errors="replace")


def parse_env_line(line: bytes) -> tuple[str, str] | None:
    """Parse one environment line (with or without its ``\\n``).

    Returns ``(key, value)``, or ``None`` for the empty line that ends the
    block.  Anything that is not ``agi_<key>: <value>`` is a ProtocolError.
    """
    text = _decode(line.rstrip(b"\n"))
    if text == "":
        return None
    key, sep, value = text.partition(":")
    if not sep or not _ENV_KEY.match(key):
        raise ProtocolError(f"not an agi_ environment line: {text[:60]!r}")
    # setup_env() writes "%s: %s\n": drop exactly that one space.
    if value.startswith(" "):
        value = value[1:]
    return key, value


# ------------------------------------------------------------------ replies
@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply from Asterisk.

    ``result`` is the integer after ``result=`` when it is one, else None.
    ``raw_result`` keeps the text as sent: GET DATA digits (``0123``, ``12*``)
    must not go through int().  ``text`` is everything after the code (for
    520 the whole usage block, lines joined with ``\\n``).
    """

    code: int
    result: int | None = None
    data: str | None = None
    endpos: int | None = None
    text: str = ""
    raw_result: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == CODE_SUCCESS


def parse_reply_line(line: str) -> AgiReply:
    """Parse a single-line reply (``200 ...``, ``510 ...``, ``511 ...``)."""
    m = _CODE_LINE.match(line)
    if not m or m.group(2) != " ":
        raise ProtocolError(f"not an AGI reply line: {line[:60]!r}")
    code, text = int(m.group(1)), m.group(3)
    if code != CODE_SUCCESS:
        return AgiReply(code=code, text=text)
    body = _SUCCESS_BODY.match(text)
    if not body:
        raise ProtocolError(f"malformed 200 reply: {line[:60]!r}")
    raw = body.group("result")
    endpos = body.group("endpos")
    return AgiReply(
        code=code,
        result=int(raw) if _INT.match(raw) else None,
        data=body.group("data"),
        endpos=int(endpos) if endpos is not None else None,
        text=text,
        raw_result=raw,
    )


class ReplyDecoder:
    """Turn reply lines into :class:`AgiReply` objects and HANGUP markers.

    Stateful only for the 520 usage block, whose continuation lines are free
    text (they contain XML-ish tags and can start with anything).
    """

    def __init__(self, max_block_bytes: int = 65536) -> None:
        self._usage: list[str] | None = None
        self._usage_bytes = 0
        self._max_block = max_block_bytes

    @property
    def in_block(self) -> bool:
        return self._usage is not None

    def feed(self, line: bytes) -> AgiReply | str | None:
        """Feed one line; return an AgiReply, ``HANGUP_LINE``, or None (need more)."""
        text = _decode(line.rstrip(b"\n"))
        if self._usage is not None:
            self._usage_bytes += len(line)
            if self._usage_bytes > self._max_block:
                raise ProtocolError("520 usage block too long")
            if text.startswith(f"{CODE_USAGE} "):
                self._usage.append(text[4:])
                block, self._usage = "\n".join(self._usage), None
                return AgiReply(code=CODE_USAGE, text=block)
            self._usage.append(text)
            return None
        if text == HANGUP_LINE:
            return HANGUP_LINE
        if text.startswith(f"{CODE_USAGE}-"):
            self._usage, self._usage_bytes = [text[4:]], len(line)
            return None
        return parse_reply_line(text)


# ----------------------------------------------------------------- commands
class quote(str):
    """An argument always sent in double quotes (free text, escape digits)."""


_NEEDS_QUOTES = (" ", "\t", '"', "\\")


def _encode_arg(arg: str | int) -> str:
    if isinstance(arg, bool):
        raise TypeError("AGI argument must be str or int, not bool")
    if isinstance(arg, int):
        return str(arg)
    check_safe(arg, "AGI argument")
    if isinstance(arg, quote) or arg == "" or any(c in arg for c in _NEEDS_QUOTES):
        # res_agi.c parse_args(): '"' toggles grouping, '\\' makes the next
        # character literal (including '"' and '\\').  Nothing else is special.
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def build_command(verb: str, *args: str | int) -> bytes:
    """Build one command line: ``VERB arg...\\n``.

    ``verb`` is trusted text (``GET VARIABLE``).  Plain str arguments are sent
    bare when safe, :class:`quote` arguments always quoted.  CR/LF/NUL are
    refused with UnsafeValue: they would start a second AGI command.
    """
    check_safe(verb, "AGI command")
    line = " ".join([verb, *(_encode_arg(a) for a in args)]) + "\n"
    data = line.encode("utf-8")
    if len(data) > MAX_COMMAND_BYTES:
        raise UnsafeValue(
            f"AGI command is {len(data)} bytes, Asterisk reads at most "
            f"{MAX_COMMAND_BYTES} (res_agi.c AGI_BUF_LEN)"
        )
    return data


def split_args(line: str) -> list[str]:
    """Split a command line exactly as Asterisk does (res_agi.c parse_args()).

    The inverse of :func:`build_command`; used by the fake Asterisk and the
    tests.  Quirk kept from C: a quote in the middle of a word toggles
    grouping without starting a new argument, and ``""`` is an empty argument.
    """
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line.rstrip("\n"):
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                argv.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                argv[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            argv.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        argv[-1] = "".join(cur)
    return argv
