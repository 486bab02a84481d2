"""Built-in collectors: NVML, Prometheus scrape targets, Qdrant telemetry, Ollama, host.

Importing this package starts nothing: no threads, no sockets, no ``nvmlInit``.
"""

from __future__ import annotations

from collectors.base import CollectError, Collector, CollectorUnavailable
from collectors.host import HostCollector
from collectors.nvml import NVMLCollector
from collectors.ollama import OllamaCollector
from collectors.profiles import PROFILES, Profile, get_profile
from collectors.qdrant import QdrantTelemetryCollector
from collectors.scrape import PrometheusScrapeCollector

__all__ = [
    "PROFILES",
    "CollectError",
    "Collector",
    "CollectorUnavailable",
    "HostCollector",
    "NVMLCollector",
    "OllamaCollector",
    "Profile",
    "PrometheusScrapeCollector",
    "QdrantTelemetryCollector",
    "get_profile",
]
