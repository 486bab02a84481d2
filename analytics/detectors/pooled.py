"""Request-level shifts where traffic is thin: the last requests against the ones before.

Per-minute buckets cannot judge an entity that sees a few requests a minute. Each entity
(root requests, a model operation whatever its model, a tool) used at most ``MAX_PER_MINUTE``
on average over the window is judged request by request: at every ``STEP``-th request, the
last ``CURRENT`` requests against up to ``REFERENCE`` requests before them, with the tests of
``strata.analytics.detectors.deploys`` (Mann-Whitney U with a ratio-of-medians floor; binomial
tails of errors and of errors of a type the reference never had) at ``ALPHA``, stricter than
a deploy's because every look of a long series is a chance of a false alarm.

An episode starts at the change point (a sign CUSUM over the requests of the look), is
dated by the first look that passes (causal: the same whenever analysed), and ends when the
last ``CURRENT`` requests are back below half the floor; while it lasts, the reference stays
frozen on the requests before it. Busier entities are left to the per-minute detectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import bdtrc  # type: ignore[import-untyped]  # binom.sf; see deploys
from strata.agent.model import Finding, Layer
from strata.analytics.base import format_value
from strata.analytics.baseline import Episode  # request indexes here, not buckets
from strata.analytics.detectors.deploys import (
    MIN_ERROR_DELTA,
    MIN_ERRORS,
    MIN_RATIO,
    greater_p,
    rate_bound,
)

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


def _onset(values: np.ndarray, lo: int, base: float, current: float) -> int:
    """Change point of a look: where the sign CUSUM, summed to the end, of the values
    against the midpoint of the reference and current levels is largest."""
    tail = np.cumsum(np.sign(values - np.sqrt(base * current))[::-1])[::-1]
    return lo + int(np.argmax(tail))


def _looks(n: int, first: int) -> np.ndarray:
    """Look ends from *first*, every ``STEP`` requests, up to *n*."""
    return np.arange(first, n + 1, STEP)


def _window_stat(v: np.ndarray, ends: np.ndarray, width: int, since: int, stat: Any
                 ) -> np.ndarray:
    """*stat* of ``v[max(since, end - width) : end]`` for every look end (vectorised where
    the window is full, one by one where *since* cuts it short)."""
    lo = np.maximum(since, ends - width)
    out = np.empty(len(ends))
    full = lo == ends - width
    if full.any():
        out[full] = stat(sliding_window_view(v, width)[ends[full] - width], axis=1)
    for k in np.flatnonzero(~full):
        out[k] = stat(v[lo[k]:ends[k]])
    return out


def continuous_episodes(values: np.ndarray, family: str) -> list[Episode]:
    """Sustained rises of *values* (in request order; NaN: not measured).

    Looks are screened on medians (cheap, vectorised); only those reaching the floor are
    tested, the reference being recomputed exactly for them."""
    keep = np.flatnonzero(~np.isnan(values))
    v = values[keep]
    floor = MIN_RATIO[family]
    episodes: list[Episode] = []
    since = 0  # the reference never reaches back into an episode
    ends = _looks(len(v), MIN_REFERENCE + CURRENT)
    while len(ends):
        head = _window_stat(v, ends, CURRENT, 0, np.median)
        # the reference level moves slowly: screen against every 4th look's, held
        coarse = _window_stat(v, ends[::4] - CURRENT, REFERENCE, since, np.median)
        ref = np.repeat(coarse, 4)[:len(ends)]
        candidates = ends[(ref > 0) & (head >= floor * ref)]
        episode = next((ep for ep in (_test(v, int(i), since, floor) for i in candidates)
                        if ep is not None), None)
        if episode is None:
            break
        episodes.append(Episode(int(keep[episode.start]), int(keep[episode.detect]),
                                None if episode.end is None else int(keep[episode.end]),
                                episode.baseline, episode.current))
        if episode.end is None:
            break
        since = episode.end + 1
        ends = _looks(len(v), episode.end + CURRENT + MIN_REFERENCE)
    return episodes


def _test(v: np.ndarray, i: int, since: int, floor: float) -> Episode | None:
    """The episode whose look ends at *i*, if that look and the confirming one pass."""
    ref = v[max(since, i - CURRENT - REFERENCE):i - CURRENT]
    base = float(np.median(ref))
    if not all(_rises(v[j - CURRENT:j], ref, floor * base) for j in (i, i + CONFIRM)):
        return None
    i += CONFIRM  # dated by the confirming look
    current = float(np.median(v[i - CURRENT:i]))
    lo = max(0, i - 2 * CURRENT)
    start = _onset(v[lo:i], lo, base, current)
    later = _looks(len(v), i + STEP)
    band = base * (1 + (floor - 1) / 2)
    recovered = later[_window_stat(v, later, CURRENT, 0, np.median) < band]
    end = int(recovered[0]) - 1 if len(recovered) else None
    return Episode(start, i - 1, end, base, current)


def _rises(head: np.ndarray, ref: np.ndarray, level: float) -> bool:
    return (len(head) == CURRENT and float(np.median(head)) >= level
            and greater_p(head, ref) < ALPHA)


def error_episodes(failed: np.ndarray, types: np.ndarray) -> list[Episode]:
    """Sustained rises of the error rate, or errors of a type no earlier request had."""
    n = len(failed)
    type_of = np.array([str(x) for x in types], dtype=object)
    first_seen: dict[str, int] = {}
    for j in np.flatnonzero(failed):
        first_seen.setdefault(type_of[j], int(j))
    episodes: list[Episode] = []
    since = 0
    ends = _looks(n, MIN_REFERENCE + CURRENT)
    counts = failed.astype(float)
    while len(ends):
        errors = _window_stat(counts, ends, CURRENT, 0, np.sum)
        old = _window_stat(counts, ends - CURRENT, REFERENCE, since, np.mean)
        rate = errors / CURRENT
        plausible = (errors >= MIN_ERRORS) & (rate >= old + MIN_ERROR_DELTA) & (rate >= 2 * old)
        episode = None
        for i in ends[plausible]:
            episode = _test_errors(failed, type_of, first_seen, int(i), since)
            if episode is not None:
                break
        if episode is None:
            break
        episodes.append(episode)
        if episode.end is None:
            break
        since = episode.end + 1
        ends = _looks(n, episode.end + CURRENT + MIN_REFERENCE)
    return episodes


def _test_errors(failed: np.ndarray, type_of: np.ndarray, first_seen: dict[str, int], i: int,
                 since: int) -> Episode | None:
    """The error episode whose look ends at *i*: errors of types first seen within the
    look ("novel", strong enough to need no confirming look), or a rate significantly above
    the reference's in this look and the confirming one."""
    ref = failed[max(since, i - CURRENT - REFERENCE):i - CURRENT]
    old_rate, bound = float(ref.mean()), rate_bound(ref)

    def rate_passes(j: int) -> bool:
        head = failed[j - CURRENT:j]
        errors = int(head.sum())
        return (len(head) == CURRENT and errors >= MIN_ERRORS
                and errors / CURRENT >= max(old_rate + MIN_ERROR_DELTA, 2 * old_rate)
                and bdtrc(errors - 1, CURRENT, bound) < ALPHA)

    head = np.flatnonzero(failed[i - CURRENT:i]) + i - CURRENT
    novel = sum(1 for j in head if first_seen[type_of[j]] >= i - CURRENT)
    p_novel = bdtrc(novel - 1, CURRENT, 0.5 / (i - CURRENT + 1)) if novel else 1.0
    if novel >= MIN_ERRORS and p_novel < ALPHA_NOVEL:
        detect = i
    elif rate_passes(i) and rate_passes(i + CONFIRM):
        detect = i + CONFIRM
    else:
        return None
    band = old_rate + MIN_ERROR_DELTA / 2
    later = _looks(len(failed), detect + STEP)
    recovered = later[_window_stat(failed.astype(float), later, CURRENT, 0, np.mean) < band]
    end = int(recovered[0]) - 1 if len(recovered) else None
    rate = float(failed[detect - CURRENT:detect].mean())
    return Episode(int(head[0]), detect - 1, end, old_rate, rate)


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
