"""What the API routers need of the process serving them: the sidecar (``runner.Agent``,
DuckDB) or the hub (``hub.Hub``, ClickHouse). A router reads and writes the store through
``strata.agent.store.seam``, so one handler serves both engines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from strata.agent.analysis.analyzer import AnalysisReport
    from strata.agent.config import Settings
    from strata.agent.ingest.writer import BatchWriter
    from strata.agent.store.seam import Store
    from strata.analytics.pricing import PriceTable


class ApiHost(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def prices(self) -> PriceTable: ...
    @property
    def store(self) -> Store: ...
    @property
    def writer(self) -> BatchWriter: ...
    @property
    def role(self) -> str:
        """``agent`` or ``hub`` (``GET /api/v1/health``)."""
    def clock(self) -> int: ...
    def analyze_once(self, now_ns: int | None = None, *,
                     full: bool = False) -> AnalysisReport: ...
    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Attach the layer samples overlapping each span (``correlated``)."""

