"""Metrics of the randomised world as an OTel Collector's Prometheus receiver pushes them.

One scrape per target per step: DCGM-exporter (per GPU, labels ``gpu``, ``UUID``,
``device``, ``modelName``, ``Hostname``), vLLM (per GPU's server, label ``model_name``) and
Weaviate (per class/shard). Resources carry ``service.name`` (the job),
``service.instance.id`` (``host:port``), ``server.address``/``server.port`` and ``host.name``
(as a resource-detection step adds it). Counters are cumulative Sums (``is_monotonic``)
and histograms cumulative, both with the ``start_time_unix_nano`` the receiver gives them:
the first scrape, and the first scrape after a reset. ``up`` is 0 for a failed scrape (a
restarting vLLM server), which exports nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ScopeMetrics,
)
from strata.agent.simulator.world import GPU, World
from strata.agent.simulator.world_traces import Served

_THERMAL_BITS = 0x20 | 0x40  # SW + HW thermal slowdown
_POWER_CAP_BIT = 0x4  # SW power cap
_MAX_CLOCK = {"NVIDIA A100-SXM4-80GB": 1410.0, "NVIDIA H100 80GB HBM3": 1980.0}
# vLLM's buckets (COMPONENTS.md): TTFT 1 ms .. 2560 s, e2e 0.3 .. 7680 s
TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
               5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
              120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
QUERY_MS_BOUNDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


@functools.lru_cache(maxsize=1024)
def _label_list(items: tuple[tuple[str, str], ...]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in items]


def _labels(labels: Mapping[str, str]) -> list[KeyValue]:
    return _label_list(tuple(labels.items()))


@dataclass(slots=True)
class _Histogram:
    bounds: tuple[float, ...]
    counts: np.ndarray = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)

    def observe(self, values: Sequence[float]) -> None:
        if values:
            self.counts += np.bincount(np.searchsorted(self.bounds, values, side="left"),
                                       minlength=len(self.counts))
            self.total += float(sum(values))


@dataclass(slots=True)
class _Server:
    """A vLLM server's cumulative state since its last (re)start."""

    start_ns: int | None = None
    prompt: float = 0.0
    generated: float = 0.0
    finished: float = 0.0
    ttft: _Histogram = field(default_factory=lambda: _Histogram(TTFT_BOUNDS))
    e2e: _Histogram = field(default_factory=lambda: _Histogram(E2E_BOUNDS))


class _Scope:
    """The metrics of one scrape of one target."""

    def __init__(self, request: ExportMetricsServiceRequest, job: str, address: str, port: int,
                 t: int, host: str | None = None) -> None:
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(_labels({
            "service.name": job, "service.instance.id": f"{address}:{port}",
            "server.address": address, "server.port": str(port), "url.scheme": "http",
            "host.name": host or address}))
        self.scope: ScopeMetrics = rm.scope_metrics.add()
        self.scope.scope.name = "otelcol/prometheusreceiver"
        self.t = t

    def gauge(self, name: str, value: float, labels: Mapping[str, str], unit: str = "") -> None:
        metric = Metric(name=name, unit=unit)
        metric.gauge.data_points.append(NumberDataPoint(
            time_unix_nano=self.t, as_double=float(value), attributes=_labels(labels)))
        self.scope.metrics.append(metric)

    def counter(self, name: str, value: float, start: int, labels: Mapping[str, str]) -> None:
        metric = Metric(name=name)
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
        metric.sum.data_points.append(NumberDataPoint(
            start_time_unix_nano=start, time_unix_nano=self.t, as_double=float(value),
            attributes=_labels(labels)))
        self.scope.metrics.append(metric)

    def histogram(self, name: str, hist: _Histogram, start: int,
                  labels: Mapping[str, str]) -> None:
        metric = Metric(name=name)
        metric.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
        metric.histogram.data_points.append(HistogramDataPoint(
            start_time_unix_nano=start, time_unix_nano=self.t,
            count=int(hist.counts.sum(dtype=np.int64)),
            sum=hist.total, bucket_counts=hist.counts.tolist(),
            explicit_bounds=list(hist.bounds), attributes=_labels(labels)))
        self.scope.metrics.append(metric)


@dataclass(slots=True)
class GPUConditions:
    """Per step: thermal fault progress (0..1) and temperature rise per GPU UUID, vLLM
    servers in a restart gap, segment multipliers per Weaviate class."""

    thermal: dict[str, tuple[float, float]] = field(default_factory=dict)
    restarting: set[str] = field(default_factory=set)
    segments: dict[str, float] = field(default_factory=dict)


class MetricMaker:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.energy = {g.spec.uuid: float(rng.uniform(1e9, 5e9)) for g in world.gpus}
        self.energy_start: int | None = None
        self.servers = {g.spec.server: _Server() for g in world.gpus}
        self.queries = {s.collection: _Histogram(QUERY_MS_BOUNDS) for s in world.shards}
        self.query_start: int | None = None
        # DCGM-exporter renamed the field; a seed picks which one its exporter sends
        self.reasons_name = ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
                             "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS")[world.seed % 2]

    def step(self, request: ExportMetricsServiceRequest, t: int, step_ns: int,
             cond: GPUConditions, served: Mapping[str, Served]) -> None:
        scrape = t + step_ns // 4
        self.energy_start = self.energy_start or scrape
        self.query_start = self.query_start or scrape
        for host in sorted({g.spec.host for g in self.world.gpus}):
            scope = _Scope(request, "dcgm-exporter", host, 9400, scrape)
            for gpu in self.world.gpus:
                if gpu.spec.host == host:
                    self._dcgm(scope, gpu, scrape, step_ns, cond)
        for gpu in self.world.gpus:
            self._vllm(request, gpu, scrape, cond, served.get(gpu.spec.server, Served()))
        self._weaviate(request, scrape, cond)

    def _dcgm(self, scope: _Scope, gpu: GPU, t: int, step_ns: int, cond: GPUConditions) -> None:
        rng = self.rng
        labels = {"gpu": str(gpu.spec.index), "UUID": gpu.spec.uuid,
                  "device": f"nvidia{gpu.spec.index}", "modelName": gpu.model_name,
                  "Hostname": gpu.spec.host, "DCGM_FI_DRIVER_VERSION": "570.124.06"}
        util = float(np.clip(gpu.utilization(t) + rng.normal(0, 3), 0, 100))
        # the power controller caps the steady demand, not the noise of one reading
        capped = gpu.idle_w + gpu.watts_per_util * gpu.utilization(t) > gpu.power_limit_w
        demand = gpu.idle_w + gpu.watts_per_util * util + rng.normal(0, 4)
        power = gpu.power_limit_w - float(rng.uniform(0, 3)) if capped else \
            min(demand, gpu.power_limit_w - 3)
        progress, rise = cond.thermal.get(gpu.spec.uuid, (0.0, 0.0))
        temp = 34 + 0.38 * util + rise * progress + rng.normal(0, 0.7)
        reasons = (_POWER_CAP_BIT if capped else 0) | (_THERMAL_BITS if progress >= 0.5 else 0)
        clock = _MAX_CLOCK[gpu.model_name] * (1 - 0.35 * progress) + rng.normal(0, 4)
        self.energy[gpu.spec.uuid] += power * step_ns / 1e6  # mJ
        scope.gauge("DCGM_FI_DEV_GPU_TEMP", round(temp), labels)
        scope.gauge("DCGM_FI_DEV_POWER_USAGE", round(power, 3), labels)
        scope.counter("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", round(self.energy[gpu.spec.uuid]),
                      self.energy_start or t, labels)
        scope.gauge("DCGM_FI_DEV_GPU_UTIL", round(util), labels)
        scope.gauge("DCGM_FI_DEV_SM_CLOCK", round(clock), labels)
        scope.gauge("DCGM_FI_DEV_MEM_CLOCK", 1593.0, labels)
        scope.gauge("DCGM_FI_DEV_FB_USED", 71_000 + round(rng.normal(0, 50)), labels)
        scope.gauge("DCGM_FI_DEV_XID_ERRORS", 0.0, labels)
        scope.gauge(self.reasons_name, float(reasons), labels)

    def _vllm(self, request: ExportMetricsServiceRequest, gpu: GPU, t: int,
              cond: GPUConditions, served: Served) -> None:
        rng = self.rng
        name = gpu.spec.server
        scope = _Scope(request, "vllm", name, 8000, t, gpu.spec.host)
        if name in cond.restarting:  # the scrape fails; the restarted server starts from 0
            scope.gauge("up", 0.0, {})
            self.servers[name] = _Server()
            return
        state = self.servers[name]
        state.start_ns = state.start_ns or t
        progress, _ = cond.thermal.get(gpu.spec.uuid, (0.0, 0.0))
        util = gpu.utilization(t)
        # untraced traffic of the same server (other clients) keeps the counters moving
        background = int(rng.poisson(util / 5))
        slow = 1 + 0.8 * progress
        ttft = [*served.ttft_s, *(0.08 * slow * rng.lognormal(0, 0.25, background)).tolist()]
        e2e = [*served.e2e_s, *(2.5 * slow * rng.lognormal(0, 0.3, background)).tolist()]
        state.prompt += served.prompt_tokens + background * 900
        state.generated += served.generation_tokens + background * 220
        state.finished += len(served.e2e_s) + background
        state.ttft.observe(ttft)
        state.e2e.observe(e2e)
        labels = {"model_name": "meta-llama/Llama-3.1-8B-Instruct", "engine": "0"}
        scope.gauge("up", 1.0, {})
        scope.gauge("vllm:num_requests_running", float(rng.poisson(util / 8)), labels)
        scope.gauge("vllm:num_requests_waiting", float(rng.poisson(0.3 + 4 * progress)), labels)
        scope.gauge("vllm:kv_cache_usage_perc",
                    round(float(np.clip(0.15 + util / 200 + rng.normal(0, 0.02), 0, 1)), 4),
                    labels)
        scope.counter("vllm:prompt_tokens_total", state.prompt, state.start_ns, labels)
        scope.counter("vllm:generation_tokens_total", state.generated, state.start_ns, labels)
        scope.counter("vllm:request_success_total", state.finished, state.start_ns,
                      {**labels, "finished_reason": "stop"})
        scope.histogram("vllm:time_to_first_token_seconds", state.ttft, state.start_ns, labels)
        scope.histogram("vllm:e2e_request_latency_seconds", state.e2e, state.start_ns, labels)

    def _weaviate(self, request: ExportMetricsServiceRequest, t: int,
                  cond: GPUConditions) -> None:
        rng = self.rng
        scope = _Scope(request, "weaviate", "weaviate-0", 2112, t)
        for shard in self.world.shards:
            cls = shard.collection
            shard_name = f"{cls.lower()}Shard{shard.shard}"
            labels = {"strategy": "replace", "class_name": cls, "shard_name": shard_name,
                      "path": f"/var/lib/weaviate/{cls.lower()}/{shard_name}/lsm/objects"}
            phase = (t / 3.6e12 / 6) % 1.0  # compaction: a slow sawtooth
            factor = cond.segments.get(cls, 1.0)
            segments = (7 + 6 * phase + int(rng.integers(-1, 2))) * factor
            scope.gauge("lsm_active_segments", float(int(segments)), labels)
            scope.gauge("object_count", float(250_000 + t // 10**12 % 50_000),
                        {"class_name": cls, "shard_name": shard_name})
            hist = self.queries[cls]
            slow = 1 + 0.5 * (factor - 1)
            hist.observe((12 * slow * rng.lognormal(0, 0.3, int(rng.poisson(30)))).tolist())
            scope.histogram("queries_durations_ms", hist, self.query_start or t,
                            {"class_name": cls, "shard_name": shard_name,
                             "query_type": "get_graphql"})


__all__ = ["E2E_BOUNDS", "TTFT_BOUNDS", "GPUConditions", "MetricMaker"]
