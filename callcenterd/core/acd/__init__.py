"""ACD: automatic call distribution, pure and clock-driven (see engine.Acd)."""

from callcenterd.core.acd.agents import AgentState
from callcenterd.core.acd.engine import (
    Acd,
    AcdError,
    AgentStateError,
    DuplicateCall,
    UnknownAgent,
    UnknownQueue,
)
from callcenterd.core.acd.specs import AgentSpec, ConfigError, QueueSpec, Strategy

__all__ = [
    "Acd",
    "AcdError",
    "AgentSpec",
    "AgentState",
    "AgentStateError",
    "ConfigError",
    "DuplicateCall",
    "QueueSpec",
    "Strategy",
    "UnknownAgent",
    "UnknownQueue",
]
