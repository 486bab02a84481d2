"""``seam.MetricsReads`` in ClickHouse SQL: what the hub's ``/metrics`` reads
(``strata.exporters.prometheus.StrataCollector``). Rows are those of the DuckDB functions
they mirror (``spans.busiest_services``/``duration_quantiles``/``usage_received_after``,
``incidents.open_incident_counts``); ClickHouse aggregates, one row per group reaches Python.

Received time is ``otel_traces.ReceivedNs`` (``strata_schema.sql``): when ClickHouse stored
the span, on ClickHouse's clock, whoever wrote it. Where the hub differs from the agent:

- ``usage_received_after`` leaves out the spans stored in the last *settle_ns*: ReceivedNs is
  taken when an insert starts, and several writers insert at once (replicas, Collectors,
  sidecars' forwarders), so an insert still running when a scrape moves the watermark past
  its ReceivedNs would never be counted. The hub's counters trail by that much.
- No collector self-metrics (``None``): the hub runs no collectors, and the sidecars' are
  the sidecars' to expose.
- Store size: the bytes on disk of the database's active parts (``system.parts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from strata.agent.store.clickhouse.engine import Engine, rows
from strata.agent.units import NS_PER_S

SETTLE_NS: Final = 5 * NS_PER_S
_MODEL: Final = "if(GenAiResponseModel != '', GenAiResponseModel, GenAiRequestModel)"


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows stored, by table (``DuckDBStore.counts``'s names)."""
    found = rows(engine.query(
        "SELECT (SELECT count() FROM otel_traces), (SELECT count() FROM strata_samples), "
        "(SELECT count() FROM strata_incidents FINAL), "
        "(SELECT count() FROM strata_deployments FINAL)"))
    spans, samples, incidents, deployments = (int(v) for v in found[0])
    return {"spans": spans, "samples": samples, "incidents": incidents,
            "deployments": deployments}


class ClickHouseMetrics:
    """``MetricsReads`` on one ClickHouse database."""

    def __init__(self, engine: Engine, *, settle_ns: int = SETTLE_NS) -> None:
        self._engine = engine
        self._settle_ns = settle_ns

    def busiest_services(self, *, received_since_ns: int, limit: int) -> list[str]:
        found = rows(self._engine.query(
            "SELECT ServiceName, count() AS n FROM otel_traces "
            "WHERE ReceivedNs >= {since:Int64} GROUP BY ServiceName "
            "ORDER BY n DESC, ServiceName LIMIT {limit:UInt64}",
            {"since": received_since_ns, "limit": limit}))
        return [str(service) for service, _n in found]

    def duration_quantiles(self, *, received_since_ns: int, services: Sequence[str],
                           other: str, quantiles: Sequence[float]) -> list[tuple[str, list[float]]]:
        # quantilesExactInclusive interpolates as DuckDB's quantile_cont; its levels must be
        # literals (floats from the caller's constants, formatted, never request text)
        levels = ", ".join(repr(float(q)) for q in quantiles)
        found = rows(self._engine.query(
            "SELECT if(has({services:Array(String)}, ServiceName), toString(ServiceName), "  # noqa: S608
            f"{{other:String}}) AS svc, quantilesExactInclusive({levels})(Duration) "
            "FROM otel_traces WHERE ReceivedNs >= {since:Int64} GROUP BY svc ORDER BY svc",
            {"services": list(services), "other": other, "since": received_since_ns}))
        return [(str(svc), [float(v) for v in values]) for svc, values in found]

    def usage_received_after(self, received_after_ns: int) -> list[tuple[Any, ...]]:
        return rows(self._engine.query(
            f"SELECT ServiceName, {_MODEL} AS model, count() AS n, "  # noqa: S608
            "countIf(StatusCode = 'Error'), sum(coalesce(InputTokens, 0)), "
            "sum(coalesce(OutputTokens, 0)), sum(coalesce(CostUsd, 0)), "
            "sum(coalesce(EnergyWh, 0)), sum(coalesce(Co2eG, 0)), sum(Duration) / 1e9, "
            "max(ReceivedNs) FROM otel_traces "
            "WHERE ReceivedNs > {after:Int64} "
            "AND ReceivedNs <= toUnixTimestamp64Nano(now64(9)) - {settle:Int64} "
            "GROUP BY ServiceName, model ORDER BY n DESC",
            {"after": received_after_ns, "settle": self._settle_ns}))

    def latest_collector_metrics(self, names: Sequence[str], *,
                                 received_since_ns: int) -> None:
        return None

    def open_incident_counts(self) -> list[tuple[Any, ...]]:
        return rows(self._engine.query(
            "SELECT kind, layer, severity, coalesce(service, '') AS svc, status, count() AS n "
            "FROM strata_incidents FINAL WHERE status IN ('open', 'acknowledged') "
            "GROUP BY kind, layer, severity, svc, status "
            "ORDER BY n DESC, kind, layer, severity, svc, status"))

    def size_bytes(self) -> int | None:
        found = rows(self._engine.query(
            "SELECT sum(bytes_on_disk) FROM system.parts "
            "WHERE database = currentDatabase() AND active"))
        return int(found[0][0])

    def counts(self) -> dict[str, int]:
        return row_counts(self._engine)
