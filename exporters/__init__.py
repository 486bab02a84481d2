"""Exporters: what leaves the agent.

- ``exporters.otlp_forward.OTLPForwarder``: spans and metric points to an upstream OTLP/HTTP
  endpoint through a persistent disk queue (``exporters.disk_queue``), re-encoded by
  ``exporters.otlp_encode``.
- ``exporters.webhook.WebhookExporter``: incidents as JSON or Slack messages.
- ``exporters.prometheus.StrataCollector``: the collector behind ``GET /metrics``.

Importing this package starts nothing and imports no HTTP client.
"""

from exporters.base import Exporter, ExportResult

__all__ = ["ExportResult", "Exporter"]
