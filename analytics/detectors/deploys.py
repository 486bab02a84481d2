"""Deploy-aware regressions: the new version's requests judged against the old version's.

For every change of a service (a new ``service.version``, or a new model) the requests of the
new version are compared with those of the version it replaced, per entity: the request as a
whole (root spans), each model operation whatever its model (so a switch to another model is
compared with the model it replaced) and each tool. Pooling requests, not per-minute
buckets, is what makes this work from one request a minute to thousands a second.

Tests, one-sided, at a per-look significance of ``ALPHA``:
- latency, input/output tokens and cost per request: Mann-Whitney U of new against old, with
  the ratio of medians as the effect size, which must reach ``MIN_RATIO`` (latency +20%,
  tokens and cost +15%: the effects users care about are +30% and +20%);
- errors: the binomial tail of the new version's errors under the old version's error rate
  (its 95% upper bound), and of errors whose ``error.type`` the old version never had (strong
  evidence at low traffic). The rate must rise by ``MIN_ERROR_DELTA`` and at least double.

The new version is looked at after 8, 12, 18, ... of its requests (x1.5, up to ``LIMIT``), so
detection is causal: the look that first passes dates the finding, whenever it is analysed.
The first third of the requests that passed must already show half the effect (for errors:
the first half must be consistent with the look's error rate, since a few calls at a 10-20%
failure rate are often all clean): a change that appears only later (a no-op deploy shortly
before an infrastructure incident) is not blamed on the deploy. What this cannot see: a
regression smaller than the floors above, one that grows slowly after the deploy, errors that
start a few calls after it (they are blamed on it), and, below ~1 request/minute, anything
before 8 requests of the new version have arrived (see docs/concepts.md for the smallest
effects per traffic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# scipy.special, not scipy.stats: the distributions' functions themselves (what
# binom.sf/cdf and beta.ppf call), without the ~46 MiB that scipy.stats adds to the agent.
from scipy.special import bdtr, bdtrc, betaincinv, ndtr  # type: ignore[import-untyped]
from strata.agent.model import Finding, Layer
from strata.agent.units import DAY_NS, HOUR_NS
from strata.analytics.base import format_value
from strata.analytics.changes import Change, merge_changes

if TYPE_CHECKING:
    from strata.agent.store.window import Window

ALPHA = 1e-4
MIN_RATIO = {"latency": 1.2, "cost": 1.15}  # cost covers tokens and cost per request
MIN_ERROR_DELTA = 0.05
MIN_ERRORS = 3
FIRST_LOOK = 8
LOOK_GROWTH = 1.5
LIMIT = 1500
LOOKBACK_NS = DAY_NS
HORIZON_NS = 2 * HOUR_NS  # a deploy's own effect shows within its first hours
MIN_BASELINE = 20
ONSET_P = 0.01  # errors this unlikely in a look's first half, at the look's rate: a later onset
FAMILY_KIND = {"latency": "latency_regression", "cost": "cost_regression",
               "errors": "error_spike"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One significant comparison: where it passed and what it showed."""

    family: str
    signal: str
    unit: str
    baseline: float
    current: float
    look_end_ns: int  # end of the last request of the look that passed


def rate_bound(failed: np.ndarray) -> float:
    """The old error rate to test against: the 95% upper (Clopper-Pearson) bound of the
    reference's rate, since no errors in a few hundred requests does not prove a rate of 0."""
    errors = int(failed.sum())
    if errors >= len(failed):
        return 1.0
    return float(betaincinv(errors + 1, len(failed) - errors, 0.95))  # beta.ppf


def greater_p(new: np.ndarray, old: np.ndarray) -> float:
    """One-sided Mann-Whitney U p-value that *new* tends to exceed *old* (normal
    approximation with tie and continuity corrections, as scipy's for these sizes; a few
    times faster, which matters for the many looks of a long series).

    U counts the (new, old) pairs where new is larger, a tie counting half: the rank sum
    of *new* less its own ranks, without ranking the pooled sample."""
    n1, n2 = len(new), len(old)
    ordered = np.sort(old)
    below = np.searchsorted(ordered, new, "left")
    u = float((below + np.searchsorted(ordered, new, "right")).sum()) / 2
    _, ties = np.unique(np.concatenate([new, old]), return_counts=True)
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    if var <= 0:
        return 1.0
    return float(ndtr(-(u - n1 * n2 / 2 - 0.5) / math.sqrt(var)))  # norm.sf, minus its checks


def looks(n: int) -> Iterator[int]:
    """Prefix sizes to test among *n* requests: 8, 12, 18, ... and finally *n*."""
    size = FIRST_LOOK
    while size < n:
        yield size
        size = int(size * LOOK_GROWTH)
    if n >= FIRST_LOOK:
        yield n


def continuous_verdict(
    family: str, signal: str, unit: str, old: np.ndarray, new: np.ndarray, ends: np.ndarray,
) -> Verdict | None:
    """The first look at which *new* (in arrival order) is significantly above *old*."""
    old = old[~np.isnan(old)]
    keep = ~np.isnan(new)
    new, ends = new[keep], ends[keep]
    if len(old) < MIN_BASELINE:
        return None
    base = float(np.median(old))
    if base <= 0:
        return None
    floor = MIN_RATIO[family]
    for n in looks(len(new)):
        head = new[:n]
        current = float(np.median(head))
        if current < floor * base:
            continue
        if greater_p(head, old) >= ALPHA:
            continue
        early = head[: max(FIRST_LOOK, n // 3)]
        if float(np.median(early)) < (1 + (floor - 1) / 2) * base:
            continue
        return Verdict(family, signal, unit, base, current, int(ends[n - 1]))
    return None


def error_verdict(
    signal: str, old_failed: np.ndarray, old_types: np.ndarray, new_failed: np.ndarray,
    new_types: np.ndarray, ends: np.ndarray,
) -> Verdict | None:
    """The first look at which the new version fails significantly more than the old."""
    n_old = len(old_failed)
    if n_old < MIN_BASELINE:
        return None
    old_rate = float(old_failed.mean())
    p_old = rate_bound(old_failed)
    p_unseen = 0.5 / (n_old + 1)
    known = {str(t) for t, f in zip(old_types, old_failed, strict=True) if f}
    unseen = new_failed & np.array([str(t) not in known for t in new_types], dtype=bool)
    for n in looks(len(new_failed)):
        errors, novel = int(new_failed[:n].sum()), int(unseen[:n].sum())
        rate = errors / n
        if errors < MIN_ERRORS or rate < old_rate + MIN_ERROR_DELTA or rate < 2 * old_rate:
            continue
        p = min(bdtrc(errors - 1, n, p_old), bdtrc(novel - 1, n, p_unseen) if novel
                else 1.0)  # binom.sf
        half = n // 2
        if p < ALPHA and bdtr(int(new_failed[:half].sum()), half, rate) >= ONSET_P:  # cdf
            return Verdict("errors", signal, "1", old_rate, rate, int(ends[n - 1]))
    return None


def _verdicts(entity: str, old: dict[str, np.ndarray], new: dict[str, np.ndarray]
              ) -> Iterator[Verdict]:
    ends = new["end_ns"]
    ok_old, ok_new = ~old["failed"], ~new["failed"]
    errors = error_verdict(
        "error_rate", old["failed"], old["error_type"], new["failed"], new["error_type"], ends)
    if errors is not None:
        yield errors
    if entity.startswith("tool "):
        return
    latency = continuous_verdict(
        "latency", "latency.p50", "s", np.where(ok_old, old["duration_ns"] / 1e9, np.nan),
        np.where(ok_new, new["duration_ns"] / 1e9, np.nan), ends)
    if latency is not None:
        yield latency
    if not entity.startswith("model "):
        return
    for family, signal, unit, column in (
        ("cost", "tokens.input_per_request", "{token}", "input_tokens"),
        ("cost", "tokens.output_per_request", "{token}", "output_tokens"),
        ("cost", "cost_per_request", "USD", "cost_usd"),
    ):
        verdict = continuous_verdict(family, signal, unit, old[column], new[column], ends)
        if verdict is not None:
            yield verdict


def _split(cols: dict[str, np.ndarray]) -> Iterator[tuple[str, str, dict[str, np.ndarray],
                                                           dict[str, np.ndarray]]]:
    """(entity, layer, old rows, new rows) per entity of one ``requests_around`` read."""
    entities, after = cols["entity"], cols["after"].astype(bool)
    for entity in sorted({str(e) for e in entities}):
        mine = entities == entity
        old = {k: v[mine & ~after] for k, v in cols.items()}
        new = {k: v[mine & after] for k, v in cols.items()}
        for rows in (old, new):
            rows["failed"] = rows["failed"].astype(bool)
        layer = str(new["layer"][0]) if len(new["layer"]) else "model"
        yield entity, layer, old, new


class VersionRegressionDetector:
    """Regressions that start with a deploy: new version against old, per entity."""

    kind = "version_regression"  # its findings carry the regression kinds (FAMILY_KIND)

    def detect(self, window: Window) -> Iterable[Finding]:
        changes = merge_changes(window.deployments(), window.bucket_ns)
        for i, change in enumerate(changes):
            if not window.start_ns <= change.time_ns < window.end_ns or _rollback(change,
                                                                                   changes[:i]):
                continue
            later = [c.time_ns for c in changes[i + 1:] if c.service == change.service]
            yield from self._judge(window, change, min(later) if later else None)

    def _judge(self, window: Window, change: Change, ended_ns: int | None) -> list[Finding]:
        by_version = change.previous_version is not None and change.version is not None
        cols = window.requests_around(
            change.service, change_ns=change.time_ns, until_ns=change.time_ns + HORIZON_NS,
            old_version=change.previous_version if by_version else None,
            new_version=change.version if by_version else None,
            lookback_ns=LOOKBACK_NS, limit=LIMIT)
        findings: list[Finding] = []
        best: dict[str, tuple[Verdict, str]] = {}
        for entity, layer, old, new in _split(cols):
            for verdict in _verdicts(entity, old, new):
                findings.append(_finding(change, entity, layer, verdict, ended_ns))
                top = best.get(verdict.family)
                if top is None or verdict.look_end_ns < top[0].look_end_ns:
                    best[verdict.family] = (verdict, entity)
        for family, (verdict, entity) in sorted(best.items()):
            findings.append(_deployment_finding(change, family, entity, verdict, ended_ns))
        return findings


def _rollback(change: Change, earlier: list[Change]) -> bool:
    """A return to a version (or model) the service ran before: judged as its own deploy
    was, not again."""
    return any(c.service == change.service and (
        (change.version is not None and c.previous_version == change.version)
        or (change.model is not None and c.previous_model == change.model)) for c in earlier)


def _what(change: Change, entity: str) -> str:
    where = "requests" if entity == "root" else entity
    return f"{where} of {change.service}"


def _finding(change: Change, entity: str, layer: str, v: Verdict, ended_ns: int | None
             ) -> Finding:
    ratio = v.current / v.baseline if v.baseline else float("inf")
    return Finding(
        kind=FAMILY_KIND[v.family], layer=Layer(layer), signal=v.signal,
        started_at_ns=change.time_ns, detected_at_ns=v.look_end_ns,
        baseline=round(v.baseline, 6), current=round(v.current, 6), unit=v.unit,
        severity="critical" if ratio >= 3 else "warning",
        summary=f"{v.signal} of {_what(change, entity)}: {format_value(v.baseline)} -> "
                f"{format_value(v.current)} {v.unit} ({change.describe()})",
        service=change.service, key=f"version:{change.service}|{entity}|{change.version or ''}"
                                    f"|{change.model or ''}",
        ended_at_ns=ended_ns,
    )


def _deployment_finding(change: Change, family: str, entity: str, v: Verdict,
                        ended_ns: int | None) -> Finding:
    """The change as a cause candidate (info: never an incident by itself)."""
    ratio = v.current / v.baseline if v.baseline else float("inf")
    return Finding(
        kind="deployment", layer=Layer.MODEL if family == "cost" else Layer.ORCHESTRATION,
        signal=change.signal, started_at_ns=change.time_ns,
        detected_at_ns=v.look_end_ns, baseline=round(v.baseline, 6),
        current=round(v.current, 6), unit=v.unit, severity="info",
        summary=f"{change.describe()}: {v.signal} of {_what(change, entity)} x{ratio:.2f} "
                "(new version against old, Mann-Whitney U / binomial)",
        service=change.service,
        key=f"deploy:{change.service}|{change.version or ''}|{change.model or ''}"
            f"|{change.time_ns}|{family}",
        ended_at_ns=ended_ns,
    )
