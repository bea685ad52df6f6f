"""Errors shared by every protocol client (AMI, FastAGI, ESL)."""


class ProtocolError(Exception):
    """The peer sent bytes we cannot make sense of, or broke the protocol."""


class ConnectionLost(Exception):
    """The connection dropped before the request got its answer.

    Pending requests fail with this; they are never re-sent by themselves.
    """


class Timeout(Exception):
    """The peer did not answer within the request's deadline."""


class LoginFailed(Exception):
    """The peer refused our credentials (wrong secret, ACL...).

    Never carries the secret in its message.
    """
