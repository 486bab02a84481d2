"""The exporter contract: push items somewhere else, report how it went, never raise.

Modelled on OpenTelemetry's ``SpanExporter``: ``export`` returns an ``ExportResult`` instead
of raising, and ``shutdown`` is idempotent (a second call is a logged no-op). Generic over the
payload, one exporter per kind of item: ``WebhookExporter`` is an ``Exporter[Incident]``,
``OTLPForwarder`` an ``Exporter[Records]``. Exporters are built stopped and started with the
agent; ``strata.exporters.build`` makes them from the configuration, and the runner drives
them through this Protocol only, so mypy checks that each one conforms.

``/metrics`` is pull-based, so it is a prometheus_client collector, not an Exporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol, TypeVar

from strata.agent.model import Sample, SpanRecord

if TYPE_CHECKING:
    from strata.agent.store.db import CostColumns

__all__ = ["ExportResult", "Exporter", "Records"]

T_contra = TypeVar("T_contra", contravariant=True)


class ExportResult(Enum):
    """Whether ``export`` took the items (queued durably or delivered) or not."""

    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Records:
    """Spans and samples as committed to the store: the items of an ``Exporter[Records]``.

    ``costs``: one cost-column tuple per span when the writer computed them for the commit;
    None when not known, and an exporter that needs them prices the spans itself.
    """

    spans: Sequence[SpanRecord] = ()
    samples: Sequence[Sample] = ()
    costs: Sequence[CostColumns] | None = None


class Exporter(Protocol[T_contra]):
    """Sends items out of the agent.

    ``export`` must not block on the network: exporters queue and deliver from their own
    thread, so a slow or dead destination never slows ingest or analysis.
    """

    def start(self) -> None:
        """Start delivering (the exporter's thread); a second call does nothing."""
        ...

    def export(self, items: Sequence[T_contra]) -> ExportResult:
        """Take *items* for delivery.

        Returns:
            SUCCESS when every item was accepted (queued or delivered); FAILURE when any was
            refused (queue full, shut down). Refusals are counted by the exporter.
        """
        ...

    def shutdown(self) -> None:
        """Stop the exporter's thread and release resources; a second call does nothing."""
        ...
