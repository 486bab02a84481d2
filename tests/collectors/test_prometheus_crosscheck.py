"""Cross-check: a real Prometheus (Debian package) scrapes the same fixtures as our collector.

Every series our collector parses must be a series Prometheus stored, with the same name,
labels and value, and vice versa; PromQL ``histogram_quantile`` and ``sum by`` must agree with
our derived p50 and per-state segment counts. Prometheus is installed on demand with apt
(CI runs as root with the Debian mirror reachable); without it the test is skipped with why.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from strata.collectors.scrape import PrometheusScrapeCollector

from tests.collectors.conftest import FixtureServer, free_port
from tests.conftest import ensure_apt_binary
from tests.waiting import responds, wait_until

pytestmark = pytest.mark.slow

JOBS = {
    "vllm": ("vllm_metrics.txt", "vllm"),
    "tgi": ("tgi_metrics.txt", "tgi"),
    "triton": ("triton_metrics.txt", "triton"),
    "llamacpp": ("llamacpp_metrics.txt", "llamacpp"),
    "weaviate": ("weaviate_metrics.txt", "weaviate"),
    "milvus": ("milvus_2.3.5_real_scrape.txt", "milvus"),
    "qdrant": ("qdrant_metrics.txt", "qdrant"),
    "dcgm": ("dcgm_exporter_metrics.txt", "prometheus"),
}
SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
NOW = 1_800_000_000_000_000_000


def _install_prometheus() -> str:
    return ensure_apt_binary("prometheus", "prometheus")


@pytest.fixture(name="prometheus", scope="module")
def prometheus_fixture(
    fixture_server: FixtureServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping every fixture once a second; yields its URL."""
    binary = _install_prometheus()
    work = tmp_path_factory.mktemp("prometheus")
    target = fixture_server.base_url.removeprefix("http://")
    jobs = "".join(
        f"  - job_name: {job}\n    metrics_path: /fixtures/{file}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
        for job, (file, _) in JOBS.items()
    )
    config = work / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"
    )
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_all_up(url, proc, work / "prometheus.log")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _wait_all_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until Prometheus is ready and every job has been scraped and is up."""

    def all_up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
        if responds(f"{url}/-/ready") != 200:
            return False  # it listens before its TSDB is open; the API answers 503 until then
        try:
            result = query(url, "count(up == 1)")
        except httpx.TransportError:
            return False
        return bool(result) and float(result[0]["value"][1]) == len(JOBS)

    wait_until(all_up, 30, "every Prometheus target up", interval_s=0.2)


def query(url: str, promql: str) -> list[dict]:  # type: ignore[type-arg]
    resp = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["result"]  # type: ignore[no-any-return]


def ours(fixture_server: FixtureServer, job: str):
    file, profile = JOBS[job]
    c = PrometheusScrapeCollector(job, fixture_server.url(f"/fixtures/{file}"), profile)
    try:
        return c.collect(NOW)
    finally:
        c.close()


@pytest.mark.parametrize("job", list(JOBS))
def test_every_series_matches_prometheus(
    prometheus: str, fixture_server: FixtureServer, job: str
) -> None:
    """Same series set, names, labels and values as Prometheus stored for the job."""
    theirs = {}
    for series in query(prometheus, f'{{job="{job}"}}'):
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        if name in SYNTHETIC:
            continue
        labels.pop("job"), labels.pop("instance")
        theirs[(name, tuple(sorted(labels.items())))] = float(series["value"][1])
    mine = {
        (s.name, tuple(sorted(s.attributes.items()))): s.value
        for s in ours(fixture_server, job)
        if s.canonical is None or s.name != s.canonical  # raw series only, not derived
    }
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        assert value == theirs[key] or (math.isinf(value) and value == theirs[key]), key


def test_quantile_matches_promql(prometheus: str, fixture_server: FixtureServer) -> None:
    """Our cumulative TTFT p50/p95 equal PromQL histogram_quantile over the same buckets."""
    samples = ours(fixture_server, "vllm")
    for q, label in ((0.5, "p50"), (0.95, "p95")):
        promql = (
            f"histogram_quantile({q}, sum by (le, model_name) "
            '(vllm:time_to_first_token_seconds_bucket{job="vllm"}))'
        )
        expected = float(query(prometheus, promql)[0]["value"][1])
        mine = [s.value for s in samples if s.name == f"serving.ttft.{label}"]
        assert mine == [pytest.approx(expected, rel=1e-12)]


def test_milvus_segments_by_state_match_promql(
    prometheus: str, fixture_server: FixtureServer
) -> None:
    """sum by (segment_state)(milvus_datacoord_segment_num) equals our per-state counts."""
    theirs = {
        r["metric"]["segment_state"]: float(r["value"][1])
        for r in query(
            prometheus, 'sum by (segment_state) (milvus_datacoord_segment_num{job="milvus"})'
        )
    }
    mine = {
        s.attributes["segment_state"]: s.value
        for s in ours(fixture_server, "milvus")
        if s.name == "vectordb.segments.by_state"
    }
    assert mine == theirs
    assert mine["Flushed"] == 3.0
