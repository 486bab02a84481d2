"""Built-in collectors: NVML, Prometheus scrape targets, Qdrant telemetry, Ollama, host."""

from __future__ import annotations

from collectors.base import CollectError, Collector, CollectorUnavailable

__all__ = ["CollectError", "Collector", "CollectorUnavailable"]
