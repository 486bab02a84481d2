"""What the active injections do to the simulated stack at one instant.

Pure: ``effects_at(injections, t_ns, topology)`` folds every injection active at *t_ns*
(deploys also leave their version behind) into per-service, per-GPU and per-collection
multipliers that the trace and metric generators apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strata.agent.simulator.scenario import Injection
from strata.agent.simulator.topology import Topology
from strata.agent.units import MINUTE_NS


@dataclass(slots=True)
class ServiceEffect:
    version: str
    model: str
    token_factor: float = 1.0
    extra_latency_s: float = 0.0
    tool_error_rate: float = 0.0
    rate_factor: float = 1.0
    slow_request: bool = False  # the step's first request is 10x slower


@dataclass(slots=True)
class GPUState:
    temp_add: float = 0.0
    fan_override: float | None = None
    thermal: bool = False
    power_cap: bool = False
    xid: int = 0
    down: bool = False
    clock_factor: float = 1.0
    latency_factor: float = 1.0
    ttft_factor: float = 1.0
    queue_s: float = 0.0
    kv: float | None = None
    waiting: float | None = None


@dataclass(slots=True)
class Effects:
    services: dict[str, ServiceEffect]
    gpus: dict[str, GPUState]
    collections: dict[tuple[str, str, int], float] = field(default_factory=dict)
    segments: dict[tuple[str, str, int], float] = field(default_factory=dict)


def effects_at(injections: tuple[Injection, ...], t_ns: int, topology: Topology) -> Effects:
    """Fold the injections active at *t_ns* into multipliers for the generators."""
    effects = Effects(
        services={s.name: ServiceEffect(s.version, s.model) for s in topology.services},
        gpus={g.uuid: GPUState() for g in topology.gpus},
    )
    for inj in sorted(injections, key=lambda i: i.start_ns):
        if inj.kind == "benign_deploy" and inj.service and t_ns >= inj.start_ns:
            effects.services[inj.service].version = inj.new_version or ""
        if not inj.active(t_ns):
            continue
        elapsed = (t_ns - inj.start_ns) // MINUTE_NS + 1  # minutes, counting the first
        if inj.service is not None:
            _service_effect(effects.services[inj.service], inj, elapsed)
        if inj.gpu is not None:
            _gpu_effect(effects.gpus[inj.gpu.uuid], inj, elapsed)
        if inj.collection is not None:
            key = (inj.collection.host, inj.collection.collection, inj.collection.shard)
            seg = 1.0 + min(5.0, elapsed / 3.0)
            effects.segments[key] = seg
            effects.collections[key] = 1.0 + max(0.0, seg - 2.0) * 0.9
    return effects


def _service_effect(svc: ServiceEffect, inj: Injection, elapsed: int) -> None:
    if inj.kind in ("cost_deploy", "latency_deploy"):
        svc.version = inj.new_version or svc.version
        svc.model = inj.new_model or svc.model
        svc.token_factor *= inj.token_factor
        if inj.kind == "latency_deploy":
            svc.extra_latency_s += 4.0
    elif inj.kind == "token_spike":
        svc.token_factor *= inj.token_factor
    elif inj.kind == "tool_errors":
        svc.tool_error_rate = 0.35
    elif inj.kind == "traffic_surge":
        svc.rate_factor = 3.0
    elif inj.kind == "slow_requests":
        svc.slow_request = elapsed % 7 == 1  # one isolated slow request every 7 minutes


def _gpu_effect(gpu: GPUState, inj: Injection, elapsed: int) -> None:
    if inj.kind == "gpu_thermal":
        gpu.temp_add = min(30.0, 8.0 * elapsed)
        gpu.fan_override = 100.0
        gpu.thermal = elapsed >= 2
    elif inj.kind == "fan_failure":
        gpu.fan_override = 0.0
        gpu.temp_add = min(32.0, 3.0 * elapsed)
        gpu.thermal = gpu.temp_add >= 20.0
    elif inj.kind == "gpu_power":
        gpu.power_cap = True
        gpu.clock_factor = 0.75
        gpu.latency_factor = 1.35
    elif inj.kind == "xid":
        gpu.xid = 79
        gpu.down = True
    elif inj.kind == "kv_saturation":
        gpu.kv = min(0.99, 0.6 + 0.1 * elapsed)
        gpu.waiting = min(60.0, 8.0 * elapsed)
        gpu.ttft_factor = 1.0 + gpu.waiting / 10.0
        gpu.queue_s = gpu.waiting * 0.08
    if gpu.thermal:
        gpu.clock_factor = 0.6
        gpu.latency_factor = 1.8
