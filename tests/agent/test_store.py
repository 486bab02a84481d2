"""DuckDBStore: one writer process, schema versioning, locked-down SQL, retention."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from strata.agent.errors import StoreError
from strata.agent.model import Deployment, Layer, LogRecord, Sample, SpanRecord
from strata.agent.store.db import SCHEMA_VERSION, DuckDBStore, spans_to_arrow
from strata.agent.store.logs import trace_logs
from strata.agent.store.spans import list_traces, trace_spans


def span(i: int, trace: str = "a" * 32, **kw: object) -> SpanRecord:
    base = dict(trace_id=trace, span_id=f"{i:016x}", parent_span_id=None, name="chat",
                kind="client", start_unix_nano=1_000 + i, end_unix_nano=2_000 + i, status="ok",
                service="rag-api", layer=Layer.MODEL)
    base.update(kw)
    return SpanRecord(**base)  # type: ignore[arg-type]


def test_batch_is_one_transaction_and_survives_reopen(tmp_path: Path) -> None:
    """Spans, samples and deployments written together are all there after reopening."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.write_batch(
        [span(1, attributes={"k": "v"}), span(2, parent_span_id=f"{1:016x}")],
        [Sample("DCGM_FI_DEV_GPU_TEMP", 70.0, "Cel", Layer.INFRASTRUCTURE, 5, {"gpu": "0"},
                "gpu.temperature", "node-1", "GPU-1")],
        [Deployment("rag-api", 10, version="1.1", previous_version="1.0")],
    )
    store.close()
    store.close()  # idempotent
    reopened = DuckDBStore(tmp_path / "s.duckdb")
    assert reopened.counts() == {"spans": 2, "samples": 1, "incidents": 0, "deployments": 1,
                              "logs": 0}
    spans = trace_spans(reopened.cursor(), "a" * 32)
    assert [s["span_id"] for s in spans] == [f"{1:016x}", f"{2:016x}"]
    assert spans[0]["attributes"] == {"k": "v"}
    assert reopened.known_versions() == {"rag-api": ("1.1", 10)}
    reopened.close()


def test_failed_batch_rolls_back(store: DuckDBStore) -> None:
    """A batch that fails half-way leaves nothing behind."""
    bad = span(2, trace=None)  # NOT NULL violation on the second row
    with pytest.raises(duckdb.Error):
        store.write_batch([span(1), bad])
    assert store.counts()["spans"] == 0


def test_a_resent_span_is_stored_once(store: DuckDBStore) -> None:
    """D8: a retried batch, or a span repeated within one batch, is stored once; another span
    of the same trace, or the same span id in another trace, is still stored."""
    store.write_batch([span(1), span(2)])
    store.write_batch([span(1), span(2), span(3), span(3)])
    store.write_batch([span(1, trace="b" * 32)])
    rows = store.cursor().execute(
        "SELECT trace_id, span_id, count(*) FROM spans GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [("a" * 32, f"{i:016x}", 1) for i in (1, 2, 3)] + [("b" * 32, f"{1:016x}", 1)]


def test_a_span_in_two_requests_of_one_commit_is_stored_once(store: DuckDBStore) -> None:
    """D8 for decode workers' tables: a sender's retry can share a group commit with its
    original, so the same span arrives in two Arrow tables of one ``write_batch``."""
    request = spans_to_arrow([span(1), span(2)], 0)
    store.write_batch(span_tables=[request, request, spans_to_arrow([span(3)], 0)])
    rows = store.cursor().execute(
        "SELECT span_id, count(*) FROM spans GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [(f"{i:016x}", 1) for i in (1, 2, 3)]


def test_external_file_access_is_disabled(store: DuckDBStore) -> None:
    """SQL reaching the store cannot read or write other files (S7)."""
    with pytest.raises(duckdb.Error, match="disabled"):
        store.cursor().execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()
    with pytest.raises(duckdb.Error):
        store.cursor().execute("SET enable_external_access = true")


def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    """A second agent on the same file fails fast with 'locked' (D7)."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        result = subprocess.run(
            [sys.executable, "-c",
             "from strata.agent.store.db import DuckDBStore; "
             f"DuckDBStore({str(tmp_path / 's.duckdb')!r})"],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode != 0
        assert "locked by another process" in result.stderr
    finally:
        store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file from a newer Strata is not silently downgraded."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.cursor().execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StoreError, match="schema v99"):
        DuckDBStore(tmp_path / "s.duckdb")


def test_retention_counts_from_receipt(store: DuckDBStore) -> None:
    """Retention deletes by receive time, so replayed old telemetry is kept."""
    store.write_batch([span(1)], received_ns=100)
    store.write_batch([span(2, start_unix_nano=1, end_unix_nano=2)], received_ns=10_000)
    assert store.purge_older_than(5_000) == {"spans": 1, "samples": 0, "anomalies": 0, "logs": 0}
    (row,) = list_traces(store.cursor())
    assert row["spans"] == 1


def test_trace_filters(store: DuckDBStore) -> None:
    """list_traces filters by service, model, status and minimum duration."""
    store.write_batch([
        span(1, trace="1" * 32, request_model="gpt-4o"),
        span(2, trace="2" * 32, service="bot", status="error", end_unix_nano=9_000_000),
    ])
    cur = store.cursor()
    assert [t["trace_id"] for t in list_traces(cur, service="bot")] == ["2" * 32]
    assert [t["trace_id"] for t in list_traces(cur, model="gpt-4o")] == ["1" * 32]
    assert [t["trace_id"] for t in list_traces(cur, status="error")] == ["2" * 32]
    assert [t["trace_id"] for t in list_traces(cur, min_duration_ns=1_000_000)] == ["2" * 32]
    assert len(list_traces(cur, limit=1)) == 1


def test_a_v1_store_is_migrated_on_open(tmp_path: Path) -> None:
    """A file written by a v1 agent (no anomalies table) gains the table and keeps its data."""
    path = tmp_path / "old.duckdb"
    store = DuckDBStore(path)
    store.write_batch(samples=[Sample("DCGM_FI_DEV_GPU_TEMP", 70.0, "Cel",
                                      Layer.INFRASTRUCTURE, 5)])
    with store.transaction() as cur:
        cur.execute("DROP TABLE anomalies")
        cur.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store.close()
    reopened = DuckDBStore(path)
    cur = reopened.cursor()
    assert cur.execute("SELECT count(*) FROM anomalies").fetchone() == (0,)
    assert cur.execute("SELECT count(*) FROM samples").fetchone() == (1,)
    assert cur.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    reopened.close()


def test_a_v3_store_gets_trace_keys_and_loses_the_trace_id_indexes(tmp_path: Path) -> None:
    """v4 replaced the ART indexes on spans(trace_id) and logs(trace_id), which every
    checkpoint rewrote whole, by the BIGINT trace_key: a v3 file's rows get their keys on
    open (else trace lookups, which filter on the key, would miss them) and the indexes go."""
    path = tmp_path / "old.duckdb"
    trace = "0123456789abcdef" * 2
    store = DuckDBStore(path)
    store.write_batch([span(1, trace=trace), span(2, trace="f" * 32)], logs=[
        LogRecord(5, "rag-api", event_name="exception", trace_id=trace, span_id=f"{1:016x}")])
    with store.transaction() as cur:  # as a v3 agent left it
        for table in ("spans", "logs"):
            cur.execute(f"ALTER TABLE {table} DROP COLUMN trace_key")
            cur.execute(f"CREATE INDEX {table}_trace_id ON {table} (trace_id)")
        cur.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    store.close()
    reopened = DuckDBStore(path)
    cur = reopened.cursor()
    assert cur.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name IN "
                       "('spans', 'logs')").fetchone() == (0,)
    assert cur.execute("SELECT trace_key FROM spans ORDER BY trace_key").fetchall() == [
        (int("0123456789abcde", 16),), (int("f" * 15, 16),)]
    assert [s["span_id"] for s in trace_spans(cur, trace)] == [f"{1:016x}"]
    assert [r["event_name"] for r in trace_logs(cur, trace)] == ["exception"]
    reopened.close()


def test_a_trace_whose_id_is_not_hex_is_still_found(store: DuckDBStore) -> None:
    """Its key is NULL (the lookup compares keys with IS NOT DISTINCT FROM), and two traces
    whose ids share the key's 15 digits stay apart (the id itself is compared too)."""
    store.write_batch([span(1, trace="trace-from-a-test"), span(2, trace="a" * 31 + "b"),
                       span(3, trace="a" * 32)])
    cur = store.cursor()
    assert [s["span_id"] for s in trace_spans(cur, "trace-from-a-test")] == [f"{1:016x}"]
    assert [s["span_id"] for s in trace_spans(cur, "a" * 31 + "b")] == [f"{2:016x}"]
    assert trace_spans(cur, "a" * 31 + "c") == []


def test_a_failed_commit_is_not_rolled_back_twice(store: DuckDBStore) -> None:
    """A COMMIT that DuckDB refuses (here a real conflict: another transaction committed the
    same primary key first) raises that error itself, not "cannot rollback - no transaction
    is active" over it, and the store commits again afterwards."""
    other = store.cursor().cursor()

    def conflicting_commit() -> None:
        with store.transaction() as cur:
            cur.execute("INSERT INTO meta VALUES ('conflict', 'ours')")
            other.execute("INSERT INTO meta VALUES ('conflict', 'theirs')")  # auto-commits

    with pytest.raises(duckdb.TransactionException, match="Failed to commit") as refused:
        conflicting_commit()
    assert "cannot rollback" not in str(refused.value)
    assert refused.value.__context__ is None
    store.write_batch([span(1)])
    assert store.counts()["spans"] == 1


def test_a_read_on_another_thread_never_blocks_the_checkpoint(store: DuckDBStore) -> None:
    """A one-row read (health's counts, an incident lookup) is read to the end: left open on
    the API thread's cursor, it kept CHECKPOINT (and so close) from running once another
    thread had updated a row."""
    with store.transaction() as cur:
        cur.execute("INSERT INTO meta VALUES ('k', '1')")
    read, done = threading.Event(), threading.Event()

    def api_thread() -> None:  # a pooled thread: it and its cursor outlive the request
        store.counts()  # its last one-row read stayed open
        read.set()
        done.wait(10)

    reader = threading.Thread(target=api_thread)
    reader.start()
    try:
        assert read.wait(10)
        with store.transaction() as cur:
            cur.execute("INSERT INTO meta VALUES ('k', '2') ON CONFLICT (key) DO UPDATE SET "
                        "value = excluded.value")
        store.checkpoint()
    finally:
        done.set()
        reader.join()
