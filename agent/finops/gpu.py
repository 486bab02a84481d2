"""The GPU pass: measured energy and GPU-time cost of spans that ran on a local GPU.

At ingest, hosted-API spans get their token price and estimated energy
(``Agent.price_at_ingest``); spans tied to a local GPU
(``strata.analytics.attribution.gpu_keys_of``)
are left unpriced because their figures need the GPU's samples. This pass fills them in:

1. the spans it *owns* are the GPU-tied spans starting in ``[since_ns, until_ns)``;
2. it reads every GPU energy counter sample (``gpu.energy.consumed``) from the last one at or
   before ``since_ns`` to the first one at or after the end of the last owned span, and
   every GPU-tied span overlapping that stretch (the context: requests sharing the GPU);
3. per sample interval of each GPU it runs ``strata.analytics.attribution.attribute_energy`` on the
   spans in flight in it, so each interval's measured energy splits exactly into attributed
   and idle; the intervals go to ``gpu_energy`` (idle energy reported separately);
4. GPU seconds come from ``gpu_time_shares`` over the context, cost from ``span_cost``
   (``gpu_hour_usd x seconds / 3600``, never a token price), carbon from the site's PUE and
   grid intensity;
5. one transaction: UPDATE the owned spans' cost/energy columns from an Arrow table,
   upsert the GPU intervals, rebuild the touched hours of the cost rollup.

Idempotent: the same stored data gives the same columns, however often it runs. Spans that
start before ``since_ns`` are read as context but not written, so consecutive windows
compose; re-running a trailing window picks up late spans and samples.
"""

from __future__ import annotations

import itertools
import json
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa
from strata.agent.config import Settings
from strata.agent.finops.report import HOUR_NS, refresh_rollup_hours
from strata.agent.model import Layer, Sample, SpanRecord
from strata.agent.store.db import DuckDBStore
from strata.analytics.attribution import (
    GPUKey,
    SpanEnergy,
    SpanKey,
    Weighting,
    attribute_energy,
    gpu_keys_of,
    gpu_time_shares,
    span_cost,
    span_key,
)
from strata.analytics.pricing import PriceTable

__all__ = [
    "ENERGY_SIGNAL",
    "apply_gpu_attribution",
    "gpu_spans",
    "pending_gpu_window",
    "span_record",
]

logger = logging.getLogger(__name__)

ENERGY_SIGNAL: Final = "gpu.energy.consumed"
DEFAULT_PAD_NS: Final = 600_000_000_000  # how far to look for the bracketing energy samples
MAX_SPAN_NS: Final = 6 * HOUR_NS  # longer GPU spans are not looked for before the window
_SPAN_READ = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status, service, layer, "
    "request_model, response_model, provider, input_tokens, output_tokens, cache_read_tokens, "
    "host, attributes, resource"
)
_UPDATE_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("cost_usd", pa.float64()),
    ("cost_source", pa.string()), ("energy_wh", pa.float64()), ("energy_source", pa.string()),
    ("co2e_g", pa.float64()),
])
_GPU_ENERGY_SCHEMA = pa.schema([
    ("host", pa.string()), ("device", pa.string()), ("start_ns", pa.int64()),
    ("end_ns", pa.int64()), ("measured_wh", pa.float64()), ("attributed_wh", pa.float64()),
    ("idle_wh", pa.float64()), ("idle_ns", pa.int64()), ("counter_resets", pa.int32()),
])


def span_record(row: dict[str, Any]) -> SpanRecord:
    """A stored span row (attributes/resource as JSON text or dicts) as a SpanRecord."""
    attributes = row.get("attributes") or {}
    resource = row.get("resource") or {}
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row.get("parent_span_id"),
        name=row.get("name", ""),
        kind=row.get("kind", "internal"),
        start_unix_nano=int(row["start_ns"]),
        end_unix_nano=int(row["end_ns"]),
        status=row.get("status", "unset"),
        service=row.get("service", ""),
        layer=Layer(row.get("layer", "orchestration")),
        provider=row.get("provider"),
        request_model=row.get("request_model"),
        response_model=row.get("response_model"),
        input_tokens=row.get("input_tokens"),
        output_tokens=row.get("output_tokens"),
        cache_read_tokens=row.get("cache_read_tokens"),
        host=row.get("host"),
        attributes=json.loads(attributes) if isinstance(attributes, str) else attributes,
        resource=json.loads(resource) if isinstance(resource, str) else resource,
    )


def gpu_spans(cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int) -> list[SpanRecord]:
    """GPU-tied spans overlapping ``[lo_ns, hi_ns)`` (tied: ``gpu_keys_of`` is not empty)."""
    result = cur.execute(
        f"SELECT {_SPAN_READ} FROM spans "  # noqa: S608 - constant column list
        "WHERE start_ns >= ? AND start_ns < ? AND end_ns > ? "
        "AND (attributes LIKE '%\"gpu.%' OR resource LIKE '%\"gpu.%')",
        [lo_ns - MAX_SPAN_NS, hi_ns, lo_ns],
    )
    names = [d[0] for d in result.description]
    spans = (span_record(dict(zip(names, r, strict=True))) for r in result.fetchall())
    return [s for s in spans if gpu_keys_of(s)]


def _energy_series(
    cur: duckdb.DuckDBPyConnection, lo_ns: int, hi_ns: int, pad_ns: int
) -> dict[GPUKey, list[Sample]]:
    """Each GPU's counter samples from the last at/before *lo_ns* to the first at/after *hi_ns*."""
    rows = cur.execute(
        "SELECT host, device, time_ns, name, unit, value FROM samples "
        "WHERE canonical = ? AND time_ns >= ? AND time_ns <= ? "
        "AND host IS NOT NULL AND device IS NOT NULL ORDER BY host, device, time_ns",
        [ENERGY_SIGNAL, lo_ns - pad_ns, hi_ns + pad_ns],
    ).fetchall()
    series: dict[GPUKey, list[Sample]] = {}
    for host, device, t, name, unit, value in rows:
        series.setdefault((host, device), []).append(
            Sample(name, value, unit, Layer.INFRASTRUCTURE, t, host=host, device=device)
        )
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
) -> tuple[dict[SpanKey, SpanEnergy], list[tuple[Any, ...]]]:
    """Per-span measured energy and per-interval GPU rows, one interval at a time."""
    on_gpu: dict[GPUKey, list[SpanRecord]] = {}
    for span in spans:
        for gpu in gpu_keys_of(span):
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
                active, [s0, s1], idle_power_w=idle_power_w, weighting=weighting
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
) -> int:
    """Price GPU-tied spans starting in ``[since_ns, until_ns)`` by GPU time and measured energy.

    Args:
        store: the agent's store (read through its cursor, written in one transaction).
        since_ns: start of the window of spans to write (event time).
        until_ns: end of that window (exclusive).
        settings: ``gpu_hour_usd``, ``carbon_pue`` and ``carbon_grid_gco2e_per_kwh``.
        prices: only used for spans off a GPU, which this pass does not touch.
        idle_power_w: a GPU's idle power; booked as idle while requests run (see
            ``attribute_energy``). None: all busy energy is attributed.
        weighting: share of busy energy by ``"time"`` or by ``"tokens"`` per second.
        pad_ns: how far outside the window to look for bracketing energy samples.

    Returns:
        How many spans were written.
    """
    cur = store.cursor()
    owned_probe = gpu_spans(cur, since_ns, until_ns)
    owned = [s for s in owned_probe if since_ns <= s.start_unix_nano < until_ns]
    hi = max([until_ns, *(s.end_unix_nano for s in owned)])
    series = _energy_series(cur, since_ns, hi, pad_ns)
    starts = [p[0].time_unix_nano for p in series.values() if p]
    ends = [p[-1].time_unix_nano for p in series.values() if p]
    context = gpu_spans(cur, min([since_ns, *starts]), max([hi, *ends]) + 1)
    measured, interval_rows = _attribute_intervals(series, context, idle_power_w, weighting)
    seconds = gpu_time_shares(context)
    table = prices if prices is not None else PriceTable([], provider_aliases={})
    updates: dict[str, list[Any]] = {name: [] for name in _UPDATE_SCHEMA.names}
    for span in owned:
        key = span_key(span)
        cost = span_cost(
            span,
            prices=table,
            measured=measured.get(key),
            gpu_seconds=seconds.get(key, 0.0),
            gpu_hour_usd=settings.gpu_hour_usd,
            pue=settings.carbon_pue,
            grid_gco2e_per_kwh=settings.carbon_grid_gco2e_per_kwh,
        )
        for name, value in zip(
            _UPDATE_SCHEMA.names,
            (*key, cost.usd, cost.usd_source, cost.energy_wh, cost.energy_source, cost.co2e_g),
            strict=True,
        ):
            updates[name].append(value)
    update_table = pa.Table.from_pydict(updates, schema=_UPDATE_SCHEMA)
    gpu_table = pa.Table.from_pylist(
        [dict(zip(_GPU_ENERGY_SCHEMA.names, r, strict=True)) for r in interval_rows],
        schema=_GPU_ENERGY_SCHEMA,
    )
    with store.transaction() as tx:
        if update_table.num_rows:
            tx.register("_gpu_costs", update_table)
            tx.execute(
                "UPDATE spans SET cost_usd = u.cost_usd, cost_source = u.cost_source, "
                "energy_wh = u.energy_wh, energy_source = u.energy_source, co2e_g = u.co2e_g "
                "FROM _gpu_costs u WHERE spans.trace_id = u.trace_id "
                "AND spans.span_id = u.span_id AND spans.start_ns >= ? AND spans.start_ns < ?",
                [since_ns, until_ns],
            )
            tx.unregister("_gpu_costs")
        if gpu_table.num_rows:
            tx.register("_gpu_energy", gpu_table)
            tx.execute("INSERT OR REPLACE INTO gpu_energy SELECT * FROM _gpu_energy")
            tx.unregister("_gpu_energy")
        refresh_rollup_hours(tx, (s.start_unix_nano for s in owned))
    logger.debug("GPU pass: %d spans, %d GPU intervals", len(owned), len(interval_rows))
    return len(owned)


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
    row = cur.execute(
        "SELECT min(lo), max(hi) FROM ("
        "  SELECT min(start_ns) AS lo, max(start_ns) AS hi FROM spans WHERE received_ns >= ? "
        "    AND (attributes LIKE '%\"gpu.%' OR resource LIKE '%\"gpu.%')"
        "  UNION ALL"
        "  SELECT min(time_ns), max(time_ns) FROM samples WHERE received_ns >= ? AND canonical = ?"
        ")",
        [received_since_ns, received_since_ns, ENERGY_SIGNAL],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]) - pad_ns, int(row[1]) + pad_ns + 1
