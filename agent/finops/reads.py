"""Reads behind the energy and rightsizing views: GPU energy split, GPU hours, model profiles.

Named functions taking a cursor; all values are bound parameters.
"""

from __future__ import annotations

from typing import Any, Final

import duckdb
from strata.agent.finops.report import GROUP_COLUMNS, HOUR_NS
from strata.analytics.rightsizing import WH_PER_ENERGY_UNIT, GPUHour, ModelProfile

__all__ = ["gpu_energy_summary", "gpu_hours", "model_profiles"]

SMALL_INPUT_TOKENS: Final = 2000
SMALL_OUTPUT_TOKENS: Final = 256


def gpu_energy_summary(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int
) -> list[dict[str, Any]]:
    """Per GPU, measured energy over the sample intervals starting in the range, split into
    attributed (requests in flight) and idle, from ``gpu_energy`` (written by the GPU pass)."""
    result = cur.execute(
        "SELECT host, device, count(*) AS intervals, min(start_ns) AS start_ns, "
        "max(end_ns) AS end_ns, sum(measured_wh) AS measured_wh, "
        "sum(attributed_wh) AS attributed_wh, sum(idle_wh) AS idle_wh, "
        "sum(idle_ns) AS idle_ns, sum(counter_resets) AS counter_resets FROM gpu_energy "
        "WHERE start_ns >= ? AND start_ns < ? GROUP BY host, device ORDER BY host, device",
        [since_ns, until_ns],
    )
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def gpu_hours(cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int) -> list[GPUHour]:
    """Each GPU's hourly mean utilisation (%), mean power (W) and counter energy (Wh).

    Utilisation reported as a ratio (unit ``1``) is scaled to percent. Energy is the
    counter's increase within the hour (a drop is a reset: the new reading counts).
    """
    rows = cur.execute(
        f"""
        WITH util AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns,
                 avg(CASE WHEN unit = '1' THEN value * 100 ELSE value END) AS util
          FROM samples WHERE canonical = 'gpu.utilization' AND time_ns >= $since
            AND time_ns < $until AND host IS NOT NULL AND device IS NOT NULL
          GROUP BY ALL),
        power AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns, avg(value) AS power_w
          FROM samples WHERE canonical = 'gpu.power.draw' AND unit = 'W'
            AND time_ns >= $since AND time_ns < $until
            AND host IS NOT NULL AND device IS NOT NULL
          GROUP BY ALL),
        counter AS (
          SELECT host, device, time_ns - time_ns % {HOUR_NS} AS hour_ns, unit,
                 CASE WHEN d >= 0 THEN d ELSE value END AS inc
          FROM (SELECT host, device, time_ns, unit, value,
                       value - lag(value) OVER (PARTITION BY host, device ORDER BY time_ns) AS d
                FROM samples WHERE canonical = 'gpu.energy.consumed' AND time_ns >= $since
                  AND time_ns < $until AND host IS NOT NULL AND device IS NOT NULL)
          WHERE d IS NOT NULL),
        energy AS (SELECT host, device, hour_ns, unit, sum(inc) AS inc FROM counter GROUP BY ALL)
        SELECT util.host, util.device, util.hour_ns, util.util, power.power_w, energy.inc,
               energy.unit
        FROM util LEFT JOIN power USING (host, device, hour_ns)
                  LEFT JOIN energy USING (host, device, hour_ns)
        ORDER BY 1, 2, 3
        """,  # noqa: S608 - module constants only
        {"since": since_ns, "until": until_ns},
    ).fetchall()
    out = []
    for host, device, hour, util, power, inc, unit in rows:
        factor = WH_PER_ENERGY_UNIT.get(unit) if unit is not None else None
        energy = inc * factor if inc is not None and factor is not None else None
        out.append(GPUHour(host, device, int(hour), util, power, energy))
    return out


def model_profiles(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    max_input_tokens: int = SMALL_INPUT_TOKENS,
    max_output_tokens: int = SMALL_OUTPUT_TOKENS,
) -> list[ModelProfile]:
    """Per (service, provider, model), token-priced requests and those within the limits."""
    small = "input_tokens <= $max_in AND output_tokens <= $max_out"
    rows = cur.execute(
        f"""
        SELECT service, provider, {GROUP_COLUMNS["model"]} AS model, count(*), sum(cost_usd),
               count(*) FILTER (WHERE {small}),
               coalesce(sum(input_tokens) FILTER (WHERE {small}), 0),
               coalesce(sum(coalesce(cache_read_tokens, 0)) FILTER (WHERE {small}), 0),
               coalesce(sum(output_tokens) FILTER (WHERE {small}), 0),
               coalesce(sum(cost_usd) FILTER (WHERE {small}), 0)
        FROM spans
        WHERE cost_source = 'token_price' AND start_ns >= $since AND start_ns < $until
          AND input_tokens IS NOT NULL AND output_tokens IS NOT NULL
        GROUP BY ALL ORDER BY 1, 2, 3
        """,  # noqa: S608 - module constants only
        {"since": since_ns, "until": until_ns, "max_in": max_input_tokens,
         "max_out": max_output_tokens},
    ).fetchall()
    return [
        ModelProfile(service, provider, model, int(n), float(usd), int(sn), int(si), int(sc),
                     int(so), float(su))
        for service, provider, model, n, usd, sn, si, sc, so, su in rows
    ]
