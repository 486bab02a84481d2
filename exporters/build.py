"""build_exporters(settings): the exporters a configuration asks for, built stopped.

The one place that maps ``strata.toml`` to exporter instances. The runner drives the result
only through the ``Exporter`` Protocol (start, export, shutdown, in loops), so adding an
exporter touches this file and the exporter's own module, never the runner; and mypy checks
each exporter against the Protocol where the tuples below are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.agent.config import Settings
from strata.agent.model import Incident, SpanRecord
from strata.exporters.base import Exporter, Records
from strata.exporters.clickhouse_forward import ClickHouseForwarder
from strata.exporters.otlp_forward import OTLPForwarder
from strata.exporters.webhook import WebhookExporter

if TYPE_CHECKING:
    from strata.agent.store.db import CostColumns

__all__ = ["Exporters", "build_exporters", "build_webhooks"]


@dataclass(frozen=True, slots=True)
class Exporters:
    """The agent's exporters; each kind is also kept by name for ``/metrics``."""

    forwarder: OTLPForwarder | None = None
    webhooks: tuple[WebhookExporter, ...] = ()
    clickhouse: ClickHouseForwarder | None = None

    @property
    def records(self) -> tuple[Exporter[Records], ...]:
        """Exporters of committed spans and samples."""
        return tuple(e for e in (self.forwarder, self.clickhouse) if e is not None)

    @property
    def incidents(self) -> tuple[Exporter[Incident], ...]:
        """Exporters of new, updated and resolved incidents and budget alerts."""
        return self.webhooks

    @property
    def all(self) -> tuple[Exporter[Any], ...]:
        return (*self.records, *self.incidents)


def build_exporters(
    settings: Settings, *, price: Callable[[Sequence[SpanRecord]], Sequence[CostColumns]]
) -> Exporters:
    """Exporters for *settings*, not started (the agent starts them with itself).

    Args:
        settings: resolved configuration (``[forward]``, ``[[webhook]]``).
        price: cost columns of spans that reach the forwarder unpriced.
    """
    forwarder = None
    if settings.forward_endpoint:
        queue_dir = settings.forward_queue_dir or str(Path(settings.db).parent / "forward-queue")
        forwarder = OTLPForwarder(
            settings.forward_endpoint, queue_dir,
            max_queue_bytes=settings.forward_max_queue_bytes, price=price,
            initial_backoff_s=settings.forward_initial_backoff_s,
            max_backoff_s=settings.forward_max_backoff_s, start=False,
        )
    clickhouse = None
    if settings.forward_clickhouse_url:
        queue_dir = settings.forward_clickhouse_queue_dir or str(
            Path(settings.db).parent / "forward-clickhouse-queue")
        clickhouse = ClickHouseForwarder(
            settings.forward_clickhouse_url, queue_dir,
            database=settings.forward_clickhouse_database,
            batch_rows=settings.forward_clickhouse_batch_rows,
            max_queue_bytes=settings.forward_clickhouse_max_queue_bytes, price=price,
            initial_backoff_s=settings.forward_initial_backoff_s,
            max_backoff_s=settings.forward_max_backoff_s, start=False)
    return Exporters(forwarder, build_webhooks(settings), clickhouse)


def build_webhooks(settings: Settings) -> tuple[WebhookExporter, ...]:
    """The ``[[webhook]]`` exporters, not started (the hub's only exporters)."""
    return tuple(WebhookExporter(w.url, format=w.format, start=False) for w in settings.webhooks)
