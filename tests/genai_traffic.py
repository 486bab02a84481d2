"""GenAI request traffic shaped as real instrumentation sends it, independent of the simulator.

A ``Service`` sends Poisson requests at a fixed rate: an ``invoke_agent`` root span (server),
a ``chat`` span (client, OTel GenAI attributes, ``server.address`` of the provider) and an
``execute_tool`` span, from pods (``service.instance.id``) that each run one
``service.version``. A ``Deploy`` rolls pods to a new version one by one over a few minutes
(versions mix meanwhile) and may change the model, the tokens per request, the latency, or
break the tool with a new ``error.type``. Everything is deterministic in the seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_factory import key_values, make_span

MINUTE_NS = 60 * 1_000_000_000
PROVIDER = {"gpt-4o-mini": ("openai", "api.openai.com", 1.0),
            "gpt-4o": ("openai", "api.openai.com", 2.0)}  # model -> provider, host, slowness


@dataclass(frozen=True)
class Deploy:
    at_ns: int
    version: str
    model: str | None = None  # switch the chat model
    input_factor: float = 1.0  # input tokens per request x
    tool_failure: float = 0.0  # share of tool calls failing with a new error.type
    rollout_ns: int = 4 * MINUTE_NS


@dataclass
class Service:
    name: str
    rate_per_min: float
    version: str = "1.0.0"
    model: str = "gpt-4o-mini"
    pods: int = 2
    deploys: list[Deploy] = field(default_factory=list)
    surge: tuple[int, int, float] | None = None  # (start, end, factor) of the request rate
    tool_outage: tuple[int, int, float] | None = None  # (start, end, share failing), no deploy

    def _pod_deploy(self, pod: int, t_ns: int) -> Deploy | None:
        """The deploy pod *pod* runs at *t_ns* (pods roll over one after another)."""
        current = None
        for d in self.deploys:
            if t_ns >= d.at_ns + d.rollout_ns * pod // max(1, self.pods - 1):
                current = d
        return current

    def arrivals(self, start_ns: int, end_ns: int, rng: np.random.Generator) -> np.ndarray:
        rate_ns = self.rate_per_min / MINUTE_NS
        times, t = [], float(start_ns)
        while True:
            factor = 1.0
            if self.surge and self.surge[0] <= t < self.surge[1]:
                factor = self.surge[2]
            t += rng.exponential(1.0 / (rate_ns * factor))
            if t >= end_ns:
                return np.asarray(times, dtype=np.int64)
            times.append(int(t))


def traffic(services: list[Service], start_ns: int, end_ns: int, seed: int,
            batch: int = 3000) -> Iterator[ExportTraceServiceRequest]:
    """OTLP trace requests for every service's requests in ``[start_ns, end_ns)``."""
    rng = np.random.default_rng(seed)
    for svc in services:
        groups: dict[tuple[str, int], list[Span]] = {}
        for t in svc.arrivals(start_ns, end_ns, rng):
            pod = int(rng.integers(svc.pods))
            deploy = svc._pod_deploy(pod, int(t))
            version = deploy.version if deploy else svc.version
            spans = groups.setdefault((version, pod), [])
            spans.extend(_request(svc, deploy, int(t), rng))
            if len(spans) >= batch:
                yield _request_of(svc, version, pod, spans)
                spans.clear()
        for (version, pod), spans in groups.items():
            if spans:
                yield _request_of(svc, version, pod, spans)


def _request(svc: Service, deploy: Deploy | None, t: int, rng: np.random.Generator
             ) -> list[Span]:
    model = (deploy.model if deploy and deploy.model else None) or svc.model
    provider, host, slowness = PROVIDER[model]
    trace, root_id = os.urandom(16), os.urandom(8)
    factor = deploy.input_factor if deploy else 1.0
    tokens_in = int(rng.lognormal(np.log(900 * factor), 0.3))
    tokens_out = int(rng.lognormal(np.log(180), 0.4))
    chat_ns = int(rng.lognormal(np.log(1.2e9 * slowness), 0.25))
    failing = deploy.tool_failure if deploy else 0.0
    if svc.tool_outage and svc.tool_outage[0] <= t < svc.tool_outage[1]:
        failing = svc.tool_outage[2]
    failed = rng.random() < failing
    tool_ns = int(rng.lognormal(np.log(2e8), 0.3)) if not failed else 3_000_000
    chat = make_span(
        trace_id=trace, parent_span_id=root_id, name=f"chat {model}", start_ns=t + 5_000_000,
        duration_ns=chat_ns, kind=Span.SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
            "gen_ai.request.model": model, "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out,
            "server.address": host, "server.port": 443})
    tool_attrs: dict[str, object] = {"gen_ai.operation.name": "execute_tool",
                                     "gen_ai.tool.name": "web_search"}
    if failed:
        tool_attrs["error.type"] = "SearchQuotaExceeded"
    tool = make_span(trace_id=trace, parent_span_id=root_id, name="execute_tool web_search",
                     start_ns=t + 10_000_000 + chat_ns, duration_ns=tool_ns,
                     kind=Span.SPAN_KIND_INTERNAL, attributes=tool_attrs, error=failed)
    root = make_span(trace_id=trace, span_id=root_id, name=f"invoke_agent {svc.name}",
                     start_ns=t, duration_ns=chat_ns + tool_ns + 20_000_000,
                     kind=Span.SPAN_KIND_SERVER,
                     attributes={"gen_ai.operation.name": "invoke_agent",
                                 "gen_ai.agent.name": svc.name})
    return [root, chat, tool]


def _request_of(svc: Service, version: str, pod: int, spans: list[Span]
                ) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(key_values({
        "service.name": svc.name, "service.version": version,
        "service.instance.id": f"{svc.name}-{pod}", "host.name": f"node-{pod}"}))
    rs.scope_spans.add().spans.extend(spans)
    return request
