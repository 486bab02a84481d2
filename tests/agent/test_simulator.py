"""The simulator: real, deterministic OTLP across five layers, injections and ground truth."""

from __future__ import annotations

from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import decode_metrics_request, decode_trace_request
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import (
    DECOY_KINDS,
    INCIDENT_KINDS,
    Injection,
    expected_incident,
    plan_scenario,
)
from strata.agent.simulator.stack import Simulator, diurnal_load
from strata.agent.simulator.topology import default_topology
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS, MINUTE_NS

from tests.sim_data import START_NS

POLICY = IngestPolicy(salt="test")


def test_same_seed_same_bytes() -> None:
    """Two simulators with one seed export byte-identical requests."""
    a = list(Simulator(3, start_ns=START_NS).batches(START_NS + 5 * MINUTE_NS))
    b = list(Simulator(3, start_ns=START_NS).batches(START_NS + 5 * MINUTE_NS))
    assert [x.traces.SerializeToString() for x in a] == [y.traces.SerializeToString() for y in b]
    assert [x.metrics.SerializeToString() for x in a] == [
        y.metrics.SerializeToString() for y in b]


def test_traces_decode_into_a_chain_across_layers() -> None:
    """Each trace is workflow root -> retrieval (data) -> chat (model) [-> tool]."""
    batch = Simulator(4, start_ns=START_NS + 14 * HOUR_NS).step()
    spans = decode_trace_request(batch.traces.SerializeToString(), is_json=False,
                                 policy=POLICY).spans
    assert spans
    by_trace: dict[str, list] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    for chain in by_trace.values():
        (root,) = [s for s in chain if s.parent_span_id is None]
        assert (root.operation, root.layer) == ("invoke_workflow", "orchestration")
        layers = {s.operation: s.layer for s in chain}
        assert layers["retrieval"] == "data"
        assert layers["chat"] == "model"
    chat = [s for s in spans if s.operation == "chat"]
    assert all(s.input_tokens and s.request_model and s.provider for s in chat)
    hosted = [s for s in chat if s.provider == "vllm"]
    assert hosted
    assert all(s.host and str(s.attributes["gpu.id"]).startswith("GPU-")
                          for s in hosted)
    retrieval = [s for s in spans if s.operation == "retrieval"]
    assert {s.attributes["db.system.name"] for s in retrieval} == {"milvus", "qdrant"}


def test_metrics_normalise_to_known_canonical_names() -> None:
    """DCGM, vLLM and vector-DB points map to Strata's canonical names and layers."""
    batch = Simulator(4, start_ns=START_NS).step()
    samples = decode_metrics_request(batch.metrics.SerializeToString(), is_json=False).samples
    canon = {(s.canonical, str(s.layer)) for s in samples}
    for expected in [("gpu.temperature", "infrastructure"), ("gpu.energy.consumed",
                     "infrastructure"), ("gpu.clock_event_reasons", "infrastructure"),
                     ("gpu.fan.speed", "infrastructure"), ("gpu.xid", "infrastructure"),
                     ("serving.requests.waiting", "serving"),
                     ("serving.kv_cache.usage", "serving"), ("serving.ttft", "serving"),
                     ("vectordb.segments", "data"), ("vectordb.query.latency", "data")]:
        assert expected in canon
    gpu = [s for s in samples if s.canonical == "gpu.temperature"]
    assert all(s.host and s.device and s.device.startswith("GPU-") for s in gpu)


def test_traffic_follows_the_day() -> None:
    """Peak at 16:00 UTC, trough at 04:00 UTC."""
    assert diurnal_load(START_NS + 16 * HOUR_NS) == 1.0
    assert round(diurnal_load(START_NS + 4 * HOUR_NS), 6) == 0.35


def test_scenario_covers_every_kind_with_truth_for_incidents_only() -> None:
    """Every incident kind and decoy is scheduled once; decoys expect nothing."""
    plan = plan_scenario(default_topology(6), 9, start_ns=START_NS)
    assert sorted(i.kind for i in plan) == sorted(INCIDENT_KINDS + DECOY_KINDS)
    for injection in plan:
        truth = expected_incident(injection)
        assert (truth is None) == injection.is_decoy
        if truth is not None and truth.action == "rollback":
            assert truth.rollback is not None
            assert truth.rollback.to_version == \
                injection.old_version


def test_deploys_become_deployments_with_previous_versions(tmp_path) -> None:
    """A version change and its rollback are recorded by the same change tracker as ingest."""
    topology = default_topology(2)
    spec = topology.services[0]
    plan = [Injection("latency_deploy", START_NS + 20 * MINUTE_NS, START_NS + 40 * MINUTE_NS,
                      service=spec.name, old_version=spec.version, new_version="2.0.0")]
    store = DuckDBStore(tmp_path / "d.duckdb")
    load_batches(store, Simulator(1, start_ns=START_NS, topology=topology,
                                  injections=plan).batches(START_NS + HOUR_NS))
    rows = store.cursor().execute(
        "SELECT version, previous_version FROM deployments WHERE service = ? "
        "AND previous_version IS NOT NULL ORDER BY time_ns", [spec.name]).fetchall()
    assert rows == [("2.0.0", spec.version), (spec.version, "2.0.0")]
    store.close()
