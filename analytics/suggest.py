"""Suggestions: the action that fits an incident, with an exact rollback when a change
caused it and the previous version was healthy."""

from __future__ import annotations

from collections.abc import Sequence

from strata.agent.model import Finding, Rollback, Suggestion
from strata.analytics.changes import Change


def _where(f: Finding) -> str:
    return f.key.split(":", 1)[-1].replace("|", " ").strip()


def suggest(
    kind: str,
    cause: Finding | None,
    change: Change | None,
    findings: Sequence[Finding],
    *,
    previous_healthy: bool,
) -> Suggestion:
    """The suggestion for an incident of *kind* whose top-ranked cause is *cause*.

    Args:
        kind: the incident kind.
        cause: the top-ranked candidate (a ``deployment`` finding when a change came first).
        change: the deployment behind *cause*, if any.
        findings: all of the incident's findings (for naming GPUs, tools, collections).
        previous_healthy: no anomaly was active on the service before *change*; a rollback
            is only suggested to a version that was healthy.
    """
    if cause is not None and change is not None and cause.kind == "deployment":
        if change.previous_version and change.version and previous_healthy:
            return Suggestion(
                "rollback",
                f"roll {change.service} back from {change.version} to "
                f"{change.previous_version}: the regression began with this deploy",
                Rollback(change.service, change.version, change.previous_version),
            )
        if change.previous_model and change.model and previous_healthy:
            return Suggestion(
                "rollback",
                f"switch {change.service} back from model {change.model} to "
                f"{change.previous_model}: the regression began with the model change",
                Rollback(change.service, change.model, change.previous_model),
            )
        return Suggestion("investigate", f"review the change {change.describe()}; the "
                          "version before it was not healthy either, so no rollback target")
    first = cause or (findings[0] if findings else None)
    where = _where(first) if first is not None else "the affected component"
    if kind == "gpu_fault":
        return Suggestion("drain_gpu", f"cordon and drain {where}, then reset it; "
                          "a GPU reporting Xid or uncorrectable ECC errors fails requests")
    if kind == "gpu_fan_failure":
        return Suggestion("drain_gpu", f"drain {where} and replace its fan before it "
                          "throttles further")
    if kind == "gpu_thermal":
        return Suggestion("drain_gpu", f"drain {where} to let it cool and check the "
                          "airflow; it is thermally throttling")
    if kind == "gpu_power_throttle":
        return Suggestion("raise_power_limit", f"raise the power limit of {where} or "
                          "spread load to other GPUs; clocks are held by the power cap")
    if kind == "vectordb_degradation":
        return Suggestion("compact", f"compact {where}; segments piled up and queries slowed")
    if kind == "serving_saturation":
        return Suggestion("scale_out", f"scale out {where}; the KV cache is full and "
                          "requests are queueing")
    if kind == "error_spike":
        failing = next((f for f in findings if f.signal == "error_rate"
                        and "execute_tool" in f.key), first)
        target = _where(failing) if failing is not None else where
        return Suggestion("investigate", f"investigate the failing step {target}")
    if kind == "token_spike":
        return Suggestion("investigate", f"check prompts and max_tokens of {where}; "
                          "tokens per request jumped without a deploy")
    return Suggestion("investigate", f"investigate {where}")
