"""Request-level shifts where traffic is thin: the last requests against the ones before.

Per-minute buckets cannot judge an entity that sees a few requests a minute. Each entity
(root requests, a model operation whatever its model, a tool) used at most ``MAX_PER_MINUTE``
on average over the window is judged request by request: at every ``STEP``-th request, the
last ``CURRENT`` requests against up to ``REFERENCE`` requests before them, with the tests of
``strata.analytics.version_compare`` (Mann-Whitney U with a ratio-of-medians floor; binomial
tails of errors and of errors of a type the reference never had) at ``ALPHA``, stricter than
a deploy's because every look of a long series is a chance of a false alarm.

An episode starts at the change point (a sign CUSUM over the requests of the look), is
dated by the first look that passes (causal: the same whenever analysed), and ends when the
last ``CURRENT`` requests are back below half the floor; while it lasts, the reference stays
frozen on the requests before it. Busier entities are left to the per-minute detectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import binom, mannwhitneyu  # type: ignore[import-untyped]
from strata.agent.model import Finding, Layer
from strata.analytics.base import format_value
from strata.analytics.version_compare import MIN_ERROR_DELTA, MIN_ERRORS, MIN_RATIO, rate_bound

if TYPE_CHECKING:
    from strata.agent.store.window import Window

MAX_PER_MINUTE = 10.0
CURRENT = 20
REFERENCE = 240
MIN_REFERENCE = 60
STEP = 4
CONFIRM = CURRENT // 2  # a shift must pass again this many requests later
ALPHA = 1e-6
ALPHA_NOVEL = 1e-4  # a type no earlier request had, failing 3+ times, is rare without cause
KIND = {"latency": "latency_regression", "tokens": "token_spike", "cost": "cost_regression",
        "errors": "error_spike"}


@dataclass(frozen=True, slots=True)
class Episode:
    """Request indexes of a shift: change point, the look that passed, recovery (or None)."""

    start: int
    detect: int
    end: int | None
    baseline: float
    current: float


def _onset(values: np.ndarray, lo: int, base: float, current: float) -> int:
    """Change point of a look: where the sign CUSUM, summed to the end, of the values
    against the midpoint of the reference and current levels is largest."""
    tail = np.cumsum(np.sign(values - np.sqrt(base * current))[::-1])[::-1]
    return lo + int(np.argmax(tail))


def _fails(head: np.ndarray, head_types: np.ndarray, ref: np.ndarray, known: set[str],
           history: int) -> str | None:
    """Whether *head* fails significantly more than *ref* ("rate"), or with ``MIN_ERRORS``
    errors of types none of the *history* requests before had ("novel": strong enough to
    need no confirming look); None otherwise."""
    errors, old_rate = int(head.sum()), float(ref.mean())
    rate = errors / CURRENT
    if (len(head) < CURRENT or errors < MIN_ERRORS or rate < old_rate + MIN_ERROR_DELTA
            or rate < 2 * old_rate):
        return None
    novel = sum(1 for t in head_types[head] if str(t) not in known)
    if novel >= MIN_ERRORS and binom.sf(novel - 1, CURRENT, 0.5 / (history + 1)) < ALPHA_NOVEL:
        return "novel"
    return "rate" if binom.sf(errors - 1, CURRENT, rate_bound(ref)) < ALPHA else None


def continuous_episodes(values: np.ndarray, family: str) -> list[Episode]:
    """Sustained rises of *values* (in request order; NaN: not measured)."""
    keep = np.flatnonzero(~np.isnan(values))
    v = values[keep]
    floor = MIN_RATIO[family]
    episodes: list[Episode] = []
    i, since = MIN_REFERENCE + CURRENT, 0  # the reference never reaches back into an episode
    while i <= len(v):
        ref = v[max(since, i - CURRENT - REFERENCE):i - CURRENT]
        base = float(np.median(ref))
        if base > 0 and all(_rises(v[j - CURRENT:j], ref, floor * base)
                            for j in (i, i + CONFIRM)):
            i += CONFIRM  # dated by the confirming look
            current = float(np.median(v[i - CURRENT:i]))
            lo = max(0, i - 2 * CURRENT)
            start = _onset(v[lo:i], lo, base, current)
            end = _recovery(v, i, base * (1 + (floor - 1) / 2))
            episodes.append(Episode(int(keep[start]), int(keep[i - 1]),
                                    None if end is None else int(keep[end]), base, current))
            if end is None:
                break
            i, since = end + CURRENT + MIN_REFERENCE, end + 1
            continue
        i += STEP
    return episodes


def _rises(head: np.ndarray, ref: np.ndarray, level: float) -> bool:
    return (len(head) == CURRENT and float(np.median(head)) >= level
            and mannwhitneyu(head, ref, alternative="greater").pvalue < ALPHA)


def _recovery(v: np.ndarray, detect: int, band: float) -> int | None:
    """The first request after which the last CURRENT requests sit below *band*."""
    for j in range(detect + STEP, len(v) + 1, STEP):
        if float(np.median(v[j - CURRENT:j])) < band:
            return j - 1
    return None


def error_episodes(failed: np.ndarray, types: np.ndarray) -> list[Episode]:
    """Sustained rises of the error rate, or errors of a type the reference never had."""
    episodes: list[Episode] = []
    i, since, n = MIN_REFERENCE + CURRENT, 0, len(failed)
    known: set[str] = set()  # error types seen before the look (any earlier request)
    seen_upto = 0
    while i <= n:
        known.update(str(t) for t in types[seen_upto:i - CURRENT][failed[seen_upto:i - CURRENT]])
        seen_upto = max(seen_upto, i - CURRENT)
        ref = failed[max(since, i - CURRENT - REFERENCE):i - CURRENT]
        old_rate = float(ref.mean())
        verdict = _fails(failed[i - CURRENT:i], types[i - CURRENT:i], ref, known, i - CURRENT)
        if verdict == "rate" and not _fails(failed[i + CONFIRM - CURRENT:i + CONFIRM],
                                            types[i + CONFIRM - CURRENT:i + CONFIRM], ref,
                                            known, i - CURRENT):
            verdict = None
        if verdict is not None:
            first = i - CURRENT + int(np.argmax(failed[i - CURRENT:i]))
            i += CONFIRM if verdict == "rate" else 0
            rate = float(failed[i - CURRENT:i].mean())
            end = next((j - 1 for j in range(i + STEP, n + 1, STEP)
                        if failed[j - CURRENT:j].mean() < old_rate + MIN_ERROR_DELTA / 2),
                       None)
            episodes.append(Episode(first, i - 1, end, old_rate, rate))
            if end is None:
                break
            i, since = end + CURRENT + MIN_REFERENCE, end + 1
            continue
        i += STEP
    return episodes


def _groups(cols: dict[str, np.ndarray]) -> Iterator[tuple[str, str, str, dict[str, np.ndarray]]]:
    """(service, entity, layer, rows) per entity, rows in request order."""
    if not len(cols["service"]):
        return
    key = np.char.add(np.char.add(cols["service"].astype(str), "\x1f"),
                      cols["entity"].astype(str))
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(key)], strict=True):
        rows = {k: v[lo:hi] for k, v in cols.items()}
        rows["failed"] = rows["failed"].astype(bool)
        yield str(rows["service"][0]), str(rows["entity"][0]), str(rows["layer"][0]), rows


class PooledShiftDetector:
    """Latency, token, cost and error shifts of thinly used entities, request by request."""

    kind = "pooled_shift"  # its findings carry the regression kinds (``KIND``)

    def detect(self, window: Window) -> Iterable[Finding]:
        cols = window.thin_requests(MAX_PER_MINUTE)
        for service, entity, layer, rows in _groups(cols):
            starts, ends = rows["start_ns"], rows["end_ns"]
            where = f"{'requests' if entity == 'root' else entity} of {service}"
            found: list[tuple[str, str, str, Episode]] = [
                ("errors", "error_rate", "1", ep)
                for ep in error_episodes(rows["failed"], rows["error_type"])]
            if not entity.startswith("tool "):
                latency = np.where(rows["failed"], np.nan, rows["duration_ns"] / 1e9)
                found += [("latency", "latency.p50", "s", ep)
                          for ep in continuous_episodes(latency, "latency")]
            if entity.startswith("model "):
                for family, signal, unit, column in (
                    ("tokens", "tokens.input_per_request", "{token}", "input_tokens"),
                    ("tokens", "tokens.output_per_request", "{token}", "output_tokens"),
                    ("cost", "cost_per_request", "USD", "cost_usd"),
                ):
                    found += [(family, signal, unit, ep) for ep in continuous_episodes(
                        rows[column], "cost" if family == "tokens" else family)]
            for family, signal, unit, ep in found:
                yield Finding(
                    kind=KIND[family], layer=Layer(layer), signal=signal,
                    started_at_ns=int(starts[ep.start]), detected_at_ns=int(ends[ep.detect]),
                    baseline=round(ep.baseline, 6), current=round(ep.current, 6), unit=unit,
                    severity="critical" if ep.current >= 3 * ep.baseline > 0 else "warning",
                    summary=f"{signal} of {where}: {format_value(ep.baseline)} -> "
                            f"{format_value(ep.current)} {unit} (last {CURRENT} requests)",
                    service=service, key=f"pooled:{service}|{entity}",
                    ended_at_ns=None if ep.end is None else int(ends[ep.end]),
                )
