"""collectors/build: the collectors a real strata.toml turns into."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from strata.agent.config import Settings, load
from strata.collectors.build import TARGET_BUILDERS, build_collectors
from strata.collectors.host import HostCollector
from strata.collectors.nvml import NVMLCollector
from strata.collectors.ollama import OllamaCollector
from strata.collectors.qdrant import QdrantTelemetryCollector
from strata.collectors.scrape import PrometheusScrapeCollector

CONFIG = """
[gpu]
interval = "2s"

[[scrape]]
name = "llm"
url = "http://127.0.0.1:8000/metrics"
profile = "vllm"
interval = "10s"

[[scrape]]
name = "local"
url = "http://127.0.0.1:11434/metrics"
profile = "ollama"
interval = "20s"

[[scrape]]
name = "vectors"
url = "http://127.0.0.1:6333/metrics"
profile = "qdrant"
interval = "30s"
"""


def settings(tmp_path: Path, text: str = CONFIG) -> Settings:
    path = tmp_path / "strata.toml"
    path.write_text(text)
    return load(path, {}, db=str(tmp_path / "agent.duckdb"))


@pytest.fixture(name="built")
def built_fixture(tmp_path: Path) -> Iterator[list[Any]]:
    collectors, intervals = build_collectors(settings(tmp_path), "node-1")
    yield [collectors, intervals]
    for collector in collectors:
        close = getattr(collector, "close", None)
        if close is not None:
            close()


def test_each_profile_gets_its_collectors_in_order(built: list[Any]) -> None:
    collectors, intervals = built
    assert [type(c) for c in collectors] == [
        NVMLCollector, HostCollector, PrometheusScrapeCollector, OllamaCollector,
        PrometheusScrapeCollector, QdrantTelemetryCollector]
    assert intervals == {"nvml": 2.0, "host": 15.0, "scrape:llm": 10.0, "ollama:local": 20.0,
                         "scrape:vectors": 30.0, "qdrant-telemetry:vectors": 30.0}
    assert {c.host for c in collectors} == {"node-1"}


def test_targets_read_the_right_urls(built: list[Any]) -> None:
    collectors, _ = built
    scrape_llm, ollama, scrape_qdrant, telemetry = collectors[2:]
    assert (scrape_llm.url, scrape_llm.profile.name) == ("http://127.0.0.1:8000/metrics", "vllm")
    assert ollama.url == "http://127.0.0.1:11434/api/ps"  # the JSON API, not /metrics
    assert scrape_qdrant.profile.name == "qdrant"
    assert telemetry.url == "http://127.0.0.1:6333/telemetry?details_level=4"


def test_only_non_scrape_profiles_have_builders() -> None:
    assert set(TARGET_BUILDERS) == {"ollama", "qdrant"}


def test_gpu_and_host_can_be_turned_off(tmp_path: Path) -> None:
    text = '[gpu]\nenabled = false\n[host]\nenabled = false\n'
    assert build_collectors(settings(tmp_path, text), "node-1") == ([], {})
