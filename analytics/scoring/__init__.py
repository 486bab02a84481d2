"""Streaming anomaly scoring of one univariate series: :class:`AnomalyScorer`."""

from strata.analytics.scoring.scorer import AnomalyScorer

__all__ = ["AnomalyScorer"]
