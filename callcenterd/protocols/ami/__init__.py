"""Asterisk Manager Interface client: codec (pure), session (I/O), supervisor (reconnect)."""

from callcenterd.protocols.ami.codec import AmiDecoder, Message, encode_action
from callcenterd.protocols.ami.session import AmiActionError, AmiSession
from callcenterd.protocols.ami.supervisor import AmiSupervisor, State

__all__ = ["AmiActionError", "AmiDecoder", "AmiSession", "AmiSupervisor", "Message", "State", "encode_action"]
