"""FastAGI: Asterisk connects to us once per call (``AGI(agi://...)``)."""

from callcenterd.protocols.agi.codec import AgiReply
from callcenterd.protocols.agi.server import (
    AgiCommandError,
    AgiCommandFailed,
    AgiError,
    AgiHangup,
    AgiSession,
    FastAgiServer,
)

__all__ = [
    "AgiCommandError",
    "AgiCommandFailed",
    "AgiError",
    "AgiHangup",
    "AgiReply",
    "AgiSession",
    "FastAgiServer",
]
