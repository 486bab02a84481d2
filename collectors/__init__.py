"""Built-in collectors: NVML, Prometheus scrape targets, Qdrant telemetry, Ollama, host.

Importing this package starts nothing: no threads, no sockets, no ``nvmlInit``.
"""

from __future__ import annotations

from strata.collectors.base import CollectError, Collector, CollectorUnavailable
from strata.collectors.host import HostCollector
from strata.collectors.nvml import NVMLCollector
from strata.collectors.ollama import OllamaCollector
from strata.collectors.profiles import PROFILES, Profile, get_profile
from strata.collectors.qdrant import QdrantTelemetryCollector
from strata.collectors.scrape import PrometheusScrapeCollector

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
