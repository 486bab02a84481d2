"""``strata hub``: the agent with ClickHouse as its store, analysing the whole fleet.

Sidecars forward OTLP to it (or a Collector writes the same tables); it runs the same
receivers, HTTP and gRPC (200 only after ClickHouse acknowledged the insert: the
``BatchWriter`` returns after ``ClickHouseStore.write_batch``), prices hosted-API spans at
ingest as the agent does (keeping the cost and energy a sidecar already attached), runs the
same analyzer and detectors over the fleet's data, and serves the agent's API routers
through the store seam; every read of ClickHouse answers 503 with the reason when
ClickHouse is down or slow (``create_hub_app``). It keeps no state of its own: incidents
live in ClickHouse, so several replicas can run behind one load balancer. With
``[[webhook]]`` configured, one replica at a time sends the fleet's incident changes
(``store.clickhouse.alerts``: chosen through ClickHouse, each change sent once).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from strata.agent.analysis.analyzer import AnalysisReport, Analyzer
from strata.agent.analysis.layer_reads import correlate_trace
from strata.agent.analysis.series_scoring import SeriesScoring
from strata.agent.config import Settings
from strata.agent.errors import StoreError
from strata.agent.finops.budgets import record_budget_alerts
from strata.agent.ingest.decoding import Decoder
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import DecodeResult
from strata.agent.ingest.stats import ReceiverStats
from strata.agent.ingest.writer import BatchWriter
from strata.agent.model import SpanRecord
from strata.agent.store.clickhouse.alerts import AlertLedger
from strata.agent.store.clickhouse.engine import open_engine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import CostColumns
from strata.agent.units import NS_PER_S
from strata.analytics.attribution import IngestPricer
from strata.analytics.pricing import PriceTable
from strata.exporters.build import build_webhooks

logger = logging.getLogger(__name__)


# What a sidecar's forwarder attaches to a span it priced (``exporters/otlp_encode.py``),
# in the order of ``CostColumns`` (the sidecar does not send its cost source).
_CARRIED: tuple[str | None, ...] = ("gen_ai.usage.cost.usd", None, "strata.energy.wh",
                                    "strata.energy.source", "strata.co2e.g")


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def carried_cost(attributes: Mapping[str, object]) -> CostColumns | None:
    """The cost and energy a sidecar already attached to a span, or None when it has none."""
    if _CARRIED[0] not in attributes and _CARRIED[2] not in attributes:
        return None
    usd, _, wh, source, co2e = (None if key is None else attributes.get(key) for key in _CARRIED)
    return (_number(usd), None, _number(wh), None if source is None else str(source),
            _number(co2e))


class Hub:
    """Store, writer and analysis of one hub replica.

    Args:
        settings: the agent's settings (ports, tokens, body limit, analysis interval).
        clickhouse: ``chdb:DIR`` or ``http(s)://host:port``.
        database: the ClickHouse database holding the ``otel_*`` tables.
    """

    role = "hub"  # GET /api/v1/health

    def __init__(self, settings: Settings, clickhouse: str, database: str = "otel") -> None:
        self.settings = settings
        self.clock = time.time_ns
        self.prices = PriceTable.load(settings.pricing_file)
        self._pricer = IngestPricer(self.prices, settings.carbon_pue,
                                    settings.carbon_grid_gco2e_per_kwh)
        self.store = ClickHouseStore(open_engine(clickhouse, database))
        self.policy = IngestPolicy(salt=self.store.salt, capture_content=settings.capture_content)
        # Decoded in a thread (ClickHouse takes span records, not DuckDB's Arrow columns);
        # the writer prices the spans before the insert.
        self.decoder = Decoder(self.policy, settings.max_body_bytes, store_columns=False)
        self.writer = BatchWriter(self.store, max_queue_items=settings.max_queue_spans,
                                  price=self.price_at_ingest)
        self.analyzer = Analyzer(self.store, price=self.token_rates, scoring=SeriesScoring(
            threshold=settings.anomaly_threshold, max_series=settings.anomaly_max_series))
        self.receiver_stats = ReceiverStats()
        self.otlp_ports: set[int] = set()
        self.api_ports: set[int] = set()
        self.grpc_port: int | None = None  # the OTLP/gRPC receiver's, once bound
        self.last_report: AnalysisReport | None = None  # of the periodic analysis
        self.webhooks = build_webhooks(settings)
        # A sender is live while it analyses: three missed intervals hand over the alerts.
        live_ns = int(max(3 * settings.analyze_interval_s, 30.0) * NS_PER_S)
        self.alerts = AlertLedger(
            self.store.engine, f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}",
            live_ns=live_ns, started_ns=self.clock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def price_at_ingest(self, spans: Sequence[SpanRecord]) -> list[CostColumns]:
        """The agent's ingest pricing (``IngestPricer``), except for spans a sidecar already
        priced: theirs is kept (it may be a GPU-time cost only the sidecar could measure)."""
        priced = self._pricer(spans)
        return [carried if (carried := carried_cost(span.attributes)) is not None else own
                for span, own in zip(spans, priced, strict=True)]

    def token_rates(self, provider: str | None, model: str | None) -> tuple[float, float] | None:
        entry = self.prices.lookup(provider, model)
        if entry is None or entry.rates.input_usd_per_mtok is None:
            return None
        return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0

    def after_commit(self, result: DecodeResult,
                     costs: Sequence[CostColumns] | None = None) -> None:
        """The receiver's hook: the hub forwards nothing further."""

    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Attach the layer samples overlapping each span (any node's: the same host, GPU
        or shard)."""
        return correlate_trace(self.store.report_reads(), spans)

    def analyze_once(self, now_ns: int | None = None, *, full: bool = False) -> AnalysisReport:
        """Detection and incidents over the fleet up to *now_ns* (event time), then budget
        alerts (wall time, as on the agent); both idempotent across replicas. Then, on the
        replica that sends alerts, the fleet's incident changes go to the webhooks."""
        report = self.analyzer.analyze(now_ns, full=full)
        record_budget_alerts(self.store, self.settings.budgets, now_ns=self.clock())
        self.send_alerts()
        return report

    def send_alerts(self) -> int:
        """Send the incident changes not sent yet when this replica is the sender (any
        replica's writes: ``AlertLedger``); how many were sent."""
        if not self.webhooks:
            return 0
        scanned_ns = self.clock()
        if not self.alerts.is_sender(scanned_ns):
            return 0
        due = self.alerts.due()
        for webhook in self.webhooks:
            webhook.export(due)
        self.alerts.sent(due, scanned_ns=scanned_ns)
        return len(due)

    def start(self) -> None:
        self.writer.start()
        for webhook in self.webhooks:
            webhook.start()
        self._thread = threading.Thread(target=self._analysis_loop, name="strata-hub-analysis",
                                        daemon=True)
        self._thread.start()

    def _analysis_loop(self) -> None:
        """Analyse every interval: data also arrives without this process (a Collector,
        sidecars' ``[forward.clickhouse]``, other replicas), so its own commits say nothing
        of what is new. Idempotent: an unchanged fleet changes no incident."""
        while not self._stop.wait(self.settings.analyze_interval_s):
            try:
                self.last_report = self.analyze_once()
            except StoreError:
                logger.exception("hub analysis failed; retrying next interval")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.writer.close()
        for webhook in self.webhooks:
            webhook.shutdown()
        self.decoder.close()
        self.store.close()
