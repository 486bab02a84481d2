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

from strata.agent.analysis.analyzer import AnalysisReport, Analyzer
from strata.agent.analysis.layer_reads import correlate_trace
from strata.agent.analysis.series_scoring import SeriesScoring
from strata.agent.config import Settings
from strata.agent.finops.budgets import record_budget_alerts
from strata.agent.finops.gpu import apply_gpu_attribution, pending_gpu_window
from strata.agent.finops.held_spans import HeldSpans, split_at_commit
from strata.agent.finops.report import ROLLUP_SLACK_NS, refresh_cost_rollup
from strata.agent.ingest.decoding import Decoder
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import DecodeResult
from strata.agent.ingest.stats import ReceiverStats
from strata.agent.ingest.writer import BatchWriter
from strata.agent.model import Incident, Sample, SpanRecord
from strata.agent.store.db import CostColumns, DuckDBStore
from strata.agent.store.memory import container_limit_bytes, duckdb_limit_bytes
from strata.agent.store.seam import report_reads
from strata.agent.units import DAY_NS, NS_PER_S
from strata.analytics.attribution import IngestPricer
from strata.analytics.pricing import PriceTable
from strata.collectors.build import build_collectors
from strata.collectors.scheduler import CollectorScheduler, PollReport
from strata.exporters.base import Records
from strata.exporters.build import build_exporters

logger = logging.getLogger(__name__)


class Agent:
    """One sidecar: store + writer + collectors + analysis, started and closed together.

    Args:
        settings: resolved configuration.
        clock: nanosecond wall clock (tests pass a fixed one).
    """

    role = "agent"  # GET /api/v1/health

    def __init__(self, settings: Settings, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings
        self.clock = clock
        # A bad price file fails before the store is opened.
        self.prices = PriceTable.load(settings.pricing_file)
        self.store = DuckDBStore(settings.db, memory_limit_bytes=duckdb_limit_bytes(
            settings.memory_limit_bytes, container_limit_bytes()))
        self.policy = IngestPolicy(salt=self.store.salt, capture_content=settings.capture_content)
        self._pricer = IngestPricer(self.prices, settings.carbon_pue,
                                    settings.carbon_grid_gco2e_per_kwh)
        self.writer = BatchWriter(self.store, max_queue_items=settings.max_queue_spans,
                                  price=self.price_at_ingest, clock=clock)
        self.exporters = build_exporters(settings, price=self.price_at_ingest)
        # Worker processes hand over Arrow columns, not SpanRecords: a records exporter
        # (forwarding) needs the records, so with one configured bodies decode here.
        self.decoder = Decoder(self.policy, settings.max_body_bytes, price=self._pricer,
                               workers=0 if self.exporters.records else settings.decode_workers)
        self.analyzer = Analyzer(self.store, price=self._token_rates, scoring=SeriesScoring(
            threshold=settings.anomaly_threshold, max_series=settings.anomaly_max_series))
        self._finops_received_ns = 0
        # Spans only the GPU pass can price are forwarded after it (an analysis interval
        # plus a minute for the energy samples after their end to arrive). Only when
        # forwarding: its mark is a write, and a write at start checkpoints a long WAL.
        self.held_spans = HeldSpans(
            self.store, self._pricer, started_ns=clock(),
            hold_ns=int((settings.analyze_interval_s + 60) * NS_PER_S),
        ) if self.exporters.records else None
        self.receiver_stats = ReceiverStats()
        collectors, intervals = build_collectors(settings, socket.gethostname())
        self.scheduler = CollectorScheduler(collectors, self.write_samples, intervals=intervals,
                                            clock=clock, host=socket.gethostname())
        self.otlp_ports: set[int] = set()
        self.api_ports: set[int] = set()
        self.grpc_port: int | None = None  # the OTLP/gRPC receiver's, once bound
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        logger.info("prompt capture: %s", "ON" if settings.capture_content else "OFF")

    def price_at_ingest(self, spans: Sequence[SpanRecord]) -> list[CostColumns]:
        """Token cost and estimated energy of hosted-API spans (``IngestPricer``)."""
        return self._pricer(spans)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.writer.start()
        for exporter in self.exporters.all:
            exporter.start()
        self.scheduler.start()
        self._spawn(self._analysis_loop, "strata-analysis")

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
        self.decoder.close()
        for exporter in self.exporters.all:
            exporter.shutdown()
        self.store.close()

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _analysis_loop(self) -> None:
        """Analyse when new data has arrived, apply retention hourly, checkpoint when idle."""
        analysed_commits = -1
        next_retention = 0.0
        while not self._stop.wait(self.settings.analyze_interval_s):
            try:
                commits = self.writer.stats.commits
                if commits != analysed_commits:
                    analysed_commits = commits
                    self.analyze_once()
                else:
                    self.forward_held_spans()  # the last pass priced them already
                    if self.writer.queued_items == 0:
                        self.store.checkpoint()  # idle: keep the WAL short for fast restarts
                if time.monotonic() >= next_retention:
                    next_retention = time.monotonic() + 3600
                    cutoff = self.clock() - int(self.settings.retention_days * DAY_NS)
                    self.store.purge_older_than(cutoff)
            except Exception:
                logger.exception("background analysis failed")

    # -- analysis ----------------------------------------------------------------------------

    def _token_rates(self, provider: str | None, model: str | None) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens, for detectors pricing spans stored unpriced."""
        entry = self.prices.lookup(provider, model)
        if entry is None or entry.rates.input_usd_per_mtok is None:
            return None
        return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0

    def analyze_once(self, now_ns: int | None = None, *, full: bool = False) -> AnalysisReport:
        """GPU-time cost and measured energy, then detection and incidents, up to *now_ns*.

        Event time only: *now_ns* defaults to the latest stored event, so a replay of old
        telemetry yields the same incidents as watching it live. *full* reads everything
        stored instead of the analyzer's lookback. The spans held for the GPU pass that are
        due go to the forwarders; new, updated and resolved incidents, and budget alerts, to
        the webhooks.
        """
        started = self.clock()
        pending = pending_gpu_window(self.store.cursor(),
                                     received_since_ns=self._finops_received_ns)
        if pending is not None:
            apply_gpu_attribution(self.store, since_ns=pending[0], until_ns=pending[1],
                                  settings=self.settings, prices=self.prices)
        refresh_cost_rollup(self.store)
        self._finops_received_ns = started - ROLLUP_SLACK_NS
        self.forward_held_spans()
        report = self.analyzer.analyze(now_ns, full=full)
        changed = [*report.new, *report.updated, *report.resolved, *self._budget_alerts()]
        if changed:
            for exporter in self.exporters.incidents:
                exporter.export(changed)
        return report

    def forward_held_spans(self) -> int:
        """Forward the spans held for the GPU pass that are due (``finops.held_spans``)."""
        if self.held_spans is None:
            return 0
        return self.held_spans.forward_due(self.exporters.records, now_ns=self.clock())

    def _budget_alerts(self) -> list[Incident]:
        """Budgets whose burn rate will exceed them this month: stored once, alerted once."""
        return record_budget_alerts(self.store, self.settings.budgets, now_ns=self.clock())

    # -- hooks used by the API ---------------------------------------------------------------

    def after_commit(
        self, result: DecodeResult, costs: Sequence[CostColumns] | None = None
    ) -> None:
        """Called by the receiver after a request's records are committed (with their costs)."""
        if not self.exporters.records:
            return  # (result.spans builds the SpanRecords: only when something needs them)
        spans = result.spans
        # the spans the GPU pass may price are forwarded after it, with its figures
        spans, costs = split_at_commit(spans, costs if costs is not None
                                       else self._pricer(spans))
        committed = [Records(spans, result.samples, costs)]
        for exporter in self.exporters.records:
            exporter.export(committed)

    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Attach the layer samples overlapping each span (same host, GPU, shard)."""
        return correlate_trace(report_reads(self.store), spans)

    def poll_once(self, now_ns: int) -> PollReport:
        """Run the collectors that are due at *now_ns* (the ticker thread calls this too)."""
        return self.scheduler.poll_once(now_ns)

    def write_samples(self, samples: Sequence[Sample]) -> None:
        """Collectors' sink: samples go through the same writer as OTLP metrics."""
        if samples:
            self.writer.write(samples=samples)
            for exporter in self.exporters.records:
                exporter.export([Records(samples=samples)])
