"""ClickHouseStore: the hub's store, one ClickHouse database holding the Collector's tables.

It implements ``seam.AnalysisStore`` (the analyzer reads and keeps incident state here) and
takes the same ``write_batch`` as ``DuckDBStore`` (the OTLP receiver and the simulator's
loader write through it). A write returns once ClickHouse acknowledged every insert.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Final

import pyarrow as pa
from strata.agent.model import Deployment, LogRecord, Sample, SpanRecord
from strata.agent.store.clickhouse.engine import ClickHouseError, Engine, rows
from strata.agent.store.clickhouse.exposition import SETTLE_NS, ClickHouseMetrics, row_counts
from strata.agent.store.clickhouse.incidents import ClickHouseIncidents
from strata.agent.store.clickhouse.reads import ClickHouseReads
from strata.agent.store.clickhouse.reports import ClickHouseReports
from strata.agent.store.clickhouse.rows import (
    LOG_TABLE,
    SAMPLE_TABLE,
    SPAN_TABLE,
    CostColumns,
    logs_table,
    samples_table,
    spans_table,
)

SCHEMA_VERSION: Final = 1
_DEPLOYMENT_SCHEMA: Final = pa.schema([
    ("service", pa.string()), ("time_ns", pa.int64()), ("version", pa.string()),
    ("previous_version", pa.string()), ("model", pa.string()), ("previous_model", pa.string()),
    ("source", pa.string()), ("description", pa.string()), ("received_ns", pa.int64()),
])


def statements(name: str) -> list[str]:
    """The statements of one packaged SQL file (no statement holds a semicolon)."""
    text = resources.files("strata.agent.store.clickhouse").joinpath(name).read_text("utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(engine: Engine) -> None:
    """Create the Collector's tables if absent, then Strata's columns and tables on top."""
    for statement in (*statements("otel_schema.sql"), *statements("strata_schema.sql")):
        engine.command(statement)
    _pin_received_ns(engine)


def _pin_received_ns(engine: Engine) -> None:
    """Write ``otel_traces.ReceivedNs`` into the parts stored before the column existed.

    Until then ClickHouse computes it on every read (``now64()``: the read's time), and
    /metrics would count those spans again at each scrape. Runs once: only while some part
    lacks the column (rewriting all of them again would count every span again)."""
    lacking = rows(engine.query("""
        SELECT count() FROM system.parts
        WHERE database = currentDatabase() AND table = 'otel_traces' AND active
          AND name NOT IN (SELECT name FROM system.parts_columns
                           WHERE database = currentDatabase() AND table = 'otel_traces'
                             AND active AND column = 'ReceivedNs')"""))
    if lacking[0][0]:
        engine.command("ALTER TABLE otel_traces MATERIALIZE COLUMN ReceivedNs "
                       "SETTINGS mutations_sync = 1")


class ClickHouseStore:
    """The Collector's schema plus Strata's, on *engine* (migrated on open)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # /metrics counts a span once its insert has surely committed (``exposition``)
        self.metrics_settle_ns = SETTLE_NS
        migrate(engine)
        self.salt = self._meta("content_salt", secrets.token_hex(16))
        self._meta("schema_version", str(SCHEMA_VERSION))

    def _meta(self, key: str, default: str) -> str:
        """The stored value of *key*, storing *default* first when there is none."""
        query = "SELECT argMax(value, set_ns) FROM strata_meta WHERE key = {k:String}"
        found = rows(self.engine.query(query, {"k": key}))
        if found and found[0][0]:
            return str(found[0][0])
        self.engine.insert("strata_meta", pa.table({
            "key": [key], "value": [default], "set_ns": [time.time_ns()]}))
        # two hubs starting at once: both read back the one that won
        return str(rows(self.engine.query(query, {"k": key}))[0][0])

    # -- seam.AnalysisStore ------------------------------------------------------------------

    def window_reads(self) -> ClickHouseReads:
        return ClickHouseReads(self.engine)

    @contextmanager
    def incident_book(self) -> Iterator[ClickHouseIncidents]:
        yield ClickHouseIncidents(self.engine)

    def report_reads(self) -> ClickHouseReports:
        return ClickHouseReports(self.engine)

    def metrics_reads(self) -> ClickHouseMetrics:
        return ClickHouseMetrics(self.engine, settle_ns=self.metrics_settle_ns)

    # -- writes ------------------------------------------------------------------------------

    def write_batch(
        self,
        spans: Sequence[SpanRecord] = (),
        samples: Sequence[Sample] = (),
        deployments: Sequence[Deployment] = (),
        *,
        received_ns: int | None = None,
        costs: Sequence[CostColumns] | None = None,
        span_tables: Sequence[pa.Table] = (),
        logs: Sequence[LogRecord] = (),
    ) -> None:
        """Insert everything; returns after ClickHouse acknowledged each insert.

        *span_tables* (DuckDB's span columns from decode worker processes) are not taken:
        the hub decodes in its own process."""
        if span_tables:
            msg = "the ClickHouse store takes span records, not DuckDB span tables"
            raise ValueError(msg)
        received_ns = received_ns if received_ns is not None else time.time_ns()
        if spans:
            self.engine.insert(SPAN_TABLE, spans_table(spans, costs))
        if samples:
            self.engine.insert(SAMPLE_TABLE, samples_table(samples))
        if logs:
            self.engine.insert(LOG_TABLE, logs_table(logs))
        if deployments:
            self.engine.insert("strata_deployments", pa.Table.from_pylist([{
                "service": d.service, "time_ns": d.time_unix_nano, "version": d.version,
                "previous_version": d.previous_version, "model": d.model,
                "previous_model": d.previous_model, "source": d.source,
                "description": d.description, "received_ns": received_ns,
            } for d in deployments], schema=_DEPLOYMENT_SCHEMA))

    def add_deployment(self, deployment: Deployment) -> None:
        self.write_batch(deployments=[deployment])

    # -- reads -------------------------------------------------------------------------------

    def ping(self) -> None:
        """A trivial query: raises ``ClickHouseError`` with the reason when unreachable."""
        self.engine.query("SELECT 1")

    def counts(self) -> dict[str, int]:
        return row_counts(self.engine)

    def known_versions(self) -> dict[str, tuple[str | None, int]]:
        """Latest deployed version per service, to resume change detection (``BatchWriter``)."""
        found = rows(self.engine.query(
            "SELECT service, argMax(version, time_ns), max(time_ns) FROM strata_deployments "
            "FINAL WHERE version IS NOT NULL GROUP BY service"))
        return {str(s): (v, int(t)) for s, v, t in found}

    def cost_by_team(self, since_ns: int, until_ns: int) -> list[tuple[str, int, float | None]]:
        """Per team (``''``: none), spans and stored cost in USD over ``[since_ns,
        until_ns)``, most expensive first: whole hours from ``strata_cost_hourly``, the
        partial hours at either end from the spans."""
        hour = 3600 * 10**9
        lo_hour = -(-since_ns // hour) * hour  # first whole hour inside the range
        hi_hour = max(lo_hour, until_ns // hour * hour)
        found = rows(self.engine.query("""
            SELECT team, sum(n) AS requests, if(sum(priced) > 0, sum(usd), NULL) AS usd
            FROM (
                SELECT toString(Team) AS team, sum(Requests) AS n, sum(Priced) AS priced,
                       sum(Usd) AS usd
                FROM strata_cost_hourly
                WHERE Hour >= toDateTime(intDiv({lo_hour:Int64}, 1000000000))
                  AND Hour < toDateTime(intDiv({hi_hour:Int64}, 1000000000))
                GROUP BY team
                UNION ALL
                SELECT toString(Team), count(), count(CostUsd), sum(coalesce(CostUsd, 0))
                FROM otel_traces
                WHERE (Timestamp >= fromUnixTimestamp64Nano({lo:Int64})
                       AND Timestamp < fromUnixTimestamp64Nano(least({lo_hour:Int64}, {hi:Int64})))
                   OR (Timestamp >= fromUnixTimestamp64Nano(greatest({hi_hour:Int64}, {lo:Int64}))
                       AND Timestamp < fromUnixTimestamp64Nano({hi:Int64}))
                GROUP BY Team)
            GROUP BY team ORDER BY usd DESC NULLS LAST, team
            """, {"lo": since_ns, "hi": until_ns, "lo_hour": lo_hour, "hi_hour": hi_hour}))
        return [(str(t), int(n), None if c is None else float(c)) for t, n, c in found]

    def close(self) -> None:
        self.engine.close()


__all__ = ["ClickHouseError", "ClickHouseStore", "migrate", "statements"]


