"""``strata hub``: the agent with ClickHouse as its store, analysing the whole fleet.

Sidecars forward OTLP to it (or a Collector writes the same tables); it runs the same
receiver (200 only after ClickHouse acknowledged the insert: the ``BatchWriter`` returns
after ``ClickHouseStore.write_batch``), the same analyzer and detectors over the fleet's data,
and an API whose every read of ClickHouse answers 503 with the reason when ClickHouse is
down or slow. It keeps no state of its own: incidents live in ClickHouse, so several
replicas can run behind one load balancer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from strata.agent.analysis.analyzer import AnalysisReport, Analyzer
from strata.agent.config import Settings
from strata.agent.errors import StoreError
from strata.agent.ingest.decoding import Decoder
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import DecodeResult
from strata.agent.ingest.stats import ReceiverStats
from strata.agent.ingest.writer import BatchWriter
from strata.agent.store.clickhouse.engine import open_engine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import CostColumns
from strata.analytics.pricing import PriceTable

if TYPE_CHECKING:
    from strata.agent.store.db import DuckDBStore

logger = logging.getLogger(__name__)


class Hub:
    """Store, writer and analysis of one hub replica.

    Args:
        settings: the agent's settings (ports, tokens, body limit, analysis interval).
        clickhouse: ``chdb:DIR`` or ``http(s)://host:port``.
        database: the ClickHouse database holding the ``otel_*`` tables.
    """

    def __init__(self, settings: Settings, clickhouse: str, database: str = "otel") -> None:
        self.settings = settings
        self.prices = PriceTable.load(settings.pricing_file)
        self.store = ClickHouseStore(open_engine(clickhouse, database))
        self.policy = IngestPolicy(salt=self.store.salt, capture_content=settings.capture_content)
        self.decoder = Decoder(self.policy, settings.max_body_bytes)  # in a thread: no pricing
        # BatchWriter needs write_batch and known_versions, which ClickHouseStore has
        self.writer = BatchWriter(cast("DuckDBStore", self.store),
                                  max_queue_items=settings.max_queue_spans)
        self.analyzer = Analyzer(self.store, price=self.token_rates)
        self.receiver_stats = ReceiverStats()
        self.otlp_ports: set[int] = set()
        self.api_ports: set[int] = set()
        self.last_report: AnalysisReport | None = None  # of the periodic analysis
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def token_rates(self, provider: str | None, model: str | None) -> tuple[float, float] | None:
        entry = self.prices.lookup(provider, model)
        if entry is None or entry.rates.input_usd_per_mtok is None:
            return None
        return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0

    def after_commit(self, result: DecodeResult,
                     costs: Sequence[CostColumns] | None = None) -> None:
        """The receiver's hook: the hub forwards nothing further."""

    def analyze_once(self, now_ns: int | None = None, *, full: bool = False) -> AnalysisReport:
        return self.analyzer.analyze(now_ns, full=full)

    def start(self) -> None:
        self.writer.start()
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
        self.decoder.close()
        self.store.close()
