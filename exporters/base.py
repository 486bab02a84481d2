"""The exporter contract: push items somewhere else, report how it went, never raise.

Modelled on OpenTelemetry's ``SpanExporter``: ``export`` returns an ``ExportResult`` instead
of raising, and ``shutdown`` is idempotent (a second call is a logged no-op). Generic over the
payload, one exporter per kind of item: ``WebhookExporter`` is an ``Exporter[Incident]``,
``OTLPForwarder`` an ``Exporter[Records]`` (anything with ``.spans`` and ``.samples``, such
as the receiver's ``DecodeResult``).

``/metrics`` is pull-based, so it is a prometheus_client collector, not an Exporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Protocol, TypeVar

__all__ = ["ExportResult", "Exporter"]

T_contra = TypeVar("T_contra", contravariant=True)


class ExportResult(Enum):
    """Whether ``export`` took the items (queued durably or delivered) or not."""

    SUCCESS = "success"
    FAILURE = "failure"


class Exporter(Protocol[T_contra]):
    """Sends items out of the agent.

    ``export`` must not block on the network: exporters queue and deliver from their own
    thread, so a slow or dead destination never slows ingest or analysis.
    """

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
