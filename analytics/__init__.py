"""Strata analytics: detectors and scoring over stored samples and spans."""

from strata.analytics.scorer import AnomalyScorer

__all__ = ["AnomalyScorer"]
