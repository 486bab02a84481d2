"""Exporters: what leaves the agent.

- ``strata.exporters.otlp_forward.OTLPForwarder``: spans and metric points to an upstream OTLP/HTTP
  endpoint through a persistent disk queue (``strata.exporters.disk_queue``), re-encoded by
  ``strata.exporters.otlp_encode``.
- ``strata.exporters.webhook.WebhookExporter``: incidents as JSON or Slack messages.
- ``strata.exporters.prometheus.StrataCollector``: the collector behind ``GET /metrics``.

``strata.exporters.build`` makes the exporters a configuration asks for (the runner drives
them through ``base.Exporter`` only); ``strata.exporters.delivery`` holds the backoff,
``Retry-After``, bounded POST and worker thread that the forwarder and the webhooks share.

Importing this package starts nothing and imports no HTTP client.
"""

from strata.exporters.base import Exporter, ExportResult

__all__ = ["ExportResult", "Exporter"]
