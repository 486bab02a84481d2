"""DuckDBStore: the one DuckDB file the agent owns.

Writes are batched into one transaction (group commit) from the writer thread; reads take a
per-thread cursor from the one connection (DuckDB's connections are not thread-safe, its
cursors are). The database is opened with external access disabled and its configuration
locked, so no SQL reaching it can read or write other files. All SQL is parameterised.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from strata.agent.errors import StoreError
from strata.agent.model import Deployment, LogRecord, Sample, SpanRecord
from strata.agent.store import deployments as deployment_store
from strata.agent.store import first_row
from strata.agent.store.columns import SPAN_SCHEMA, json_text, trace_key_sql
from strata.agent.store.columns import CostColumns as CostColumns  # re-exported
from strata.agent.store.logs import insert_logs
from strata.agent.store.memory import DEFAULT_LIMIT_BYTES

logger = logging.getLogger(__name__)

# DuckDB checkpoints when the WAL reaches this. Its default, 16 MiB, is about 15k spans:
# at 20k spans/s a checkpoint a second, and each one stalls the commits behind it (230-880
# ms measured), which doubled the store's cost per span (benchmarks/store_insert.py). 256
# MiB is what RELIABILITY D3 replays after a crash within the memory cap; SIGTERM still
# ends with a checkpoint.
CHECKPOINT_THRESHOLD_BYTES = 256 * 2**20
SCHEMA_VERSION = 4  # v2: table anomalies; v3: table logs; v4: spans.trace_key, no index
_SAMPLE_SCHEMA = pa.schema([
    ("time_ns", pa.int64()), ("name", pa.string()), ("canonical", pa.string()),
    ("layer", pa.string()), ("unit", pa.string()), ("value", pa.float64()),
    ("host", pa.string()), ("device", pa.string()), ("service", pa.string()),
    ("labels", pa.string()), ("received_ns", pa.int64()),
])




def spans_to_arrow(
    spans: Sequence[SpanRecord], received_ns: int, costs: Sequence[CostColumns] | None = None
) -> pa.Table:
    """Columnar form of *spans*; *costs* (one per span) when priced at ingest."""
    n = len(spans)
    nulls: list[Any] = [None] * n
    cost_columns: list[Any] = list(zip(*costs, strict=True)) if costs else [nulls] * 5
    columns: dict[str, list[Any]] = {
        "trace_id": [s.trace_id for s in spans],
        "span_id": [s.span_id for s in spans],
        "parent_span_id": [s.parent_span_id for s in spans],
        "name": [s.name for s in spans],
        "kind": [s.kind for s in spans],
        "start_ns": [s.start_unix_nano for s in spans],
        "end_ns": [s.end_unix_nano for s in spans],
        "duration_ns": [s.end_unix_nano - s.start_unix_nano for s in spans],
        "status": [s.status for s in spans],
        "service": [s.service for s in spans],
        "service_version": [s.service_version for s in spans],
        "layer": [s.layer.value for s in spans],
        "operation": [s.operation for s in spans],
        "provider": [s.provider for s in spans],
        "request_model": [s.request_model for s in spans],
        "response_model": [s.response_model for s in spans],
        "input_tokens": [s.input_tokens for s in spans],
        "output_tokens": [s.output_tokens for s in spans],
        "cache_read_tokens": [s.cache_read_tokens for s in spans],
        "reasoning_tokens": [s.reasoning_tokens for s in spans],
        "error_type": [s.error_type for s in spans],
        "host": [s.host for s in spans],
        "team": [s.team for s in spans],
        "cost_usd": cost_columns[0],
        "cost_source": cost_columns[1],
        "energy_wh": cost_columns[2],
        "energy_source": cost_columns[3],
        "co2e_g": cost_columns[4],
        "attributes": [json_text(_as_dict(s.attributes)) for s in spans],
        "resource": _dump_shared([s.resource for s in spans]),
        "received_ns": [received_ns] * n,
    }
    return pa.Table.from_pydict(columns, schema=SPAN_SCHEMA)


def _as_dict(mapping: Any) -> dict[str, Any]:
    """The C JSON encoder writes only a real dict as an object."""
    return mapping if type(mapping) is dict else dict(mapping)


def _dump_shared(maps: list[Any]) -> list[str]:
    """JSON of each map, encoding a map shared by many spans (their resource) only once."""
    cache: dict[int, str] = {}
    out = []
    for m in maps:
        text = cache.get(id(m))
        if text is None:
            text = cache[id(m)] = json_text(_as_dict(m))
        out.append(text)
    return out


def _received_at(table: pa.Table, received_ns: int) -> pa.Table:
    index = table.schema.get_field_index("received_ns")
    column = pa.array([received_ns] * table.num_rows, pa.int64())
    return table.set_column(index, SPAN_SCHEMA.field(index), column)


def samples_to_arrow(samples: Sequence[Sample], received_ns: int) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "time_ns": [s.time_unix_nano for s in samples],
            "name": [s.name for s in samples],
            "canonical": [s.canonical for s in samples],
            "layer": [str(s.layer) for s in samples],
            "unit": [s.unit for s in samples],
            "value": [s.value for s in samples],
            "host": [s.host for s in samples],
            "device": [s.device for s in samples],
            "service": [s.service for s in samples],
            "labels": [json_text(_as_dict(s.attributes)) for s in samples],
            "received_ns": [received_ns] * len(samples),
        },
        schema=_SAMPLE_SCHEMA,
    )


# A client retry resends a batch the agent already committed (RELIABILITY D8): store each
# (trace_id, span_id) once. The start_ns bounds let DuckDB's zone maps skip every row group
# outside the batch's time span (bounds passed as constants, which DuckDB pushes into the
# scan), so the check reads a few row groups, not the whole table.
_NEW_SPANS = f"""
INSERT INTO spans
SELECT *, {trace_key_sql("trace_id")}
FROM {{batch}} b
WHERE NOT EXISTS (
    SELECT 1 FROM spans s
    WHERE s.trace_id = b.trace_id AND s.span_id = b.span_id
      AND s.start_ns BETWEEN ? AND ?)
"""  # noqa: S608 - a fixed expression, no input
_INSERT_NEW_SPANS = _NEW_SPANS.format(batch="_span_batch")
# Only for a batch that repeats a span (a retry in the same group commit as its original):
# DISTINCT ON hashes every column, about 1.9 µs of CPU a span where Arrow's check costs 0.1.
_INSERT_NEW_SPANS_ONCE = _NEW_SPANS.format(
    batch="(SELECT DISTINCT ON (trace_id, span_id) * FROM _span_batch)")


def _insert_spans(cur: duckdb.DuckDBPyConnection, span_table: pa.Table) -> None:
    """Insert the spans not stored yet (``_NEW_SPANS``): in the caller's transaction, or in
    auto-commit as one of its own. (After a failed insert the view is left for the next batch
    to replace: an aborted transaction refuses even the unregister.)"""
    cur.register("_span_batch", span_table)
    bounds = pc.min_max(span_table["start_ns"])
    repeats = span_table.group_by(["trace_id", "span_id"]).aggregate(
        []).num_rows < span_table.num_rows
    cur.execute(_INSERT_NEW_SPANS_ONCE if repeats else _INSERT_NEW_SPANS,
                [bounds["min"].as_py(), bounds["max"].as_py()])
    cur.unregister("_span_batch")


def _insert_samples(cur: duckdb.DuckDBPyConnection, sample_table: pa.Table) -> None:
    cur.register("_sample_batch", sample_table)
    cur.execute("INSERT INTO samples SELECT * FROM _sample_batch")
    cur.unregister("_sample_batch")


class DuckDBStore:
    """The agent's DuckDB file: schema, group-committed writes, retention, row counts.

    The reads of each table family are functions taking a cursor in this package's modules
    (``spans``, ``samples``, ``incidents``, ``anomalies``, ``deployments``, ``costs``).

    Args:
        path: the database file; its directory is created (mode 0700) if missing.
        memory_limit_bytes: DuckDB's memory_limit, set at open time so WAL replay respects
            it (``agent/memory.py`` picks the agent's).

    Raises:
        StoreError: the file is locked by another process or cannot be opened.
    """

    def __init__(self, path: str | Path, *, memory_limit_bytes: int = DEFAULT_LIMIT_BYTES,
                 threads: int = 2) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._con = duckdb.connect(
                str(self.path),
                config={
                    "memory_limit": f"{memory_limit_bytes}B",
                    "threads": threads,
                    "checkpoint_threshold": f"{CHECKPOINT_THRESHOLD_BYTES}B",
                    "enable_external_access": False,
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
        except duckdb.IOException as exc:
            msg = f"cannot open store {self.path}: {exc}"
            if "lock" in str(exc).lower():
                msg = f"store {self.path} is locked by another process (one agent per file): {exc}"
            raise StoreError(msg) from exc
        self._con.execute("SET lock_configuration = true")
        with self._con.cursor() as cur:
            self._migrate(cur)
            self.salt = self._ensure_salt(cur)
        if self.path.exists():
            self.path.chmod(0o600)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def _migrate(self, cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        row = first_row(cur.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            msg = f"store {self.path} has schema v{version}; this agent knows v{SCHEMA_VERSION}"
            raise StoreError(msg)
        if version < SCHEMA_VERSION:  # every statement is IF NOT EXISTS: re-running migrates
            schema = resources.files("strata.agent.store").joinpath("schema.sql")
            ddl = schema.read_text(encoding="utf-8")
            cur.execute("BEGIN")
            for statement in filter(str.strip, ddl.split(";")):
                cur.execute(statement)
            # v4's key for the rows stored before it (once: later inserts compute it)
            for table in ("spans", "logs"):
                cur.execute(f"UPDATE {table} SET trace_key = {trace_key_sql('trace_id')} "  # noqa: S608
                            "WHERE trace_key IS NULL")
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                        [str(SCHEMA_VERSION)])
            cur.execute("COMMIT")

    def _ensure_salt(self, cur: duckdb.DuckDBPyConnection) -> str:
        """A per-install salt for hashing redacted content (never leaves the store)."""
        row = first_row(cur.execute("SELECT value FROM meta WHERE key = 'content_salt'"))
        if row:
            return str(row[0])
        salt = secrets.token_hex(16)
        cur.execute("INSERT INTO meta VALUES ('content_salt', ?)", [salt])
        return salt

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the one connection."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    def ping(self) -> None:
        """A trivial query on this thread's cursor: raises what a failed store raises."""
        self.cursor().execute("SELECT 1").fetchall()

    def checkpoint(self) -> None:
        with self._write_lock:
            self.cursor().execute("CHECKPOINT")

    def close(self) -> None:
        """Checkpoint and close; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.checkpoint()
        finally:
            self._con.close()

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
        """Insert everything in one transaction; returns after COMMIT (durable in the WAL).

        *span_tables* are more spans already in the columns of ``spans_to_arrow`` (built by
        decode workers); their ``received_ns`` is set here.
        """
        received_ns = received_ns if received_ns is not None else time.time_ns()
        tables = [spans_to_arrow(spans, received_ns, costs)] if spans else []
        tables += [_received_at(t, received_ns) for t in span_tables]
        span_table = pa.concat_tables(tables) if len(tables) > 1 else next(iter(tables), None)
        sample_table = samples_to_arrow(samples, received_ns) if samples else None
        with self._write_lock:
            cur = self.cursor()
            if not deployments and not logs and (span_table is None or sample_table is None):
                # Spans alone, or samples alone, are one statement: its own transaction in
                # auto-commit, durable when it returns. BEGIN and COMMIT each take the GIL
                # back several times, each time waiting out another thread's turn with it.
                if span_table is not None:
                    _insert_spans(cur, span_table)
                if sample_table is not None:
                    _insert_samples(cur, sample_table)
                return
            cur.execute("BEGIN")
            try:
                if span_table is not None:
                    _insert_spans(cur, span_table)
                if sample_table is not None:
                    _insert_samples(cur, sample_table)
                for d in deployments:
                    deployment_store.insert_deployment(cur, d, received_ns)
                insert_logs(cur, logs, received_ns)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")  # a failed COMMIT has ended the transaction: no ROLLBACK

    def add_deployment(self, deployment: Deployment) -> None:
        self.write_batch(deployments=[deployment])

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction for analysis results (incidents, span costs)."""
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")  # a failed COMMIT has ended the transaction: no ROLLBACK

    def purge_older_than(self, received_before_ns: int) -> dict[str, int]:
        """Retention by age of receipt (a replay of old data is kept the full period)."""
        deleted: dict[str, int] = {}
        with self.transaction() as cur:
            for table in ("spans", "samples", "anomalies", "logs"):
                row = cur.execute(
                    f"DELETE FROM {table} WHERE received_ns < ? RETURNING 1",  # noqa: S608 - fixed names
                    [received_before_ns],
                ).fetchall()
                deleted[table] = len(row)
        return deleted

    # -- reads -------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        cur = self.cursor()
        result = {}
        for table in ("spans", "samples", "incidents", "deployments", "logs"):
            row = first_row(cur.execute(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed
            result[table] = int(row[0]) if row else 0
        return result

    def layer_summary(self) -> list[dict[str, Any]]:
        """Spans, samples and distinct signals per layer."""
        rows = self.cursor().execute(
            """
            WITH s AS (SELECT layer, count(*) AS spans FROM spans GROUP BY layer),
                 m AS (SELECT layer, count(*) AS samples,
                              count(DISTINCT coalesce(canonical, name)) AS signals
                       FROM samples GROUP BY layer)
            SELECT coalesce(s.layer, m.layer) AS layer, coalesce(spans, 0),
                   coalesce(samples, 0), coalesce(signals, 0)
            FROM s FULL OUTER JOIN m ON s.layer = m.layer ORDER BY 1
            """
        ).fetchall()
        return [{"layer": r[0], "spans": r[1], "samples": r[2], "signals": r[3]} for r in rows]

    def size_bytes(self) -> int:
        wal = Path(f"{self.path}.wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def known_versions(self) -> dict[str, tuple[str | None, int]]:
        """Latest deployed version per service, to resume change detection after a restart."""
        return deployment_store.known_versions(self.cursor())
