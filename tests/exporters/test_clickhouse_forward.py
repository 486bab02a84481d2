"""ClickHouseForwarder against chdb (ClickHouse's engine in-process): batches of at least
1,000 rows in the Collector's schema, queued on disk, retried while ClickHouse is down,
nothing acknowledged lost across a restart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from strata.agent.config import load
from strata.agent.errors import ConfigError
from strata.agent.model import Layer
from strata.agent.store.clickhouse.engine import ChdbEngine, ClickHouseError, Engine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import DuckDBStore
from strata.agent.store.seam import metrics_reads
from strata.exporters.base import Records
from strata.exporters.build import build_exporters
from strata.exporters.clickhouse_forward import ClickHouseForwarder
from strata.exporters.disk_queue import QueuedItem
from strata.exporters.prometheus import StrataCollector

from tests.agent.store.rows import HOUR, MIN, T0, sample, span
from tests.exporters.test_prometheus import one, scrape


@pytest.fixture(name="engine")
def engine_fixture(tmp_path: Path) -> Iterator[Engine]:
    engine = ChdbEngine(tmp_path / "ch")
    yield engine
    engine.close()


def _records(first: int, n: int) -> Records:
    spans = [span(f"s{i}", i / 100, i / 100 + 0.5, trace=f"{i:032x}", operation="chat",
                  input_tokens=10, output_tokens=5, request_model="gpt-4o", provider="openai",
                  team="search") for i in range(first, first + n)]
    return Records(spans, [sample("DCGM_FI_DEV_GPU_TEMP", 60.0, first / 100,
                                  canonical="gpu.temperature", host="n1", device="GPU-1",
                                  layer=Layer.INFRASTRUCTURE)], None)


def _forwarder(tmp_path: Path, connect: object) -> ClickHouseForwarder:
    return ClickHouseForwarder("chdb:unused", tmp_path / "queue", batch_rows=1000,
                               max_delay_s=3600, connect=connect,  # type: ignore[arg-type]
                               fsync=False, start=False)


def test_rows_go_in_batches_of_at_least_1000(tmp_path: Path, engine: Engine) -> None:
    forwarder = _forwarder(tmp_path, lambda: engine)
    for first in range(0, 2500, 250):
        assert forwarder.enqueue(_records(first, 250))
    while forwarder.send_once() is not None:
        pass
    # two full batches of spans; 500 spans and 10 samples wait for more (or max_delay_s)
    assert (forwarder.stats.sent_inserts, forwarder.stats.sent_rows) == (2, 2000)
    while forwarder.send_once(flush=True) is not None:
        pass
    store = ClickHouseStore(engine)
    assert store.counts()["spans"] == 2500
    assert store.counts()["samples"] == 10
    assert (forwarder.stats.sent_inserts, forwarder.stats.sent_rows) == (4, 2510)
    # the rows carry Strata's enrichment into the materialised columns
    assert store.cost_by_team(T0, T0 + HOUR) == [("search", 2500, None)]
    usage = store.window_reads().model_bucket_usage(start_ns=T0, end_ns=T0 + HOUR,
                                                   bucket_ns=MIN, sep="|")
    assert usage["n_tok"].sum() == 2500
    forwarder.shutdown()


def test_clickhouse_down_is_retried_and_nothing_is_lost(tmp_path: Path, engine: Engine,
                                                        store: DuckDBStore) -> None:
    def down() -> Engine:
        raise ClickHouseError("cannot reach ClickHouse at ch: Connection refused")

    forwarder = _forwarder(tmp_path, down)
    assert forwarder.enqueue(_records(0, 1200))
    delay = forwarder.send_once()
    assert delay is not None
    assert delay > 0
    assert forwarder.stats.retries == 1
    assert forwarder.queue_bytes > 0
    metrics = scrape(StrataCollector(metrics_reads(store), clickhouse=forwarder))
    assert one(metrics["strata_clickhouse_forward_rows_total"], state="enqueued") == 1201
    assert one(metrics["strata_clickhouse_forward_rows_total"], state="inserted") == 0
    assert one(metrics["strata_clickhouse_forward_retries_total"]) == 1
    assert one(metrics["strata_clickhouse_forward_queue_bytes"]) == forwarder.queue_bytes
    forwarder.shutdown()  # a restart: the queue stays on disk
    again = _forwarder(tmp_path, lambda: engine)
    while again.send_once(flush=True) is not None:
        pass
    assert ClickHouseStore(engine).counts()["spans"] == 1200
    assert again.queue_bytes == 0
    again.shutdown()


def test_bad_data_is_not_retried_but_outages_are() -> None:
    assert not ClickHouseError("chdb: Code: 27. DB::Exception: Cannot parse input").retryable
    assert not ClickHouseError("ClickHouse insert: Code: 53. Type mismatch").retryable
    assert ClickHouseError("ClickHouse insert: Code: 252. Too many parts").retryable
    assert ClickHouseError("cannot reach ClickHouse at ch: timed out").retryable


def test_batch_rows_below_1000_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1000"):
        ClickHouseForwarder("chdb:x", tmp_path / "q", batch_rows=999, start=False)


def test_forward_clickhouse_settings_build_the_forwarder(tmp_path: Path) -> None:
    config = tmp_path / "strata.toml"
    config.write_text('[forward]\nmax_backoff = "10s"\n\n[forward.clickhouse]\n'
                      'url = "http://ch:8123"\nbatch_rows = 5000\n')
    settings = load(config, {"STRATA_FORWARD_CLICKHOUSE_DATABASE": "fleet"},
                    db=str(tmp_path / "a.duckdb"))
    assert (settings.forward_clickhouse_url, settings.forward_clickhouse_database,
            settings.forward_clickhouse_batch_rows, settings.forward_max_backoff_s) == (
        "http://ch:8123", "fleet", 5000, 10.0)
    exporters = build_exporters(settings, price=lambda spans: [])
    assert exporters.clickhouse is not None
    assert exporters.records == (exporters.clickhouse,)
    assert (tmp_path / "forward-clickhouse-queue" / "traces").is_dir()
    exporters.clickhouse.shutdown()
    config.write_text('[forward.clickhouse]\nurll = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['urll'\] in \[forward.clickhouse\]"):
        load(config, {})


class _AckLostOnce:
    """The real engine, but the first insert's acknowledgement never reaches the caller."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.database = engine.database
        self.lost = False

    def command(self, sql: str, params: dict[str, object] | None = None) -> None:
        self.engine.command(sql, params)

    def query(self, sql: str, params: dict[str, object] | None = None) -> pa.Table:
        return self.engine.query(sql, params)

    def insert(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        self.engine.insert(table, data, token=token)
        if not self.lost:
            self.lost = True
            raise ClickHouseError("ClickHouse insert: connection reset by peer")

    def close(self) -> None:
        pass


def test_a_retry_after_a_lost_acknowledgement_stores_the_batch_once(
    tmp_path: Path, engine: Engine
) -> None:
    flaky = _AckLostOnce(engine)
    forwarder = _forwarder(tmp_path, lambda: flaky)
    assert forwarder.enqueue(Records(_records(0, 1500).spans, [], None))
    assert forwarder.send_once() not in (None, 0.0)  # stored, but the caller saw an error
    assert forwarder.stats.retries == 1
    while forwarder.send_once(flush=True) is not None:
        pass
    assert ClickHouseStore(engine).counts()["spans"] == 1500
    forwarder.shutdown()


def test_a_lost_acknowledgement_retried_after_more_rows_arrived_is_stored_once(
    tmp_path: Path, engine: Engine
) -> None:
    flaky = _AckLostOnce(engine)
    forwarder = _forwarder(tmp_path, lambda: flaky)  # batch_rows 1000
    assert forwarder.enqueue(Records(_records(0, 600).spans, [], None))
    assert forwarder.send_once(flush=True) not in (None, 0.0)  # stored, the caller saw an error
    # more arrived before the retry: a batch regathered from the queue would now hold 1,000
    # rows, a new token, and store the first 600 again
    assert forwarder.enqueue(Records(_records(600, 400).spans, [], None))
    while forwarder.send_once(flush=True) is not None:
        pass
    assert ClickHouseStore(engine).counts()["spans"] == 1000
    forwarder.shutdown()


def test_a_restart_resends_the_batch_in_flight_as_it_was(tmp_path: Path, engine: Engine) -> None:
    flaky = _AckLostOnce(engine)
    forwarder = _forwarder(tmp_path, lambda: flaky)
    assert forwarder.enqueue(Records(_records(0, 600).spans, [], None))
    assert forwarder.send_once(flush=True) not in (None, 0.0)  # stored; then the process ends
    forwarder.shutdown()
    again = _forwarder(tmp_path, lambda: engine)
    assert again.enqueue(Records(_records(600, 400).spans, [], None))
    while again.send_once(flush=True) is not None:
        pass
    assert ClickHouseStore(engine).counts()["spans"] == 1000
    assert not (tmp_path / "queue" / "traces" / "inflight").exists()  # cleared once committed
    again.shutdown()


def test_the_sender_sleeps_while_a_batch_fills_and_wakes_when_it_is_full(
    tmp_path: Path, engine: Engine
) -> None:
    forwarder = _forwarder(tmp_path, lambda: engine)  # batch_rows 1000, max_delay_s 3600
    queue = forwarder.queues[b"T"]
    peek = queue.peek
    peeks = []

    def counted(max_bytes: int, max_items: int = 1_000_000) -> list[QueuedItem]:
        peeks.append(max_bytes)
        return peek(max_bytes, max_items)

    queue.peek = counted  # type: ignore[method-assign]
    assert forwarder.enqueue(Records(_records(0, 400).spans, [], None))
    assert forwarder._wake.is_set()  # rows in a queue the sender saw empty
    forwarder._wake.clear()
    assert forwarder.send_once() is None  # a batch filling: noted, nothing sent
    assert forwarder.enqueue(Records(_records(400, 300).spans, [], None))
    assert not forwarder._wake.is_set()  # 700 of 1000 rows: nothing to look at yet
    assert forwarder.enqueue(Records(_records(700, 300).spans, [], None))
    assert forwarder._wake.is_set()  # a full batch
    assert forwarder.send_once() == 0.0
    assert (forwarder.stats.sent_inserts, forwarder.stats.sent_rows) == (1, 1000)
    assert len(peeks) == 2  # one look per wake, never a spin over the filling batch
    forwarder.shutdown()


def test_large_rows_go_in_batches_of_8_mib_or_more_without_waiting(tmp_path: Path,
                                                           engine: Engine) -> None:
    forwarder = _forwarder(tmp_path, lambda: engine)  # batch_rows 1000, max_delay_s 3600
    for first in range(0, 360, 60):  # 60 spans of ~48 KiB of incompressible text a request
        spans = [span(f"s{i}", i, i + 1, attributes={"blob": os.urandom(24 * 1024).hex()})
                 for i in range(first, first + 60)]
        assert forwarder.enqueue(Records(spans, [], None))
    assert forwarder.send_once() == 0.0  # ~17 MiB queued: what 16 MiB holds goes at once
    assert (forwarder.stats.sent_inserts, forwarder.stats.sent_rows) == (1, 300)
    assert forwarder.send_once() is None  # ~3 MiB: waits for more (or max_delay_s)
    while forwarder.send_once(flush=True) is not None:
        pass
    assert ClickHouseStore(engine).counts()["spans"] == 360
    forwarder.shutdown()
