"""A randomised GenAI stack for detection benchmarks (issue 16): the plan and its truth.

``plan_world(seed, start_ns=..., days=...)`` draws, deterministically in *seed*:

- services in four traffic bands (``BANDS``) with their own smooth daily curve (x0.4-1.6),
  pods (2-4 per version, each on a node), chains (RAG, agent with tools, plain chat), a
  hosted or self-hosted (vLLM on a GPU) model and a Weaviate shard for RAG;
- a deploy history: every deploy is a minor or patch bump rolled out pod by pod over 2-8
  minutes; what a version does lives in ``Traits`` (so versions mix during a rollout and a
  rollback removes the effect);
- faults with effect sizes drawn from ranges (input tokens +20-80%, a slower pricier model
  or a slower app x1.3-2.5, a tool failing fast on 10-40% of calls with a new ``error.type``
  for 30-120 min, GPU thermal throttling, a Weaviate segment explosion) and decoys that must
  stay silent (benign deploys, no-op deploys 10-30 min before an infrastructure fault, routine
  power capping at the daily peak, vLLM restarts, traffic surges x2-4, single 25-90 s requests).

``World.expected()`` is the ground truth for ``strata.agent.simulator.score``;
``strata.agent.simulator.world_sim.WorldSimulator`` turns the plan into OTLP.

Sizing (so that a seed stays within reach of Python): the third band is drawn at 10-15
requests/min instead of up to 600 (its hard end), and a >10/s service (10.5-12 requests/s,
two spans per request) only sends telemetry for 100 minutes around its deploy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from strata.agent.simulator.scenario import ExpectedIncident, Injection, expected_incident
from strata.agent.simulator.topology import CollectionSpec, GPUSpec
from strata.agent.units import HOUR_NS, MINUTE_NS

BANDS = ("<=1/min", "1-10/min", "10-600/min", ">10/s")
# requests/min at the daily mean, per band (see the module docstring for the caps)
BAND_RATES = ((0.5, 1.0), (1.0, 10.0), (10.0, 15.0), (630.0, 720.0))
HIGH_BAND_WINDOW_NS = 100 * MINUTE_NS
WARMUP_NS = 6 * HOUR_NS
TAIL_NS = 2 * HOUR_NS

# (provider, model, pricier/slower replacement, server.address)
_HOSTED = (("openai", "gpt-4o-mini", "gpt-4o", "api.openai.com"),
           ("anthropic", "claude-haiku-4-5", "claude-sonnet-4-5", "api.anthropic.com"))
SELF_HOSTED_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
_SELF_HOSTED_BIGGER = "meta-llama/Llama-3.1-70B-Instruct"
_NAMES = ("rag-api", "support-bot", "search-agent", "summarizer", "doc-qa", "triage-bot",
          "sales-copilot", "extractor")
_TOOLS = ("web_search", "crm_lookup", "sql_query", "calendar", "ticket_create")
_NEW_ERRORS = ("ToolSchemaError", "KeyError", "ValidationError", "AuthenticationError",
               "JSONDecodeError")
_CLASSES = ("Docs", "Tickets", "Products")
GPU_MODELS = ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3")


def band_of(rate_per_min: float) -> int:
    """The traffic band index of a daily-mean rate."""
    if rate_per_min <= 1.0:
        return 0
    if rate_per_min <= 10.0:
        return 1
    return 2 if rate_per_min <= 600.0 else 3


@dataclass(frozen=True, slots=True)
class Traits:
    """What one version of a service does."""

    provider: str
    model: str
    server: str  # server.address of the model endpoint
    input_tokens: float  # mean per chat call
    latency_factor: float = 1.0
    failing_tool: str | None = None
    fail_rate: float = 0.0
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Rollout:
    """``version`` replaces the pods one by one from ``time_ns`` over ``duration_ns``."""

    time_ns: int
    version: str
    duration_ns: int


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    rate_per_min: float  # daily mean
    amplitude: float  # daily curve: 1 + amplitude * cos(...), amplitude 0.45-0.6
    peak_hour: float
    chain: str  # "rag" | "agent" | "chat"
    pods: int
    tools: tuple[str, ...]
    gpu: GPUSpec | None  # self-hosted model served by vLLM on this GPU
    shard: CollectionSpec | None  # Weaviate class/shard a RAG chain queries
    output_tokens: float
    rollouts: tuple[Rollout, ...]  # the first is the version running at the start
    traits: Mapping[str, Traits] = field(hash=False)
    live: tuple[int, int] | None = None  # sends telemetry only inside this window

    @property
    def band(self) -> int:
        return band_of(self.rate_per_min)

    def load(self, t_ns: int) -> float:
        """Daily-curve traffic multiplier (mean 1)."""
        hour = (t_ns / HOUR_NS) % 24
        return 1.0 + self.amplitude * math.cos(2 * math.pi * (hour - self.peak_hour) / 24)

    def version_at(self, t_ns: int, pod: int) -> tuple[str, int]:
        """(version, rollout index) pod *pod* runs at *t_ns*: during a rollout pod k switches
        at ``(k + 1) / pods`` of its duration, so versions mix for minutes."""
        index = 0
        for i, rollout in enumerate(self.rollouts):
            if rollout.time_ns <= t_ns:
                index = i
        rollout = self.rollouts[index]
        if index > 0 and t_ns < rollout.time_ns + (pod + 1) * rollout.duration_ns // self.pods:
            index -= 1
        return self.rollouts[index].version, index

    def pod_name(self, rollout_index: int, pod: int, seed: int) -> str:
        """Kubernetes-like pod name: a ReplicaSet hash per version, a suffix per pod."""
        version = self.rollouts[rollout_index].version
        rs = hashlib.blake2s(f"{seed}{self.name}{version}".encode(), digest_size=5).hexdigest()
        tail = hashlib.blake2s(f"{seed}{self.name}{rollout_index}{pod}".encode(),
                               digest_size=3).hexdigest()
        return f"{self.name}-{rs[:9]}-{tail[:5]}"


@dataclass(frozen=True, slots=True)
class GPU:
    spec: GPUSpec
    model_name: str
    power_limit_w: float
    util_mean: float  # % at the daily mean
    util_amplitude: float
    peak_hour: float
    idle_w: float
    watts_per_util: float  # chosen so demand exceeds the limit for 1.5-3 h at the peak

    def utilization(self, t_ns: int) -> float:
        hour = (t_ns / HOUR_NS) % 24
        return self.util_mean + self.util_amplitude * math.cos(
            2 * math.pi * (hour - self.peak_hour) / 24)


@dataclass(frozen=True, slots=True)
class World:
    seed: int
    start_ns: int
    end_ns: int
    services: tuple[Service, ...]
    gpus: tuple[GPU, ...]
    shards: tuple[CollectionSpec, ...]
    injections: tuple[Injection, ...]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def expected(self) -> list[ExpectedIncident]:
        """Ground truth: one expected incident per fault (decoys expect nothing)."""
        out = []
        for inj in self.injections:
            truth = expected_incident(inj)
            if truth is not None:
                out.append(replace(truth, secondary=self._secondary(inj)))
        return out

    def _secondary(self, inj: Injection) -> tuple[tuple[str, str], ...]:
        if inj.kind == "model_deploy" and inj.service:
            return (("cost_regression", inj.service),)
        if inj.kind == "token_deploy" and inj.service:
            return (("token_spike", inj.service),)
        if inj.kind == "gpu_thermal" and inj.gpu is not None:
            users = [s.name for s in self.services if s.gpu == inj.gpu]
            return (("latency_regression", inj.gpu.host), ("serving_saturation", inj.gpu.host),
                    *(("latency_regression", name) for name in users))
        if inj.kind == "segment_explosion":
            return tuple(("latency_regression", s.name) for s in self.services
                         if s.shard == inj.collection)
        return ()

    def band_of_service(self, name: str | None) -> str:
        """The band label of a service ("infrastructure" for host-level incidents)."""
        if name is None:
            return "infrastructure"
        return BANDS[self.service(name).band]


class _Versions:
    """Version strings per service: bumps never reuse a version (a rollback returns to an
    old one; the next bump continues from the highest)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.highest: dict[str, tuple[int, int, int]] = {}

    def first(self, service: str) -> str:
        v = (int(self._rng.integers(1, 4)), int(self._rng.integers(0, 10)),
             int(self._rng.integers(0, 6)))
        self.highest[service] = v
        return ".".join(map(str, v))

    def bump(self, service: str) -> str:
        major, minor, patch = self.highest[service]
        v = (major, minor, patch + 1) if self._rng.random() < 0.5 else (major, minor + 1, 0)
        self.highest[service] = v
        return ".".join(map(str, v))


@dataclass(slots=True)
class _Draft:
    """A service while its deploy history is planned."""

    name: str
    rate: float
    chain: str
    tools: tuple[str, ...]
    gpu: GPUSpec | None
    shard: CollectionSpec | None
    base: Traits
    rollouts: list[Rollout] = field(default_factory=list)
    traits: dict[str, Traits] = field(default_factory=dict)
    live: tuple[int, int] | None = None

    @property
    def version(self) -> str:
        return self.rollouts[-1].version


def plan_world(seed: int, *, start_ns: int, days: float = 1.25,
               high_band: bool | None = None) -> World:
    """Draw a world for *seed* over ``[start_ns, start_ns + days)``.

    Args:
        seed: seeds every draw; the same seed gives the same world.
        start_ns: event time of the first minute.
        days: simulated length; faults are placed after a 6 h warm-up and before a 2 h tail.
        high_band: add a >10/s service (None: one seed in three, drawn).
    """
    rng = np.random.default_rng([seed, 16])
    end_ns = start_ns + int(days * 24 * HOUR_NS)
    versions = _Versions(rng)
    gpus = _plan_gpus(rng)
    shards = tuple(CollectionSpec("weaviate", "weaviate-0", cls, 0) for cls in _CLASSES[:2])
    bands = [0, 1, 2, int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    if high_band if high_band is not None else rng.random() < 1 / 3:
        bands.append(3)
    chains = [*rng.permutation(["rag", "agent", "chat", "agent"]), "chat"]
    names = list(_NAMES)
    rng.shuffle(names)
    drafts: list[_Draft] = []
    for i, band in enumerate(bands):
        low, high = BAND_RATES[band]
        rate = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        chain = "chat" if band == 3 else str(chains[i])
        gpu = gpus[i % len(gpus)].spec if rng.random() < 0.5 and band < 3 else None
        shard = shards[i % len(shards)] if chain == "rag" else None
        tools = tuple(rng.choice(_TOOLS, size=2, replace=False)) if chain == "agent" else ()
        if gpu is None:
            provider, model, _, server = _HOSTED[int(rng.integers(len(_HOSTED)))]
        else:
            provider, model, server = "openai", SELF_HOSTED_MODEL, f"vllm-{gpu.host}-{gpu.index}"
        base = Traits(provider, model, server, float(rng.uniform(600, 2400)))
        draft = _Draft(names[i], rate, chain, tools, gpu, shard, base)
        first = versions.first(draft.name)
        draft.rollouts.append(Rollout(start_ns, first, 0))
        draft.traits[first] = base
        drafts.append(draft)
    injections = _plan_events(rng, drafts, gpus, shards, versions, start_ns, end_ns)
    services = tuple(
        Service(d.name, d.rate, float(rng.uniform(0.45, 0.6)), float(rng.uniform(12, 18)),
                d.chain, int(rng.integers(2, 5)), d.tools, d.gpu, d.shard,
                float(rng.uniform(150, 450)), tuple(d.rollouts), d.traits, d.live)
        for d in drafts)
    return World(seed, start_ns, end_ns, services, gpus, shards, tuple(injections))


def _plan_gpus(rng: np.random.Generator) -> tuple[GPU, ...]:
    out = []
    for h in range(2):
        for g in range(int(rng.integers(1, 3))):
            raw = rng.bytes(16).hex()
            uuid = f"GPU-{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
            model = GPU_MODELS[h % 2]
            limit = 400.0 if model.startswith("NVIDIA A100") else 700.0
            util_mean = float(rng.uniform(50, 60))
            amplitude = float(rng.uniform(25, 35))
            idle = 0.2 * limit
            # hours above the cap at the peak: the curve exceeds cos = c for 24/pi*acos(c) h
            hours = float(rng.uniform(1.5, 3.0))
            threshold = util_mean + amplitude * math.cos(math.pi * hours / 24)
            watts = (limit - idle) / threshold
            out.append(GPU(GPUSpec(f"gpu-node-{h + 1}", g, uuid), model, limit, util_mean,
                           amplitude, float(rng.uniform(13, 17)), idle, watts))
    return tuple(out)


def _plan_events(
    rng: np.random.Generator, drafts: list[_Draft], gpus: tuple[GPU, ...],
    shards: tuple[CollectionSpec, ...], versions: _Versions, start_ns: int, end_ns: int,
) -> list[Injection]:
    """Faults and decoys in slots between the warm-up and the tail; a deploy's rollout and
    rollback are appended to its service's history."""
    regular = [d for d in drafts if d.rate < BAND_RATES[3][0]]
    agents = [d for d in regular if d.chain == "agent"]
    latency = "model_deploy" if rng.random() < 0.5 else "slow_deploy"
    kinds = ["token_deploy", latency, "tool_deploy", "gpu_thermal", "segment_explosion",
             "benign_deploy", "benign_deploy", "traffic_surge", "vllm_restart",
             "slow_request", "slow_request"]
    rng.shuffle(kinds)
    # deploy faults go to distinct services so every band gets its share
    order = [regular[i] for i in rng.permutation(len(regular))]
    slot_ns = (end_ns - TAIL_NS - start_ns - WARMUP_NS) // len(kinds)
    events: list[Injection] = []
    for slot, kind in enumerate(kinds):
        slot_start = start_ns + WARMUP_NS + slot * slot_ns
        jitter = int(rng.uniform(0.05, 0.3) * slot_ns)
        t = slot_start + jitter - jitter % 1_000_000_000 + int(rng.integers(0, 60)) * 10**9
        room = slot_start + slot_ns - 20 * MINUTE_NS - t  # a quiet gap before the next slot
        if kind in ("token_deploy", "model_deploy", "slow_deploy", "tool_deploy"):
            pool = agents if kind == "tool_deploy" else regular
            target = next((d for d in order if d in pool), pool[int(rng.integers(len(pool)))])
            if target in order:
                order.remove(target)
            events.append(_deploy_fault(rng, kind, target, versions, t, room))
        elif kind == "benign_deploy":
            target = regular[int(rng.integers(len(regular)))]
            events.append(_deploy(rng, "benign_deploy", target, versions, t))
        elif kind in ("gpu_thermal", "segment_explosion"):
            duration = int(rng.uniform(20, 60) * MINUTE_NS)
            lead = int(rng.uniform(10, 30) * MINUTE_NS)
            if kind == "gpu_thermal":
                gpu = gpus[int(rng.integers(len(gpus)))].spec
                fault = Injection(kind, t + lead, t + lead + duration, gpu=gpu,
                                  factor=float(rng.uniform(15, 30)))
                users = [d for d in regular if d.gpu == gpu]
            else:
                used = [d.shard for d in regular if d.shard is not None]
                shard = used[0] if used and rng.random() < 0.7 else \
                    shards[int(rng.integers(len(shards)))]
                fault = Injection(kind, t + lead, t + lead + duration, collection=shard,
                                  factor=float(rng.uniform(3, 6)))
                users = [d for d in regular if d.shard == shard]
            events.append(fault)
            if rng.random() < 0.75:  # a no-op deploy just before it: must not be blamed
                target = (users or regular)[int(rng.integers(len(users or regular)))]
                events.append(_deploy(rng, "noop_deploy", target, versions, t))
        elif kind == "traffic_surge":
            target = regular[int(rng.integers(len(regular)))]
            events.append(Injection(kind, t, t + int(rng.uniform(30, 90) * MINUTE_NS),
                                    service=target.name, factor=float(rng.uniform(2, 4))))
        elif kind == "vllm_restart":
            gpu = gpus[int(rng.integers(len(gpus)))].spec
            events.append(Injection(kind, t, t + int(rng.integers(1, 5)) * MINUTE_NS, gpu=gpu))
        else:  # slow_request: one request of 25-90 s
            target = regular[int(rng.integers(len(regular)))]
            events.append(Injection(kind, t, t + MINUTE_NS, service=target.name,
                                    factor=float(rng.uniform(25, 90))))
    high = [d for d in drafts if d not in regular]
    for draft in high:
        events.extend(_high_band(rng, draft, versions, start_ns, end_ns))
    events.extend(_power_capping(gpus, start_ns, end_ns))
    return sorted(events, key=lambda e: e.start_ns)


def _deploy(rng: np.random.Generator, kind: str, draft: _Draft, versions: _Versions, t: int,
            traits: Traits | None = None) -> Injection:
    old = draft.version
    new = versions.bump(draft.name)
    draft.rollouts.append(Rollout(t, new, int(rng.uniform(2, 8) * MINUTE_NS)))
    draft.traits[new] = traits or draft.traits[old]
    return Injection(kind, t, t + draft.rollouts[-1].duration_ns, service=draft.name,
                     old_version=old, new_version=new)


def _deploy_fault(rng: np.random.Generator, kind: str, draft: _Draft, versions: _Versions,
                  t: int, room: int) -> Injection:
    """A bad deploy, rolled back after a while (the fault's end)."""
    old = draft.traits[draft.version]
    tool = error = None
    if kind == "token_deploy":
        factor = float(rng.uniform(1.2, 1.8))
        traits = replace(old, input_tokens=old.input_tokens * factor)
        duration = rng.uniform(60, 150)
    elif kind == "model_deploy":
        factor = float(rng.uniform(1.3, 2.5))
        bigger = next((h[2] for h in _HOSTED if h[1] == old.model), _SELF_HOSTED_BIGGER)
        traits = replace(old, model=bigger, latency_factor=factor)
        duration = rng.uniform(60, 150)
    elif kind == "slow_deploy":
        factor = float(rng.uniform(1.3, 2.5))
        traits = replace(old, latency_factor=factor)
        duration = rng.uniform(60, 150)
    else:
        factor = float(rng.uniform(0.1, 0.4))
        tool = draft.tools[int(rng.integers(len(draft.tools)))]
        error = _NEW_ERRORS[int(rng.integers(len(_NEW_ERRORS)))]
        traits = replace(old, failing_tool=tool, fail_rate=factor, error_type=error)
        duration = rng.uniform(30, 120)
    deploy = _deploy(rng, kind, draft, versions, t, traits)
    end = t + min(int(duration * MINUTE_NS), room)
    rollback = Rollout(end, deploy.old_version or "", int(rng.uniform(2, 8) * MINUTE_NS))
    draft.rollouts.append(rollback)
    return replace(deploy, end_ns=end, factor=factor, tool=tool, error_type=error,
                   new_model=traits.model if traits.model != old.model else None)


def _high_band(rng: np.random.Generator, draft: _Draft, versions: _Versions, start_ns: int,
               end_ns: int) -> list[Injection]:
    """A >10/s service lives for 100 minutes: an hour on its version, then a bad deploy."""
    open_ns = start_ns + WARMUP_NS + int(rng.uniform(0, 0.6) * (end_ns - TAIL_NS - start_ns
                                                                 - WARMUP_NS - HIGH_BAND_WINDOW_NS))
    draft.live = (open_ns, open_ns + HIGH_BAND_WINDOW_NS)
    draft.rollouts[0] = replace(draft.rollouts[0], time_ns=open_ns)
    kind = "token_deploy" if rng.random() < 0.5 else "slow_deploy"
    t = open_ns + 55 * MINUTE_NS + int(rng.integers(0, 300)) * 10**9
    return [_deploy_fault(rng, kind, draft, versions, t, 35 * MINUTE_NS)]


def _power_capping(gpus: tuple[GPU, ...], start_ns: int, end_ns: int) -> list[Injection]:
    """Routine SW power capping: the windows where a GPU's demand exceeds its limit (decoys,
    recorded so reports can say where they were)."""
    out = []
    for gpu in gpus:
        capped_from = None
        for t in range(start_ns, end_ns, MINUTE_NS):
            capped = gpu.idle_w + gpu.watts_per_util * gpu.utilization(t) > gpu.power_limit_w
            if capped and capped_from is None:
                capped_from = t
            elif not capped and capped_from is not None:
                out.append(Injection("power_capping", capped_from, t, gpu=gpu.spec))
                capped_from = None
        if capped_from is not None:
            out.append(Injection("power_capping", capped_from, end_ns, gpu=gpu.spec))
    return out


__all__ = ["BANDS", "GPU", "Rollout", "Service", "Traits", "World", "band_of", "plan_world"]
