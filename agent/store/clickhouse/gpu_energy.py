"""The GPU reads behind the hub's energy view, over the fleet's samples (``strata_samples``):
the GPUs in a window (``samples.gpu_inventory``) and each GPU's measured energy from its
energy counter (``costs.gpu_energy_summary``'s rows).

The sidecar's summary reads ``gpu_energy``, the intervals its GPU pass wrote with their split
into attributed and idle energy. The hub does not run that pass (it would UPDATE spans in
ClickHouse), so here ClickHouse measures the counter itself, interval by interval, the way
the pass does (``strata.analytics.attribution.sweep_energy``: a drop is a reset and the new
reading counts), and the split is None. Only one row per GPU reaches Python.
"""

from __future__ import annotations

from typing import Any, Final

from strata.agent.store.clickhouse.engine import Engine, rows
from strata.agent.store.samples import ENERGY_SIGNAL
from strata.agent.units import MINUTE_NS, WH_PER_UNIT

# How far past the window to look for the reading that closes its last interval: the GPU
# pass's DEFAULT_PAD_NS, so both close the same intervals.
NEXT_READING_NS: Final = 10 * MINUTE_NS
# Keys of the sidecar's rows that only its GPU pass can fill.
SPLIT_KEYS: Final = ("attributed_wh", "idle_wh", "idle_ns")


def gpu_inventory(
    engine: Engine, *, since_ns: int, until_ns: int, energy_signal: str
) -> list[tuple[str, str, str | None, str | None, bool]]:
    """``samples.gpu_inventory``: ``(host, device, model name, pod, reports energy)`` of every
    GPU with ``gpu.*`` samples in ``[since_ns, until_ns]``, by host and device."""
    found = rows(engine.query("""
        SELECT Host, Device, max(nullIf(Attributes['modelName'], '')),
               max(nullIf(Attributes['pod'], '')), max(Canonical = {signal:String})
        FROM strata_samples
        WHERE Canonical LIKE 'gpu.%' AND Host != '' AND Device != ''
          AND TimeUnix >= fromUnixTimestamp64Nano({lo:Int64})
          AND TimeUnix <= fromUnixTimestamp64Nano({hi:Int64})
        GROUP BY Host, Device ORDER BY Host, Device
        """, {"signal": energy_signal, "lo": since_ns, "hi": until_ns}))
    return [(str(h), str(d), m, p, bool(e)) for h, d, m, p, e in found]


def gpu_energy_summary(engine: Engine, *, since_ns: int, until_ns: int) -> list[dict[str, Any]]:
    """Per GPU, the energy its counter measured over the intervals between consecutive
    readings that start in ``[since_ns, until_ns)``: ``host``, ``device``, ``intervals``,
    ``start_ns``, ``end_ns``, ``measured_wh``, ``counter_resets``, and ``attributed_wh``,
    ``idle_wh``, ``idle_ns`` None (module docstring). A GPU whose counter is in a unit not in
    ``WH_PER_UNIT``, or in more than one unit, is left out, as the GPU pass skips it."""
    units = list(WH_PER_UNIT)
    found = engine.query("""
        SELECT host, device, count() AS intervals, min(t) AS start_ns,
               assumeNotNull(max(next_t)) AS end_ns,
               sum(if(d >= 0, d, next_wh)) AS measured_wh, countIf(d < 0) AS counter_resets
        FROM (
            SELECT Host AS host, Device AS device, TimeNs AS t,
                   indexOf({units:Array(String)}, MetricUnit) AS unit,
                   Value * {factors:Array(Float64)}[greatest(unit, 1)] AS wh,
                   leadInFrame(toNullable(TimeNs)) OVER next AS next_t,
                   leadInFrame(toNullable(wh)) OVER next AS next_wh,
                   next_wh - wh AS d,
                   uniqExact(MetricUnit) OVER gpu AS gpu_units,
                   min(unit) OVER gpu AS known
            FROM strata_samples
            WHERE Canonical = {signal:String} AND Host != '' AND Device != ''
              AND TimeUnix >= fromUnixTimestamp64Nano({since:Int64})
              AND TimeUnix <= fromUnixTimestamp64Nano({hi:Int64})
            WINDOW gpu AS (PARTITION BY Host, Device),
                   next AS (PARTITION BY Host, Device ORDER BY TimeNs
                            ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING))
        WHERE next_t IS NOT NULL AND t < {until:Int64} AND gpu_units = 1 AND known > 0
        GROUP BY host, device ORDER BY host, device
        """, {"units": units, "factors": [WH_PER_UNIT[u] for u in units],
              "signal": ENERGY_SIGNAL, "since": since_ns, "until": until_ns,
              "hi": until_ns + NEXT_READING_NS})
    out = []
    for row in found.to_pylist():
        summary = {k: row[k] for k in ("host", "device", "intervals", "start_ns", "end_ns",
                                       "measured_wh")}
        summary.update(dict.fromkeys(SPLIT_KEYS))
        summary["counter_resets"] = int(row["counter_resets"])
        out.append(summary)
    return out
