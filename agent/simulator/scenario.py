"""What the simulator injects, and the ground truth the detectors are scored against.

An ``Injection`` is one fault (or decoy) active over ``[start_ns, end_ns)`` on one target.
``expected_incident`` says what Strata should report for it: kind, layer, service or host,
cause layer/signal, the suggested action and, for regressions after a deploy, the exact
rollback. Decoys (benign deploy, traffic surge, isolated slow requests) expect nothing.
``plan_scenario`` lays injections out one after another over the simulated period (the
fixed six-service stack); ``strata.agent.simulator.world`` draws harder, randomised ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from strata.agent.model import Rollback
from strata.agent.simulator.topology import PRICIER_MODEL, CollectionSpec, GPUSpec, Topology
from strata.agent.units import HOUR_NS, MINUTE_NS

INCIDENT_KINDS = (
    "cost_deploy", "gpu_thermal", "tool_errors", "segment_explosion", "latency_deploy",
    "xid", "kv_saturation", "token_spike", "fan_failure", "gpu_power",
)
DECOY_KINDS = ("benign_deploy", "traffic_surge", "slow_requests")
# The randomised world's deploy-caused regressions (effects live in the new version).
DEPLOY_KINDS = ("token_deploy", "model_deploy", "slow_deploy", "tool_deploy")


@dataclass(frozen=True, slots=True)
class Injection:
    """One injected fault or decoy, active on its target over ``[start_ns, end_ns)``.

    Deploy kinds switch *service* to ``new_version`` (and ``new_model`` when set) at
    ``start_ns`` and back to ``old_version`` at ``end_ns`` (a rollback); ``benign_deploy``
    keeps its new version. ``token_factor`` multiplies output tokens (token spike, or a
    deploy that makes answers longer). The world's kinds carry their drawn effect size in
    ``factor`` (input-token or latency multiplier, failure rate, surge, slow-request
    seconds) and a tool deploy its broken ``tool`` and new ``error_type``.
    """

    kind: str
    start_ns: int
    end_ns: int
    service: str | None = None
    gpu: GPUSpec | None = None
    collection: CollectionSpec | None = None
    old_version: str | None = None
    new_version: str | None = None
    new_model: str | None = None
    token_factor: float = 1.0
    factor: float = 1.0
    tool: str | None = None
    error_type: str | None = None

    @property
    def is_decoy(self) -> bool:
        return self.kind not in _TRUTH

    def active(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns


@dataclass(frozen=True, slots=True)
class ExpectedIncident:
    """Ground truth for one injection: what a correct incident looks like."""

    kind: str
    layer: str
    service: str | None
    host: str | None
    start_ns: int
    end_ns: int
    cause_layer: str
    cause_signal: str
    action: str
    rollback: Rollback | None = None
    # (kind, service or host) of incidents this fault also legitimately causes (latency on
    # the services a hot GPU serves, cost after a switch to a pricier model): the scorer
    # counts them apart, neither as a match nor as a false incident.
    secondary: tuple[tuple[str, str], ...] = ()


# injection kind -> (incident kind, layer, cause layer, cause signal, action)
_TRUTH = {
    "cost_deploy": ("cost_regression", "model", "model", "deployment", "rollback"),
    "latency_deploy": ("latency_regression", "orchestration", "orchestration", "deployment",
                       "rollback"),
    "tool_errors": ("error_spike", "orchestration", "orchestration", "error_rate", "investigate"),
    "token_spike": ("token_spike", "model", "model", "tokens.output_per_request", "investigate"),
    "gpu_thermal": ("gpu_thermal", "infrastructure", "infrastructure", "gpu.temperature",
                    "drain_gpu"),
    "gpu_power": ("gpu_power_throttle", "infrastructure", "infrastructure", "gpu.throttle.power",
                  "raise_power_limit"),
    "xid": ("gpu_fault", "infrastructure", "infrastructure", "gpu.xid", "drain_gpu"),
    "fan_failure": ("gpu_fan_failure", "infrastructure", "infrastructure", "gpu.fan.speed",
                    "drain_gpu"),
    "segment_explosion": ("vectordb_degradation", "data", "data", "vectordb.segments",
                          "compact"),
    "kv_saturation": ("serving_saturation", "serving", "serving", "serving.kv_cache.usage",
                      "scale_out"),
    "token_deploy": ("cost_regression", "model", "model", "deployment", "rollback"),
    "model_deploy": ("latency_regression", "orchestration", "orchestration", "deployment",
                     "rollback"),
    "slow_deploy": ("latency_regression", "orchestration", "orchestration", "deployment",
                    "rollback"),
    "tool_deploy": ("error_spike", "orchestration", "orchestration", "deployment", "rollback"),
}


def expected_incident(injection: Injection) -> ExpectedIncident | None:
    """The incident *injection* should raise, or None for a decoy."""
    truth = _TRUTH.get(injection.kind)
    if truth is None:
        return None
    kind, layer, cause_layer, cause_signal, action = truth
    host = None
    if injection.gpu is not None:
        host = injection.gpu.host
    elif injection.collection is not None:
        host = injection.collection.host
    rollback = None
    if action == "rollback" and injection.service and injection.new_version:
        rollback = Rollback(injection.service, injection.new_version,
                            injection.old_version or "")
    service = injection.service if layer in ("model", "orchestration") else None
    return ExpectedIncident(kind, layer, service, host, injection.start_ns, injection.end_ns,
                            cause_layer, cause_signal, action, rollback)


def bump_minor(version: str) -> str:
    """``1.4.0`` -> ``1.5.0``."""
    parts = version.split(".")
    parts[1] = str(int(parts[1]) + 1)
    return ".".join(parts)


def plan_scenario(
    topology: Topology,
    seed: int,
    *,
    start_ns: int,
    warmup_ns: int = 3 * HOUR_NS,
    spacing_ns: int = 2 * HOUR_NS,
    duration_ns: int = 50 * MINUTE_NS,
    kinds: tuple[str, ...] = INCIDENT_KINDS + DECOY_KINDS,
) -> list[Injection]:
    """One injection per slot, after a warm-up, in a seed-shuffled order of *kinds*.

    Targets are drawn from those that fit the kind (a pricier model only exists for hosted
    services; GPU faults need a GPU that serves a service). Deterministic in *seed*.
    """
    rng = np.random.default_rng(seed)
    order = list(kinds)
    rng.shuffle(order)
    versions = {s.name: s.version for s in topology.services}
    used_gpus = [g for g in topology.gpus if topology.on_gpu(g)]
    used_collections = [c for c in topology.collections if topology.on_collection(c)]
    hosted = [s for s in topology.services if s.model in PRICIER_MODEL]
    tooled = [s for s in topology.services if s.tool is not None]
    plan: list[Injection] = []
    for slot, kind in enumerate(order):
        start = start_ns + warmup_ns + slot * spacing_ns
        end = start + duration_ns
        if kind in ("gpu_thermal", "gpu_power", "xid", "fan_failure", "kv_saturation"):
            gpu = used_gpus[int(rng.integers(len(used_gpus)))]
            plan.append(Injection(kind, start, end, gpu=gpu))
        elif kind == "segment_explosion":
            coll = used_collections[int(rng.integers(len(used_collections)))]
            plan.append(Injection(kind, start, end, collection=coll))
        elif kind in ("cost_deploy", "latency_deploy", "benign_deploy"):
            pool = hosted if kind == "cost_deploy" else list(topology.services)
            spec = pool[int(rng.integers(len(pool)))]
            old = versions[spec.name]
            new = bump_minor(old)
            model = None
            factor = 1.0
            if kind == "cost_deploy":
                if rng.random() < 0.5:
                    model = PRICIER_MODEL[spec.model]
                else:
                    factor = 2.5
            if kind == "benign_deploy":
                versions[spec.name] = new
            plan.append(Injection(kind, start, end, service=spec.name, old_version=old,
                                  new_version=new, new_model=model, token_factor=factor))
        elif kind == "tool_errors":
            spec = tooled[int(rng.integers(len(tooled)))]
            plan.append(Injection(kind, start, end, service=spec.name))
        elif kind in ("token_spike", "traffic_surge"):
            pool = hosted if kind == "traffic_surge" else list(topology.services)
            spec = pool[int(rng.integers(len(pool)))]
            plan.append(Injection(kind, start, end, service=spec.name,
                                  token_factor=3.0 if kind == "token_spike" else 1.0))
        elif kind == "slow_requests":
            spec = topology.services[int(rng.integers(len(topology.services)))]
            plan.append(Injection(kind, start, end, service=spec.name))
        else:
            msg = f"unknown injection kind {kind!r}"
            raise ValueError(msg)
    return plan


def scenario_end_ns(plan: list[Injection], tail_ns: int = 2 * HOUR_NS) -> int:
    """Where a run over *plan* should stop: after the last injection and a quiet tail."""
    return max(i.end_ns for i in plan) + tail_ns
