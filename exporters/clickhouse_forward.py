"""ClickHouseForwarder: a sidecar writes its accepted spans and samples straight into the
fleet's ClickHouse, in the OpenTelemetry Collector's schema (``[forward.clickhouse]``).

The same path and rules as ``OTLPForwarder`` (RELIABILITY E1-E4): ``enqueue`` runs on the
receiver's thread, encodes the records as the rows of ``otel_traces`` / ``otel_metrics_gauge``
(``strata.agent.store.clickhouse.rows``: Strata's enrichment in attributes) in Arrow IPC,
and appends them to a ``DiskQueue`` per table with fsync; it never touches the network. One
sender thread gathers each table's items until ``batch_rows`` (>= 1,000: ClickHouse wants few
large inserts; or 8 MiB of large rows) or until the oldest waited ``max_delay_s``, sleeping
while a batch fills (a put that may fill one wakes it), inserts them in one statement, and
commits the queue only after ClickHouse acknowledged. A ClickHouse that is down, slow or
overloaded is retried with the same backoff (``delivery.Backoff``, jittered doubling);
a batch ClickHouse refuses as bad data (``ClickHouseError.retryable`` false) is dropped and
counted, as the OTLP forwarder drops a 400. Nothing acknowledged is ever lost: a retry, in
this process or after a restart, resends the batch in flight with exactly its items (its
end is kept on disk, ``inflight``) and so its insert token, which ClickHouse's insert
deduplication stores once.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from strata.agent.errors import ConfigError
from strata.agent.model import SpanRecord
from strata.agent.store.clickhouse.engine import (
    ClickHouseError,
    Engine,
    chdb_session,
    open_engine,
)
from strata.agent.store.clickhouse.rows import SAMPLE_TABLE, SPAN_TABLE, samples_table, spans_table
from strata.agent.store.clickhouse.store import migrate
from strata.exporters.base import ExportResult, Records
from strata.exporters.delivery import Backoff, Worker
from strata.exporters.disk_queue import Cursor, DiskQueue, QueuedItem, read_cursor, write_cursor

if TYPE_CHECKING:
    from strata.agent.store.db import CostColumns

__all__ = ["ClickHouseForwarder", "ClickHouseForwarderStats"]

logger = logging.getLogger(__name__)

MIN_BATCH_ROWS = 1000
# what the sender reads to cut a batch (a 10,000-row batch of spans is ~2.5 MiB): a backlog
# is not re-read whole (and CRC-checked) for every insert
_PEEK_BYTES = 16 * 1024**2
_IDLE_WAIT_S = 0.5  # the longest the sender sleeps without news: shutdown stays prompt
_TABLES = {b"T": SPAN_TABLE, b"M": SAMPLE_TABLE}
_ITEM_HEADER = struct.Struct(">I")  # row count
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass(slots=True)
class ClickHouseForwarderStats:
    enqueued_rows: int = 0
    enqueue_failed_rows: int = 0
    sent_rows: int = 0
    sent_inserts: int = 0
    retries: int = 0
    dropped_rows: int = 0  # refused by ClickHouse as bad data
    last_error: str | None = None


def _read_inflight(queue: DiskQueue) -> Cursor | None:
    """The end of the batch *queue*'s sender had sent but not committed, if any."""
    return read_cursor(queue.directory / "inflight")


def _write_inflight(queue: DiskQueue, end: Cursor | None) -> None:
    """Persist (as the queue persists its commits) or clear the end of the batch about to be
    sent."""
    path = queue.directory / "inflight"
    if end is None:
        path.unlink(missing_ok=True)
    else:
        write_cursor(path, end, fsync=queue.fsync)


def _queue_id(directory: Path) -> str:
    """This queue's random id, kept in its directory: tokens of two sidecars never clash."""
    path = directory / "forwarder-id"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(uuid.uuid4().hex)
    return path.read_text().strip()


def _encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(memoryview(payload)[_ITEM_HEADER.size:]).read_all()


class ClickHouseForwarder:
    """At-least-once forwarding to ClickHouse through a persistent queue.

    Args:
        target: ``http(s)://[user:pass@]host:port`` (or ``chdb:DIR``: tests, one box).
        queue_dir: directory of the persistent queue.
        database: the database of the ``otel_*`` tables (created with them if absent).
        batch_rows: rows gathered per insert (at least ``MIN_BATCH_ROWS``).
        max_delay_s: the longest an item waits for a batch to fill.
        max_queue_bytes: cap of the queue on disk; beyond it new items are refused, counted.
        price: cost/energy columns of spans that reach it unpriced.
        initial_backoff_s / max_backoff_s: retry delays (doubling, with +-50 % jitter).
        connect: builds the engine (tests pass one); the default opens *target*.
        fsync: fsync the queue on every enqueue.
        start: start the sender thread now (tests pass False and call ``send_once``).
    """

    def __init__(
        self,
        target: str,
        queue_dir: str | Path,
        *,
        database: str = "otel",
        batch_rows: int = 10_000,
        max_delay_s: float = 5.0,
        max_queue_bytes: int = 512 * 1024**2,
        price: Callable[[Sequence[SpanRecord]], Sequence[CostColumns]] | None = None,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        connect: Callable[[], Engine] | None = None,
        fsync: bool = True,
        start: bool = True,
    ) -> None:
        if batch_rows < MIN_BATCH_ROWS:
            msg = (f"[forward.clickhouse] batch_rows must be at least {MIN_BATCH_ROWS}, "
                   f"got {batch_rows}")
            raise ConfigError(msg)
        if connect is None and target.startswith("chdb:"):
            chdb_session()  # a missing chdb is a startup error, not a retry loop
        # one queue per table: a batch is a prefix of one queue, whatever the other holds
        self.queues = {table: DiskQueue(Path(queue_dir) / name, max_bytes=max_queue_bytes // 2,
                                        fsync=fsync)
                       for table, name in ((b"T", "traces"), (b"M", "metrics"))}
        self._queue_id = _queue_id(Path(queue_dir))
        self.stats = ClickHouseForwarderStats()
        self._connect = connect or (lambda: open_engine(target, database))
        self._engine: Engine | None = None
        self._batch_rows = batch_rows
        self._max_delay_s = max_delay_s
        self._price = price
        self._retry = Backoff(initial_backoff_s, max_backoff_s,
                              random.Random())  # noqa: S311 - jitter, not security
        self._failures = 0
        self._first_seen: dict[bytes, float] = {}
        # The end of each table's batch sent but not committed: a retry, in this process or
        # after a restart, resends exactly those items, so their token matches and
        # ClickHouse stores a batch whose acknowledgement was lost once.
        self._inflight = {table: _read_inflight(queue) for table, queue in self.queues.items()}
        # rows of a batch the sender saw filling, and rows put since it last looked: the
        # producer wakes the sender only when a batch may be full (or a queue it saw empty
        # got rows), so it never spins re-reading a filling batch
        self._seen_rows = dict.fromkeys(self.queues, 0)
        self._unseen_rows = dict.fromkeys(self.queues, 0)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = Worker("strata-forward-clickhouse", self._step, on_error=self._backoff)
        if start:
            self.start()

    @property
    def queue_bytes(self) -> int:
        """Bytes waiting in the persistent queues."""
        return sum(q.pending_bytes for q in self.queues.values())

    def start(self) -> None:
        self._worker.start()

    # -- producer side (ingest path) -------------------------------------------------------

    def enqueue(self, records: Records) -> bool:
        """Queue *records* as rows, durably; never blocks on the network."""
        ok = True
        spans, samples, costs = records.spans, records.samples, records.costs
        if spans:
            if costs is None and self._price is not None:
                costs = self._price(spans)
            ok &= self._put(b"T", spans_table(spans, costs))
        if samples:
            ok &= self._put(b"M", samples_table(samples))
        return ok

    def _put(self, table: bytes, rows: pa.Table) -> bool:
        accepted = self.queues[table].put(_ITEM_HEADER.pack(rows.num_rows) + _encode(rows))
        with self._lock:
            if accepted:
                self.stats.enqueued_rows += rows.num_rows
                self._unseen_rows[table] += rows.num_rows
                seen = self._seen_rows[table]
                if seen == 0 or seen + self._unseen_rows[table] >= self._batch_rows:
                    self._wake.set()
            else:
                self.stats.enqueue_failed_rows += rows.num_rows
        return accepted

    def export(self, items: Sequence[Records]) -> ExportResult:
        """Exporter protocol: ``enqueue`` each item."""
        results = [self.enqueue(item) for item in items]
        return ExportResult.SUCCESS if all(results) else ExportResult.FAILURE

    # -- sender side -----------------------------------------------------------------------

    def _step(self) -> float:
        self._wake.clear()  # before looking: a put from now on can wake the wait below
        delay = self.send_once()
        if delay is None:
            now = time.monotonic()
            due = [first + self._max_delay_s - now for first in self._first_seen.values()]
            self._wake.wait(max(0.0, min([_IDLE_WAIT_S, *due])))
            return 0.0
        return delay

    def _gather(self, table: bytes, *, flush: bool) -> tuple[list[QueuedItem], int] | None:
        """The oldest items of *table* up to ``batch_rows``; None while empty or while a
        batch is still filling (fewer rows, under 8 MiB, the oldest younger than
        ``max_delay_s``)."""
        with self._lock:  # until a filling batch is noted below, every put wakes the sender
            self._seen_rows[table] = self._unseen_rows[table] = 0
        items = self.queues[table].peek(_PEEK_BYTES)
        if not items:
            self._first_seen.pop(table, None)
            return None
        inflight = self._inflight[table]
        if inflight is not None and all(item.end != inflight for item in items):
            inflight = self._inflight[table] = None  # not in the queue (cut off as torn)
        batch: list[QueuedItem] = []
        rows = size = 0
        for item in items:
            (count,) = _ITEM_HEADER.unpack_from(item.payload)
            if inflight is None and batch and rows + count > self._batch_rows:
                break
            batch.append(item)
            rows += count
            size += len(item.payload)
            if item.end == inflight:
                return batch, rows  # the batch sent before, whatever arrived since
        now = time.monotonic()
        first = self._first_seen.setdefault(table, now)
        if not (flush or rows >= self._batch_rows or len(batch) < len(items)
                or size >= _PEEK_BYTES // 2 or now - first >= self._max_delay_s):
            with self._lock:
                self._seen_rows[table] = rows
            return None
        return batch, rows

    def send_once(self, *, flush: bool = False) -> float | None:
        """Insert each table's oldest batch that is ready, once.

        Returns:
            None when nothing was ready (empty, or batches still filling unless *flush*);
            0.0 after inserts or drops; otherwise the seconds before retrying.
        """
        sent = False
        for table in self.queues:
            gathered = self._gather(table, flush=flush)
            if gathered is None:
                continue
            delay = self._insert(table, *gathered)
            if delay:
                return delay
            sent = True
        return 0.0 if sent else None

    def _insert(self, table: bytes, batch: list[QueuedItem], rows: int) -> float:
        try:
            if self._engine is None:
                engine = self._connect()
                migrate(engine)
                self._engine = engine
            data = pa.concat_tables([_decode(item.payload) for item in batch])
            # the same items resent (a lost acknowledgement, a restart) carry the same token
            first, last = batch[0].end, batch[-1].end
            if self._inflight[table] != last:
                _write_inflight(self.queues[table], last)
                self._inflight[table] = last
            token = (f"{self._queue_id}:{table.decode()}:{first.segment}.{first.offset}:"
                     f"{last.segment}.{last.offset}")
            self._engine.insert(_TABLES[table], data, token=token)
        except ClickHouseError as exc:
            self.stats.last_error = str(exc)[:300]
            if exc.retryable:
                self._failures += 1
                self.stats.retries += 1
                logger.warning("ClickHouse insert of %d rows failed, retrying: %s", rows, exc)
                return self._backoff()
            self.stats.dropped_rows += rows
            logger.warning("ClickHouse refused %d rows as bad data; dropped: %s", rows, exc)
        else:
            self.stats.sent_rows += rows
            self.stats.sent_inserts += 1
        self.queues[table].commit(batch[-1].end, items=len(batch))
        _write_inflight(self.queues[table], None)
        self._inflight[table] = None
        self._failures = 0
        self._first_seen.pop(table, None)
        return 0.0

    def _backoff(self) -> float:
        return self._retry.delay(self._failures)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the sender; what is queued stays on disk for the next start. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._worker.stop(timeout_s)
        if self._engine is not None:
            self._engine.close()
        for queue in self.queues.values():
            queue.close()
