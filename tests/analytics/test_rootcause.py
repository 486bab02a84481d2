"""Root-cause ranking, change merging and suggestions on hand-built findings."""

from __future__ import annotations

from strata.agent.model import Deployment, Finding, Layer, Rollback
from strata.analytics.changes import merge_changes
from strata.analytics.incidents import build_incidents, group_findings, incident_id
from strata.analytics.rootcause import rank_causes
from strata.analytics.suggest import suggest

M = 60 * 1_000_000_000
T0 = 1_767_225_600_000_000_000


def finding(kind: str, layer: Layer, signal: str, start_min: int, *, service: str | None = None,
            host: str | None = None, baseline: float = 1.0, current: float = 2.0,
            severity: str = "warning", detect_min: int | None = None,
            end_min: int | None = None) -> Finding:
    return Finding(kind, layer, signal, T0 + start_min * M,
                   T0 + (detect_min if detect_min is not None else start_min + 2) * M,
                   baseline, current, "1", severity, f"{signal} moved", service, host,
                   f"{service or host}|{signal}", None if end_min is None else T0 + end_min * M)


def test_a_deployment_before_the_first_anomaly_ranks_first() -> None:
    """The change came first: the deployment outranks every anomaly it caused."""
    cost = finding("cost_regression", Layer.MODEL, "cost_per_request", 1, service="rag-api")
    deploy = finding("deployment", Layer.MODEL, "deployment", 0, service="rag-api",
                     severity="info")
    assert rank_causes([cost, deploy], tolerance_ns=3 * M)[0] is deploy


def test_simultaneous_moves_rank_by_layer_depth_then_signal() -> None:
    """Within the tolerance, infrastructure beats model, and a stopped fan beats temperature."""
    latency = finding("latency_regression", Layer.MODEL, "latency.p95", 0, service="svc")
    temp = finding("gpu_thermal", Layer.INFRASTRUCTURE, "gpu.temperature", 1, host="gpu-1")
    fan = finding("gpu_fan_failure", Layer.INFRASTRUCTURE, "gpu.fan.speed", 2, host="gpu-1",
                  baseline=40, current=0)
    ranked = rank_causes([latency, temp, fan], tolerance_ns=3 * M)
    assert [f.signal for f in ranked] == ["gpu.fan.speed", "gpu.temperature", "latency.p95"]


def test_what_moved_first_wins_beyond_the_tolerance() -> None:
    """A model-layer move ten minutes before a GPU one is the first mover."""
    tokens = finding("token_spike", Layer.MODEL, "tokens.output_per_request", 0, service="s")
    temp = finding("gpu_thermal", Layer.INFRASTRUCTURE, "gpu.temperature", 10, host="gpu-1")
    assert rank_causes([temp, tokens], tolerance_ns=3 * M)[0] is tokens


def test_findings_group_by_service_and_dependency_not_by_coincidence() -> None:
    """A GPU finding joins the services it serves; an unrelated service stays apart."""
    temp = finding("gpu_thermal", Layer.INFRASTRUCTURE, "gpu.temperature", 0, host="gpu-1")
    served = finding("latency_regression", Layer.MODEL, "latency.p95", 3, service="a")
    other = finding("latency_regression", Layer.MODEL, "latency.p95", 3, service="b")
    groups = group_findings([temp, served, other], {"a": frozenset({"gpu-1"})})
    assert sorted(len(g) for g in groups) == [1, 2]


def test_incident_ids_are_deterministic_and_anchored_on_first_detection() -> None:
    """The id hashes the earliest-detected finding, so later joiners do not change it."""
    early = finding("latency_regression", Layer.MODEL, "latency.p95", 0, service="a",
                    detect_min=2)
    late = finding("cost_regression", Layer.MODEL, "cost_per_request", 0, service="a",
                   detect_min=6)
    alone = build_incidents([early], dependencies={}, changes=[], tolerance_ns=3 * M)
    both = build_incidents([early, late], dependencies={}, changes=[], tolerance_ns=3 * M)
    assert alone[0].incident.id == both[0].incident.id == incident_id(early)
    assert both[0].incident.kind == "cost_regression"


def test_info_findings_alone_open_no_incident() -> None:
    """Deployment impact and outlier findings never open an incident on their own."""
    deploy = finding("deployment", Layer.MODEL, "deployment", 0, service="a", severity="info")
    assert build_incidents([deploy], dependencies={}, changes=[], tolerance_ns=3 * M) == []


def test_version_and_model_records_of_one_deploy_merge() -> None:
    """ChangeTracker's version and model records at one instant become one change."""
    t = T0 + 5 * M
    changes = merge_changes([
        Deployment("rag-api", T0, version="1.4.0", source="service.version"),  # first sighting
        Deployment("rag-api", t, version="1.5.0", previous_version="1.4.0",
                   source="service.version"),
        Deployment("rag-api", t, version="1.5.0", model="gpt-4o", previous_model="gpt-4o-mini",
                   source="model"),
    ], M)
    assert len(changes) == 1
    c = changes[0]
    assert (c.version, c.previous_version, c.model, c.previous_model) == (
        "1.5.0", "1.4.0", "gpt-4o", "gpt-4o-mini")
    assert c.signal == "deployment"


def test_rollback_only_to_a_healthy_previous_version() -> None:
    """A rollback names from/to versions; an unhealthy previous version gets investigate."""
    (change,) = merge_changes([Deployment("rag-api", T0, version="1.5.0",
                                          previous_version="1.4.0",
                                          source="service.version")], M)
    cause = finding("deployment", Layer.MODEL, "deployment", 0, service="rag-api",
                    severity="info")
    ok = suggest("cost_regression", cause, change, [cause], previous_healthy=True)
    assert ok.action == "rollback"
    assert ok.rollback == Rollback("rag-api", "1.5.0", "1.4.0")
    not_ok = suggest("cost_regression", cause, change, [cause], previous_healthy=False)
    assert (not_ok.action, not_ok.rollback) == ("investigate", None)


def test_host_incidents_get_the_action_that_fits() -> None:
    """GPU, vector-DB and serving incidents suggest drain, compact and scale-out."""
    gpu = finding("gpu_thermal", Layer.INFRASTRUCTURE, "gpu.temperature", 0, host="gpu-1")
    assert suggest("gpu_thermal", gpu, None, [gpu], previous_healthy=True).action == "drain_gpu"
    db = finding("vectordb_degradation", Layer.DATA, "vectordb.segments", 0, host="milvus-0")
    assert suggest("vectordb_degradation", db, None, [db],
                   previous_healthy=True).action == "compact"
    kv = finding("serving_saturation", Layer.SERVING, "serving.kv_cache.usage", 0, host="g")
    assert suggest("serving_saturation", kv, None, [kv],
                   previous_healthy=True).action == "scale_out"
