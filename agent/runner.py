"""Agent: the sidecar's lifecycle. Owns the store, the writer, collectors and analysis.

``poll_once(now_ns)`` and ``analyze_once(now_ns)`` are public and deterministic; the
background threads only call them on a schedule, and tests call them directly.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.api.otlp import ReceiverStats
from agent.config import Settings
from agent.model import Sample, SpanRecord
from agent.normalize import IngestPolicy
from agent.scheduler import CollectorScheduler, PollReport
from agent.otlp_codec import DecodeResult
from agent.store import CostColumns, DuckDBStore
from agent.wiring import build_collectors
from agent.writer import BatchWriter
from analytics.attribution import gpu_keys_of, span_cost
from analytics.pricing import PriceTable

logger = logging.getLogger(__name__)

_UNPRICED: CostColumns = (None, None, None, None, None)


class Agent:
    """One sidecar: store + writer + collectors + analysis, started and closed together.

    Args:
        settings: resolved configuration.
        clock: nanosecond wall clock (tests pass a fixed one).
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings
        self.clock = clock
        self.store = DuckDBStore(settings.db)
        self.policy = IngestPolicy(salt=self.store.salt, capture_content=settings.capture_content)
        self.prices = PriceTable.load(settings.pricing_file)
        self.writer = BatchWriter(self.store, max_queue_items=settings.max_queue_spans,
                                  price=self.price_at_ingest, clock=clock)
        self.receiver_stats = ReceiverStats()
        collectors, intervals = build_collectors(settings, socket.gethostname())
        self.scheduler = CollectorScheduler(collectors, self.write_samples, intervals=intervals,
                                            clock=clock, host=socket.gethostname())
        self.otlp_ports: set[int] = set()
        self.api_ports: set[int] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        logger.info("prompt capture: %s", "ON" if settings.capture_content else "OFF")

    def price_at_ingest(self, spans: Sequence[SpanRecord]) -> list[CostColumns]:
        """Token cost and estimated energy of hosted-API spans, known as soon as they arrive.

        Spans that ran on a local GPU are left unpriced here: their GPU-time cost and measured
        energy need the GPU's samples and are filled in by analysis.
        """
        columns: list[CostColumns] = []
        settings = self.settings
        for span in spans:
            if span.model is None or gpu_keys_of(span):
                columns.append(_UNPRICED)
                continue
            cost = span_cost(span, prices=self.prices, pue=settings.carbon_pue,
                             grid_gco2e_per_kwh=settings.carbon_grid_gco2e_per_kwh)
            columns.append((cost.usd, cost.usd_source, cost.energy_wh, cost.energy_source,
                            cost.co2e_g))
        return columns

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.writer.start()
        self.scheduler.start()

    def close(self) -> None:
        """Stop threads, commit what is queued, checkpoint. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.scheduler.stop()
        for thread in reversed(self._threads):
            thread.join(timeout=10)
        self.writer.close()
        self.store.close()

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hooks used by the API ---------------------------------------------------------------

    def after_commit(self, result: DecodeResult) -> None:
        """Called by the receiver after a request's records are committed."""

    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Attach the layer samples overlapping each span (issue 5); identity until then."""
        return spans

    def poll_once(self, now_ns: int) -> PollReport:
        """Run the collectors that are due at *now_ns* (the ticker thread calls this too)."""
        return self.scheduler.poll_once(now_ns)

    def write_samples(self, samples: Sequence[Sample]) -> None:
        """Collectors' sink: samples go through the same writer as OTLP metrics."""
        if samples:
            self.writer.write(samples=samples)
