"""Metric points of the simulated stack: DCGM GPU fields, vLLM gauges, vector-DB gauges.

Names and units are the ones real exporters use (``strata.agent.ingest.metric_names`` maps them to
layers
and canonical names). A GPU that has fallen off the bus reports only its Xid; its vLLM
server reports nothing (missing is absent, never zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Metric,
    NumberDataPoint,
    ScopeMetrics,
)
from strata.agent.simulator.effects import Effects, GPUState
from strata.agent.simulator.topology import CollectionSpec, GPUSpec, Topology

_THERMAL_BITS = 0x20 | 0x40  # SW + HW thermal slowdown (NVML clocks event reasons)
_POWER_CAP_BIT = 0x4
_POWER_LIMIT_W = 400.0
_SM_CLOCK_MHZ = 1410.0


def _labels(labels: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in labels.items()]


def _gauge(scope: ScopeMetrics, name: str, unit: str, value: float, t: int,
           labels: Mapping[str, str], *, monotonic: bool = False) -> None:
    metric = Metric(name=name, unit=unit)
    point = NumberDataPoint(time_unix_nano=t, as_double=float(value), attributes=_labels(labels))
    if monotonic:
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
        metric.sum.data_points.append(point)
    else:
        metric.gauge.data_points.append(point)
    scope.metrics.append(metric)


def _scope(request: ExportMetricsServiceRequest, resource: Mapping[str, str]) -> ScopeMetrics:
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(_labels(resource))
    scope: ScopeMetrics = rm.scope_metrics.add()
    scope.scope.name = "strata.simulator"
    return scope


def add_metrics(
    request: ExportMetricsServiceRequest, topology: Topology, t: int, load: float,
    effects: Effects, rng: np.random.Generator, energy_mj: dict[str, float], step_ns: int,
) -> None:
    """Append one point per series for time *t* to *request* (energy counters advance)."""
    for gpu in topology.gpus:
        state = effects.gpus[gpu.uuid]
        n_services = len(topology.on_gpu(gpu))
        _gpu_metrics(request, gpu, state, t, load, n_services, rng, energy_mj, step_ns)
        if n_services and not state.down:
            _vllm_metrics(request, gpu, state, t, load * n_services, rng)
    for coll in topology.collections:
        _vectordb_metrics(request, coll, effects, t, load, rng)


def _gpu_metrics(
    request: ExportMetricsServiceRequest, gpu: GPUSpec, state: GPUState, t: int, load: float,
    n_services: int, rng: np.random.Generator, energy_mj: dict[str, float], step_ns: int,
) -> None:
    scope = _scope(request, {"service.name": "dcgm-exporter", "host.name": gpu.host})
    labels = {"gpu": str(gpu.index), "UUID": gpu.uuid, "Hostname": gpu.host,
              "modelName": "NVIDIA A100-SXM4-80GB"}
    _gauge(scope, "DCGM_FI_DEV_XID_ERRORS", "1", float(state.xid), t, labels)
    if state.down:
        return
    util = float(np.clip(15 + 30 * load * max(n_services, 0.3) + rng.normal(0, 3), 0, 100))
    temp = 42 + 0.3 * util + rng.normal(0, 0.8) + state.temp_add
    fan = state.fan_override if state.fan_override is not None else float(
        np.clip(30 + 0.8 * (temp - 40) + rng.normal(0, 1), 0, 100))
    if state.power_cap:
        power = _POWER_LIMIT_W + rng.normal(0, 1.0)
    else:
        power = 60 + 2.6 * util + rng.normal(0, 5)
    energy_mj[gpu.uuid] += power * (step_ns / 1e9) * 1000.0
    reasons = (_THERMAL_BITS if state.thermal else 0) | (_POWER_CAP_BIT if state.power_cap else 0)
    clock = _SM_CLOCK_MHZ * state.clock_factor + rng.normal(0, 5)
    _gauge(scope, "DCGM_FI_DEV_GPU_TEMP", "Cel", round(temp, 1), t, labels)
    _gauge(scope, "DCGM_FI_DEV_FAN_SPEED", "%", round(fan, 1), t, labels)
    _gauge(scope, "DCGM_FI_DEV_POWER_USAGE", "W", round(power, 2), t, labels)
    _gauge(scope, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "mJ", round(energy_mj[gpu.uuid]), t,
           labels, monotonic=True)
    _gauge(scope, "DCGM_FI_DEV_GPU_UTIL", "%", round(util, 1), t, labels)
    _gauge(scope, "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "1", float(reasons), t, labels)
    _gauge(scope, "DCGM_FI_DEV_SM_CLOCK", "MHz", round(clock), t, labels)
    _gauge(scope, "DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "W", _POWER_LIMIT_W, t, labels)


def _vllm_metrics(
    request: ExportMetricsServiceRequest, gpu: GPUSpec, state: GPUState, t: int, load: float,
    rng: np.random.Generator,
) -> None:
    scope = _scope(request, {"service.name": gpu.server, "host.name": gpu.host})
    labels = {"model_name": "llama-3.1-8b-instruct", "engine": "0"}
    waiting = state.waiting if state.waiting is not None else float(rng.poisson(0.5 * load))
    kv = state.kv if state.kv is not None else float(
        np.clip(0.2 + 0.3 * load + rng.normal(0, 0.03), 0, 1))
    ttft = (0.08 + 0.06 * load) * state.ttft_factor * float(rng.lognormal(0, 0.08)) \
        + state.queue_s
    _gauge(scope, "vllm:num_requests_running", "{request}", float(rng.poisson(6 * load)), t,
           labels)
    _gauge(scope, "vllm:num_requests_waiting", "{request}", waiting, t, labels)
    _gauge(scope, "vllm:kv_cache_usage_perc", "1", round(kv, 4), t, labels)
    _gauge(scope, "vllm:time_to_first_token_seconds", "s", round(ttft, 4), t, labels)


def _vectordb_metrics(
    request: ExportMetricsServiceRequest, coll: CollectionSpec, effects: Effects, t: int,
    load: float, rng: np.random.Generator,
) -> None:
    key = (coll.host, coll.collection, coll.shard)
    scope = _scope(request, {"service.name": coll.system, "host.name": coll.host})
    # Compaction keeps the segment count in a slow sawtooth around ten.
    phase = (t / 1e9 / 3600 / 6) % 1.0
    segments = (8 + 5 * phase + int(rng.integers(-1, 2))) * effects.segments.get(key, 1.0)
    latency_ms = 12 * (1 + 0.2 * load) * effects.collections.get(key, 1.0) \
        * float(rng.lognormal(0, 0.06))
    if coll.system == "milvus":
        labels = {"collection_name": coll.collection, "shard": str(coll.shard),
                  "segment_state": "Flushed"}
        _gauge(scope, "milvus_datacoord_segment_num", "{segment}", math.floor(segments), t,
               labels)
        _gauge(scope, "milvus_proxy_sq_latency", "ms", round(latency_ms, 3), t,
               {"collection_name": coll.collection, "shard": str(coll.shard)})
    else:
        labels = {"collection": coll.collection, "shard": str(coll.shard)}
        _gauge(scope, "qdrant.shard.segments", "{segment}", math.floor(segments), t, labels)
        _gauge(scope, "rest_responses_duration_seconds", "s", round(latency_ms / 1000, 5), t,
               labels)
