"""strata.analytics.topology: spans joined to GPUs by address, host, map and GPU ids."""

from __future__ import annotations

from typing import Any

from strata.agent.config import GPUMapEntry
from strata.agent.model import Layer, SpanRecord
from strata.analytics.gpu_prices import GPUPriceTable
from strata.analytics.topology import GPUInfo, Topology

GPUS = [GPUInfo("gpu-a", f"GPU-a{i}", "NVIDIA H100 80GB HBM3", True) for i in range(2)] + [
    GPUInfo("gpu-b.dc1", "GPU-b0", "NVIDIA L4", False, instance="vllm-small-0"),
    GPUInfo("gpu-b.dc1", "GPU-b1", "NVIDIA L4", False, instance="vllm-big-0"),
    GPUInfo("gpu-b.dc1", "GPU-b2", "NVIDIA L4", False, instance="vllm-big-0"),
]


def _span(model: str | None = "llama", host: str | None = None, kind: str = "client",
          attributes: dict[str, Any] | None = None, resource: dict[str, Any] | None = None,
          ) -> SpanRecord:
    return SpanRecord("t" * 32, "s" * 16, None, "chat", kind, 0, 1, "ok", "app", Layer.MODEL,
                      request_model=model, host=host, attributes=attributes or {},
                      resource=resource or {})


def test_client_span_joins_all_gpus_of_the_host_it_calls() -> None:
    topo = Topology(GPUS)
    join = topo.resolve(_span(attributes={"server.address": "GPU-A", "server.port": 8000}))
    assert (join.gpus, join.via) == ((("gpu-a", "GPU-a0"), ("gpu-a", "GPU-a1")), "server.address")
    # the first DNS label matches either way; an API base URL stands in for server.address
    assert topo.gpus_of(_span(attributes={"server.address": "gpu-b"})) == (
        ("gpu-b.dc1", "GPU-b0"), ("gpu-b.dc1", "GPU-b1"), ("gpu-b.dc1", "GPU-b2"))
    assert topo.gpus_of(_span(attributes={"gen_ai.openai.api_base": "http://gpu-a.lan:8000/v1"})
                        ) == (("gpu-a", "GPU-a0"), ("gpu-a", "GPU-a1"))


def test_server_span_splits_by_its_instance_where_the_metrics_say() -> None:
    topo = Topology(GPUS)
    big = _span(host="gpu-b.dc1", kind="server", resource={"k8s.pod.name": "vllm-big-0"})
    assert topo.gpus_of(big) == (("gpu-b.dc1", "GPU-b1"), ("gpu-b.dc1", "GPU-b2"))
    other = _span(host="gpu-b.dc1", kind="server", resource={"service.instance.id": "x"})
    assert len(topo.gpus_of(other)) == 3
    assert topo.gpus_of(_span(model=None, host="gpu-b.dc1")) == ()  # not a request


def test_unjoined_spans_say_why_and_the_map_fills_the_gap() -> None:
    span = _span(attributes={"server.address": "10.0.0.7", "server.port": 8000})
    join = Topology(GPUS).resolve(span)
    assert join.gpus == ()
    assert "[[gpu_map]]" in (join.reason or "")
    mapped = Topology(GPUS, [GPUMapEntry("10.0.0.7:8000", "gpu-a", ("GPU-a1",)),
                             GPUMapEntry("10.0.0.7", "gpu-b.dc1")])
    assert mapped.resolve(span).gpus == (("gpu-a", "GPU-a1"),)
    assert len(mapped.gpus_of(_span(attributes={"server.address": "10.0.0.7"}))) == 3
    assert Topology(GPUS, local_host="gpu-a").gpus_of(
        _span(attributes={"server.address": "localhost"})) == (("gpu-a", "GPU-a0"),
                                                                ("gpu-a", "GPU-a1"))
    assert Topology(GPUS).resolve(_span(attributes={"server.address": "api.openai.com"})).gpus == ()


def test_explicit_gpu_ids_win() -> None:
    span = _span(model=None, host="n1", attributes={"gpu.uuid": ["G1", "G2"],
                                                    "server.address": "gpu-a"})
    assert Topology(GPUS).resolve(span).gpus == (("n1", "G1"), ("n1", "G2"))


def test_gpu_list_prices_by_model_name() -> None:
    table = GPUPriceTable.packaged()
    got = {name: (p.model if (p := table.lookup(name)) else None) for name in (
        "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB",
        "NVIDIA A100-SXM4-40GB", "NVIDIA L4", "NVIDIA L40S", "NVIDIA A10G", "NVIDIA H200",
        "Tesla T4", "NVIDIA GeForce RTX 4090")}
    assert got == {"NVIDIA H100 80GB HBM3": "H100 SXM", "NVIDIA H100 PCIe": "H100 PCIe",
                   "NVIDIA A100-SXM4-80GB": "A100 80GB", "NVIDIA A100-SXM4-40GB": "A100 40GB",
                   "NVIDIA L4": "L4", "NVIDIA L40S": "L40S", "NVIDIA A10G": "A10G",
                   "NVIDIA H200": "H200", "Tesla T4": "T4", "NVIDIA GeForce RTX 4090": None}
    assert all(p.source.startswith("https://") and p.as_of for p in table.prices)
