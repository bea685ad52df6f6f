"""The predictive pacer: model-based look-ahead dialling within the abandonment budget."""

from callcenterd.core.pacer.predictive import PredictivePacer, TalkTracker

__all__ = ["PredictivePacer", "TalkTracker"]
