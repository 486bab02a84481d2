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
3. per sample interval of each GPU it runs ``strata.analytics.attribution.attribute_energy`` on the
   spans in flight in it, so each interval's measured energy splits exactly into attributed
   and idle; the intervals go to ``gpu_energy`` (idle energy reported separately);
4. GPU seconds come from ``gpu_time_shares`` over the context, cost from ``span_cost``
   (``gpu_hour_usd x seconds / 3600``, never a token price; with ``gpu_hour_usd`` unset, the
   public price of the GPU's model from ``strata.analytics.gpu_prices``, marked
   ``gpu_time_estimated``), carbon from the site's PUE and grid intensity;
5. one transaction: UPDATE the owned spans' cost/energy columns from an Arrow table,
   upsert the GPU intervals, rebuild the touched hours of the cost rollup.

Idempotent: the same stored data gives the same columns, however often it runs. Spans that
start before ``since_ns`` are read as context but not written, so consecutive windows
compose; re-running a trailing window picks up late spans and samples.
"""

from __future__ import annotations

import itertools
import logging
import socket
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Final

import duckdb
from strata.agent.config import Settings
from strata.agent.finops.report import refresh_rollup_hours
from strata.agent.model import Sample, SpanRecord
from strata.agent.store import spans as span_store
from strata.agent.store.costs import HOUR_NS, upsert_gpu_energy
from strata.agent.store.db import DuckDBStore
from strata.agent.store.samples import energy_counter_samples, gpu_inventory
from strata.analytics.attribution import (
    GPUKey,
    KeysOf,
    SpanEnergy,
    SpanKey,
    Weighting,
    attribute_energy,
    gpu_time_shares,
    span_cost,
    span_key,
)
from strata.analytics.gpu_prices import GPUPriceTable
from strata.analytics.pricing import PriceTable
from strata.analytics.topology import GPUInfo, Topology

__all__ = [
    "ENERGY_SIGNAL",
    "apply_gpu_attribution",
    "gpu_spans",
    "load_topology",
    "pending_gpu_window",
]

logger = logging.getLogger(__name__)

ENERGY_SIGNAL: Final = "gpu.energy.consumed"
DEFAULT_PAD_NS: Final = 600_000_000_000  # how far to look for the bracketing energy samples
MAX_SPAN_NS: Final = 6 * HOUR_NS  # longer GPU spans are not looked for before the window


def load_topology(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, settings: Settings,
    *, local_host: str | None = None,
) -> Topology:
    """The serving topology from the GPUs with samples in ``[lo_ns, hi_ns]`` and the
    configured ``[[gpu_map]]``; loopback addresses name *local_host* (default: this host)."""
    rows = gpu_inventory(cur, since_ns=lo_ns, until_ns=hi_ns, energy_signal=ENERGY_SIGNAL)
    return Topology((GPUInfo(h, d, model, energy, pod) for h, d, model, pod, energy in rows),
                    settings.gpu_map, local_host=local_host or socket.gethostname())


def gpu_spans(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, topology: Topology | None = None
) -> list[SpanRecord]:
    """GPU-tied spans overlapping ``[lo_ns, hi_ns)`` (tied: *topology* finds GPUs for them;
    without one, only spans naming their GPUs)."""
    topo = topology if topology is not None else Topology()
    found = span_store.gpu_tied_spans(cur, lo_ns, hi_ns, max_span_ns=MAX_SPAN_NS,
                                      hosts=topo.hosts)
    return [s for s in found if topo.gpus_of(s)]


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


def _attribute_intervals(
    series: dict[GPUKey, list[Sample]],
    spans: Sequence[SpanRecord],
    idle_power_w: float | None,
    weighting: Weighting,
    keys_of: KeysOf,
) -> tuple[dict[SpanKey, SpanEnergy], list[tuple[Any, ...]]]:
    """Per-span measured energy and per-interval GPU rows, one interval at a time."""
    on_gpu: dict[GPUKey, list[SpanRecord]] = {}
    for span in spans:
        for gpu in keys_of(span):
            on_gpu.setdefault(gpu, []).append(span)
    energy: dict[SpanKey, list[float]] = {}
    rows: list[tuple[Any, ...]] = []
    for gpu, points in sorted(series.items()):
        candidates = sorted(on_gpu.get(gpu, []), key=lambda s: s.start_unix_nano)
        starts = [s.start_unix_nano for s in candidates]
        for s0, s1 in itertools.pairwise(points):
            t0, t1 = s0.time_unix_nano, s1.time_unix_nano
            active = [s for s in candidates[: bisect_left(starts, t1)] if s.end_unix_nano > t0]
            result = attribute_energy(
                active, [s0, s1], idle_power_w=idle_power_w, weighting=weighting,
                keys_of=keys_of,
            )
            for key, share in result.spans.items():
                acc = energy.setdefault(key, [0.0, 0.0])
                acc[0] += share.energy_wh
                acc[1] += share.covered_ns
            for g in result.gpus:
                rows.append((g.host, g.device, t0, t1, g.measured_wh, g.attributed_wh,
                             g.idle_wh, g.idle_ns, g.counter_resets))
    measured = {k: SpanEnergy(energy_wh=v[0], covered_ns=int(v[1])) for k, v in energy.items()}
    return measured, rows


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
        prices: only used for spans off a GPU, which this pass does not touch.
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
    cur = store.cursor()
    topology = load_topology(cur, since_ns - pad_ns, until_ns + pad_ns, settings,
                             local_host=local_host)
    owned_probe = gpu_spans(cur, since_ns, until_ns, topology)
    owned = [s for s in owned_probe if since_ns <= s.start_unix_nano < until_ns]
    hi = max([until_ns, *(s.end_unix_nano for s in owned)])
    series = _energy_series(cur, since_ns, hi, pad_ns)
    starts = [p[0].time_unix_nano for p in series.values() if p]
    ends = [p[-1].time_unix_nano for p in series.values() if p]
    context = gpu_spans(cur, min([since_ns, *starts]), max([hi, *ends]) + 1, topology)
    keys = {span_key(s): topology.gpus_of(s) for s in context}
    keys.update({span_key(s): topology.gpus_of(s) for s in owned})

    def keys_of(span: SpanRecord) -> tuple[GPUKey, ...]:
        return keys[span_key(span)]

    measured, interval_rows = _attribute_intervals(series, context, idle_power_w, weighting,
                                                   keys_of)
    seconds = gpu_time_shares(context, keys_of)
    table = prices if prices is not None else PriceTable([], provider_aliases={})
    list_prices = gpu_prices if gpu_prices is not None else GPUPriceTable.packaged()
    updates: list[tuple[Any, ...]] = []
    for span in owned:
        key = span_key(span)
        gpus = keys[key]
        hour_usd, estimated = settings.gpu_hour_usd, False
        if hour_usd is None:
            hour_usd, estimated = _list_price(topology, list_prices, gpus), True
        cost = span_cost(
            span,
            prices=table,
            measured=measured.get(key),
            gpu_seconds=seconds.get(key, 0.0),
            gpu_hour_usd=hour_usd,
            gpu_hour_estimated=estimated,
            pue=settings.carbon_pue,
            grid_gco2e_per_kwh=settings.carbon_grid_gco2e_per_kwh,
            gpu_count=len(gpus),
        )
        updates.append((*key, cost.usd, cost.usd_source, cost.energy_wh, cost.energy_source,
                        cost.co2e_g))
    with store.transaction() as tx:
        span_store.update_span_costs(tx, updates, since_ns=since_ns, until_ns=until_ns)
        upsert_gpu_energy(tx, interval_rows)
        refresh_rollup_hours(tx, (s.start_unix_nano for s in owned))
    logger.debug("GPU pass: %d spans, %d GPU intervals", len(owned), len(interval_rows))
    return len(owned)


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
