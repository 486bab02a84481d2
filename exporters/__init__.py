"""Exporters: what leaves the agent.

- ``strata.exporters.otlp_forward.OTLPForwarder``: spans and metric points to an upstream OTLP/HTTP
  endpoint through a persistent disk queue (``strata.exporters.disk_queue``), re-encoded by
  ``strata.exporters.otlp_encode``.
- ``strata.exporters.webhook.WebhookExporter``: incidents as JSON or Slack messages.
- ``strata.exporters.prometheus.StrataCollector``: the collector behind ``GET /metrics``.

Importing this package starts nothing and imports no HTTP client.
"""

from strata.exporters.base import Exporter, ExportResult

__all__ = ["ExportResult", "Exporter"]
