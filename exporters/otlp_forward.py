"""OTLPForwarder: ship accepted spans and metric points to an upstream OTLP/HTTP endpoint.

What goes out is what ingest kept, re-encoded (``strata.exporters.otlp_encode``): normalised and
redacted attributes plus ``strata.layer`` and, when known, cost and energy. The raw request
body is never forwarded: it may hold prompt text that ingest redacted.

Path of an item (RELIABILITY E1-E4, F3, S9):

1. ``enqueue`` runs on the caller's thread (the receiver, after the commit and before the
   200): it encodes the records and appends them to a ``DiskQueue`` with fsync. It never
   touches the network, so a slow or dead upstream cannot slow ingest. A full queue refuses
   the item and counts it (``enqueue_failed``); ingest into DuckDB is unaffected.
2. One sender thread peeks the oldest items, concatenates consecutive items of one signal
   up to ``max_batch_bytes`` and POSTs them to ``<endpoint>/v1/traces`` or ``/v1/metrics``.
   Concatenated protobuf messages parse as their merge, and items are gzipped one by one at
   enqueue (level 1), so the concatenation is one multi-member gzip body.
3. 2xx: the items are committed (removed). 429/502/503/504 and transport errors: retried
   after ``Retry-After`` when given, else exponential backoff with jitter (``initial_backoff_s``
   doubling to ``max_backoff_s``, x U(0.5, 1.5)). Any other status (400 first of all) is not
   retried, per the OTLP spec: the batch is dropped and counted. Nothing else is ever
   dropped, so a restart or ``kill -9`` resends at most the one in-flight batch. Backoff,
   ``Retry-After``, the bounded POST and the thread are ``strata.exporters.delivery``'s.

Response bodies are read to at most ``max_response_bytes`` (4 MiB); connect/read timeouts
5 s / 10 s; TLS verification stays on.
"""

from __future__ import annotations

import gzip
import logging
import random
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from strata.agent.model import SpanRecord
from strata.exporters.base import ExportResult, Records
from strata.exporters.delivery import Backoff, Reply, Worker, http_client, post
from strata.exporters.disk_queue import DiskQueue, QueuedItem
from strata.exporters.otlp_encode import encode_metrics_request, encode_trace_request

if TYPE_CHECKING:
    from strata.agent.store.db import CostColumns

__all__ = ["ForwarderStats", "OTLPForwarder"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_TRACES, _METRICS = b"T", b"M"
_ITEM_HEADER = struct.Struct(">cII")  # signal, record count, uncompressed bytes
_LOG_EVERY_S = 60.0


@dataclass(slots=True)
class ForwarderStats:
    """Counters, all cumulative since start (the queue's depth is on the forwarder)."""

    enqueued_spans: int = 0
    enqueued_points: int = 0
    enqueue_failed: int = 0  # requests refused: queue full, disk error or shut down
    enqueue_failed_spans: int = 0
    enqueue_failed_points: int = 0
    sent_spans: int = 0
    sent_points: int = 0
    sent_requests: int = 0
    retries: int = 0
    dropped_spans: int = 0  # upstream refused for good (400, other non-retryable status)
    dropped_points: int = 0
    rejected_upstream: int = 0  # partial success: items the upstream accepted but rejected
    last_status: int | None = None
    last_error: str | None = None


class OTLPForwarder:
    """At-least-once OTLP/HTTP forwarding through a persistent queue.

    Args:
        endpoint: base URL of the upstream OTLP/HTTP receiver (``http://collector:4318``);
            ``/v1/traces`` and ``/v1/metrics`` are appended.
        queue_dir: directory of the persistent queue.
        max_queue_bytes: cap of the queue on disk; beyond it new items are refused, counted.
        price: cost/energy columns for a batch of spans (``Agent.price_at_ingest``); None
            forwards without cost and energy.
        initial_backoff_s / max_backoff_s: retry delays (doubling, with +-50 % jitter).
        max_batch_bytes: most protobuf bytes per request, before compression (a request is
            never split: one bigger item goes alone).
        timeout_s / connect_timeout_s: per-request timeouts.
        max_response_bytes: most bytes of a response body read.
        compression: ``"gzip"`` or ``"none"``.
        headers: extra request headers (an upstream's auth token).
        transport: an httpx transport (tests); the default is a real connection pool.
        rng: jitter source (seeded in tests).
        fsync: fsync the queue on every enqueue.
        start: start the sender thread now (tests pass False and call ``send_once``).
    """

    def __init__(
        self,
        endpoint: str,
        queue_dir: str | Path,
        *,
        max_queue_bytes: int = 512 * 1024**2,
        price: Callable[[Sequence[SpanRecord]], Sequence[CostColumns]] | None = None,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_batch_bytes: int = 4 * 1024**2,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_response_bytes: int = 4 * 1024**2,
        compression: str = "gzip",
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        fsync: bool = True,
        start: bool = True,
    ) -> None:
        if compression not in ("gzip", "none"):
            msg = f"compression must be 'gzip' or 'none', got {compression!r}"
            raise ValueError(msg)
        base = endpoint.rstrip("/")
        self.urls = {_TRACES: f"{base}/v1/traces", _METRICS: f"{base}/v1/metrics"}
        self.queue = DiskQueue(queue_dir, max_bytes=max_queue_bytes, fsync=fsync)
        self.stats = ForwarderStats()
        self._price = price
        self._retry = Backoff(initial_backoff_s, max_backoff_s,
                              rng or random.Random())  # noqa: S311 - jitter, not security
        self._max_batch_bytes = max_batch_bytes
        self._max_response_bytes = max_response_bytes
        self._gzip = compression == "gzip"
        self._client = http_client(
            timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, transport=transport,
            headers={"Content-Type": "application/x-protobuf", **(headers or {})})
        self._failures = 0
        self._last_log = 0.0
        self._enqueue_lock = threading.Lock()
        self._closed = False
        self._worker = Worker("strata-forward", self._step, on_error=self._backoff)
        if start:
            self.start()

    @property
    def queue_bytes(self) -> int:
        """Bytes waiting in the persistent queue."""
        return self.queue.pending_bytes

    def start(self) -> None:
        """Start the sender thread (once; never after ``shutdown``)."""
        self._worker.start()

    # -- producer side (ingest path) -------------------------------------------------------

    def enqueue(self, records: Records) -> bool:
        """Queue *records*' spans and samples durably; never blocks on the network.

        Safe from any thread. Costs the encoding of the records plus one fsync'd append.
        The spans' cost columns are *records*' own when the caller has them (the writer
        computed them for the commit); otherwise they are priced here.

        Returns:
            True when everything was queued; False when the queue refused some of it
            (full, disk error, shut down), which is counted.
        """
        ok = True
        spans, samples, costs = records.spans, records.samples, records.costs
        if spans:
            if costs is None and self._price is not None:
                costs = self._price(spans)
            ok &= self._put(_TRACES, len(spans), encode_trace_request(spans, costs))
        if samples:
            ok &= self._put(_METRICS, len(samples), encode_metrics_request(samples))
        return ok

    def _put(self, signal: bytes, count: int, body: bytes) -> bool:
        header = _ITEM_HEADER.pack(signal, count, len(body))
        if self._gzip:  # stored compressed: ~10x less to fsync and hold; gzip members concatenate
            body = gzip.compress(body, compresslevel=1)
        accepted = self.queue.put(header + body)
        with self._enqueue_lock:
            spans = signal == _TRACES
            if accepted:
                if spans:
                    self.stats.enqueued_spans += count
                else:
                    self.stats.enqueued_points += count
                return True
            self.stats.enqueue_failed += 1
            if spans:
                self.stats.enqueue_failed_spans += count
            else:
                self.stats.enqueue_failed_points += count
        self._log_rate_limited("forward queue refused %d %s (full or closed)", count,
                               "spans" if spans else "points")
        return False

    def export(self, items: Sequence[Records]) -> ExportResult:
        """Exporter protocol: ``enqueue`` each item."""
        results = [self.enqueue(item) for item in items]
        return ExportResult.SUCCESS if all(results) else ExportResult.FAILURE

    # -- sender side -----------------------------------------------------------------------

    def _step(self) -> float:
        delay = self.send_once()
        if delay is None:  # empty: wait for an enqueue (or re-check the stop flag)
            self.queue.wait(0.5)
            return 0.0
        return delay

    def send_once(self) -> float | None:
        """Send the oldest batch once.

        Returns:
            None when the queue was empty; 0.0 after a delivery or a drop; otherwise the
            seconds to wait before retrying the same batch.
        """
        items = self.queue.peek(self._max_batch_bytes)
        if not items:
            return None
        signal = items[0].payload[:1]
        batch: list[QueuedItem] = []
        count = raw_bytes = 0
        for item in items:
            item_signal, item_count, item_bytes = _ITEM_HEADER.unpack_from(item.payload)
            if item_signal != signal or (batch and raw_bytes + item_bytes > self._max_batch_bytes):
                break  # one signal per request, and at most max_batch_bytes once decompressed
            batch.append(item)
            count += item_count
            raw_bytes += item_bytes
        body = b"".join(memoryview(item.payload)[_ITEM_HEADER.size:] for item in batch)
        reply = self._post(self.urls[signal], body)
        status = reply.status
        if reply.ok:
            self._count_partial_success(signal, reply.body)
            self._record(signal, count, sent=True)
        elif status is not None and status not in RETRYABLE_STATUS:
            self._record(signal, count, sent=False)
            self._log_rate_limited("upstream %s refused %d items with HTTP %d; dropped",
                                   self.urls[signal], count, status)
        else:
            self._failures += 1
            self.stats.retries += 1
            return reply.retry_after if reply.retry_after is not None else self._backoff()
        self.queue.commit(batch[-1].end, items=len(batch))
        self._failures = 0
        return 0.0

    def _record(self, signal: bytes, count: int, *, sent: bool) -> None:
        stats = self.stats
        if signal == _TRACES:
            if sent:
                stats.sent_spans += count
            else:
                stats.dropped_spans += count
        elif sent:
            stats.sent_points += count
        else:
            stats.dropped_points += count
        if sent:
            stats.sent_requests += 1

    def _post(self, url: str, body: bytes) -> Reply:
        # Items were gzipped one by one at enqueue; their concatenation is one valid
        # multi-member gzip stream (RFC 1952 2.2), which Strata and the Collector both read.
        headers = {"Content-Encoding": "gzip"} if self._gzip else {}
        reply = post(self._client, url, body, headers=headers,
                     max_response_bytes=self._max_response_bytes)
        self.stats.last_status = reply.status
        if reply.error is not None:
            self.stats.last_error = f"{type(reply.error).__name__}: {reply.error}"[:300]
            self._log_rate_limited("upstream %s unreachable: %s", url, reply.error)
        elif reply.status is not None and reply.status >= 300:
            self.stats.last_error = f"HTTP {reply.status}"
        return reply

    def _count_partial_success(self, signal: bytes, body: bytes) -> None:
        if not body:
            return
        response = (ExportTraceServiceResponse() if signal == _TRACES
                    else ExportMetricsServiceResponse())
        try:
            response.ParseFromString(body)
        except Exception:  # noqa: BLE001 - a non-OTLP 2xx body is not our problem
            return
        partial = response.partial_success
        rejected = (partial.rejected_spans if signal == _TRACES
                    else partial.rejected_data_points)
        self.stats.rejected_upstream += int(rejected)

    def _backoff(self) -> float:
        return self._retry.delay(self._failures)

    def _log_rate_limited(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            logger.warning(message, *args)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the sender (an in-flight request may finish), close the queue. Idempotent.

        What is queued stays on disk and is sent by the next agent on the same directory.
        """
        if self._closed:
            logger.debug("forwarder already shut down")
            return
        self._closed = True
        self._worker.stop(timeout_s)
        self._client.close()
        self.queue.close()

