"""A real Prometheus scrapes a real agent's /metrics; values read back through its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveAgent, ensure_apt_binary, free_port, launch_agent
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import responds, wait_until

pytestmark = pytest.mark.slow


def install_prometheus() -> str:
    return ensure_apt_binary("prometheus", "prometheus")


def query(url: str, expr: str) -> list[dict]:  # type: ignore[type-arg]
    reply = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    reply.raise_for_status()
    return reply.json()["data"]["result"]  # type: ignore[no-any-return]


def wait_for(url: str, expr: str, predicate) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    """The query's result once *predicate* holds for it (Prometheus scrapes every second)."""
    results: list[list[dict]] = []  # type: ignore[type-arg]

    def holds() -> bool:
        results.append(query(url, expr))
        return bool(predicate(results[-1]))

    wait_until(holds, 30, f"{expr} to satisfy the test", interval_s=0.2)
    return results[-1]


@pytest.fixture(name="agent")
def agent_fixture(tmp_path: Path) -> Iterator[LiveAgent]:
    config = tmp_path / "strata.toml"
    config.write_text("[gpu]\nenabled = false\n")
    live = launch_agent(tmp_path, "--config", str(config))
    yield live
    if live.process.poll() is None:
        live.process.kill()
        live.process.wait(10)


@pytest.fixture(name="prometheus")
def prometheus_fixture(agent: LiveAgent, tmp_path: Path) -> Iterator[str]:
    binary = install_prometheus()
    work = tmp_path / "prometheus"
    work.mkdir()
    target = agent.api_url.removeprefix("http://")
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: strata\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    with (work / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((work / "prometheus.log").read_text()[-2000:])
            return responds(f"{url}/-/ready") == 200

        wait_until(ready, 30, "prometheus ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_prometheus_scrapes_agent_metrics(agent: LiveAgent, prometheus: str) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    for service, n in (("rag-api", 30), ("search", 12)):
        spans = [make_span(attributes=genai_attributes(input_tokens=100, output_tokens=10))
                 for _ in range(n)]
        body = trace_request(spans, {"service.name": service}).SerializeToString()
        assert httpx.post(agent.otlp_endpoint + "/v1/traces", content=body, headers=headers,
                          timeout=30).status_code == 200
    assert httpx.post(agent.otlp_endpoint + "/v1/traces", content=b"\x0a\xff",
                      headers=headers, timeout=30).status_code == 400

    wait_for(prometheus, 'up{job="strata"}', lambda r: r and r[0]["value"][1] == "1")
    wait_for(prometheus, "strata_receiver_accepted_spans_total",
             lambda r: r and float(r[0]["value"][1]) == 42)
    wait_for(prometheus, "strata_receiver_bad_requests_total",
             lambda r: r and float(r[0]["value"][1]) == 1)
    tokens = wait_for(prometheus, "strata_gen_ai_usage_input_tokens_total",
                      lambda r: len(r) == 2)
    by_service = {r["metric"]["service"]: float(r["value"][1]) for r in tokens}
    assert by_service == {"rag-api": 3000.0, "search": 1200.0}
    cost = query(prometheus, "sum(strata_gen_ai_cost_usd_total)")
    assert float(cost[0]["value"][1]) > 0
    p99 = wait_for(prometheus, 'strata_span_duration_seconds{quantile="0.99"}',
                   lambda r: len(r) == 2)
    assert all(float(r["value"][1]) == pytest.approx(0.25) for r in p99)
    rows = query(prometheus, 'strata_store_rows{table="spans"}')
    assert float(rows[0]["value"][1]) == 42
    scrape = query(prometheus, 'scrape_duration_seconds{job="strata"}')
    assert float(scrape[0]["value"][1]) < 0.5  # RELIABILITY E6


def test_exposition_passes_promtool(agent: LiveAgent) -> None:
    install_prometheus()
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed with prometheus")
    nasty = {"service.name": 'we"ird\\svc\nname é🚀'}
    body = trace_request([make_span(attributes=genai_attributes())], nasty).SerializeToString()
    httpx.post(agent.otlp_endpoint + "/v1/traces", content=body,
               headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    text = httpx.get(agent.api_url + "/metrics", timeout=10).content
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            timeout=30, check=False)
    # promtool exits 1 on lint warnings too; only parse errors matter here
    assert b"error while linting" not in result.stderr + result.stdout, result.stderr
    problems = [line for line in (result.stdout + result.stderr).decode().splitlines()
                if line.strip()]
    assert not problems, problems
