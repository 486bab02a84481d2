"""The FinOps routers over HTTP (FastAPI TestClient) on a real Agent and DuckDB file.

The app here is built from the routers under test plus the traces router, with an Agent whose
``correlate`` hook calls ``strata.agent.analysis.layer_reads.correlate_trace`` (the wiring the
runner gets).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from strata.agent.analysis.layer_reads import correlate_trace
from strata.agent.api import cost, metrics_api, timeline, traces
from strata.agent.config import Settings
from strata.agent.finops.gpu import apply_gpu_attribution
from strata.agent.model import AttributeValue, Layer, Sample, SpanRecord
from strata.agent.runner import Agent
from strata.agent.store.seam import DuckDBReports

S = 1_000_000_000
H = 3600 * S
T0 = 1_700_006_400 * S  # 2023-11-15T00:00:00Z, an hour boundary
NODE, OTHER = "gpu-node-1", "gpu-node-2"
GPU_A, GPU_B = "GPU-aaaa", "GPU-bbbb"
SINCE, UNTIL = "2023-11-15T00:00:00Z", "2023-11-15T06:00:00Z"


class CorrelatingAgent(Agent):
    def correlate(self, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return correlate_trace(DuckDBReports(self.store), spans)


def _span(
    trace: str, span_id: str, start_s: float, end_s: float, *, service: str = "rag-api",
    team: str = "search", model: str | None = None, layer: Layer = Layer.MODEL,
    host: str = "app-1", parent: str | None = None, tokens: tuple[int, int] | None = None,
    attributes: Mapping[str, AttributeValue] | None = None, provider: str | None = "openai",
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace * 32, span_id=span_id.rjust(16, "0"),
        parent_span_id=None if parent is None else parent.rjust(16, "0"), name=span_id,
        kind="client", start_unix_nano=T0 + int(start_s * S), end_unix_nano=T0 + int(end_s * S),
        status="ok", service=service, layer=layer, provider=provider if model else None,
        request_model=model, response_model=model, host=host, team=team,
        input_tokens=tokens[0] if tokens else None, output_tokens=tokens[1] if tokens else None,
        attributes=attributes or {},
    )  # fmt: skip


def _gauge(name: str, canonical: str, value: float, t_s: float, *, unit: str = "%",
           layer: Layer = Layer.INFRASTRUCTURE, host: str = NODE, device: str | None = GPU_A,
           labels: Mapping[str, str] | None = None, service: str | None = None) -> Sample:
    return Sample(name, value, unit, layer, T0 + int(t_s * S), labels or {}, canonical, host,
                  device, service)


def _data(agent: Agent) -> None:
    spans = [
        _span("a", "1", 0, 3, layer=Layer.ORCHESTRATION),
        _span("a", "2", 0.1, 0.2, parent="1", layer=Layer.DATA, attributes={
            "db.system.name": "milvus", "db.collection.name": "docs", "db.shard": "1",
            "server.address": "milvus-0"}),
        _span("a", "3", 0.3, 1.3, parent="1", model="gpt-4.1", tokens=(1000, 100),
              attributes={"user.id": "u1"}),
        _span("b", "1", 10, 12, team="ads", model="gpt-4.1", tokens=(3000, 500),
              attributes={"user.id": "u2"}),
        _span("c", "1", 0, 10, service="chat-local", model="llama-3.1-8b", provider="vllm",
              layer=Layer.SERVING, host=NODE, attributes={"gpu.uuid": GPU_A}),
        _span("d", "1", 20, 21, model="mystery-1", tokens=(10, 10), provider="acme"),
    ]
    samples = [
        *(_gauge("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", 80.0 + t, t) for t in (0, 5, 10)),
        *(_gauge("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", 3.0, t, device=GPU_B)
          for t in (0, 5, 10)),
        *(_gauge("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", 1.0, t, host=OTHER)
          for t in (0, 5, 10)),
        *(_gauge("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "gpu.energy.consumed", v, t, unit="mJ")
          for t, v in ((0, 0.0), (10, 3_600_000.0))),
        *(_gauge("milvus_datacoord_segment_num", "vectordb.segments", v, 0, unit="{segment}",
                 layer=Layer.DATA, host="milvus-0", device=None,
                 labels={"collection_name": "docs", "shard": shard})
          for shard, v in (("0", 40.0), ("1", 12.0))),
        # GPU B idle for three hours: a rightsizing finding
        *(_gauge("DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", 0.5, 3600 * h + 60, device=GPU_B)
          for h in (1, 2, 3)),
    ]
    agent.store.write_batch(spans, samples, costs=agent.price_at_ingest(spans), received_ns=T0)
    apply_gpu_attribution(agent.store, since_ns=T0, until_ns=T0 + H, settings=agent.settings)


@pytest.fixture(name="client")
def client_fixture(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(db=str(tmp_path / "api.duckdb"), gpu_hour_usd=3.6, carbon_pue=1.5,
                        carbon_grid_gco2e_per_kwh=400.0)
    agent = CorrelatingAgent(settings, clock=lambda: T0 + 6 * H)
    _data(agent)
    app = FastAPI()
    for module in (cost, metrics_api, timeline, traces):
        app.include_router(module.build_router(agent))
    with TestClient(app) as client:
        yield client
    agent.close()


def _groups(body: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {g["group"]: g for g in body["groups"]}


def test_cost_by_team_service_model_and_attribute(client: TestClient) -> None:
    """USD per group is the hand-computed sum; the unknown model is counted as unpriced."""
    # gpt-4.1: $2/M in, $8/M out. a: 1000/100 -> 0.0028; b: 3000/500 -> 0.010.
    # llama on GPU A: 10 s alone x $3.6/h -> 0.010.
    team = _groups(client.get("/api/v1/cost", params={"group_by": "team", "since": SINCE,
                                                        "until": UNTIL}).json())
    assert team["search"]["usd"] == pytest.approx(0.0028 + 0.010)
    assert (team["search"]["requests"], team["search"]["unpriced_requests"]) == (3, 1)
    assert team["ads"]["usd"] == pytest.approx(0.010)
    service = _groups(client.get("/api/v1/cost", params={"group_by": "service"}).json())
    assert service["chat-local"]["energy_wh_measured"] == pytest.approx(1.0)
    assert service["chat-local"]["co2e_g"] == pytest.approx(1.0 * 1.5 * 0.4)
    assert service["rag-api"]["input_tokens"] == 1000 + 3000 + 10
    model = _groups(client.get("/api/v1/cost", params={"group_by": "model"}).json())
    assert model["mystery-1"]["usd"] is None
    assert model["mystery-1"]["unpriced_requests"] == 1
    user = _groups(client.get("/api/v1/cost", params={"group_by": "user"}).json())
    assert user["u1"]["usd"] == pytest.approx(0.0028)
    assert user["u2"]["usd"] == pytest.approx(0.010)
    attr = _groups(client.get("/api/v1/cost", params={"group_by": "db.collection.name"}).json())
    assert set(attr) == {"docs", None}
    filtered = client.get("/api/v1/cost", params={"group_by": "model", "team": "search",
                                                  "attr.user.id": "u1"}).json()
    assert [g["group"] for g in filtered["groups"]] == ["gpt-4.1"]


def test_cost_buckets(client: TestClient) -> None:
    """Hourly buckets over six hours, from the rollup path, hold each hour's spans."""
    body = client.get("/api/v1/cost", params={"group_by": "team", "bucket": "1h",
                                              "since": SINCE, "until": UNTIL}).json()
    assert [b["start"] for b in body["buckets"]] == ["2023-11-15T00:00:00Z"]
    assert client.get("/api/v1/cost", params={"bucket": "soon"}).status_code == 400
    assert client.get("/api/v1/cost", params={"bucket": "1ms", "since": SINCE,
                                              "until": UNTIL}).status_code == 400


@pytest.mark.parametrize("group_by", [
    "team; DROP TABLE spans", "x') OR 1=1 --", 'user.id"', "a b", "$.x", "",
])
def test_injection_in_group_by_is_rejected(client: TestClient, group_by: str) -> None:
    """A group_by that is not an allowlisted column or a plain attribute key is a 400."""
    response = client.get("/api/v1/cost", params={"group_by": group_by})
    assert response.status_code == 400
    assert client.get("/api/v1/cost").json()["totals"]["requests"] == 4


def test_injection_in_filters_is_bound_or_rejected(client: TestClient) -> None:
    """A filter value is bound (matches nothing); an odd attribute key is a 400."""
    body = client.get("/api/v1/cost", params={"team": "search' OR '1'='1"}).json()
    assert body["totals"]["requests"] == 0
    assert client.get("/api/v1/cost", params={"attr.x') OR 1=1 --": "1"}).status_code == 400
    assert client.get("/api/v1/energy", params={"group_by": "1;DROP"}).status_code == 400
    assert client.get("/api/v1/metrics", params={"a'b": "1"}).status_code == 400
    assert client.get("/api/v1/cost").json()["totals"]["requests"] == 4


def test_trace_detail_correlates_gpu_and_shard(client: TestClient) -> None:
    """The GPU span sees GPU A on its host only; the retrieval span sees shard 1 only."""
    gpu_trace = client.get("/api/v1/traces/" + "c" * 32).json()
    [span] = gpu_trace["spans"]
    infra = span["correlated"]["infrastructure"]
    assert {(s["signal"], s["host"], s["device"]) for s in infra} == {
        ("gpu.utilization", NODE, GPU_A), ("gpu.energy.consumed", NODE, GPU_A)}
    util = next(s for s in infra if s["signal"] == "gpu.utilization")
    assert (util["count"], util["mean"], util["max"]) == (3, 85.0, 90.0)
    assert span["cost_source"] == "gpu_time"
    assert span["energy_source"] == "measured"
    rag = client.get("/api/v1/traces/" + "a" * 32).json()
    [root] = rag["spans"]
    retrieval = next(c for c in root["children"] if c["name"] == "2")
    [segments] = retrieval["correlated"]["data"]
    assert (segments["labels"], segments["mean"]) == ({"collection_name": "docs", "shard": "1"},
                                                      12.0)
    assert retrieval["correlated"]["infrastructure"] == []


def test_metrics_series_with_label_filter(client: TestClient) -> None:
    """Series come back by name or canonical name, filtered by device and label."""
    body = client.get("/api/v1/metrics", params={
        "name": "gpu.utilization", "device": GPU_A, "host": NODE, "since": SINCE,
        "until": UNTIL}).json()
    [series] = body["series"]
    assert (series["name"], series["canonical"], series["unit"]) == (
        "DCGM_FI_DEV_GPU_UTIL", "gpu.utilization", "%")
    assert series["points"] == [["2023-11-15T00:00:00Z", 80.0], ["2023-11-15T00:00:05Z", 85.0],
                                ["2023-11-15T00:00:10Z", 90.0]]
    shard = client.get("/api/v1/metrics", params={"layer": "data", "shard": "1",
                                                  "since": SINCE, "until": UNTIL}).json()
    assert [s["labels"]["shard"] for s in shard["series"]] == ["1"]


def test_service_timeline_puts_layers_side_by_side(client: TestClient) -> None:
    """The GPU service's timeline has its request series and only its own GPU's signals."""
    body = client.get("/api/v1/services/chat-local/timeline", params={
        "since": SINCE, "until": "2023-11-15T00:01:00Z", "step": "5s"}).json()
    assert len(body["times"]) == 12
    signals = {(s["layer"], s["signal"], s["device"]) for s in body["series"]}
    assert ("orchestration", "requests", None) in signals
    assert ("infrastructure", "gpu.utilization", GPU_A) in signals
    assert ("infrastructure", "gpu.utilization", GPU_B) not in signals
    util = next(s for s in body["series"] if s["signal"] == "gpu.utilization")
    assert util["values"][:3] == [80.0, 85.0, 90.0]


def test_rightsizing_and_energy_views(client: TestClient) -> None:
    """GPU B idle three hours costs 3 x $3.6; gpt-4.1's small request would be cheaper on mini."""
    body = client.get("/api/v1/cost/rightsizing", params={"since": SINCE, "until": UNTIL}).json()
    kinds = {f["kind"]: f for f in body["findings"]}
    idle = kinds["gpu_idle"]
    assert (idle["device"], idle["hours"]) == (GPU_B, 4)
    assert idle["waste_usd"] == pytest.approx(4 * 3.6)
    cheaper = kinds["cheaper_model"]
    assert (cheaper["model"], cheaper["suggested_model"], cheaper["requests"]) == (
        "gpt-4.1", "gpt-4.1-mini", 1)
    # mini: $0.40/M in, $1.60/M out -> 0.0004 + 0.00016
    assert cheaper["saving_usd"] == pytest.approx(0.0028 - 0.00056)
    energy = client.get("/api/v1/energy", params={"since": SINCE, "until": UNTIL}).json()
    [gpu] = energy["gpus"]
    assert (gpu["device"], gpu["measured_wh"], gpu["attributed_wh"]) == (
        GPU_A, pytest.approx(1.0), pytest.approx(1.0))
    assert energy["carbon"] == {"pue": 1.5, "grid_gco2e_per_kwh": 400.0}
