"""Decode OTLP request bodies off the event loop: in a thread, or in worker processes.

One Python process decodes about 30 µs per span under one GIL, which caps it near 20k
spans/s whatever the cores. With ``decode_workers`` > 0, trace bodies are decoded by that
many worker processes, which also price the spans and build the store's Arrow columns; they
hand the writer an Arrow IPC stream (about 1 µs per span to write and read, where pickling
the SpanRecords costs 30-70 µs per span each way, measured on the benchmark payloads). The
receiver, the writer and the 200-after-commit rule are unchanged.

Metrics and logs bodies, and every body when a records exporter needs the SpanRecords, are
decoded in a thread of this process, as is every body with ``decode_workers = 0``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import pyarrow as pa
from strata.agent.errors import BackpressureError
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import (
    DecodeResult,
    decode_metrics_request,
    decode_trace_request,
    decompress,
)
from strata.agent.ingest.otlp_logs import decode_logs_request
from strata.agent.model import SpanRecord
from strata.agent.store.columns import CostColumns

logger = logging.getLogger(__name__)

Pricer = Callable[[Sequence[SpanRecord]], Sequence[CostColumns]]
_NO_COST: CostColumns = (None, None, None, None, None)
T = TypeVar("T")


class Signal(StrEnum):
    """What an OTLP export carries."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


@dataclass(slots=True)
class Decoded:
    """A decoded request: its records (``result``) and, for traces, its spans as the store's
    Arrow columns, priced (``span_table``; ``costs`` one per span when decoded here)."""

    result: DecodeResult
    span_table: pa.Table | None = None
    costs: list[CostColumns] | None = None

    @property
    def span_count(self) -> int:
        if self.span_table is not None:
            return int(self.span_table.num_rows)
        return self.result.span_count


def decode_body(raw: bytes, encoding: str, *, as_json: bool, signal: Signal,
                policy: IngestPolicy, limit: int) -> DecodeResult:
    """Decompress (bounded by *limit*) and decode one request body.

    Raises:
        BodyTooLarge: over *limit* after decompression.
        DecodeError: not a decodable request.
    """
    body = decompress(raw, encoding, limit)
    if signal is Signal.METRICS:
        return decode_metrics_request(body, is_json=as_json)
    if signal is Signal.LOGS:
        return decode_logs_request(body, is_json=as_json, policy=policy)
    return decode_trace_request(body, is_json=as_json, policy=policy)


# -- in the worker process ------------------------------------------------------------------

_worker: dict[str, Any] = {}


PARENT_CHECK_S = 1.0


def _init_worker(policy: IngestPolicy, limit: int, price: Pricer | None) -> None:
    _worker.update(policy=policy, limit=limit, price=price)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="strata-decode-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """An agent killed with SIGKILL (or by the OOM killer) cannot stop its workers, and an
    idle worker would wait on its queue forever: exit once re-parented."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def decode_traces(raw: bytes, encoding: str, *, as_json: bool, policy: IngestPolicy,
                  limit: int, price: Pricer | None) -> Decoded:
    """Decode a trace body into the store's columns, priced: the same in a thread here and in
    a worker process (BodyTooLarge and DecodeError as ``decode_body``)."""
    result = decode_body(raw, encoding, as_json=as_json, signal=Signal.TRACES, policy=policy,
                         limit=limit)
    columns = result.span_columns
    if columns is None or not len(columns):
        return Decoded(result)
    priced = price(columns.records(columns.priced)) if price is not None and columns.priced else ()
    costs = [_NO_COST] * len(columns)
    for index, cost in zip(columns.priced, priced, strict=False):
        costs[index] = cost
    return Decoded(result, columns.to_arrow(costs), costs)


def _decode_traces_in_worker(
    raw: bytes, encoding: str, as_json: bool
) -> tuple[bytes, DecodeResult]:
    """(Arrow IPC stream of the priced span columns, the result without its spans)."""
    decoded = decode_traces(raw, encoding, as_json=as_json, policy=_worker["policy"],
                            limit=_worker["limit"], price=_worker["price"])
    decoded.result.span_columns = None  # handed over as Arrow, not pickled
    if decoded.span_table is None:
        return b"", decoded.result
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, decoded.span_table.schema) as stream:
        stream.write_table(decoded.span_table)
    return sink.getvalue().to_pybytes(), decoded.result


# -- in the agent ---------------------------------------------------------------------------


class Decoder:
    """Where the receiver decodes bodies: ``decode`` is awaited by the OTLP handlers.

    Args:
        policy, limit: the ingest policy and the decompressed body limit.
        workers: worker processes for trace bodies (0: decode in a thread here).
        price: cost columns of spans, run in the workers (picklable).
        store_columns: build DuckDB's Arrow span columns (``Decoded.span_table``); False
            for a store that takes the spans as records (ClickHouse's: ``result.spans``).
    """

    def __init__(self, policy: IngestPolicy, limit: int, *, workers: int = 0,
                 price: Pricer | None = None, store_columns: bool = True) -> None:
        self.policy = policy
        self.limit = limit
        self.workers = workers
        self.store_columns = store_columns
        self._price = price
        self._pool: ProcessPoolExecutor | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="strata-decode")
        self._lock = threading.Lock()
        self._closed = False

    async def decode(self, raw: bytes, encoding: str, *, as_json: bool,
                     signal: Signal) -> Decoded:
        """Decode one body (BodyTooLarge and DecodeError as ``decode_body``).

        Raises:
            BackpressureError: a worker process died; the pool is restarted for the next
                request (the receiver answers 503 + Retry-After).
        """
        if signal is not Signal.TRACES or not self.store_columns:
            result = await self._in_thread(decode_body, raw, encoding, as_json=as_json,
                                           signal=signal, policy=self.policy, limit=self.limit)
            return Decoded(result)
        if self.workers <= 0:
            return await self._in_thread(decode_traces, raw, encoding, as_json=as_json,
                                         policy=self.policy, limit=self.limit,
                                         price=self._price)
        pool = self._ensure_pool()
        try:
            ipc, result = await asyncio.wrap_future(
                pool.submit(_decode_traces_in_worker, raw, encoding, as_json))
        except BrokenProcessPool:
            logger.exception("a decode worker died; restarting the pool")
            self._discard(pool)
            raise BackpressureError(retry_after_s=1) from None
        return Decoded(result, pa.ipc.open_stream(ipc).read_all() if ipc else None)

    async def _in_thread(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run *function* on the decode thread: one, since decoding holds the GIL (several
        threads only take turns at it, each turn a forced switch that costs cache and time)."""
        return await asyncio.wrap_future(self._thread.submit(function, *args, **kwargs))

    def _ensure_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise BackpressureError(retry_after_s=5)
            if self._pool is None:
                # spawn, not fork: the agent has DuckDB and server threads running.
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(self.policy, self.limit, self._price))
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the decode thread and the worker processes (idempotent)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        self._thread.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
