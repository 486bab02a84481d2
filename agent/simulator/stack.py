"""A simulated GenAI stack producing real OTLP protobuf, for tests, benchmarks and the demo.

Each step (one minute of event time by default) yields an ``ExportTraceServiceRequest`` (one
trace per request: an orchestration root span, a retrieval span against Milvus or Qdrant, a
chat span, and a tool span where the service has one) and an
``ExportMetricsServiceRequest`` with DCGM GPU fields, vLLM serving gauges and vector-DB
gauges under the names ``strata.agent.ingest.metric_names`` knows. Traffic follows a daily cycle
with
Poisson noise; ``Injection``s change what the stack does while active. Deterministic: the
same seed and injections give byte-identical requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from strata.agent.simulator.effects import Effects, GPUState, ServiceEffect, effects_at
from strata.agent.simulator.metrics import add_metrics
from strata.agent.simulator.scenario import Injection
from strata.agent.simulator.topology import ServiceSpec, Topology, default_topology
from strata.agent.units import MINUTE_NS

_S = 1_000_000_000
_OK = Status(code=Status.STATUS_CODE_OK)
_ERROR = Status(code=Status.STATUS_CODE_ERROR)


@dataclass(frozen=True, slots=True)
class SimBatch:
    """What the stack exported during one step starting at ``time_ns``."""

    time_ns: int
    traces: ExportTraceServiceRequest
    metrics: ExportMetricsServiceRequest


def kv_list(attributes: Mapping[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        else:
            any_value = AnyValue(string_value=str(value))
        out.append(KeyValue(key=key, value=any_value))
    return out


def diurnal_load(t_ns: int) -> float:
    """Traffic multiplier in [0.35, 1.0]: lowest at 04:00 UTC, highest at 16:00 UTC."""
    hour = (t_ns / (3600 * _S)) % 24
    return 0.35 + 0.65 * 0.5 * (1 - math.cos(2 * math.pi * (hour - 4) / 24))


class Simulator:
    """Drives a simulated stack through event time.

    Args:
        seed: seeds every random draw (traffic, latencies, tokens, ids).
        start_ns: event time of the first step.
        step_ns: length of one step; every signal is emitted once per step.
        topology: services, GPUs and collections (``default_topology()`` when None).
        injections: faults and decoys to apply (see ``strata.agent.simulator.scenario``).
    """

    def __init__(
        self,
        seed: int,
        *,
        start_ns: int,
        step_ns: int = MINUTE_NS,
        topology: Topology | None = None,
        injections: Sequence[Injection] = (),
    ) -> None:
        self.topology = topology or default_topology()
        self.injections = tuple(injections)
        self.step_ns = step_ns
        self.now_ns = start_ns
        self._rng = np.random.default_rng(seed)
        self._energy_mj = {g.uuid: 1.0e9 for g in self.topology.gpus}

    def batches(self, end_ns: int) -> Iterator[SimBatch]:
        """Steps from the current time up to *end_ns* (exclusive), advancing the clock."""
        while self.now_ns < end_ns:
            yield self.step()

    def step(self) -> SimBatch:
        """One step of telemetry; advances the simulator's event time by ``step_ns``."""
        t = self.now_ns
        effects = effects_at(self.injections, t, self.topology)
        load = diurnal_load(t)
        traces = ExportTraceServiceRequest()
        for spec in self.topology.services:
            self._service_traces(traces, spec, t, load, effects)
        metrics = ExportMetricsServiceRequest()
        add_metrics(metrics, self.topology, t + self.step_ns // 2, load, effects, self._rng,
                    self._energy_mj, self.step_ns)
        self.now_ns = t + self.step_ns
        return SimBatch(t, traces, metrics)

    # -- traces ---------------------------------------------------------------------------

    def _service_traces(
        self, request: ExportTraceServiceRequest, spec: ServiceSpec, t: int, load: float,
        effects: Effects,
    ) -> None:
        svc = effects.services[spec.name]
        rng = self._rng
        minutes = self.step_ns / MINUTE_NS
        n = int(rng.poisson(spec.rate_per_min * load * svc.rate_factor * minutes))
        if n == 0:
            return
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(kv_list({
            "service.name": spec.name, "service.version": svc.version, "team": spec.team,
            "host.name": f"app-{spec.name}", "deployment.environment.name": "prod",
        }))
        scope = rs.scope_spans.add()
        scope.scope.name = "strata.simulator"
        gpu = effects.gpus.get(spec.gpu.uuid) if spec.gpu is not None else None
        offsets = np.sort(rng.integers(0, self.step_ns, size=n))
        for k, offset in enumerate(offsets):
            slow = svc.slow_request and k == 0
            scope.spans.extend(self._trace(spec, t + int(offset), load, svc, gpu, effects, slow))

    def _trace(
        self, spec: ServiceSpec, start: int, load: float, svc: ServiceEffect, gpu: GPUState | None,
        effects: Effects, slow: bool,
    ) -> list[Span]:
        rng = self._rng
        trace_id = rng.bytes(16)
        root_id = rng.bytes(8)
        spans: list[Span] = []
        # retrieval (data layer)
        coll = spec.collection
        coll_factor = effects.collections.get((coll.host, coll.collection, coll.shard), 1.0)
        ret_s = 0.03 * float(rng.lognormal(0.0, 0.25)) * coll_factor
        cursor = start + int(0.004 * _S)
        spans.append(otlp_span(trace_id, rng.bytes(8), root_id, f"retrieval {coll.collection}",
                           cursor, int(ret_s * _S), {
                               "gen_ai.operation.name": "retrieval",
                               "db.system.name": coll.system,
                               "db.collection.name": coll.collection,
                               "db.shard": str(coll.shard),
                               "server.address": coll.host,
                           }, kind=Span.SPAN_KIND_CLIENT))
        cursor += int(ret_s * _S) + int(0.002 * _S)
        # chat (model layer)
        model = svc.model
        in_tok = max(50, int(rng.normal(spec.input_tokens, spec.input_tokens * 0.12)))
        out_tok = max(5, int(spec.output_tokens * svc.token_factor
                             * float(rng.lognormal(0.0, 0.25))))
        error = rng.random() < 0.003
        if spec.gpu is not None and gpu is not None:
            if gpu.down:
                error, chat_s = True, 0.05
            else:
                ttft = (0.08 + 0.06 * load) * gpu.ttft_factor + gpu.queue_s
                chat_s = (ttft + out_tok * 0.018 * float(rng.lognormal(0.0, 0.15))) \
                    * gpu.latency_factor
        else:
            chat_s = (0.35 + out_tok * 0.012) * float(rng.lognormal(0.0, 0.18))
        if slow:
            chat_s *= 10.0
        chat_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": spec.provider,
            "gen_ai.request.model": model, "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": in_tok,
        }
        if not error:
            chat_attrs["gen_ai.usage.output_tokens"] = out_tok
        else:
            chat_attrs["error.type"] = "GPU_UNAVAILABLE" if gpu is not None and gpu.down \
                else "RateLimitError"
        if spec.gpu is not None:
            chat_attrs["host.name"] = spec.gpu.host
            chat_attrs["gpu.id"] = spec.gpu.uuid
            chat_attrs["server.address"] = spec.gpu.server
        spans.append(otlp_span(trace_id, rng.bytes(8), root_id, f"chat {model}", cursor,
                           int(chat_s * _S), chat_attrs, kind=Span.SPAN_KIND_CLIENT, error=error))
        cursor += int(chat_s * _S) + int(0.002 * _S)
        any_error = error
        # tool step (orchestration layer)
        if spec.tool is not None:
            tool_s = 0.25 * float(rng.lognormal(0.0, 0.3))
            tool_error = rng.random() < 0.005 + svc.tool_error_rate
            if tool_error:
                tool_s = 0.8 * float(rng.lognormal(0.0, 0.2))
            attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool",
                                     "gen_ai.tool.name": spec.tool}
            if tool_error:
                attrs["error.type"] = "ToolTimeout"
            spans.append(otlp_span(trace_id, rng.bytes(8), root_id, f"execute_tool {spec.tool}",
                               cursor, int(tool_s * _S), attrs, error=tool_error))
            cursor += int(tool_s * _S)
            any_error = any_error or tool_error
        end = cursor + int((0.01 + svc.extra_latency_s * float(rng.lognormal(0.0, 0.1))) * _S)
        spans.insert(0, otlp_span(trace_id, root_id, b"", f"{spec.name} workflow", start,
                              end - start, {"gen_ai.operation.name": "invoke_workflow"},
                              kind=Span.SPAN_KIND_SERVER, error=any_error))
        return spans


def otlp_span(
    trace_id: bytes, span_id: bytes, parent: bytes, name: str, start: int, duration: int,
    attributes: Mapping[str, Any], *, kind: Any = Span.SPAN_KIND_INTERNAL, error: bool = False,
) -> Span:
    return Span(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=kind,
        start_time_unix_nano=start, end_time_unix_nano=start + max(duration, 1000),
        attributes=kv_list(attributes), status=_ERROR if error else _OK,
    )


__all__ = ["SimBatch", "Simulator", "diurnal_load", "kv_list", "otlp_span"]
