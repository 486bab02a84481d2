"""Findings -> Incidents: grouping, deterministic ids, kind, root cause, suggestion, timeline.

Related findings become one incident (no alert storms): findings on the same service, on the
same host, or on a service and a host it depends on (its GPU host, vector DB, serving engine),
that start within ``group_gap_ns`` of each other or while the other is still active (or
within ``REJOIN_NS`` of its recovery). ``info`` findings (deployment impact,
multivariate outliers) join incidents but never open one.

The id is a hash of the incident's *anchor*, its earliest-detected finding. Detection is
causal on event time, so the anchor is the same whether a day is analysed at once or minute
by minute as it arrives: the same incidents, with the same ids, either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from strata.agent.model import Evidence, Finding, Incident, IncidentEvent
from strata.agent.units import HOUR_NS, MINUTE_NS
from strata.analytics.base import SEVERITY_ORDER
from strata.analytics.changes import Change
from strata.analytics.rootcause import change_of, describe_cause, rank_causes
from strata.analytics.suggest import suggest

GROUP_GAP_NS = 30 * MINUTE_NS
REJOIN_NS = 15 * MINUTE_NS  # a relapse this soon after recovery is the same incident
MAX_SPAN_NS = 6 * HOUR_NS  # findings further apart are never grouped
LATENCY_BEYOND_TOKENS = 1.2
HOST_KINDS = ("gpu_fault", "gpu_fan_failure", "gpu_thermal", "gpu_power_throttle",
              "vectordb_degradation", "serving_saturation")
_HOST_LAYERS = {"gpu_fault": "infrastructure", "gpu_fan_failure": "infrastructure",
                "gpu_thermal": "infrastructure", "gpu_power_throttle": "infrastructure",
                "vectordb_degradation": "data", "serving_saturation": "serving"}


@dataclass(frozen=True, slots=True)
class IncidentDraft:
    """An incident as the data shows it, before it meets the stored state (status, acks)."""

    incident: Incident
    findings: tuple[Finding, ...]
    ended_at_ns: int | None  # every anomaly has recovered by then


def incident_id(anchor: Finding) -> str:
    """Deterministic id from the anchor finding (kind, entity, signal, start)."""
    text = f"{anchor.kind}|{anchor.key}|{anchor.signal}|{anchor.started_at_ns}"
    return "inc-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _related(a: Finding, b: Finding, deps: Mapping[str, frozenset[str]]) -> bool:
    if a.service is not None and b.service is not None:
        return a.service == b.service
    if a.service is None and b.service is None:
        return a.host is not None and a.host == b.host
    span, host = (a, b) if a.service is not None else (b, a)
    return host.host is not None and host.host in deps.get(span.service or "", frozenset())


def group_findings(
    findings: Sequence[Finding], dependencies: Mapping[str, frozenset[str]],
    *, gap_ns: int = GROUP_GAP_NS,
) -> list[list[Finding]]:
    """Connected groups of related findings close in time, in a deterministic order."""
    items = sorted(findings, key=lambda f: (f.started_at_ns, f.key, f.signal, f.kind))
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(items):
        # a finding stays open to joiners until it recovers (then for a short grace)
        end = a.started_at_ns + MAX_SPAN_NS if a.ended_at_ns is None else a.ended_at_ns
        reach = max(a.started_at_ns + gap_ns, end + REJOIN_NS)
        for j in range(i + 1, len(items)):
            b = items[j]
            if b.started_at_ns - a.started_at_ns > MAX_SPAN_NS:
                break
            if b.started_at_ns <= reach and _related(a, b, dependencies):
                parent[root(j)] = root(i)
    groups: dict[int, list[Finding]] = {}
    for i, f in enumerate(items):
        groups.setdefault(root(i), []).append(f)
    return list(groups.values())


def incident_kind(anomalies: Sequence[Finding], cause: Finding | None) -> str:
    """The incident kind: the lowest layer's kind, then errors, cost/tokens, latency."""
    kinds = {f.kind for f in anomalies}
    for kind in HOST_KINDS:
        if kind in kinds:
            return kind
    if "error_spike" in kinds:
        return "error_spike"
    if kinds & {"cost_regression", "token_spike"}:
        deployed = cause is not None and cause.kind == "deployment"
        if deployed and "latency_regression" in kinds and _slower_than_tokens(anomalies):
            return "latency_regression"  # e.g. a switch to a slower (and pricier) model
        if deployed or "token_spike" not in kinds:
            return "cost_regression"
        return "token_spike"
    for kind in ("latency_regression", "traffic_drop"):
        if kind in kinds:
            return kind
    return sorted(kinds)[0]


def _slower_than_tokens(anomalies: Sequence[Finding]) -> bool:
    """Latency rose by more than the tokens per request explain (+20% beyond their ratio):
    more tokens take longer to generate, so only the excess is a latency regression."""
    def top(signals: tuple[str, ...]) -> float:
        return max((f.current / f.baseline for f in anomalies
                    if f.signal in signals and f.baseline > 0), default=1.0)

    tokens = top(("tokens.input_per_request", "tokens.output_per_request"))
    return top(("latency.p50", "latency.p95")) > LATENCY_BEYOND_TOKENS * tokens


def build_incidents(
    findings: Sequence[Finding],
    *,
    dependencies: Mapping[str, frozenset[str]],
    changes: Sequence[Change],
    tolerance_ns: int,
    gap_ns: int = GROUP_GAP_NS,
) -> list[IncidentDraft]:
    """Group *findings* into incidents with cause, suggestion and timeline.

    Args:
        findings: every detector's findings over the window (deployment impact included).
        dependencies: service -> hosts it depends on (``Window.dependencies``).
        changes: merged deployments in the window (``merge_changes``).
        tolerance_ns: starts this close count as simultaneous for root cause.
        gap_ns: the largest gap between starts of findings grouped together.
    """
    drafts = []
    for group in group_findings(findings, dependencies, gap_ns=gap_ns):
        anomalies = [f for f in group if f.severity != "info"]
        if not anomalies:
            continue
        ranked = rank_causes(group, tolerance_ns=tolerance_ns)
        cause = ranked[0] if ranked else None
        change = change_of(cause, changes) if cause is not None else None
        kind = incident_kind(anomalies, cause)
        primary = next((f for f in ranked if f.kind == kind), anomalies[0])
        healthy = change is None or not any(
            f.service == change.service and f.severity != "info"
            and f.started_at_ns < change.time_ns - tolerance_ns
            and (f.ended_at_ns is None or f.ended_at_ns > change.time_ns)
            for f in findings
        )
        drafts.append(_draft(group, anomalies, kind, primary, cause, change, healthy))
    return sorted(drafts, key=lambda d: (d.incident.started_at_ns, d.incident.id))


def _draft(
    group: list[Finding], anomalies: list[Finding], kind: str, primary: Finding,
    cause: Finding | None, change: Change | None, healthy: bool,
) -> IncidentDraft:
    anchor = min(anomalies, key=lambda f: (f.detected_at_ns, f.started_at_ns, f.key, f.signal))
    host_level = kind in HOST_KINDS
    layer = _HOST_LAYERS.get(kind, str(primary.layer))
    severity = max((f.severity for f in anomalies), key=lambda s: SEVERITY_ORDER[s])
    ended = [f.ended_at_ns for f in anomalies]
    ended_at = None if any(e is None for e in ended) else max(e for e in ended if e)
    subject = primary.host if host_level else primary.service
    summary = f"{kind.replace('_', ' ')} on {subject}: {primary.summary}"
    if change is not None:
        summary += f" after {change.describe()}"
    evidence = tuple(
        Evidence(f.signal if f.kind != "deployment" else f"{f.signal} impact", str(f.layer),
                 f.baseline, f.current, f.unit)
        for f in sorted(group, key=lambda f: (f.started_at_ns, f.key, f.signal))
    )
    events = [IncidentEvent(anchor.detected_at_ns, "opened", anchor.summary)]
    events += [IncidentEvent(f.detected_at_ns, "evidence", f.summary)
               for f in sorted(group, key=lambda f: (f.detected_at_ns, f.key, f.signal))
               if f is not anchor]
    if ended_at is not None:
        events.append(IncidentEvent(ended_at, "resolved", "recovered: every signal is back "
                                    "within its baseline"))
    incident = Incident(
        id=incident_id(anchor),
        kind=kind,
        layer=layer,
        service=None if host_level else primary.service,
        host=primary.host if host_level else None,
        status="resolved" if ended_at is not None else "open",
        severity=severity,
        started_at_ns=min(f.started_at_ns for f in anomalies),
        detected_at_ns=anchor.detected_at_ns,
        summary=summary,
        evidence=evidence,
        suspected_cause=describe_cause(cause, change) if cause is not None else None,
        suggestion=suggest(kind, cause, change, anomalies, previous_healthy=healthy),
        resolved_at_ns=ended_at,
        events=tuple(events),
    )
    return IncidentDraft(incident, tuple(group), ended_at)
