"""Drive a planned ``World`` through event time as real OTLP protobuf.

``WorldSimulator(world).batches(end_ns)`` yields one ``SimBatch`` per minute: the spans of
every request that started in it (``world_traces``) and one scrape of every Prometheus
target (``world_metrics``), with what the active injections do folded in. Deterministic:
the same world gives byte-identical requests. ``strata.agent.simulator.load.load_batches``
writes them into a store through the real codec.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from strata.agent.simulator.stack import SimBatch
from strata.agent.simulator.world import World
from strata.agent.simulator.world_metrics import GPUConditions, MetricMaker
from strata.agent.simulator.world_traces import Conditions, Served, TraceMaker
from strata.agent.units import MINUTE_NS

THERMAL_RAMP_NS = 6 * MINUTE_NS
SEGMENT_RAMP_NS = 15 * MINUTE_NS


class WorldSimulator:
    def __init__(self, world: World, *, step_ns: int = MINUTE_NS,
                 start_ns: int | None = None) -> None:
        """*start_ns* starts later than the world (tests look at one moment; counters and
        draws then start there)."""
        self.world = world
        self.step_ns = step_ns
        self.now_ns = world.start_ns if start_ns is None else start_ns
        rng = np.random.default_rng([world.seed, 17])
        self._traces = TraceMaker(world.seed, rng)
        self._metrics = MetricMaker(world, rng)
        self._pending_slow: dict[str, float] = {}

    def batches(self, end_ns: int | None = None) -> Iterator[SimBatch]:
        """Steps from the current time up to *end_ns* (the world's end when None)."""
        end = self.world.end_ns if end_ns is None else end_ns
        while self.now_ns < end:
            yield self.step()

    def step(self) -> SimBatch:
        t, step = self.now_ns, self.step_ns
        cond, infra = self._conditions(t)
        served: dict[str, Served] = {}
        traces = ExportTraceServiceRequest()
        self._traces.step(traces, self.world.services, t, step, cond, served)
        self._pending_slow = cond.slow_request_s  # a slow request not yet sent waits
        metrics = ExportMetricsServiceRequest()
        self._metrics.step(metrics, t, step, infra, served)
        self.now_ns = t + step
        return SimBatch(t, traces, metrics)

    def _conditions(self, t: int) -> tuple[Conditions, GPUConditions]:
        cond = Conditions(slow_request_s=dict(self._pending_slow))
        infra = GPUConditions()
        for inj in self.world.injections:
            if inj.kind == "slow_request" and t <= inj.start_ns < t + self.step_ns:
                cond.slow_request_s[inj.service or ""] = inj.factor
            if not inj.active(t):
                continue
            elapsed = t - inj.start_ns
            if inj.kind == "traffic_surge" and inj.service:
                cond.surge[inj.service] = inj.factor
            elif inj.kind == "gpu_thermal" and inj.gpu is not None:
                progress = min(1.0, (elapsed + self.step_ns) / THERMAL_RAMP_NS)
                infra.thermal[inj.gpu.uuid] = (progress, inj.factor)
                cond.gpu_slowdown[inj.gpu.server] = 1 + 0.7 * progress
            elif inj.kind == "segment_explosion" and inj.collection is not None:
                progress = min(1.0, (elapsed + self.step_ns) / SEGMENT_RAMP_NS)
                factor = 1 + (inj.factor - 1) * progress
                infra.segments[inj.collection.collection] = factor
                cond.shard_slowdown[inj.collection.collection] = 1 + 0.5 * (factor - 1)
            elif inj.kind == "vllm_restart" and inj.gpu is not None:
                infra.restarting.add(inj.gpu.server)
        return cond, infra


__all__ = ["WorldSimulator"]
