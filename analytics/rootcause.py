"""Root cause: which layer and signal moved first, and by how much.

Candidates are the findings of one incident plus the deployments that significantly moved
the affected service (``kind == "deployment"`` findings from
``strata.analytics.changes``). A deployment at or before the first anomaly wins: the change
came first. Otherwise the finding that started first wins; starts within ``tolerance_ns`` of
the first count as simultaneous and are ordered by depth in the stack (infrastructure before
data, serving, model, orchestration: lower layers drive higher ones), then by how causal the
signal is within its layer (a stopped fan drives temperature, which drives throttling;
tokens drive cost and latency), then by the size of the move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from strata.agent.model import Finding, SuspectedCause
from strata.analytics.changes import Change

LAYER_DEPTH = {"infrastructure": 0, "data": 1, "serving": 2, "model": 3, "orchestration": 4}
SIGNAL_PRIORITY = {
    "gpu.xid": 0, "gpu.ecc.uncorrected": 0, "gpu.fan.speed": 0, "gpu.temperature": 1,
    "gpu.throttle.power": 1, "gpu.throttle.thermal": 2,
    "vectordb.segments": 0, "vectordb.query.latency": 1,
    "serving.kv_cache.usage": 0, "serving.requests.waiting": 1, "serving.ttft": 2,
    "tokens.output_per_request": 0, "tokens.input_per_request": 0, "cost_per_request": 1,
    "error_rate": 2, "latency.p50": 3, "latency.p95": 3, "throughput": 4,
}


def magnitude(f: Finding) -> float:
    """How far the signal moved: current/baseline (or its inverse for drops), >= 1."""
    hi, lo = max(f.current, f.baseline), min(f.current, f.baseline)
    if lo <= 0:
        return math.inf if hi > 0 else 1.0
    return hi / lo


def rank_causes(findings: Sequence[Finding], *, tolerance_ns: int) -> list[Finding]:
    """*findings* ordered from most to least likely cause (deployments first when they
    precede the first anomaly)."""
    anomalies = [f for f in findings if f.kind != "deployment"]
    if not anomalies:
        return []
    first = min(f.started_at_ns for f in anomalies)
    deploys = sorted(
        (f for f in findings if f.kind == "deployment" and f.started_at_ns <= first + tolerance_ns),
        key=lambda f: (-f.started_at_ns, f.key),
    )

    def order(f: Finding) -> tuple[int, int, int, float, int, str]:
        late = 0 if f.started_at_ns <= first + tolerance_ns else 1
        return (late, LAYER_DEPTH.get(str(f.layer), 9), SIGNAL_PRIORITY.get(f.signal, 5),
                -magnitude(f), f.started_at_ns, f.key)

    return [*deploys, *sorted(anomalies, key=order)]


def describe_cause(cause: Finding, change: Change | None) -> SuspectedCause:
    """The DESIGN.md ``suspected_cause`` for the top-ranked candidate."""
    if cause.kind == "deployment":
        what = change.describe() if change is not None else cause.service or "a deployment"
        return SuspectedCause(layer=str(cause.layer), signal=cause.signal,
                              detail=f"{what}: {cause.summary.split(': ', 1)[-1]}")
    return SuspectedCause(layer=str(cause.layer), signal=cause.signal,
                          detail=f"moved first: {cause.summary}")


def change_of(cause: Finding, changes: Sequence[Change]) -> Change | None:
    """The deployment behind a ``deployment`` finding."""
    for change in changes:
        if change.service == cause.service and change.time_ns == cause.started_at_ns:
            return change
    return None
