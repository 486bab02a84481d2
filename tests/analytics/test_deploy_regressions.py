"""Deploy regressions found at every traffic level, decoys silent: a real agent fed real OTLP.

Per traffic band (1, 10 and 120 requests a minute) one agent receives: a deploy that raises
input tokens per request by 30%, a deploy that switches the chat model to a slower, pricier
one, a deploy that breaks a tool on 20% of its calls (with a new ``error.type``), the same
tool failure without a deploy, a benign deploy and a x3 traffic surge; and DCGM metrics of two
GPUs, one capping power routinely at peak load with its clocks held, one power-capped at
normal load with its clocks down 25%.
Each deploy regression must be one incident of the exact kind on its service, with the
rollback from the new version to the old; the tool failure without a deploy an error spike to
investigate; the decoys must open nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint

from tests.conftest import LiveAgent, launch_agent
from tests.genai_traffic import MINUTE_NS, Deploy, Service, traffic
from tests.otlp_factory import key_values

T0 = 1_767_312_000_000_000_000  # 2026-01-02T00:00Z: the deploys, surge and capping start here
PB = {"Content-Type": "application/x-protobuf"}
# band: (requests per minute, minutes of history before T0, minutes after)
BANDS = {"1pm": (1.0, 240, 60), "10pm": (10.0, 120, 45), "120pm": (120.0, 45, 30)}


def services(band: str, rate: float) -> list[Service]:
    def svc(name: str, version: str, **kw: object) -> Service:
        return Service(f"{name}-{band}", rate, version=version, **kw)  # type: ignore[arg-type]

    return [
        svc("cost", "1.4.0", deploys=[Deploy(T0, "1.5.0", input_factor=1.3)]),
        svc("switch", "2.0.0", deploys=[Deploy(T0, "2.1.0", model="gpt-4o")]),
        svc("tool", "3.0.0", deploys=[Deploy(T0, "3.1.0", tool_failure=0.2)]),
        svc("benign", "4.0.0", deploys=[Deploy(T0, "4.1.0")]),
        svc("surge", "5.0.0", surge=(T0, T0 + 40 * MINUTE_NS, 3.0)),
        svc("outage", "6.0.0", tool_outage=(T0, T0 + 60 * MINUTE_NS, 0.2)),
    ]


def gpu_metrics(start_ns: int, end_ns: int) -> Iterator[ExportMetricsServiceRequest]:
    """dcgm-exporter gauges of two GPUs every 30 s, as a Collector's Prometheus receiver
    pushes them: a routine capper (util 95% and capped at peak, clocks held) and a GPU
    power-capped at normal load with its clocks 25% down."""
    for host, routine in (("gpu-routine", True), ("gpu-capped", False)):
        request = ExportMetricsServiceRequest()
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(key_values({"service.name": "dcgm-exporter"}))
        scope = rm.scope_metrics.add()
        labels = key_values({"gpu": "0", "UUID": f"GPU-{host}", "Hostname": host,
                             "modelName": "NVIDIA H100 80GB HBM3"})
        series: dict[str, Metric] = {}
        for t in range(start_ns, end_ns, 30 * 1_000_000_000):
            peak = T0 <= t < T0 + 40 * MINUTE_NS
            util = 95.0 if peak and routine else 40.0
            clock = 1050.0 if peak and not routine else 1410.0
            values = {"DCGM_FI_DEV_GPU_UTIL": util, "DCGM_FI_DEV_SM_CLOCK": clock,
                      "DCGM_FI_DEV_POWER_USAGE": 400.0 if peak else 250.0,
                      "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": 4.0 if peak else 0.0,
                      "DCGM_FI_DEV_GPU_TEMP": 60.0}
            for name, value in values.items():
                metric = series.get(name)
                if metric is None:
                    metric = series[name] = scope.metrics.add(name=name)
                metric.gauge.data_points.append(NumberDataPoint(
                    time_unix_nano=t, as_double=value, attributes=labels))
        yield request


@pytest.fixture(name="agent", scope="module", params=sorted(BANDS))
def agent_fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[str, LiveAgent]]:
    band = str(request.param)
    rate, before, after = BANDS[band]
    live = launch_agent(tmp_path_factory.mktemp(band))
    start, end = T0 - before * MINUTE_NS, T0 + after * MINUTE_NS
    with httpx.Client(timeout=60) as client:
        for body in traffic(services(band, rate), start, end, seed=7):
            reply = client.post(live.otlp_endpoint + "/v1/traces",
                                content=body.SerializeToString(), headers=PB)
            assert reply.status_code == 200, reply.text
        for body in gpu_metrics(start, end):
            reply = client.post(live.otlp_endpoint + "/v1/metrics",
                                content=body.SerializeToString(), headers=PB)
            assert reply.status_code == 200, reply.text
    assert live.post("/api/v1/analyze").status_code == 200
    yield band, live
    live.stop()


def incidents_of(live: LiveAgent, service: str | None = None, host: str | None = None
                 ) -> list[dict[str, object]]:
    found = live.get("/api/v1/incidents").json()["incidents"]
    return [i for i in found if (service is None or i["service"] == service)
            and (host is None or i["host"] == host)]


@pytest.mark.parametrize(("name", "kind", "versions"), [
    ("cost", "cost_regression", ("1.5.0", "1.4.0")),
    ("switch", "latency_regression", ("2.1.0", "2.0.0")),
    ("tool", "error_spike", ("3.1.0", "3.0.0")),
])
def test_a_deploy_regression_is_one_incident_with_its_rollback(
    agent: tuple[str, LiveAgent], name: str, kind: str, versions: tuple[str, str]
) -> None:
    band, live = agent
    service = f"{name}-{band}"
    (incident,) = incidents_of(live, service)
    assert incident["kind"] == kind
    rollback = incident["suggestion"]["rollback"]
    assert (rollback["service"], rollback["from_version"], rollback["to_version"]) == (
        service, *versions)
    started = incident["started_at"]
    assert started.startswith("2026-01-02T00:0"), started  # T0, within the rollout


def test_a_tool_failing_without_a_deploy_is_an_error_spike_to_investigate(
    agent: tuple[str, LiveAgent],
) -> None:
    band, live = agent
    (incident,) = incidents_of(live, f"outage-{band}")
    assert incident["kind"] == "error_spike"
    assert incident["suggestion"]["action"] == "investigate"
    assert incident["suggestion"]["rollback"] is None
    assert "web_search" in incident["suggestion"]["detail"]
    assert incident["started_at"].startswith("2026-01-02T00:"), incident["started_at"]


@pytest.mark.parametrize("name", ["benign", "surge"])
def test_benign_deploys_and_surges_open_nothing(agent: tuple[str, LiveAgent], name: str
                                                 ) -> None:
    band, live = agent
    assert incidents_of(live, f"{name}-{band}") == []


def test_routine_power_capping_opens_nothing_but_costly_capping_does(
    agent: tuple[str, LiveAgent],
) -> None:
    _, live = agent
    assert incidents_of(live, host="gpu-routine") == []
    kinds = [i["kind"] for i in incidents_of(live, host="gpu-capped")]
    assert kinds == ["gpu_power_throttle"]

