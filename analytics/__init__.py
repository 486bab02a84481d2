"""Strata analytics: detectors and scoring over stored samples and spans."""

from analytics.scorer import AnomalyScorer

__all__ = ["AnomalyScorer"]
