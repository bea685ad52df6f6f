"""Journeys: one record per call, folded from the ACD's facts."""

from callcenterd.core.journeys.builder import JourneyBuilder
from callcenterd.core.journeys.record import AgentAttempt, Journey, QueueSegment

__all__ = ["AgentAttempt", "Journey", "JourneyBuilder", "QueueSegment"]
