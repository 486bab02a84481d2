"""Energy and cost of real-shaped telemetry, end to end (issue 21).

A real agent process; real OTLP protobuf over HTTP. A vLLM host's dcgm-exporter metrics
arrive as a Collector's Prometheus receiver pushes them (cumulative counter with a start
time, ``Hostname``/``UUID``/``modelName`` labels); OpenLLMetry-shaped client spans call that
host by ``server.address`` and name no GPU. The figures below are computed by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import counter_request, make_span, trace_request
from tests.waiting import wait_until

S = 1_000_000_000
PB = {"Content-Type": "application/x-protobuf"}
HOST, UUID = "gpu-node-1", "GPU-5e1f0c3a-1111-2222-3333-444455556666"
H100_USD_PER_HOUR = 2.99  # analytics/data/gpu_prices.toml, "H100 SXM"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
TRACES = {"a": "a" * 32, "b": "b" * 32, "haiku": "c" * 32, "unknown": "d" * 32}


def _openllmetry(model: str, system: str, address: str | None, out: int) -> dict[str, Any]:
    """Attributes as OpenLLMetry's OpenAI/Anthropic instrumentations set them."""
    attributes: dict[str, Any] = {
        "llm.request.type": "chat", "gen_ai.system": system, "gen_ai.request.model": model,
        "gen_ai.response.model": model, "gen_ai.usage.prompt_tokens": 800,
        "gen_ai.usage.completion_tokens": out,
    }  # fmt: skip
    if address is not None:
        attributes.update({"server.address": address, "server.port": 8000})
    return attributes


def _post(agent: LiveAgent, path: str, body: bytes) -> None:
    reply = httpx.post(agent.otlp_endpoint + path, content=body, headers=PB, timeout=30)
    assert reply.status_code == 200, reply.text


@pytest.fixture(name="agent")
def agent_fixture(tmp_path: Path) -> Iterator[tuple[LiveAgent, int]]:
    live = launch_agent(tmp_path, env={"STRATA_ANALYZE_INTERVAL": "1h"})
    t0 = (time.time_ns() // (60 * S) - 10) * 60 * S  # recent: inside the retention
    try:
        yield live, t0
    finally:
        live.process.kill()
        live.process.wait(10)


def _send(agent: LiveAgent, t0: int) -> None:
    # The GPU's counter: 0 at t0, +1 Wh (3.6e6 mJ) by t0+10 s, +2 Wh more by t0+20 s.
    labels = {"gpu": "0", "UUID": UUID, "device": "nvidia0", "modelName": "NVIDIA H100 80GB HBM3",
              "Hostname": HOST, "DCGM_FI_DRIVER_VERSION": "550.54.15"}
    resource = {"service.name": "dcgm-exporter", "service.instance.id": f"{HOST}:9400",
                "server.address": HOST, "server.port": "9400", "url.scheme": "http"}
    points = [(t0, 50_000.0), (t0 + 10 * S, 3_650_000.0), (t0 + 20 * S, 10_850_000.0)]
    _post(agent, "/v1/metrics", counter_request(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", points, start_ns=t0 - 3600 * S, labels=labels,
        resource=resource).SerializeToString())
    app = {"service.name": "summarizer", "host.name": "app-7"}
    spans = [
        make_span(trace_id=bytes.fromhex(TRACES["a"]), name=f"openai.chat {LLAMA}",
                  start_ns=t0 + 2 * S, duration_ns=10 * S,
                  attributes=_openllmetry(LLAMA, "openai", HOST, 300)),
        make_span(trace_id=bytes.fromhex(TRACES["b"]), name=f"openai.chat {LLAMA}",
                  start_ns=t0 + 6 * S, duration_ns=10 * S,
                  attributes=_openllmetry(LLAMA, "openai", HOST, 300)),
        make_span(trace_id=bytes.fromhex(TRACES["haiku"]), name="anthropic.chat",
                  start_ns=t0 + 3 * S, duration_ns=2 * S,
                  attributes=_openllmetry("claude-3-5-haiku-20241022", "anthropic",
                                          "api.anthropic.com", 500)),
        make_span(trace_id=bytes.fromhex(TRACES["unknown"]), name="acme.chat",
                  start_ns=t0 + 4 * S, duration_ns=1 * S,
                  attributes=_openllmetry("acme-llm-7", "acme", None, 100)),
    ]
    _post(agent, "/v1/traces", trace_request(spans, app).SerializeToString())
    wait_until(lambda: agent.get("/api/v1/health").json()["counts"]["spans"] == 4, 20,
               "the four spans stored")
    wait_until(lambda: agent.get("/api/v1/health").json()["counts"]["samples"] >= 3, 20,
               "the counter samples stored")
    assert agent.post("/api/v1/analyze").status_code == 200


def _span(agent: LiveAgent, name: str) -> dict[str, Any]:
    [span] = agent.get(f"/api/v1/traces/{TRACES[name]}").json()["spans"]
    return span


def test_topology_join_measured_share_and_list_price(agent: tuple[LiveAgent, int]) -> None:
    live, t0 = agent
    _send(live, t0)
    # Interval 1 (1 Wh over 10 s): [0,2) idle 0.2, [2,6) A alone 0.4, [6,10) A+B 0.2 each.
    # Interval 2 (2 Wh over 10 s): [10,12) A+B 0.2 each, [12,16) B alone 0.8, [16,20) idle 0.8.
    a, b = _span(live, "a"), _span(live, "b")
    assert (a["energy_source"], a["energy_status"]) == ("measured", "measured")
    assert a["energy_wh"] == pytest.approx(0.8, rel=1e-9)
    assert b["energy_wh"] == pytest.approx(1.2, rel=1e-9)
    # GPU time: A alone 4 s + half of 6 shared s = 7 s; B the same, at the H100 list price.
    for span in (a, b):
        assert span["cost_source"] == "gpu_time_estimated"
        assert span["cost_usd"] == pytest.approx(H100_USD_PER_HOUR * 7 / 3600, rel=1e-9)
    energy = live.get("/api/v1/energy", since=_rfc(t0 - 60 * S), until=_rfc(t0 + 60 * S)).json()
    [gpu] = energy["gpus"]
    assert (gpu["host"], gpu["device"]) == (HOST, UUID)
    assert gpu["measured_wh"] == pytest.approx(3.0)
    assert gpu["attributed_wh"] == pytest.approx(2.0)
    assert gpu["idle_wh"] == pytest.approx(1.0)


def test_hosted_estimate_with_source_and_unknown_never_zero(agent: tuple[LiveAgent, int]) -> None:
    live, t0 = agent
    _send(live, t0)
    haiku = _span(live, "haiku")
    assert (haiku["energy_source"], haiku["cost_source"]) == ("estimated", "token_price")
    assert haiku["energy_wh"] == pytest.approx(500 / 1000 * 0.0844)  # prices.toml coefficient
    assert "EcoLogits" in haiku["energy_note"]
    assert "2026-12-07" in haiku["energy_note"]
    unknown = _span(live, "unknown")
    assert unknown["energy_wh"] is None
    assert unknown["cost_usd"] is None
    assert unknown["energy_status"] == "unknown"
    assert "not in the price table" in unknown["energy_note"]
    energy = live.get("/api/v1/energy", since=_rfc(t0 - 60 * S), until=_rfc(t0 + 60 * S)).json()
    [missing] = energy["unattributed"]
    assert (missing["model"], missing["requests"]) == ("acme-llm-7", 1)
    assert "not in the price table" in missing["reason"]
    [summarizer] = energy["coverage"]["services"]
    assert summarizer["requests"] == 4
    assert summarizer["cost"] == {"token_price": 1, "gpu_time": 0, "gpu_time_estimated": 2,
                                  "unpriced": 1}
    assert summarizer["energy"] == {"measured": 2, "estimated": 1, "unknown": 1}
    assert summarizer["energy_share"] == pytest.approx(0.75)
    cost = live.get("/api/v1/cost", since=_rfc(t0 - 60 * S), until=_rfc(t0 + 60 * S)).json()
    assert cost["coverage"]["totals"]["cost_share"] == pytest.approx(0.75)


def _rfc(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // S))
