"""The simulated GenAI stack's shape: services, GPU hosts, vector-DB collections.

Data only. ``default_topology(n_services)`` gives a stack with hosted-API services (priced
models) and self-hosted ones (vLLM on GPU hosts), retrieval from Milvus and Qdrant, and tool
steps on some services, so every injected incident kind has a target.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One GPU: its host, index and UUID (the device id DCGM and spans share)."""

    host: str
    index: int
    uuid: str

    @property
    def server(self) -> str:
        """The vLLM server instance running on this GPU."""
        return f"vllm-{self.host}-{self.index}"


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """A vector-DB collection shard served by one host."""

    system: str  # "milvus" | "qdrant"
    host: str
    collection: str
    shard: int = 0


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One LLM application: its chain, model, retrieval target and optional tool step."""

    name: str
    team: str
    version: str
    provider: str
    model: str
    collection: CollectionSpec
    gpu: GPUSpec | None = None  # self-hosted model served by vLLM on this GPU
    tool: str | None = None
    rate_per_min: float = 5.0
    input_tokens: int = 1200
    output_tokens: int = 250

    @property
    def self_hosted(self) -> bool:
        return self.gpu is not None


@dataclass(frozen=True, slots=True)
class Topology:
    services: tuple[ServiceSpec, ...]
    gpus: tuple[GPUSpec, ...]
    collections: tuple[CollectionSpec, ...]

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        msg = f"no simulated service {name!r}"
        raise KeyError(msg)

    def gpu(self, host: str, index: int) -> GPUSpec:
        for spec in self.gpus:
            if (spec.host, spec.index) == (host, index):
                return spec
        msg = f"no simulated GPU {host}/{index}"
        raise KeyError(msg)

    def on_gpu(self, gpu: GPUSpec) -> tuple[ServiceSpec, ...]:
        return tuple(s for s in self.services if s.gpu == gpu)

    def on_collection(self, collection: CollectionSpec) -> tuple[ServiceSpec, ...]:
        return tuple(s for s in self.services if s.collection == collection)


_HOSTED = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"))
_SELF_HOSTED_MODEL = "llama-3.1-8b-instruct"
_NAMES = ("rag-api", "support-bot", "search-agent", "summarizer", "code-assist", "doc-qa",
          "triage-bot", "sales-copilot", "translate", "extractor")
_TEAMS = ("search", "support", "platform", "growth")
_TOOLS = ("web_search", "crm_lookup", "run_tests", None)


def _uuid(host_index: int, gpu_index: int) -> str:
    return f"GPU-{host_index:04x}{gpu_index:04x}-5a7a-4c0d-9e11-000000000000"


def default_topology(n_services: int = 6) -> Topology:
    """A stack of *n_services* services: half hosted APIs, half self-hosted on GPUs.

    Each GPU serves at most two self-hosted services; two Milvus shards and two Qdrant
    collections take the retrieval traffic. Deterministic: the same *n* gives the same stack.
    """
    n_gpu_services = n_services // 2
    n_gpus = max(2, (n_gpu_services + 1) // 2)
    gpus = tuple(
        GPUSpec(f"gpu-node-{h + 1}", g, _uuid(h + 1, g))
        for h in range((n_gpus + 1) // 2) for g in range(2)
    )[:n_gpus]
    collections = (
        CollectionSpec("milvus", "milvus-0", "docs", 0),
        CollectionSpec("qdrant", "qdrant-0", "tickets", 0),
        CollectionSpec("milvus", "milvus-0", "docs", 1),
        CollectionSpec("qdrant", "qdrant-0", "code", 0),
    )
    services = []
    gpu_slot = 0
    for i in range(n_services):
        base = _NAMES[i % len(_NAMES)]
        name = base if i < len(_NAMES) else f"{base}-{i // len(_NAMES) + 1}"
        hosted = i % 2 == 0
        provider, model = _HOSTED[(i // 2) % len(_HOSTED)] if hosted else ("vllm",
                                                                          _SELF_HOSTED_MODEL)
        gpu = None
        if not hosted:
            gpu = gpus[(gpu_slot // 2) % len(gpus)]
            gpu_slot += 1
        services.append(ServiceSpec(
            name=name,
            team=_TEAMS[i % len(_TEAMS)],
            version=f"1.{4 + i % 3}.0",
            provider=provider,
            model=model,
            collection=collections[i % len(collections)],
            gpu=gpu,
            tool=_TOOLS[i % len(_TOOLS)],
            rate_per_min=5.0,
            input_tokens=900 + 150 * (i % 4),
            output_tokens=200 + 40 * (i % 3),
        ))
    return Topology(tuple(services), gpus, collections)


PRICIER_MODEL = {"gpt-4o-mini": "gpt-4o", "claude-haiku-4-5": "claude-sonnet-4-5"}
