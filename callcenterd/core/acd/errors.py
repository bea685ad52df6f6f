"""The errors the ACD raises on bad input."""

class AcdError(Exception):
    """Base of the ACD's input errors."""


# The unknown-agent and unknown-queue errors are KeyErrors, and a KeyError's
# first argument is what handlers show (the HTTP API's 404 body): it is the
# whole sentence, not the bare id.
class UnknownAgent(AcdError, KeyError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"unknown agent {agent_id!r}: not in the ACD configuration")
        self.agent_id = agent_id

    def __str__(self) -> str:  # KeyError's own would print the sentence in quotes
        return str(self.args[0])


class UnknownQueue(AcdError, KeyError):
    def __init__(self, queue: str) -> None:
        super().__init__(f"unknown queue {queue!r}: not in the ACD configuration")
        self.queue = queue

    def __str__(self) -> str:
        return str(self.args[0])


class AgentStateError(AcdError, ValueError):
    """The agent is in no state to do that (e.g. pause while logged out)."""


class DuplicateCall(AcdError, ValueError):
    """A call id or leg id the ACD already tracks."""
