"""build_collectors(settings): the built-in collectors a configuration asks for.

The one place that maps ``strata.toml`` to collector instances (STYLE R1: built-ins are a
literal list, never looked up by string).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from strata.agent.config import Settings
from strata.collectors.base import Collector
from strata.collectors.host import HostCollector
from strata.collectors.nvml import NVMLCollector
from strata.collectors.ollama import OllamaCollector
from strata.collectors.qdrant import QdrantTelemetryCollector
from strata.collectors.scrape import PrometheusScrapeCollector


def base_url(url: str) -> str:
    """``http://h:6333/metrics`` -> ``http://h:6333``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def build_collectors(settings: Settings, host: str) -> tuple[list[Collector], dict[str, float]]:
    """Collectors in opening order, and each one's interval in seconds."""
    collectors: list[Collector] = []
    intervals: dict[str, float] = {}

    def add(collector: Collector, interval_s: float) -> None:
        collectors.append(collector)
        intervals[collector.name] = interval_s

    if settings.gpu_enabled:
        add(NVMLCollector(host=host, call_timeout_s=settings.gpu_timeout_s,
                          pcie_throughput=settings.gpu_pcie_throughput), settings.gpu_interval_s)
    if settings.host_enabled:
        add(HostCollector(host=host), max(settings.gpu_interval_s, 15.0))
    for target in settings.scrape:
        if target.profile == "ollama":
            add(OllamaCollector(target.name, base_url(target.url), timeout_s=target.timeout_s,
                                host=host), target.interval_s)
            continue
        add(PrometheusScrapeCollector(
            target.name, target.url, target.profile, timeout_s=target.timeout_s,
            body_limit_bytes=target.body_limit_bytes, sample_limit=target.sample_limit,
            label_limit=target.label_limit,
            label_value_length_limit=target.label_value_length_limit, host=host),
            target.interval_s)
        if target.profile == "qdrant":  # segment detail only exists in /telemetry
            add(QdrantTelemetryCollector(target.name, base_url(target.url),
                                         timeout_s=target.timeout_s, host=host),
                target.interval_s)
    return collectors, intervals
