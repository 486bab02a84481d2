"""Simulated telemetry for the console tests: a 4-service stack with one cost regression.

A deploy of ``rag-api`` that makes answers 2.5x longer (so cost per request rises) goes out
six hours before the end of the data and is still running there. The telemetry goes to a
live agent over OTLP/HTTP, the same path an SDK uses, and ``POST /api/v1/analyze`` turns it
into incidents.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from strata.agent.simulator.scenario import Injection, bump_minor
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.units import HOUR_NS, MINUTE_NS

PROTOBUF_GZIP = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
STEPS_PER_REQUEST = 120


@dataclass(frozen=True)
class Scenario:
    service: str
    old_version: str
    new_version: str
    deploy_ns: int
    rollback_ns: int
    end_ns: int


def send_scenario(otlp_endpoint: str, *, end_ns: int, hours: float = 20.0,
                  seed: int = 11) -> Scenario:
    """Send *hours* of telemetry ending at *end_ns* (with the injected regression)."""
    topology = default_topology(4)
    spec = topology.services[0]
    end_ns = end_ns // MINUTE_NS * MINUTE_NS
    # Still running at the end of the data, so its incident is open (and can be acked).
    deploy_ns, rollback_ns = end_ns - 6 * HOUR_NS, end_ns + HOUR_NS
    new_version = bump_minor(spec.version)
    injection = Injection("cost_deploy", deploy_ns, rollback_ns, service=spec.name,
                          old_version=spec.version, new_version=new_version, token_factor=2.5)
    simulator = Simulator(seed, start_ns=end_ns - int(hours * HOUR_NS), topology=topology,
                          injections=[injection])
    traces, metrics, steps = ExportTraceServiceRequest(), ExportMetricsServiceRequest(), 0
    with httpx.Client(base_url=otlp_endpoint, timeout=120) as client:
        for batch in simulator.batches(end_ns):
            traces.resource_spans.extend(batch.traces.resource_spans)
            metrics.resource_metrics.extend(batch.metrics.resource_metrics)
            steps += 1
            if steps == STEPS_PER_REQUEST or simulator.now_ns >= end_ns:
                for path, request in (("/v1/traces", traces), ("/v1/metrics", metrics)):
                    body = gzip.compress(request.SerializeToString(), 1)
                    client.post(path, content=body, headers=PROTOBUF_GZIP).raise_for_status()
                traces, metrics = ExportTraceServiceRequest(), ExportMetricsServiceRequest()
                steps = 0
    return Scenario(spec.name, spec.version, new_version, deploy_ns, rollback_ns, end_ns)
