"""What the API routers need of the process serving them: the sidecar (``runner.Agent``,
DuckDB) or the hub (``hub.Hub``, ClickHouse). A router reads and writes the store through
``strata.agent.store.seam``, so one handler serves both engines; a route whose reads have
no ClickHouse version yet takes the store through ``duckdb_only`` and answers 501 on the
hub, with the reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from fastapi import HTTPException
from strata.agent.store.db import DuckDBStore

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


def duckdb_only(host: ApiHost, what: str) -> DuckDBStore:
    """The agent's DuckDB store; on the hub a 501 saying that *what* is not served there."""
    if isinstance(host.store, DuckDBStore):
        return host.store
    raise HTTPException(501, f"{what} is not served by strata hub yet (its reads exist only "
                             "for DuckDB, the sidecar's store); ask the sidecars' agents")
