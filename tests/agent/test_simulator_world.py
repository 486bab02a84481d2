"""The randomised world (issue 16): deterministic per seed, spans and metrics as real tools
send them, rolling deploys, vLLM restarts and routine power capping, ground truth."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import decode_metrics_request, decode_trace_request
from strata.agent.model import Incident, SpanRecord, Suggestion
from strata.agent.simulator.scenario import Injection
from strata.agent.simulator.score import score_incidents
from strata.agent.simulator.stack import SimBatch
from strata.agent.simulator.world import BANDS, World, plan_world
from strata.agent.simulator.world_sim import WorldSimulator
from strata.agent.units import HOUR_NS, MINUTE_NS

from tests.sim_data import START_NS

POLICY = IngestPolicy(salt="test")
SEED = 3


def world(seed: int = SEED) -> World:
    return plan_world(seed, start_ns=START_NS + 8 * HOUR_NS)


def spans_of(batches: Iterable[SimBatch]) -> list[SpanRecord]:
    return [s for b in batches for s in decode_trace_request(
        b.traces.SerializeToString(), is_json=False, policy=POLICY).spans]


def first(w: World, kind: str) -> Injection:
    return next(i for i in w.injections if i.kind == kind)


def test_same_seed_same_world_and_bytes() -> None:
    """A seed fixes the plan and every byte sent; another seed draws another world."""
    a, b = world(), world()
    assert a == b
    assert world(SEED + 1).injections != a.injections
    t = first(a, "traffic_surge").start_ns
    one = list(WorldSimulator(a, start_ns=t).batches(t + 5 * MINUTE_NS))
    two = list(WorldSimulator(b, start_ns=t).batches(t + 5 * MINUTE_NS))
    assert [x.traces.SerializeToString() for x in one] == [
        y.traces.SerializeToString() for y in two]
    assert [x.metrics.SerializeToString() for x in one] == [
        y.metrics.SerializeToString() for y in two]


def test_worlds_cover_the_bands_and_kinds() -> None:
    """Every seed has a service in each of the first three bands and every fault kind."""
    for seed in (1, 2, 3):
        w = world(seed)
        assert {BANDS[s.band] for s in w.services} >= set(BANDS[:3])
        kinds = {i.kind for i in w.injections}
        assert kinds >= {"token_deploy", "tool_deploy", "gpu_thermal", "segment_explosion",
                         "benign_deploy", "traffic_surge", "vllm_restart", "slow_request",
                         "power_capping"}
        assert kinds & {"model_deploy", "slow_deploy"}


def test_spans_carry_current_genai_conventions() -> None:
    """Chat, tool, embeddings and vector-DB spans with the attributes real tools set."""
    w = world()
    t = START_NS + 8 * HOUR_NS + 6 * HOUR_NS
    spans = spans_of(WorldSimulator(w, start_ns=t).batches(t + 30 * MINUTE_NS))
    by_op: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        by_op.setdefault(s.operation, []).append(s)
    for chat in by_op["chat"]:
        assert chat.provider
        assert chat.request_model
        assert chat.response_model
        assert chat.input_tokens
        assert chat.attributes["server.address"]
        assert chat.attributes["server.port"] in (443, 8000)
    assert all(s.attributes["gen_ai.tool.name"] for s in by_op["execute_tool"])
    assert all(s.request_model == "text-embedding-3-small" for s in by_op["embeddings"])
    db = [s for s in spans if s.attributes.get("db.system.name") == "weaviate"]
    assert db
    assert all(s.attributes["db.operation.name"] == "query" for s in db)
    assert by_op["invoke_agent"]
    roots = [s for s in spans if s.parent_span_id is None]
    assert {s.kind for s in roots} == {"server", "internal"}
    for s in spans:
        assert s.service_version
        assert s.resource["service.instance.id"]
        assert s.host


def test_tool_deploy_fails_one_tool_with_a_new_error_type() -> None:
    """After the bad deploy the broken tool fails fast with an error.type never seen before."""
    w = world()
    fault = first(w, "tool_deploy")
    mid = fault.start_ns + (fault.end_ns - fault.start_ns) // 2
    spans = spans_of(WorldSimulator(w, start_ns=mid).batches(mid + 30 * MINUTE_NS))
    calls = [s for s in spans if s.service == fault.service
             and s.attributes.get("gen_ai.tool.name") == fault.tool
             and s.service_version == fault.new_version]
    failed = [s for s in calls if s.error_type == fault.error_type]
    assert calls
    assert failed
    assert all(s.status == "error" and s.end_unix_nano - s.start_unix_nano < 0.05e9
               for s in failed)


def test_rolling_deploy_mixes_versions_for_minutes() -> None:
    """During a rollout some pods run the old version and some the new, each its own pod."""
    w = world()
    deploy = max((i for i in w.injections if i.kind.endswith("deploy")),
                 key=lambda i: w.service(i.service or "").rate_per_min)
    svc = w.service(deploy.service or "")
    rollout = next(r for r in svc.rollouts if r.version == deploy.new_version)
    assert 2 * MINUTE_NS <= rollout.duration_ns <= 8 * MINUTE_NS
    mid = rollout.time_ns + rollout.duration_ns // 2
    assert {svc.version_at(mid, p)[0] for p in range(svc.pods)} == {
        deploy.old_version, deploy.new_version}
    spans = spans_of(WorldSimulator(w, start_ns=rollout.time_ns).batches(
        rollout.time_ns + rollout.duration_ns))
    pods = {(s.service_version, s.resource["service.instance.id"]) for s in spans
            if s.service == svc.name}
    assert {v for v, _ in pods} == {deploy.old_version, deploy.new_version}
    assert len({p for _, p in pods}) == len(pods)  # a pod runs one version


def metric_points(batches: Iterable[SimBatch], name: str) -> list[tuple[int, int, float, str]]:
    """(time, start time, value, service.instance.id) of every point of metric *name*."""
    out = []
    for b in batches:
        request = ExportMetricsServiceRequest.FromString(b.metrics.SerializeToString())
        for rm in request.resource_metrics:
            instance = next(kv.value.string_value for kv in rm.resource.attributes
                            if kv.key == "service.instance.id")
            for m in (m for sm in rm.scope_metrics for m in sm.metrics if m.name == name):
                points = m.sum.data_points if m.WhichOneof("data") == "sum" else \
                    m.gauge.data_points
                out.extend((p.time_unix_nano, p.start_time_unix_nano, p.as_double, instance)
                           for p in points)
    return out


def test_vllm_restart_resets_counters_after_a_scrape_gap() -> None:
    """A restart: scrapes fail (up 0, nothing else), then counters restart from zero with a
    new start time."""
    w = world()
    restart = first(w, "vllm_restart")
    assert restart.gpu is not None
    instance = f"{restart.gpu.server}:8000"
    batches = list(WorldSimulator(w, start_ns=restart.start_ns - 10 * MINUTE_NS).batches(
        restart.end_ns + 5 * MINUTE_NS))
    prompt = [p for p in metric_points(batches, "vllm:prompt_tokens_total") if p[3] == instance]
    up = [p for p in metric_points(batches, "up") if p[3] == instance]
    assert [v for t, _, v, _ in up if restart.start_ns <= t < restart.end_ns] == \
        [0.0] * ((restart.end_ns - restart.start_ns) // MINUTE_NS)
    assert not [t for t, *_ in prompt if restart.start_ns <= t < restart.end_ns]
    before = [p for p in prompt if p[0] < restart.start_ns]
    after = [p for p in prompt if p[0] >= restart.end_ns]
    assert before[-1][2] > after[0][2]  # reset
    assert before[-1][1] < after[0][1] == after[0][0]  # new start time: the first scrape
    assert [v for _, _, v, _ in after] == sorted(v for _, _, v, _ in after)
    samples = decode_metrics_request(batches[0].metrics.SerializeToString(),
                                     is_json=False).samples
    assert {"serving.tokens.prompt", "serving.requests.finished"} <= {
        s.canonical for s in samples}


def test_routine_power_capping_sets_the_bit_without_slowing_clocks() -> None:
    """At the daily peak a datacenter GPU sits at its power limit with the SW power-cap bit
    set, clocks as usual; at night the bit is clear."""
    w = world()
    cap = first(w, "power_capping")
    assert cap.gpu is not None
    gpu = next(g for g in w.gpus if g.spec == cap.gpu)
    mid = cap.start_ns + (cap.end_ns - cap.start_ns) // 2
    night = mid - 12 * HOUR_NS if mid - 12 * HOUR_NS >= w.start_ns else mid + 12 * HOUR_NS

    def dcgm(t: int) -> dict[str, list[float]]:
        batches = list(WorldSimulator(w, start_ns=t).batches(t + 5 * MINUTE_NS))
        samples = [s for b in batches for s in decode_metrics_request(
            b.metrics.SerializeToString(), is_json=False).samples if s.device == gpu.spec.uuid]
        out: dict[str, list[float]] = {}
        for s in samples:
            out.setdefault(s.canonical or s.name, []).append(s.value)
        return out

    peak, calm = dcgm(mid), dcgm(night)
    assert all(int(v) & 0x4 for v in peak["gpu.clock_event_reasons"])
    assert not any(int(v) & 0x4 for v in calm["gpu.clock_event_reasons"])
    assert all(gpu.power_limit_w - 4 <= v <= gpu.power_limit_w for v in peak["gpu.power.draw"])
    assert min(peak["gpu.clock.sm"]) > 0.97 * max(calm["gpu.clock.sm"])
    assert cap.is_decoy


def test_ground_truth_and_scoring() -> None:
    """Deploy faults expect a rollback to the previous version; decoys expect nothing; an
    incident on the right service and kind matches, a side effect is secondary, anything
    else is false."""
    w = world()
    expected = w.expected()
    assert len(expected) == sum(not i.is_decoy for i in w.injections)
    fault = first(w, "token_deploy")
    truth = next(e for e in expected if e.start_ns == fault.start_ns)
    assert (truth.kind, truth.service) == ("cost_regression", fault.service)
    assert truth.rollback is not None
    assert (truth.rollback.from_version, truth.rollback.to_version) == (
        fault.new_version, fault.old_version)
    thermal = next(e for e in expected if e.kind == "gpu_thermal")

    def incident(kind: str, service: str | None, host: str | None, start: int) -> Incident:
        return Incident(f"i{kind}{start}", kind, "model", service, host, "open", "warning",
                        start, start + 5 * MINUTE_NS, kind, (), None,
                        Suggestion("rollback", "", truth.rollback))

    score = score_incidents([
        incident("cost_regression", fault.service, None, fault.start_ns + 3 * MINUTE_NS),
        incident("latency_regression", None, thermal.host, thermal.start_ns),
        incident("gpu_power_throttle", None, thermal.host, thermal.start_ns),
    ], expected)
    (match,) = score.matches
    assert match.start_ok
    assert match.rollback_ok
    assert match.expected is truth
    assert [i.kind for i in score.secondary] == ["latency_regression"]
    assert [i.kind for i in score.false] == ["gpu_power_throttle"]


def test_high_band_service_lives_around_its_bad_deploy() -> None:
    """A >10/s service sends only inside its window, which holds its deploy and rollback."""
    w = plan_world(SEED, start_ns=START_NS + 8 * HOUR_NS, high_band=True)
    (svc,) = [s for s in w.services if BANDS[s.band] == ">10/s"]
    assert svc.live is not None
    (fault,) = [i for i in w.injections if i.service == svc.name]
    assert svc.live[0] + 50 * MINUTE_NS <= fault.start_ns < fault.end_ns <= svc.live[1]
    assert fault.kind in ("token_deploy", "slow_deploy")
    outside = list(WorldSimulator(w, start_ns=svc.live[0] - 2 * MINUTE_NS).batches(svc.live[0]))
    inside = list(WorldSimulator(w, start_ns=svc.live[0]).batches(svc.live[0] + MINUTE_NS))
    assert not [s for s in spans_of(outside) if s.service == svc.name]
    roots = [s for s in spans_of(inside) if s.service == svc.name and s.parent_span_id is None]
    assert len(roots) > 10 * 60 * 0.4  # the daily curve's trough is x0.4
