"""Spans of the randomised world as current OTel GenAI instrumentation sends them.

One trace per request, its shape by the service's chain:

- ``rag``: a SERVER root ``POST /v1/answer`` -> ``embeddings`` -> a Weaviate query span
  (``db.system.name``, ``db.operation.name``, ``db.collection.name``) -> ``chat``;
- ``agent``: ``invoke_agent`` root -> ``chat`` -> ``execute_tool`` (``gen_ai.tool.name``;
  ``error.type`` and status ERROR on failure) -> ``chat``;
- ``chat``: a SERVER root ``POST /v1/chat`` -> ``chat``.

``chat`` spans carry ``gen_ai.operation.name``, ``gen_ai.provider.name``, request and
response model, input/output token usage and ``server.address``/``server.port``. Resources
carry ``service.name``, ``service.version``, ``service.instance.id`` (the pod), ``host.name``
(its node). Every request routes to a random pod, whose version follows the rollouts.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status
from strata.agent.simulator.world import Service, Traits

_S = 1_000_000_000
_OK = Status(code=Status.STATUS_CODE_UNSET)
_ERROR = Status(code=Status.STATUS_CODE_ERROR)
_CLIENT, _SERVER, _INTERNAL = Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER, \
    Span.SPAN_KIND_INTERNAL
_EMBEDDING_MODEL = "text-embedding-3-small"
_RESPONSE_SUFFIX = {"gpt-4o-mini": "-2024-07-18", "gpt-4o": "-2024-08-06"}


@functools.lru_cache(maxsize=4096)
def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _attrs(items: dict[str, Any]) -> list[KeyValue]:
    return [_kv(k, v) for k, v in items.items()]


@dataclass(slots=True)
class Served:
    """What a vLLM server did in one step, for its Prometheus counters and histograms."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    ttft_s: list[float] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Conditions:
    """What the active faults and decoys do during one step."""

    surge: dict[str, float] = field(default_factory=dict)  # service -> traffic factor
    gpu_slowdown: dict[str, float] = field(default_factory=dict)  # GPU host|index -> latency x
    shard_slowdown: dict[str, float] = field(default_factory=dict)  # class -> query latency x
    slow_request_s: dict[str, float] = field(default_factory=dict)  # service -> seconds


class Draws:
    """Scalar draws served from blocks of a numpy Generator (per-call numpy scalars cost
    microseconds each; a step draws thousands)."""

    def __init__(self, rng: np.random.Generator, block: int = 8192) -> None:
        self.rng = rng
        self._block = block
        self._u: list[float] = []
        self._z: list[float] = []
        self._b = b""

    def random(self) -> float:
        if not self._u:
            self._u = self.rng.random(self._block).tolist()
        return self._u.pop()

    def normal(self, mean: float, sd: float) -> float:
        if not self._z:
            self._z = self.rng.standard_normal(self._block).tolist()
        return mean + sd * self._z.pop()

    def lognormal(self, sd: float) -> float:
        return math.exp(self.normal(0.0, sd))

    def integers(self, high: int) -> int:
        return int(self.random() * high)

    def bytes(self, n: int) -> bytes:
        if len(self._b) < n:
            self._b = self.rng.bytes(self._block * 8)
        out, self._b = self._b[:n], self._b[n:]
        return out


def node_of(seed: int, pod: str) -> str:
    digest = hashlib.blake2s(f"{seed}{pod}".encode(), digest_size=2).digest()
    return f"ip-10-0-{digest[0] % 8}-{digest[1]}.ec2.internal"


class TraceMaker:
    """Builds one step of spans for every service (see the module docstring)."""

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        self.seed = seed
        self.rng = rng
        self.draw = Draws(rng)
        self._pods: dict[tuple[str, int, int], str] = {}

    def step(self, request: ExportTraceServiceRequest, services: tuple[Service, ...],
             t: int, step_ns: int, cond: Conditions, served: dict[str, Served]) -> None:
        rng = self.rng
        for svc in services:
            if svc.live is not None and not svc.live[0] <= t < svc.live[1]:
                continue
            rate = svc.rate_per_min * svc.load(t) * cond.surge.get(svc.name, 1.0)
            n = int(rng.poisson(rate * step_ns / 60e9))
            if n == 0:
                continue
            scopes: dict[str, ScopeSpans] = {}
            offsets = np.sort(rng.integers(0, step_ns, size=n))
            pods = rng.integers(0, svc.pods, size=n)
            for offset, pod in zip(offsets.tolist(), pods.tolist(), strict=True):
                start = t + offset
                version, index = svc.version_at(start, pod)
                name = self._pods.get((svc.name, index, pod)) or self._pods.setdefault(
                    (svc.name, index, pod), svc.pod_name(index, pod, self.seed))
                scope = scopes.get(name)
                if scope is None:
                    scope = self._scope(request, svc, version, name)
                    scopes[name] = scope
                slow = cond.slow_request_s.pop(svc.name, 0.0)
                scope.spans.extend(self._trace(svc, svc.traits[version], start, cond, served,
                                               slow))

    def _scope(self, request: ExportTraceServiceRequest, svc: Service, version: str,
               pod: str) -> ScopeSpans:
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(_attrs({
            "service.name": svc.name, "service.version": version, "service.instance.id": pod,
            "k8s.pod.name": pod, "k8s.namespace.name": "prod", "host.name": node_of(
                self.seed, pod), "deployment.environment.name": "prod", "team": svc.name,
            "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "python",
        }))
        scope: ScopeSpans = rs.scope_spans.add()
        scope.scope.name = "opentelemetry.instrumentation.openai_v2"
        return scope

    def _trace(self, svc: Service, traits: Traits, start: int, cond: Conditions,
               served: dict[str, Served], slow_s: float) -> list[Span]:
        rng = self.draw
        trace_id = rng.bytes(16)
        root_id = rng.bytes(8)
        spans: list[Span] = []
        cursor = start + int(0.003 * _S)
        if svc.chain == "rag":
            cursor = self._embeddings(spans, trace_id, root_id, cursor)
            cursor = self._query(spans, trace_id, root_id, cursor, svc, cond)
            cursor, error = self._chat(spans, trace_id, root_id, cursor, svc, traits, cond,
                                       served, svc.output_tokens, slow_s)
        elif svc.chain == "agent":
            cursor, error = self._chat(spans, trace_id, root_id, cursor, svc, traits, cond,
                                       served, 40.0, 0.0)
            tool = svc.tools[rng.integers(len(svc.tools))]
            cursor = self._tool(spans, trace_id, root_id, cursor, tool, traits)
            cursor, error2 = self._chat(spans, trace_id, root_id, cursor, svc, traits, cond,
                                        served, svc.output_tokens, slow_s)
            error = error or error2
        else:
            cursor, error = self._chat(spans, trace_id, root_id, cursor, svc, traits, cond,
                                       served, svc.output_tokens, slow_s)
        end = cursor + int(0.004 * _S)
        if svc.chain == "agent":
            root = _span(trace_id, root_id, b"", f"invoke_agent {svc.name}", start, end, {
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": svc.name,
                "gen_ai.provider.name": traits.provider}, _INTERNAL, "500" if error else None)
        else:
            route = "/v1/answer" if svc.chain == "rag" else "/v1/chat"
            root = _span(trace_id, root_id, b"", f"POST {route}", start, end, {
                "http.request.method": "POST", "http.route": route,
                "http.response.status_code": 500 if error else 200},
                _SERVER, "500" if error else None)
        spans.insert(0, root)
        return spans

    def _embeddings(self, spans: list[Span], trace_id: bytes, parent: bytes, t: int) -> int:
        rng = self.draw
        duration = int(0.06 * float(rng.lognormal(0.3)) * _S)
        spans.append(_span(trace_id, rng.bytes(8), parent, f"embeddings {_EMBEDDING_MODEL}", t,
                           t + duration, {
                               "gen_ai.operation.name": "embeddings",
                               "gen_ai.provider.name": "openai",
                               "gen_ai.request.model": _EMBEDDING_MODEL,
                               "gen_ai.response.model": _EMBEDDING_MODEL,
                               "gen_ai.usage.input_tokens": 8 + rng.integers(52),
                               "server.address": "api.openai.com", "server.port": 443},
                           _CLIENT))
        return t + duration + int(0.001 * _S)

    def _query(self, spans: list[Span], trace_id: bytes, parent: bytes, t: int, svc: Service,
               cond: Conditions) -> int:
        rng = self.draw
        cls = svc.shard.collection if svc.shard else "Docs"
        factor = cond.shard_slowdown.get(cls, 1.0)
        duration = int(0.018 * factor * float(rng.lognormal(0.25)) * _S)
        spans.append(_span(trace_id, rng.bytes(8), parent, f"query {cls}", t, t + duration, {
            "db.system.name": "weaviate", "db.operation.name": "query",
            "db.collection.name": cls, "db.response.returned_rows": 5,
            "server.address": "weaviate-0", "server.port": 8080}, _CLIENT))
        return t + duration + int(0.001 * _S)

    def _tool(self, spans: list[Span], trace_id: bytes, parent: bytes, t: int, tool: str,
              traits: Traits) -> int:
        rng = self.draw
        attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": tool, "gen_ai.tool.type": "function"}
        error = None
        if tool == traits.failing_tool and rng.random() < traits.fail_rate:
            error, seconds = traits.error_type, 0.005 + 0.03 * rng.random()
        elif rng.random() < 0.004:  # the usual background of timeouts
            error, seconds = "TimeoutError", 5.0 + rng.random()
        else:
            seconds = 0.15 * float(rng.lognormal(0.4))
        duration = int(seconds * _S)
        spans.append(_span(trace_id, rng.bytes(8), parent, f"execute_tool {tool}", t,
                           t + duration, attrs, _INTERNAL, error))
        return t + duration + int(0.001 * _S)

    def _chat(self, spans: list[Span], trace_id: bytes, parent: bytes, t: int, svc: Service,
              traits: Traits, cond: Conditions, served: dict[str, Served], out_mean: float,
              slow_s: float) -> tuple[int, bool]:
        rng = self.draw
        self_hosted = traits.server.startswith("vllm-")
        in_tok = max(20, int(rng.normal(traits.input_tokens, traits.input_tokens * 0.15)))
        out_tok = max(3, int(out_mean * float(rng.lognormal(0.35))))
        gpu_factor = cond.gpu_slowdown.get(traits.server, 1.0) if self_hosted else 1.0
        ttft = (0.09 if self_hosted else 0.35) * float(rng.lognormal(0.2))
        seconds = (ttft + out_tok * 0.012 * float(rng.lognormal(0.15))) \
            * traits.latency_factor * gpu_factor
        seconds = max(seconds, slow_s)
        error = rng.random() < 0.003
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": traits.provider,
            "gen_ai.request.model": traits.model,
            "gen_ai.response.model": traits.model + _RESPONSE_SUFFIX.get(traits.model, ""),
            "server.address": traits.server, "server.port": 8000 if self_hosted else 443,
            "gen_ai.usage.input_tokens": in_tok,
        }
        if not error:
            attrs["gen_ai.usage.output_tokens"] = out_tok
        duration = int(seconds * _S)
        spans.append(_span(trace_id, rng.bytes(8), parent, f"chat {traits.model}", t,
                           t + duration, attrs, _CLIENT,
                           ("InternalServerError" if self_hosted else "RateLimitError")
                           if error else None))
        if self_hosted:
            stats = served.setdefault(traits.server, Served())
            stats.prompt_tokens += in_tok
            stats.generation_tokens += 0 if error else out_tok
            stats.ttft_s.append(ttft * traits.latency_factor * gpu_factor)
            stats.e2e_s.append(seconds)
        return t + duration + int(0.002 * _S), error


def _span(trace_id: bytes, span_id: bytes, parent: bytes, name: str, start: int, end: int,
          attributes: dict[str, Any], kind: Any, error_type: str | None = None) -> Span:
    if error_type is not None:
        attributes = {**attributes, "error.type": error_type}
    return Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=kind,
                start_time_unix_nano=start, end_time_unix_nano=max(end, start + 1000),
                attributes=_attrs(attributes), status=_ERROR if error_type else _OK)


__all__ = ["Conditions", "Served", "TraceMaker", "node_of"]
