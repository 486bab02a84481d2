"""Strata analytics: detectors and scoring over stored samples and spans."""

from strata.analytics.scoring import AnomalyScorer

__all__ = ["AnomalyScorer"]
