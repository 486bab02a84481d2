"""BatchWriter: a bounded queue in front of the store, committed in groups.

Requests hand their decoded records to ``submit`` and wait on the returned future; the one
writer thread takes everything queued, writes it in one transaction and only then resolves
the futures. The OTLP reply waits for that, because DESIGN.md promises that a 200 means the
data is durable. While a commit runs, new requests pile up and go into the next one, so the
commit rate adapts to load without a timer.

A fatal DuckDB error (the database "has been invalidated", e.g. a checkpoint that hit a full
disk) is sticky: nothing can be committed until the process reopens the file. The writer
then refuses every submit with ``StoreFailedError`` (503 + Retry-After, never a 200) and
exposes ``fatal_error`` so the server can exit non-zero for its supervisor to restart it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import duckdb
import pyarrow as pa
from strata.agent.errors import BackpressureError, StoreFailedError
from strata.agent.ingest.changes import ChangeTracker, spans_seen
from strata.agent.ingest.stats import WriterStats
from strata.agent.logs import RateLimitedLog
from strata.agent.model import Deployment, LogRecord, Sample, SpanRecord
from strata.agent.store.db import CostColumns

logger = logging.getLogger(__name__)

_FATAL_TYPES = (duckdb.FatalException, duckdb.InternalException)
COMMIT_ERROR_LOG_INTERVAL_S = 10.0


def is_fatal_store_error(exc: BaseException) -> bool:
    """True when *exc* (or an error it was raised while handling) invalidated the database."""
    seen: BaseException | None = exc
    for _ in range(8):  # write_batch's ROLLBACK may raise a second error over the first
        if seen is None:
            return False
        if isinstance(seen, _FATAL_TYPES) or "has been invalidated" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class BatchStore(Protocol):
    """What the writer needs of a store: ``DuckDBStore``, or the hub's ``ClickHouseStore``."""

    def write_batch(self, spans: Sequence[SpanRecord] = (), samples: Sequence[Sample] = (),
                    deployments: Sequence[Deployment] = (), *, received_ns: int | None = None,
                    costs: Sequence[CostColumns] | None = None,
                    span_tables: Sequence[pa.Table] = (),
                    logs: Sequence[LogRecord] = ()) -> None: ...
    def known_versions(self) -> dict[str, tuple[str | None, int]]: ...


@dataclass(slots=True)
class _Pending:
    spans: Sequence[SpanRecord]
    samples: Sequence[Sample]
    deployments: Sequence[Deployment]
    logs: Sequence[LogRecord] = ()
    span_table: pa.Table | None = None  # spans decoded by a worker, priced, as columns
    future: Future[Sequence[CostColumns] | None] = field(default_factory=Future)

    @property
    def size(self) -> int:
        table_rows = self.span_table.num_rows if self.span_table is not None else 0
        return (len(self.spans) + table_rows + len(self.samples) + len(self.deployments)
                + len(self.logs))


class BatchWriter:
    """Group-committing writer thread.

    Args:
        store: where batches go.
        max_queue_items: spans + samples allowed to wait; beyond it ``submit`` raises
            ``BackpressureError`` (the receiver answers 503 with Retry-After).
        max_batch_items: the most records written in one transaction.
        on_commit: called on the writer thread after each commit with what was written;
            it must not block.
        price: cost/energy columns for a batch of spans, computed before the insert.
    """

    def __init__(
        self,
        store: BatchStore,
        *,
        max_queue_items: int = 200_000,
        max_batch_items: int = 50_000,
        on_commit: Callable[[Sequence[SpanRecord], Sequence[Sample]], None] | None = None,
        price: Callable[[Sequence[SpanRecord]], Sequence[CostColumns]] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._max_queue = max_queue_items
        self._max_batch = max_batch_items
        self._on_commit = on_commit
        self._price = price
        self._clock = clock
        self._queue: list[_Pending] = []
        self._queued_items = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.fatal_error: str | None = None
        self.changes = ChangeTracker()
        self.changes.resume(store.known_versions())
        self.stats = WriterStats()
        self._commit_errors = RateLimitedLog(logger, COMMIT_ERROR_LOG_INTERVAL_S)

    @property
    def queued_items(self) -> int:
        return self._queued_items

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="strata-writer", daemon=True)
            self._thread.start()

    def submit(
        self,
        spans: Sequence[SpanRecord] = (),
        samples: Sequence[Sample] = (),
        deployments: Sequence[Deployment] = (),
        logs: Sequence[LogRecord] = (),
        span_table: pa.Table | None = None,
    ) -> Future[Sequence[CostColumns] | None]:
        """Queue records; the future resolves after their COMMIT (or fails with the error).

        Its result is the spans' cost columns as stored (None when nothing priced them, and
        for a *span_table*: spans already priced, in the store's columns, from
        ``strata.agent.ingest.decoding``).

        Raises:
            BackpressureError: the queue is full or the writer is closing.
            StoreFailedError: the store was invalidated by a fatal error.
        """
        pending = _Pending(spans, samples, deployments, logs, span_table)
        with self._cond:
            if self.fatal_error is not None:
                raise StoreFailedError(self.fatal_error)
            if self._closing:
                raise BackpressureError(retry_after_s=5)
            if self._queued_items and self._queued_items + pending.size > self._max_queue:
                self.stats.rejected_full += 1
                raise BackpressureError(retry_after_s=1)
            self._queue.append(pending)
            self._queued_items += pending.size
            self._cond.notify()
        return pending.future

    def write(
        self,
        spans: Sequence[SpanRecord] = (),
        samples: Sequence[Sample] = (),
        deployments: Sequence[Deployment] = (),
        timeout_s: float = 30.0,
    ) -> None:
        """Submit and wait for the commit (for collectors and other threads)."""
        self.submit(spans, samples, deployments).result(timeout=timeout_s)

    def _take(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            batch: list[_Pending] = []
            size = 0
            while self._queue and (not batch or size + self._queue[0].size <= self._max_batch):
                item = self._queue.pop(0)
                batch.append(item)
                size += item.size
            self._queued_items -= size
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        spans = [s for p in batch for s in p.spans]
        samples = [s for p in batch for s in p.samples]
        deployments = [d for p in batch for d in p.deployments]
        logs = [r for p in batch for r in p.logs]
        tables = [p.span_table for p in batch if p.span_table is not None]
        started = time.perf_counter()
        try:
            detected = self.changes.observe([*spans, *(seen for t in tables
                                                        for seen in spans_seen(t))])
            costs = self._price(spans) if self._price is not None and spans else None
            self._store.write_batch(spans, samples, [*deployments, *detected],
                                    received_ns=self._clock(), costs=costs, span_tables=tables,
                                    logs=logs)
        except Exception as exc:  # noqa: BLE001 - logged (rate-limited) and returned to each request
            self.changes.undo()
            self.stats.failed_commits += 1
            fatal = is_fatal_store_error(exc)
            if fatal:
                self.mark_fatal(str(exc).splitlines()[0][:300])
            elif len(batch) > 1:
                # One request's records may be what the store refused: commit each request
                # alone, so only that one fails and its group-mates get their 200.
                for pending in batch:
                    self._commit([pending])
                return
            self._commit_errors.error("commit of %d records failed",
                                      len(spans) + len(samples) + len(logs))
            for pending in batch:
                pending.future.set_exception(exc)
            return
        self.stats.commits += 1
        self.stats.committed_spans += len(spans) + sum(t.num_rows for t in tables)
        self.stats.committed_samples += len(samples)
        self.stats.committed_logs += len(logs)
        self.stats.last_commit_s = time.perf_counter() - started
        offset = 0
        for pending in batch:
            n = len(pending.spans)
            pending.future.set_result(costs[offset:offset + n] if costs is not None else None)
            offset += n
        if self._on_commit is not None:
            try:
                self._on_commit(spans, samples)
            except Exception:
                logger.exception("on_commit listener failed")

    def mark_fatal(self, reason: str) -> None:
        """Refuse all further writes: the store can no longer commit (first reason kept)."""
        with self._cond:
            if self.fatal_error is None:
                self.fatal_error = reason
                logger.error("store failed, refusing writes until restart: %s", reason)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, commit everything queued, stop the thread. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
