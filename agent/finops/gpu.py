"""The GPU pass: measured energy and GPU-time cost of spans that ran on a local GPU.

At ingest, hosted-API spans get their token price and estimated energy
(``Agent.price_at_ingest``); spans naming a GPU (``strata.analytics.attribution.gpu_keys_of``)
are left unpriced because their figures need the GPU's samples. This pass fills in every span
the serving topology ties to a GPU (``strata.analytics.topology``: GPU ids, ``[[gpu_map]]``,
a client span's ``server.address``, a server span's host; the GPUs from the stored GPU
metrics), overwriting what ingest wrote for them:

1. the spans it *owns* are the GPU-tied spans starting in ``[since_ns, until_ns)``;
2. it reads every GPU energy counter sample (``gpu.energy.consumed``) from the last one at or
   before ``since_ns`` to the first one at or after the end of the last owned span, and
   every GPU-tied span overlapping that stretch (the context: requests sharing the GPU);
3. per GPU it runs ``strata.analytics.attribution.sweep_energy`` (the arithmetic of
   ``attribute_energy`` as prefix sums, so an hour of a busy stack costs milliseconds) on the
   spans in flight, so each interval's measured energy splits exactly into attributed and
   idle; the intervals go to ``gpu_energy`` (idle energy reported separately);
4. GPU seconds come from ``sweep_gpu_seconds`` (``gpu_time_shares``) over the context, cost
   from ``span_cost``'s rule (``gpu_hour_usd x seconds / 3600``, never a token price; with
   ``gpu_hour_usd`` unset, the public price of the GPU's model from
   ``strata.analytics.gpu_prices``, marked ``gpu_time_estimated``), carbon from the
   site's PUE and grid intensity;
5. one transaction: UPDATE the owned spans' cost/energy columns from an Arrow table,
   upsert the GPU intervals, rebuild the touched hours of the cost rollup.

Idempotent: the same stored data gives the same columns, however often it runs. Spans that
start before ``since_ns`` are read as context but not written, so consecutive windows
compose; re-running a trailing window picks up late spans and samples.
"""

from __future__ import annotations

import json
import logging
import socket
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import numpy as np
from strata.agent.config import Settings
from strata.agent.finops.report import refresh_rollup_hours
from strata.agent.model import Layer, Sample, SpanRecord
from strata.agent.store import spans as span_store
from strata.agent.store.costs import upsert_gpu_energy
from strata.agent.store.db import DuckDBStore
from strata.agent.store.samples import ENERGY_SIGNAL, energy_counter_samples
from strata.agent.store.seam import DuckDBReports, ReportReads
from strata.agent.units import HOUR_NS, MINUTE_NS, WH_PER_UNIT
from strata.analytics.attribution import (
    GPUKey,
    Weighting,
    carbon_g,
    sweep_energy,
    sweep_gpu_seconds,
)
from strata.analytics.gpu_prices import GPUPriceTable
from strata.analytics.pricing import PriceTable
from strata.analytics.topology import GPUInfo, Topology

__all__ = [
    "ENERGY_SIGNAL",
    "apply_gpu_attribution",
    "load_topology",
    "pending_gpu_window",
]

logger = logging.getLogger(__name__)

DEFAULT_PAD_NS: Final = 10 * MINUTE_NS  # how far to look for the bracketing energy samples
MAX_SPAN_NS: Final = 6 * HOUR_NS  # longer GPU spans are not looked for before the window
_COL = {name: i for i, name in enumerate(span_store.GPU_CANDIDATE_COLUMNS)}
_JOIN_FIELDS = span_store.GPU_CANDIDATE_COLUMNS[_COL["has_model"]:]


def load_topology(
    reads: ReportReads, lo_ns: int, hi_ns: int, settings: Settings,
    *, local_host: str | None = None,
) -> Topology:
    """The serving topology from the GPUs with samples in ``[lo_ns, hi_ns]`` (either engine's
    reads) and the configured ``[[gpu_map]]``; loopback addresses name *local_host*
    (default: this host)."""
    rows = reads.gpu_inventory(since_ns=lo_ns, until_ns=hi_ns, energy_signal=ENERGY_SIGNAL)
    return Topology((GPUInfo(h, d, model, energy, pod) for h, d, model, pod, energy in rows),
                    settings.gpu_map, local_host=local_host or socket.gethostname())


@dataclass(slots=True)
class _Spans:
    """GPU-tied spans as columns, and the GPUs of each."""

    ids: list[tuple[str, str]]
    starts: np.ndarray
    ends: np.ndarray
    token_rates: np.ndarray  # tokens per ns, NaN where unknown
    gpus: list[tuple[GPUKey, ...]]


def _probe(fields: Sequence[Any]) -> SpanRecord:
    """A span carrying only what ``Topology.resolve`` reads (one per distinct join key)."""
    f = dict(zip(_JOIN_FIELDS, fields, strict=True))
    attributes: dict[str, Any] = {}
    resource: dict[str, Any] = {}
    for key, target, name in (("address", attributes, "server.address"),
                              ("port", attributes, "server.port"),
                              ("url", attributes, "url.full"),
                              ("resource_host", resource, "host.name"),
                              ("instance", resource, "service.instance.id")):
        if f[key] is not None:
            target[name] = f[key]
    for key, target, name in (("gpu_uuid", attributes, "gpu.uuid"),
                              ("gpu_id", attributes, "gpu.id"),
                              ("resource_gpu_uuid", resource, "gpu.uuid"),
                              ("resource_gpu_id", resource, "gpu.id")):
        if f[key] is not None:
            target[name] = json.loads(f[key])
    return SpanRecord("", "", None, "", "", 0, 0, "unset", "", Layer.MODEL,
                      request_model="?" if f["has_model"] else None, host=f["host"],
                      attributes=attributes, resource=resource)


def _tied_spans(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, topology: Topology
) -> _Spans:
    """GPU-tied spans overlapping ``[lo_ns, hi_ns)``, joined by the topology once per
    distinct join key (spans to one server share it)."""
    rows = span_store.gpu_candidates(cur, lo_ns, hi_ns, max_span_ns=MAX_SPAN_NS,
                                     hosts=topology.hosts, addresses=topology.addresses)
    joined: dict[tuple[Any, ...], tuple[GPUKey, ...]] = {}
    kept, gpus = [], []
    first = _COL["has_model"]
    for row in rows:
        key = row[first:]
        found = joined.get(key)
        if found is None:
            found = joined[key] = topology.gpus_of(_probe(key))
        if found:
            kept.append(row)
            gpus.append(found)
    starts = np.array([r[_COL["start_ns"]] for r in kept], dtype=np.int64)
    ends = np.array([r[_COL["end_ns"]] for r in kept], dtype=np.int64)
    tokens = np.array([np.nan if r[_COL["input_tokens"]] is None or r[_COL["output_tokens"]] is None
                       else r[_COL["input_tokens"]] + r[_COL["output_tokens"]] for r in kept],
                      dtype=float)
    duration = ends - starts
    rates = np.where(duration > 0, tokens / np.maximum(duration, 1), np.nan)
    return _Spans([(r[0], r[1]) for r in kept], starts, ends, rates, gpus)


def _energy_series(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, pad_ns: int
) -> dict[GPUKey, list[Sample]]:
    """Each GPU's counter samples from the last at/before *lo_ns* to the first at/after *hi_ns*."""
    series: dict[GPUKey, list[Sample]] = {}
    for sample in energy_counter_samples(cur, ENERGY_SIGNAL, since_ns=lo_ns - pad_ns,
                                         until_ns=hi_ns + pad_ns):
        series.setdefault((str(sample.host), str(sample.device)), []).append(sample)
    for gpu, points in series.items():
        times = [s.time_unix_nano for s in points]
        first = max(bisect_right(times, lo_ns) - 1, 0)
        last = min(bisect_left(times, hi_ns), len(points) - 1)
        series[gpu] = points[first : last + 1]
    return series


def _by_gpu(spans: _Spans) -> dict[GPUKey, np.ndarray]:
    """Each GPU's span indices, built per distinct GPU set (spans to one server share it)."""
    sets: dict[tuple[GPUKey, ...], int] = {}
    set_of = np.array([sets.setdefault(g, len(sets)) for g in spans.gpus], dtype=np.int64)
    members: dict[GPUKey, list[np.ndarray]] = {}
    for gpus, k in sets.items():
        idx = np.flatnonzero(set_of == k)
        for gpu in gpus:
            members.setdefault(gpu, []).append(idx)
    return {gpu: np.sort(np.concatenate(parts)) for gpu, parts in members.items()}


def _measure(
    series: dict[GPUKey, list[Sample]], spans: _Spans, on_gpu: dict[GPUKey, np.ndarray],
    idle_power_w: float | None, weighting: Weighting,
) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]]:
    """Per-span measured Wh and covered ns (summed over GPUs), and per-interval GPU rows."""
    wh = np.zeros(len(spans.ids))
    covered = np.zeros(len(spans.ids), dtype=np.int64)
    rows: list[tuple[Any, ...]] = []
    for gpu, points in sorted(series.items()):
        if len(points) < 2:  # an interval needs two readings
            continue
        factor = WH_PER_UNIT.get(points[0].unit)
        if factor is None or any(p.unit != points[0].unit for p in points):
            logger.warning("GPU %s energy counter in unit %r: skipped", gpu, points[0].unit)
            continue
        idx = on_gpu.get(gpu, np.zeros(0, dtype=np.int64))
        result = sweep_energy(
            spans.starts[idx], spans.ends[idx],
            np.array([p.time_unix_nano for p in points], dtype=np.int64),
            np.array([p.value * factor for p in points]), idle_power_w=idle_power_w,
            token_rates=spans.token_rates[idx] if weighting == "tokens" else None,
        )
        np.add.at(wh, idx, result.span_wh)
        np.add.at(covered, idx, result.covered_ns)
        rows.extend((*gpu, *row) for row in result.interval_rows)
    return wh, covered, rows


def apply_gpu_attribution(
    store: DuckDBStore,
    *,
    since_ns: int,
    until_ns: int,
    settings: Settings,
    prices: PriceTable | None = None,
    idle_power_w: float | None = None,
    weighting: Weighting = "time",
    pad_ns: int = DEFAULT_PAD_NS,
    gpu_prices: GPUPriceTable | None = None,
    local_host: str | None = None,
) -> int:
    """Price GPU-tied spans starting in ``[since_ns, until_ns)`` by GPU time and measured energy.

    Args:
        store: the agent's store (read through its cursor, written in one transaction).
        since_ns: start of the window of spans to write (event time).
        until_ns: end of that window (exclusive).
        settings: ``gpu_hour_usd``, ``gpu_map``, ``carbon_pue`` and
            ``carbon_grid_gco2e_per_kwh``.
        prices: unused (GPU-tied spans are never priced by token); kept for callers.
        idle_power_w: a GPU's idle power; booked as idle while requests run (see
            ``attribute_energy``). None: all busy energy is attributed.
        weighting: share of busy energy by ``"time"`` or by ``"tokens"`` per second.
        pad_ns: how far outside the window to look for bracketing energy samples.
        gpu_prices: GPU-hour list prices used when ``settings.gpu_hour_usd`` is unset
            (default: the packaged table).
        local_host: the host loopback addresses name (default: this host).

    Returns:
        How many spans were written.
    """
    del prices
    cur = store.cursor()
    topology = load_topology(DuckDBReports(store), since_ns - pad_ns, until_ns + pad_ns,
                             settings, local_host=local_host)
    # One read covers the context (every span sharing a GPU with an owned one while the
    # bracketing samples run): those samples lie within pad_ns of the owned spans.
    spans = _tied_spans(cur, since_ns - pad_ns, until_ns + pad_ns + 1, topology)
    in_window = (spans.starts >= since_ns) & (spans.starts < until_ns)
    hi = int(spans.ends[in_window].max()) if in_window.any() else until_ns
    series = _energy_series(cur, since_ns, max(hi, until_ns), pad_ns)
    if hi > until_ns + pad_ns:  # an owned span outlasting the pad: read to its end
        ends = [p[-1].time_unix_nano for p in series.values() if p]
        spans = _tied_spans(cur, since_ns - pad_ns, max([hi, *ends]) + 1, topology)
    on_gpu = _by_gpu(spans)
    wh, covered, interval_rows = _measure(series, spans, on_gpu, idle_power_w, weighting)
    seconds = np.zeros(len(spans.ids))
    done: dict[bytes, np.ndarray] = {}  # tensor-parallel GPUs share their spans: sweep once
    for idx in on_gpu.values():
        key = idx.tobytes()
        if key not in done:
            done[key] = sweep_gpu_seconds(spans.starts[idx], spans.ends[idx])
        np.add.at(seconds, idx, done[key])
    hour_usd = _hour_prices(spans, topology, settings, gpu_prices)
    source = "gpu_time" if settings.gpu_hour_usd is not None else "gpu_time_estimated"
    owned = np.flatnonzero((spans.starts >= since_ns) & (spans.starts < until_ns))
    usd = hour_usd[owned] * seconds[owned] / 3600
    energy = np.where(covered[owned] > 0, wh[owned], np.nan)
    co2 = carbon_g(1.0, pue=settings.carbon_pue,
                   grid_gco2e_per_kwh=settings.carbon_grid_gco2e_per_kwh) * energy
    updates = [(*spans.ids[i], _num(u), None if u != u else source, _num(e),
                None if e != e else "measured", _num(c))  # x != x: NaN, i.e. unknown
               for i, u, e, c in zip(owned.tolist(), usd.tolist(), energy.tolist(), co2.tolist(),
                                     strict=True)]
    hours = spans.starts[owned].tolist()
    with store.transaction() as tx:
        span_store.update_span_costs(tx, updates, since_ns=since_ns, until_ns=until_ns)
        upsert_gpu_energy(tx, interval_rows)
        refresh_rollup_hours(tx, hours)
    logger.debug("GPU pass: %d spans, %d GPU intervals", len(updates), len(interval_rows))
    return len(updates)


def _num(value: float) -> float | None:
    return None if value != value else value  # NaN: unknown


def _hour_prices(
    spans: _Spans, topology: Topology, settings: Settings, table: GPUPriceTable | None
) -> np.ndarray:
    """USD per GPU-hour for each span: the configured price, else the mean list price of
    its GPUs (NaN where a GPU's model is not in the table)."""
    if settings.gpu_hour_usd is not None:
        return np.full(len(spans.ids), settings.gpu_hour_usd)
    prices = table if table is not None else GPUPriceTable.packaged()
    memo: dict[tuple[GPUKey, ...], float] = {}
    out = np.empty(len(spans.ids))
    for i, gpus in enumerate(spans.gpus):
        if gpus not in memo:
            found = _list_price(topology, prices, gpus)
            memo[gpus] = np.nan if found is None else found
        out[i] = memo[gpus]
    return out


def _list_price(
    topology: Topology, table: GPUPriceTable, gpus: Sequence[GPUKey]
) -> float | None:
    """The mean public GPU-hour price of *gpus*; None when one's model is unknown."""
    found = []
    for gpu in gpus:
        info = topology.info(gpu)
        price = table.lookup(info.model_name if info is not None else None)
        if price is None:
            return None
        found.append(price.usd_per_gpu_hour)
    return sum(found) / len(found) if found else None


def pending_gpu_window(
    cur: duckdb.DuckDBPyConnection, *, received_since_ns: int, pad_ns: int = DEFAULT_PAD_NS
) -> tuple[int, int] | None:
    """The event-time window the GPU pass should (re)run after new data arrived.

    Covers GPU-tied spans and GPU energy samples received at or after *received_since_ns*
    (a replay of old telemetry lands in the past, so this is not "the last minute"), widened
    by *pad_ns* so spans whose sharing or bracketing samples changed are re-priced too.

    Returns:
        ``(since_ns, until_ns)`` for ``apply_gpu_attribution``, or None when nothing arrived.
    """
    found = span_store.gpu_received_range(cur, received_since_ns=received_since_ns,
                                          energy_signal=ENERGY_SIGNAL)
    if found is None:
        return None
    return found[0] - pad_ns, found[1] + pad_ns + 1
