"""Reads of the ``samples`` table (writes are ``DuckDBStore.write_batch``).

Named functions taking a cursor; every value from a caller is a bound parameter and every
label key is validated (``ATTRIBUTE_KEY``) and bound as a JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import duckdb
import numpy as np
from strata.agent.model import Layer, Sample
from strata.agent.store.costs import ATTRIBUTE_KEY

__all__ = [
    "ENERGY_SIGNAL",
    "NOT_HISTOGRAM",
    "bucketed_samples",
    "clock_reason_fractions",
    "energy_counter_samples",
    "gpu_inventory",
    "latest_collector_metrics",
    "metric_series",
    "sample_bucket_stats",
    "samples_near",
]

# The GPU energy counter's canonical name (DCGM's and Triton's counters map to it): what the
# GPU pass and both engines' energy reads measure
ENERGY_SIGNAL: Final = "gpu.energy.consumed"
# SQL filter: not a histogram/summary part (those are read through their derived signals)
NOT_HISTOGRAM: Final = (
    r"NOT regexp_matches(coalesce(canonical, name), '[._](bucket|count|sum|created)$')"
)
SAMPLE_COLUMNS: Final = (
    "time_ns, name, canonical, layer, unit, value, host, device, service, labels"
)
_COLUMN_LABELS: Final = ("host", "device", "service")
_NEAR_HOSTS: Final = (
    "layer IN ('infrastructure', 'serving', 'data') "
    f"AND (list_contains($hosts, host) OR list_contains($hosts, service)) AND {NOT_HISTOGRAM}"
)


def _sample(row: Sequence[Any]) -> Sample:
    t, name, canonical, layer, unit, value, host, device, service, labels = row
    return Sample(name, value, unit, Layer(layer), t, json.loads(labels), canonical, host,
                  device, service)


# -- around spans and per step (correlation, timeline API) ------------------------------------


def samples_near(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int, hosts: Iterable[str]
) -> list[Sample]:
    """Infrastructure, serving and data samples in ``[since_ns, until_ns]`` whose host or
    service is one of *hosts* (histogram bucket/count/sum series excluded)."""
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    rows = cur.execute(
        f"SELECT {SAMPLE_COLUMNS} FROM samples "  # noqa: S608 - module constants only
        f"WHERE time_ns >= $lo AND time_ns <= $hi AND {_NEAR_HOSTS}",
        {"lo": since_ns, "hi": until_ns, "hosts": wanted},
    ).fetchall()
    return [_sample(r) for r in rows]


def bucketed_samples(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    step_ns: int,
    hosts: Iterable[str],
) -> list[tuple[Sample, float, float]]:
    """Per step and series, the mean as a Sample (time = step start) with (max, increase).

    ``increase`` is max - min within the step: the growth of a cumulative counter.
    """
    wanted = sorted(set(hosts))
    if not wanted:
        return []
    rows = cur.execute(
        "SELECT time_ns - time_ns % $step AS t, name, canonical, layer, unit, avg(value), "  # noqa: S608
        "host, device, service, labels, max(value), max(value) - min(value) FROM samples "
        f"WHERE time_ns >= $since AND time_ns < $until AND {_NEAR_HOSTS} GROUP BY ALL",
        {"step": step_ns, "since": since_ns, "until": until_ns, "hosts": wanted},
    ).fetchall()
    return [(_sample(r[:10]), float(r[10]), float(r[11])) for r in rows]


# -- stored series (metrics API) --------------------------------------------------------------


def check_label_key(key: str) -> None:
    """Raises ValueError unless *key* may name a label in a filter (``ATTRIBUTE_KEY``)."""
    if not ATTRIBUTE_KEY.fullmatch(key):
        msg = f"label filter key must be letters, digits and _.-:/ , got {key[:60]!r}"
        raise ValueError(msg)


def _label_conditions(labels: Mapping[str, str]) -> tuple[list[str], dict[str, object]]:
    conds: list[str] = []
    params: dict[str, object] = {}
    for i, (key, value) in enumerate(sorted(labels.items())):
        params[f"lv{i}"] = value
        if key in _COLUMN_LABELS:
            conds.append(f"{key} = $lv{i}")
            continue
        check_label_key(key)
        params[f"lk{i}"] = f'$."{key}"'
        conds.append(f"json_extract_string(labels, $lk{i}) = $lv{i}")
    return conds, params


def metric_series(
    cur: duckdb.DuckDBPyConnection,
    *,
    since_ns: int,
    until_ns: int,
    layer: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    max_series: int = 1000,
    max_points: int = 10_000,
) -> tuple[list[dict[str, Any]], bool]:
    """Stored sample series in ``[since_ns, until_ns)``, one per distinct name and labels.

    *name* matches the name as received or the canonical name. *labels* filter on ``host``,
    ``device``, ``service`` or any label key. Points are ``(time_ns, value)`` in time order;
    a series keeps its last *max_points*.

    Returns:
        (series, truncated): ``truncated`` when a limit cut series or points.

    Raises:
        ValueError: an invalid label key.
    """
    conds, params = _label_conditions(labels or {})
    params.update({"since": since_ns, "until": until_ns, "layer": layer, "name": name,
                   "limit": max_series + 1, "max_points": max_points})
    where = " AND ".join(["TRUE", *conds])
    rows = cur.execute(
        "SELECT name, canonical, layer, unit, host, device, service, labels, "  # noqa: S608
        "count(*) AS n, list(time_ns ORDER BY time_ns DESC)[1:$max_points] AS t, "
        "list(value ORDER BY time_ns DESC)[1:$max_points] AS v "
        "FROM samples WHERE time_ns >= $since AND time_ns < $until "
        "AND (CAST($layer AS VARCHAR) IS NULL OR layer = $layer) "
        "AND (CAST($name AS VARCHAR) IS NULL OR name = $name OR canonical = $name) "
        f"AND {where} GROUP BY ALL ORDER BY name, host, device, service, labels LIMIT $limit",
        params,
    ).fetchall()
    truncated = len(rows) > max_series
    series = []
    for name_, canonical, layer_, unit, host, device, service, label_json, n, ts, vs in rows[
        :max_series
    ]:
        truncated = truncated or n > max_points
        series.append({
            "name": name_, "canonical": canonical, "layer": layer_, "unit": unit,
            "host": host, "device": device, "service": service,
            "labels": json.loads(label_json),
            "points": list(zip(reversed(ts), reversed(vs), strict=True)),
        })  # fmt: skip
    return series, truncated


# -- detector window (analysis.window) --------------------------------------------------------


def sample_bucket_stats(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
    canonicals: Sequence[str] | None,
) -> dict[str, np.ndarray]:
    """Per (bucket, series) mean/max/min of the samples of *canonicals* (None: every
    non-histogram metric), as columns ``bucket``, ``skey``, ``mean``, ``hi``, ``lo``.

    ``skey`` joins with *sep*: canonical (the name as received where none), host, device,
    service, labels JSON, unit and layer (absent ones ``''``).
    """
    wanted = "list_contains($names, canonical)" if canonicals is not None else NOT_HISTOGRAM
    params: dict[str, Any] = {"b": bucket_ns, "sep": sep, "start": start_ns, "end": end_ns}
    if canonicals is not None:
        params["names"] = list(canonicals)
    return cur.execute(
        f"""
        SELECT time_ns // $b * $b AS bucket,
               coalesce(canonical, name) || $sep || coalesce(host, '') || $sep
                 || coalesce(device, '') || $sep || coalesce(service, '') || $sep || labels
                 || $sep || unit || $sep || layer AS skey,
               avg(value) AS mean, max(value) AS hi, min(value) AS lo
        FROM samples
        WHERE {wanted} AND time_ns >= $start AND time_ns < $end
        GROUP BY ALL
        """,  # noqa: S608 - the two filters are fixed text; values are bound
        params,
    ).fetchnumpy()


def clock_reason_fractions(
    cur: duckdb.DuckDBPyConnection, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
    mask: int,
) -> dict[str, np.ndarray]:
    """Per (bucket, GPU) fraction of ``gpu.clock_event_reasons`` samples whose bits hit
    *mask*, as columns ``bucket``, ``skey`` (host and device joined by *sep*), ``frac``."""
    return cur.execute(
        """
        SELECT time_ns // $b * $b AS bucket,
               coalesce(host, '') || $sep || coalesce(device, '') AS skey,
               avg(CASE WHEN (CAST(value AS BIGINT) & $mask) != 0 THEN 1.0 ELSE 0.0 END)
                 AS frac
        FROM samples
        WHERE canonical = 'gpu.clock_event_reasons' AND time_ns >= $start AND time_ns < $end
        GROUP BY ALL
        """,
        {"b": bucket_ns, "sep": sep, "mask": mask, "start": start_ns, "end": end_ns},
    ).fetchnumpy()


# -- GPU pass and /metrics ----------------------------------------------------------------------


def energy_counter_samples(
    cur: duckdb.DuckDBPyConnection, canonical: str, *, since_ns: int, until_ns: int
) -> list[Sample]:
    """Samples of *canonical* in ``[since_ns, until_ns]`` with a host and device, ordered by
    host, device and time (name, unit, value, host, device and time only)."""
    rows = cur.execute(
        "SELECT host, device, time_ns, name, unit, value FROM samples "
        "WHERE canonical = ? AND time_ns >= ? AND time_ns <= ? "
        "AND host IS NOT NULL AND device IS NOT NULL ORDER BY host, device, time_ns",
        [canonical, since_ns, until_ns],
    ).fetchall()
    return [Sample(name, value, unit, Layer.INFRASTRUCTURE, t, host=host, device=device)
            for host, device, t, name, unit, value in rows]


def gpu_inventory(
    cur: duckdb.DuckDBPyConnection, *, since_ns: int, until_ns: int, energy_signal: str
) -> list[tuple[str, str, str | None, str | None, bool]]:
    """Every GPU with ``gpu.*`` samples in ``[since_ns, until_ns]``: ``(host, device, model
    name, pod, reports energy)`` ordered by host and device. The model name is the
    ``modelName`` label (DCGM, NVML), the pod dcgm-exporter's Kubernetes ``pod`` label;
    "reports energy" means it has *energy_signal* samples in the range."""
    rows = cur.execute(
        "SELECT host, device, max(json_extract_string(labels, '$.modelName')), "
        "max(json_extract_string(labels, '$.pod')), bool_or(canonical = $signal) FROM samples "
        "WHERE canonical LIKE 'gpu.%' AND time_ns >= $lo AND time_ns <= $hi "
        "AND host IS NOT NULL AND device IS NOT NULL GROUP BY host, device ORDER BY host, device",
        {"signal": energy_signal, "lo": since_ns, "hi": until_ns},
    ).fetchall()
    return [(h, d, m, p, bool(e)) for h, d, m, p, e in rows]


def latest_collector_metrics(
    cur: duckdb.DuckDBPyConnection, names: Sequence[str], *, received_since_ns: int
) -> list[tuple[str | None, str, float]]:
    """Per (``collector`` label, name in *names*), the latest value among samples received
    since *received_since_ns*: ``(collector, name, value)`` ordered by collector."""
    return cur.execute(
        "SELECT json_extract_string(labels, '$.collector') AS collector, name, "
        "arg_max(value, time_ns) FROM samples "
        "WHERE list_contains(?, name) AND received_ns >= ? GROUP BY ALL ORDER BY 1",
        [list(names), received_since_ns],
    ).fetchall()
