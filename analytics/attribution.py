"""Cost (USD), energy (Wh) and carbon (gCO2e) of each span.

Tying a span to a GPU: ``gpu_keys_of`` reads explicit ids: a span runs on GPU ``(host,
device)`` when its host is ``host`` (``SpanRecord.host``, else the resource's ``host.name``)
and ``device`` is one of the values of its ``gpu.uuid`` or ``gpu.id`` attribute (span
attributes, else resource attributes; a list means tensor-parallel work on several GPUs, and
the span is in flight on each). Spans without GPU ids are tied by the serving topology
(``strata.analytics.topology``); every function here takes that as ``keys_of``. Energy
samples match on ``Sample.host`` and ``Sample.device`` with exact string equality.

Measured energy: each GPU's cumulative energy counter (NVML
``nvmlDeviceGetTotalEnergyConsumption`` / DCGM ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, mJ
since driver load). The delta between consecutive samples is spread uniformly over the
interval (the counter says nothing finer), cut at every span start and end; each piece with
requests in flight is shared among them equally (time overlap) or by token rate, after
taking out an optional idle-power baseline; pieces with no request in flight are idle. So
per GPU, exactly: ``attributed == measured - idle``. A counter that goes down was reset
(driver reload); the interval's delta is then the new reading, as Prometheus' ``increase``.

Estimated energy: hosted-API spans get ``tokens / 1000 x Wh-per-1k`` from the price table's
per-model coefficients, which are published estimates (see ``analytics/data/prices.toml``).

Pure functions: no clock, no I/O; the same inputs give the same outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, TypeAlias

import numpy as np
from strata.agent.model import Sample, SpanId, SpanRecord, TraceId
from strata.agent.store.columns import CostColumns
from strata.agent.units import NS_PER_S, WH_PER_UNIT
from strata.analytics.pricing import (
    ModelPrice,
    PriceTable,
    TokenUsage,
    cost_of,
    gpu_time_usd,
    usage_of,
)
from strata.analytics.topology import GPU_ATTRIBUTES, explicit_gpus

__all__ = [
    "GPU_ATTRIBUTES",
    "WH_PER_UNIT",
    "EnergyAttribution",
    "GPUEnergy",
    "GPUKey",
    "GPUSweep",
    "IngestPricer",
    "RequestMetrics",
    "SpanCost",
    "SpanEnergy",
    "SpanKey",
    "attribute_costs",
    "attribute_energy",
    "carbon_g",
    "estimate_energy_wh",
    "estimate_unknown_reason",
    "gpu_keys_of",
    "gpu_time_shares",
    "request_metrics",
    "span_cost",
    "span_key",
    "sweep_energy",
    "sweep_gpu_seconds",
]

GPUKey: TypeAlias = tuple[str, str]  # (host, device)
SpanKey: TypeAlias = tuple[TraceId, SpanId]
Weighting: TypeAlias = Literal["time", "tokens"]
KeysOf: TypeAlias = Callable[[SpanRecord], tuple[GPUKey, ...]]
CostSource: TypeAlias = Literal["token_price", "gpu_time", "gpu_time_estimated"]

MEASURED_NOTE = (
    "measured: cumulative GPU energy counter (NVML/DCGM), shared among in-flight requests"
)
_S_PER_H = 3600


@dataclass(frozen=True, slots=True)
class SpanEnergy:
    """Measured GPU energy attributed to one span, summed over its GPUs."""

    energy_wh: float
    covered_ns: int  # span time between two energy samples, summed over its GPUs


@dataclass(frozen=True, slots=True)
class GPUEnergy:
    """One GPU's measured energy over the sampled window, split into attributed and idle."""

    host: str
    device: str
    start_unix_nano: int
    end_unix_nano: int
    measured_wh: float
    attributed_wh: float
    idle_wh: float  # no request in flight, plus the idle-power baseline while busy
    idle_ns: int  # time with no request in flight
    counter_resets: int


@dataclass(frozen=True, slots=True)
class EnergyAttribution:
    spans: Mapping[SpanKey, SpanEnergy]
    gpus: tuple[GPUEnergy, ...]


@dataclass(frozen=True, slots=True)
class SpanCost:
    """What one span cost; None means unknown, never zero."""

    usd: float | None
    usd_source: CostSource | None  # gpu_time_estimated: a public GPU-hour list price
    priced: bool
    energy_wh: float | None
    energy_source: Literal["measured", "estimated"] | None
    energy_note: str | None  # method and citation
    co2e_g: float | None


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """Per-request averages over the spans whose energy is known."""

    requests: int
    wh_per_request: float | None
    j_per_token: float | None
    gco2e_per_request: float | None


def span_key(span: SpanRecord) -> SpanKey:
    return (span.trace_id, span.span_id)


def gpu_keys_of(span: SpanRecord) -> tuple[GPUKey, ...]:
    """The GPUs a span names, from its host and ``gpu.uuid``/``gpu.id`` attributes."""
    return explicit_gpus(span)


def attribute_energy(
    spans: Iterable[SpanRecord],
    energy_samples: Iterable[Sample],
    *,
    idle_power_w: float | None = None,
    weighting: Weighting = "time",
    keys_of: KeysOf = gpu_keys_of,
) -> EnergyAttribution:
    """Attribute each GPU's measured energy to the spans in flight on it.

    Args:
        spans: any spans; those not tied to a sampled GPU get nothing.
        energy_samples: one cumulative energy counter per GPU (unit mJ, J, kJ, Wh or kWh),
            with ``host`` and ``device`` set; others are skipped.
        idle_power_w: a GPU's power with nothing running; while busy, this much is booked
            as idle and only the rest is attributed. None: all busy energy is attributed.
        weighting: ``"time"`` shares each busy piece equally among in-flight spans;
            ``"tokens"`` by each span's tokens per second (equal where one lacks tokens).
        keys_of: the GPUs of a span (default: its explicit GPU ids).

    Raises:
        ValueError: an energy sample in an unknown unit, or a negative idle power.
    """
    if idle_power_w is not None and idle_power_w < 0:
        msg = f"idle_power_w must be >= 0, got {idle_power_w}"
        raise ValueError(msg)
    by_gpu = _spans_by_gpu(spans, keys_of)
    series: dict[GPUKey, dict[int, float]] = {}
    for sample in energy_samples:
        if sample.host is None or sample.device is None:
            continue
        factor = WH_PER_UNIT.get(sample.unit)
        if factor is None:
            msg = (
                f"energy sample {sample.name!r} has unit {sample.unit!r}, not one of {WH_PER_UNIT}"
            )
            raise ValueError(msg)
        series.setdefault((sample.host, sample.device), {})[sample.time_unix_nano] = (
            sample.value * factor
        )
    energy: dict[SpanKey, list[float]] = {}  # key -> [wh, covered_ns]
    gpus = []
    for gpu, points in sorted(series.items()):
        if len(points) > 1:  # an interval needs two readings
            gpus.append(
                _attribute_gpu(gpu, points, by_gpu.get(gpu, []), idle_power_w, weighting, energy)
            )
    shares = {k: SpanEnergy(energy_wh=v[0], covered_ns=int(v[1])) for k, v in energy.items()}
    return EnergyAttribution(spans=shares, gpus=tuple(gpus))


def _attribute_gpu(
    gpu: GPUKey,
    points: Mapping[int, float],
    spans: Sequence[SpanRecord],
    idle_power_w: float | None,
    weighting: Weighting,
    out: dict[SpanKey, list[float]],
) -> GPUEnergy:
    times = sorted(points)
    rates: list[float] = []  # Wh per ns over each sample interval
    measured = 0.0
    resets = 0
    for t0, t1 in pairwise(times):
        delta = points[t1] - points[t0]
        if delta < 0:
            resets += 1
            delta = points[t1]
        measured += delta
        rates.append(delta / (t1 - t0))
    idle_wh = 0.0
    idle_ns = 0
    k = 0
    for a, b, active in _segments(spans, times):
        if a < times[0] or b > times[-1]:
            continue
        while times[k + 1] <= a:
            k += 1
        seg_wh = rates[k] * (b - a)
        if not active:
            idle_wh += seg_wh
            idle_ns += b - a
            continue
        baseline = 0.0 if idle_power_w is None else idle_power_w * (b - a) / NS_PER_S / _S_PER_H
        base = min(baseline, seg_wh)
        idle_wh += base
        for span, share in _shares(active, weighting):
            acc = out.setdefault(span_key(span), [0.0, 0.0])
            acc[0] += (seg_wh - base) * share
            acc[1] += b - a
    return GPUEnergy(
        host=gpu[0],
        device=gpu[1],
        start_unix_nano=times[0],
        end_unix_nano=times[-1],
        measured_wh=measured,
        attributed_wh=measured - idle_wh,
        idle_wh=idle_wh,
        idle_ns=idle_ns,
        counter_resets=resets,
    )


def gpu_time_shares(
    spans: Iterable[SpanRecord], keys_of: KeysOf = gpu_keys_of
) -> dict[SpanKey, float]:
    """Each GPU-tied span's share of GPU time in seconds, summed over its GPUs.

    While k spans are in flight on a GPU each is charged 1/k of the elapsed time; time with
    none in flight is charged to no one.
    """
    seconds: dict[SpanKey, float] = {}
    for gpu_spans in _spans_by_gpu(spans, keys_of).values():
        for a, b, active in _segments(gpu_spans, ()):
            for span in active:
                key = span_key(span)
                seconds[key] = seconds.get(key, 0.0) + (b - a) / len(active) / NS_PER_S
    return seconds


def estimate_energy_wh(
    price_energy: tuple[float | None, float | None], usage: TokenUsage
) -> float | None:
    """Estimated energy from per-1k-token coefficients ``(input, output)``.

    Returns None when the output coefficient or output count is unknown. An unknown input
    coefficient counts generation only (the documented EcoLogits scope).
    """
    wh_in, wh_out = price_energy
    if wh_out is None or usage.output_tokens is None:
        return None
    energy = usage.output_tokens / 1000 * wh_out
    if wh_in is not None and usage.input_tokens is not None:
        energy += usage.input_tokens / 1000 * wh_in
    return energy


def carbon_g(energy_wh: float, *, pue: float, grid_gco2e_per_kwh: float) -> float:
    """gCO2e of *energy_wh* of IT energy: ``Wh x PUE x g/kWh / 1000``.

    Raises:
        ValueError: PUE below 1, or a negative energy or grid intensity.
    """
    if pue < 1 or grid_gco2e_per_kwh < 0 or energy_wh < 0:
        msg = f"need energy_wh >= 0, pue >= 1, grid >= 0: {energy_wh}, {pue}, {grid_gco2e_per_kwh}"
        raise ValueError(msg)
    return energy_wh * pue * grid_gco2e_per_kwh / 1000


def span_cost(
    span: SpanRecord,
    *,
    prices: PriceTable,
    measured: SpanEnergy | None = None,
    gpu_seconds: float | None = None,
    gpu_hour_usd: float | None = None,
    gpu_hour_estimated: bool = False,
    pue: float | None = None,
    grid_gco2e_per_kwh: float | None = None,
    gpu_count: int = 1,
) -> SpanCost:
    """Cost, energy and carbon of one span.

    A span on a local GPU (``gpu_seconds`` given) is priced by GPU time when
    ``gpu_hour_usd`` is set (``gpu_time_estimated`` when that is a public list price), and
    never by token price; other spans by the token price of their model. Measured energy
    wins over the table's estimate. Carbon needs both ``pue`` and ``grid_gco2e_per_kwh``.
    *gpu_count*: how many GPUs the span ran on (for the sampled-share note).
    """
    usage = usage_of(span)
    price = prices.lookup(span.provider, span.model)
    usd: float | None = None
    usd_source: CostSource | None = None
    if gpu_seconds is not None:
        if gpu_hour_usd is not None:
            usd = gpu_time_usd(gpu_hour_usd=gpu_hour_usd, gpu_seconds=gpu_seconds)
            usd_source = "gpu_time_estimated" if gpu_hour_estimated else "gpu_time"
    elif price is not None:
        cost = cost_of(price, usage)
        if cost is not None:
            usd, usd_source = cost.usd, "token_price"
    energy_wh: float | None = None
    energy_source: Literal["measured", "estimated"] | None = None
    note: str | None = None
    if measured is not None:
        energy_wh, energy_source, note = measured.energy_wh, "measured", MEASURED_NOTE
        span_gpu_ns = span.duration_ns * max(1, gpu_count, len(gpu_keys_of(span)))
        if measured.covered_ns < span_gpu_ns:
            note += f"; {measured.covered_ns / span_gpu_ns:.0%} of the span's GPU time was sampled"
    elif price is not None and gpu_seconds is None:
        coefficients = (price.energy_wh_per_1k_input_tokens, price.energy_wh_per_1k_output_tokens)
        energy_wh = estimate_energy_wh(coefficients, usage)
        if energy_wh is not None:
            energy_source, note = "estimated", (
                f"estimated: {price.energy_source} (as of {price.energy_as_of})"
            )
    co2e = None
    if energy_wh is not None and pue is not None and grid_gco2e_per_kwh is not None:
        co2e = carbon_g(energy_wh, pue=pue, grid_gco2e_per_kwh=grid_gco2e_per_kwh)
    return SpanCost(usd, usd_source, usd is not None, energy_wh, energy_source, note, co2e)


def attribute_costs(
    spans: Sequence[SpanRecord],
    *,
    prices: PriceTable,
    energy: EnergyAttribution | None = None,
    gpu_hour_usd: float | None = None,
    pue: float | None = None,
    grid_gco2e_per_kwh: float | None = None,
    keys_of: KeysOf = gpu_keys_of,
) -> dict[SpanKey, SpanCost]:
    """``span_cost`` for every span, with GPU time shares computed across *spans*."""
    seconds = gpu_time_shares(spans, keys_of)
    measured = energy.spans if energy is not None else {}
    return {
        span_key(s): span_cost(
            s,
            prices=prices,
            measured=measured.get(span_key(s)),
            gpu_seconds=seconds.get(span_key(s)),
            gpu_hour_usd=gpu_hour_usd,
            pue=pue,
            grid_gco2e_per_kwh=grid_gco2e_per_kwh,
        )
        for s in spans
    }


def estimate_unknown_reason(price: ModelPrice | None, usage: TokenUsage) -> str:
    """Why a span off a GPU has no energy estimate (it has no measured figure either)."""
    if price is None:
        return "model not in the price table: no energy coefficient"
    if price.energy_unknown is not None:
        return price.energy_unknown
    return "no output token count on the span"


def request_metrics(
    spans: Iterable[SpanRecord], costs: Mapping[SpanKey, SpanCost]
) -> RequestMetrics:
    """Wh per request, J per token and gCO2e per request over spans with known energy.

    J per token counts spans that also report input and output tokens; gCO2e per request
    counts spans with known carbon. Fields with nothing to average are None.
    """
    wh: list[float] = []
    joules = 0.0
    tokens = 0
    co2: list[float] = []
    for span in spans:
        cost = costs.get(span_key(span))
        if cost is None or cost.energy_wh is None:
            continue
        wh.append(cost.energy_wh)
        if cost.co2e_g is not None:
            co2.append(cost.co2e_g)
        if span.input_tokens is not None and span.output_tokens is not None:
            joules += cost.energy_wh * _S_PER_H
            tokens += span.input_tokens + span.output_tokens
    return RequestMetrics(
        requests=len(wh),
        wh_per_request=sum(wh) / len(wh) if wh else None,
        j_per_token=joules / tokens if tokens else None,
        gco2e_per_request=sum(co2) / len(co2) if co2 else None,
    )


def _spans_by_gpu(spans: Iterable[SpanRecord], keys_of: KeysOf) -> dict[GPUKey, list[SpanRecord]]:
    by_gpu: dict[GPUKey, list[SpanRecord]] = {}
    for span in spans:
        for gpu in keys_of(span):
            by_gpu.setdefault(gpu, []).append(span)
    return by_gpu


def _segments(
    spans: Sequence[SpanRecord], times: Iterable[int]
) -> Iterator[tuple[int, int, list[SpanRecord]]]:
    """Consecutive pieces cut at every time and span edge, with the spans in flight."""
    edges = sorted({*times, *(s.start_unix_nano for s in spans), *(s.end_unix_nano for s in spans)})
    by_start = sorted(spans, key=lambda s: s.start_unix_nano)
    by_end = sorted(spans, key=lambda s: s.end_unix_nano)
    active: dict[SpanKey, SpanRecord] = {}
    i = j = 0
    for a, b in pairwise(edges):
        while i < len(by_start) and by_start[i].start_unix_nano <= a:
            active[span_key(by_start[i])] = by_start[i]
            i += 1
        while j < len(by_end) and by_end[j].end_unix_nano <= a:
            active.pop(span_key(by_end[j]), None)
            j += 1
        yield a, b, list(active.values())


def _shares(active: list[SpanRecord], weighting: Weighting) -> list[tuple[SpanRecord, float]]:
    if weighting == "tokens":
        rates = [_token_rate(s) for s in active]
        total = sum(r for r in rates if r is not None)
        if all(r is not None for r in rates) and total > 0:
            return [(s, (r or 0.0) / total) for s, r in zip(active, rates, strict=True)]
    return [(s, 1 / len(active)) for s in active]


def _token_rate(span: SpanRecord) -> float | None:
    if span.input_tokens is None or span.output_tokens is None or span.duration_ns <= 0:
        return None
    return (span.input_tokens + span.output_tokens) / span.duration_ns



# -- vectorised passes over many spans (the GPU pass) -------------------------------------------
# The same arithmetic as ``attribute_energy`` and ``gpu_time_shares``, as prefix sums over
# the elementary segments between every sample time and span edge: each segment's share per
# in-flight span is summed once, and a span's figure is the difference of the running sum
# at its end and its start.


@dataclass(frozen=True, slots=True)
class GPUSweep:
    """One GPU's measured energy split over its spans (arrays aligned with the inputs)."""

    span_wh: np.ndarray  # attributed Wh per span
    covered_ns: np.ndarray  # span time inside the sampled range
    interval_rows: list[tuple[int, int, float, float, float, int, int]]
    # (start_ns, end_ns, measured_wh, attributed_wh, idle_wh, idle_ns, counter_resets)


def sweep_energy(
    starts: np.ndarray,
    ends: np.ndarray,
    times: np.ndarray,
    counter_wh: np.ndarray,
    *,
    idle_power_w: float | None = None,
    token_rates: np.ndarray | None = None,
) -> GPUSweep:
    """``attribute_energy`` for one GPU's spans (``starts``/``ends`` ns) and counter
    readings (``times`` ascending, ``counter_wh`` cumulative Wh; at least two).

    *token_rates* (tokens/ns, NaN where unknown) selects the ``"tokens"`` weighting.
    """
    times = np.asarray(times, dtype=np.int64)
    deltas = np.diff(counter_wh)
    resets = deltas < 0
    deltas = np.where(resets, counter_wh[1:], deltas)  # a reset: the new reading counts
    rates = deltas / np.diff(times)
    lo, hi = times[0], times[-1]
    s_in, e_in = np.clip(starts, lo, hi), np.clip(ends, lo, hi)
    edges = np.unique(np.concatenate([times, s_in, e_in]))
    left, length = edges[:-1], np.diff(edges)
    interval = np.clip(np.searchsorted(times, left, "right") - 1, 0, len(rates) - 1)
    seg_wh = rates[interval] * length
    by_start, by_end = np.sort(starts), np.sort(ends)
    active = np.searchsorted(by_start, left, "right") - np.searchsorted(by_end, left, "right")
    busy = active > 0
    base = np.zeros_like(seg_wh)
    if idle_power_w is not None:
        base = np.where(busy, np.minimum(idle_power_w * length / NS_PER_S / _S_PER_H, seg_wh), 0)
    shared = np.where(busy, seg_wh - base, 0.0)
    start_at, end_at = np.searchsorted(edges, s_in), np.searchsorted(edges, e_in)
    equal = shared / np.maximum(active, 1)
    if token_rates is None:
        span_wh = _between(equal, start_at, end_at)
    else:
        known = np.nan_to_num(token_rates, nan=0.0)
        order_s, order_e = np.argsort(starts, kind="stable"), np.argsort(ends, kind="stable")
        rate_sum = _running(known[order_s], by_start, left) - _running(known[order_e], by_end,
                                                                       left)
        missing = np.isnan(token_rates).astype(float)
        unknown = _running(missing[order_s], by_start, left) - _running(missing[order_e], by_end,
                                                                        left)
        fallback = (unknown > 0.5) | (rate_sum <= 0)
        per_rate = np.where(fallback, 0.0, shared / np.where(fallback, 1.0, rate_sum))
        span_wh = (_between(np.where(fallback, equal, 0.0), start_at, end_at)
                   + known * _between(per_rate, start_at, end_at))
    idle = np.where(busy, base, seg_wh)
    n = len(rates)
    idle_wh = np.bincount(interval, weights=idle, minlength=n)
    idle_ns = np.bincount(interval, weights=np.where(busy, 0, length), minlength=n)
    rows = [(int(times[k]), int(times[k + 1]), float(deltas[k]), float(deltas[k] - idle_wh[k]),
             float(idle_wh[k]), round(float(idle_ns[k])), int(resets[k])) for k in range(n)]
    return GPUSweep(span_wh, np.maximum(e_in - s_in, 0), rows)


def sweep_gpu_seconds(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``gpu_time_shares`` for one GPU: each span's seconds, 1/k of the time k are in flight."""
    edges = np.unique(np.concatenate([starts, ends]))
    left, length = edges[:-1], np.diff(edges)
    active = (np.searchsorted(np.sort(starts), left, "right")
              - np.searchsorted(np.sort(ends), left, "right"))
    share = np.where(active > 0, length / np.maximum(active, 1), 0.0)
    seconds: np.ndarray = _between(share, np.searchsorted(edges, starts),
                                   np.searchsorted(edges, ends)) / NS_PER_S
    return seconds


def _between(per_segment: np.ndarray, start_at: np.ndarray, end_at: np.ndarray) -> np.ndarray:
    """Sum of *per_segment* over segments ``[start_at, end_at)``, by prefix sums."""
    running = np.concatenate([[0.0], np.cumsum(per_segment)])
    out: np.ndarray = running[end_at] - running[start_at]
    return out


def _running(values_sorted: np.ndarray, keys_sorted: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Sum of the values whose key is <= each of *at* (keys ascending, values in that order)."""
    running = np.concatenate([[0.0], np.cumsum(values_sorted)])
    out: np.ndarray = running[np.searchsorted(keys_sorted, at, "right")]
    return out


@dataclass(frozen=True, slots=True)
class IngestPricer:
    """Token cost and estimated energy of hosted-API spans, known as soon as they arrive.

    Spans that ran on a local GPU are left unpriced here: their GPU-time cost and measured
    energy need the GPU's samples and are filled in by analysis. Picklable: the decode
    workers (``strata.agent.ingest.decoding``) price the spans they decode.
    """

    prices: PriceTable
    pue: float
    grid_gco2e_per_kwh: float

    def __call__(self, spans: Sequence[SpanRecord]) -> list[CostColumns]:
        columns: list[CostColumns] = []
        for span in spans:
            if span.model is None or gpu_keys_of(span):
                columns.append((None, None, None, None, None))
                continue
            cost = span_cost(span, prices=self.prices, pue=self.pue,
                             grid_gco2e_per_kwh=self.grid_gco2e_per_kwh)
            columns.append((cost.usd, cost.usd_source, cost.energy_wh, cost.energy_source,
                            cost.co2e_g))
        return columns
