"""The errors the ACD raises on bad input."""

class AcdError(Exception):
    """Base of the ACD's input errors."""


class UnknownAgent(AcdError, KeyError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)
        self.agent_id = agent_id

    def __str__(self) -> str:
        return f"unknown agent {self.agent_id!r}: not in the ACD configuration"


class UnknownQueue(AcdError, KeyError):
    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.queue = queue

    def __str__(self) -> str:
        return f"unknown queue {self.queue!r}: not in the ACD configuration"


class AgentStateError(AcdError, ValueError):
    """The agent is in no state to do that (e.g. pause while logged out)."""


class DuplicateCall(AcdError, ValueError):
    """A call id or leg id the ACD already tracks."""
