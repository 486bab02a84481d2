"""Detectors: each turns a read-only event-time window into findings.

- ``requests``: per-minute shifts of busy request groups (latency, errors, tokens, cost,
  throughput).
- ``deploys``: the new version's requests against the old version's, per entity, at any
  traffic.
- ``pooled``: request-by-request shifts of thinly used entities, between deploys.
- ``gpu``: thermal and power throttling, faults, fans (per GPU).
- ``stack``: serving and vector-DB shifts, a table of rules.
- ``outliers``: a multivariate outlier score across layers (info only).

To add one, write a class with ``kind`` and ``detect(window)`` (``strata.analytics.base.
Detector``) or a row of ``stack.STACK_DETECTORS``, and list it in ``DEFAULT_DETECTORS``.
"""

from strata.analytics.base import Detector
from strata.analytics.detectors.deploys import VersionRegressionDetector
from strata.analytics.detectors.gpu import INFRA_DETECTORS
from strata.analytics.detectors.outliers import MultivariateOutlierDetector
from strata.analytics.detectors.pooled import PooledShiftDetector
from strata.analytics.detectors.requests import SPAN_DETECTORS
from strata.analytics.detectors.stack import STACK_DETECTORS

DEFAULT_DETECTORS: tuple[Detector, ...] = (
    *SPAN_DETECTORS, *INFRA_DETECTORS, *STACK_DETECTORS, VersionRegressionDetector(),
    PooledShiftDetector(), MultivariateOutlierDetector(),
)
