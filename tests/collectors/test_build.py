"""build_collectors: from a strata.toml (through config.load) to collectors that read real
targets on 127.0.0.1. Checked through what the collectors do, not how they are built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from strata.agent.config import Settings, load
from strata.agent.errors import CollectError
from strata.collectors.build import build_collectors

from tests.collectors.conftest import FixtureServer
from tests.waiting import loose

NOW = 1_700_000_000_000_000_000


def settings(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "strata.toml"
    path.write_text(toml)
    return load(path, {})


def test_nothing_asked_nothing_built(tmp_path: Path) -> None:
    quiet = settings(tmp_path, "[gpu]\nenabled = false\n[host]\nenabled = false\n")
    assert build_collectors(quiet, "node-a") == ([], {})


@pytest.mark.parametrize(("gpu_interval", "host_interval"), [("3s", 15.0), ("20s", 20.0)])
def test_local_collectors_and_their_intervals(
    tmp_path: Path, gpu_interval: str, host_interval: float
) -> None:
    """NVML first (its interval from [gpu]); the host collector no more often than every
    15 s, nor more often than the GPU. Building opens nothing (NVML starts on collect)."""
    local = settings(tmp_path, f'[gpu]\ninterval = "{gpu_interval}"\n')
    collectors, intervals = build_collectors(local, "node-a")
    assert [c.name for c in collectors] == ["nvml", "host"]
    assert intervals == {"nvml": float(gpu_interval.removesuffix("s")), "host": host_interval}
    host = {s.name: s for s in collectors[1].collect(NOW)}
    assert host["system.memory.limit"].host == "node-a"
    for collector in collectors:
        collector.close()


def test_scrape_targets_by_profile(tmp_path: Path, fixture_server: FixtureServer) -> None:
    """A Prometheus target per [[scrape]]; an ollama target is read through /api/ps at the
    URL's root, a qdrant target also through /telemetry; each keeps its own interval."""
    base = fixture_server.base_url
    config = settings(tmp_path, f"""
[gpu]
enabled = false
[host]
enabled = false
[[scrape]]
name = "llm"
url = "{base}/fixtures/vllm_metrics.txt"
profile = "vllm"
interval = "7s"
[[scrape]]
name = "local"
url = "{base}/metrics"
profile = "ollama"
interval = "9s"
[[scrape]]
name = "vec"
url = "{base}/fixtures/qdrant_metrics.txt"
profile = "qdrant"
interval = "11s"
""")
    collectors, intervals = build_collectors(config, "node-a")
    names = ["scrape:llm", "ollama:local", "scrape:vec", "qdrant-telemetry:vec"]
    assert [c.name for c in collectors] == names
    assert intervals == dict(zip(names, [7.0, 9.0, 11.0, 11.0], strict=True))
    read = {c.name: {s.name: s for s in c.collect(NOW)} for c in collectors}
    for collector in collectors:
        collector.close()
    assert "vllm:num_requests_running" in read["scrape:llm"]
    assert read["ollama:local"]["ollama.models.loaded"].value == 2.0
    assert "qdrant.shard.segments" in read["qdrant-telemetry:vec"]
    assert read["scrape:vec"]
    hosts = {s.host for samples in read.values() for s in samples.values()}
    assert hosts == {"node-a"}


def test_target_timeout_is_applied(tmp_path: Path, fixture_server: FixtureServer) -> None:
    """[[scrape]] timeout reaches the collector: a target answering after 30 s is cut at 1 s."""
    slow = settings(tmp_path, f"""
[gpu]
enabled = false
[host]
enabled = false
[[scrape]]
name = "slow"
url = "{fixture_server.url("/slow?delay=30")}"
timeout = "1s"
""")
    ((collector,), _) = build_collectors(slow, "node-a")
    begin = time.monotonic()
    with pytest.raises(CollectError, match="timed out"):
        collector.collect(NOW)
    assert time.monotonic() - begin <= loose(1.0)
    collector.close()
