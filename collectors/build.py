"""build_collectors(settings): the built-in collectors a configuration asks for.

The one place that maps ``strata.toml`` to collector instances. Built-ins are named in code,
never looked up by a string from outside (STYLE R1): GPU and host are fixed, and each
``[[scrape]]`` target becomes the collectors its profile's builder returns. Most profiles
are a Prometheus scrape; ``TARGET_BUILDERS`` lists the exceptions, so a new kind of target
is one builder and one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from strata.agent.config import ScrapeTarget, Settings
from strata.collectors.base import Collector
from strata.collectors.host import HostCollector
from strata.collectors.nvml import NVMLCollector
from strata.collectors.ollama import OllamaCollector
from strata.collectors.qdrant import QdrantTelemetryCollector
from strata.collectors.scrape import PrometheusScrapeCollector

__all__ = ["TARGET_BUILDERS", "TargetBuilder", "base_url", "build_collectors"]

TargetBuilder = Callable[[ScrapeTarget, str], list[Collector]]


def base_url(url: str) -> str:
    """``http://h:6333/metrics`` -> ``http://h:6333``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def scrape(target: ScrapeTarget, host: str) -> list[Collector]:
    """A Prometheus scrape of the target's URL, derived by its profile."""
    return [PrometheusScrapeCollector(
        target.name, target.url, target.profile, timeout_s=target.timeout_s,
        body_limit_bytes=target.body_limit_bytes, sample_limit=target.sample_limit,
        label_limit=target.label_limit,
        label_value_length_limit=target.label_value_length_limit, host=host)]


def ollama(target: ScrapeTarget, host: str) -> list[Collector]:
    """Ollama has no /metrics: its JSON API instead."""
    return [OllamaCollector(target.name, base_url(target.url), timeout_s=target.timeout_s,
                            host=host)]


def qdrant(target: ScrapeTarget, host: str) -> list[Collector]:
    """The scrape, plus /telemetry: segment detail only exists there."""
    return [*scrape(target, host),
            QdrantTelemetryCollector(target.name, base_url(target.url),
                                     timeout_s=target.timeout_s, host=host)]


# Profiles whose targets are not (only) a Prometheus scrape; every other profile is.
TARGET_BUILDERS: Mapping[str, TargetBuilder] = {"ollama": ollama, "qdrant": qdrant}


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
        for collector in TARGET_BUILDERS.get(target.profile, scrape)(target, host):
            add(collector, target.interval_s)
    return collectors, intervals
