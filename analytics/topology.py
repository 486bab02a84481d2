"""The serving topology: which GPUs a span's request ran on.

Real telemetry rarely names a GPU on a span. A client-side GenAI span (the Strata SDK's,
OpenLLMetry's, OpenInference's) carries the inference server's ``server.address`` and
``server.port``; a vLLM or TGI server span carries its own host (``host.name``) and
``service.instance.id``; the GPU metrics (DCGM ``Hostname``/``UUID``/``modelName`` labels,
NVML on the agent's host) say which GPUs each host has. ``Topology.resolve`` joins them:

1. ``gpu.uuid``/``gpu.id`` on the span or its resource (``attribution.gpu_keys_of``) win;
2. a ``[[gpu_map]]`` entry for the span's address (``address:port`` before ``address``);
3. a model span's ``server.address`` (else the host of ``gen_ai.openai.api_base``/``url.full``)
   that names a GPU host: equal, or equal in its first DNS label (``gpu-1.internal`` and
   ``gpu-1``); ``localhost``/``127.0.0.1``/``::1`` name the agent's own host;
4. a model span *without* an address that runs on a GPU host (a server span).

An instance owns all GPUs of its host (tensor parallelism), except where the GPU metrics
carry an instance label (dcgm-exporter's Kubernetes ``pod``): then a span whose
``service.instance.id`` or ``k8s.pod.name`` equals it gets only those GPUs. Spans with a
model that join nothing get a reason (``Join.reason``) for the API.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

from strata.agent.config import GPUMapEntry
from strata.agent.model import AttributeValue, SpanRecord

__all__ = ["GPU_ATTRIBUTES", "GPUInfo", "Join", "Topology", "explicit_gpus", "serving_address"]

GPUKey: TypeAlias = tuple[str, str]  # (host, device)

GPU_ATTRIBUTES = ("gpu.uuid", "gpu.id")
ADDRESS_KEYS = ("server.address", "net.peer.name")
PORT_KEYS = ("server.port", "net.peer.port")
URL_KEYS = ("gen_ai.openai.api_base", "url.full", "http.url")
INSTANCE_KEYS = ("service.instance.id", "k8s.pod.name")
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class GPUInfo:
    """One GPU as its metrics describe it."""

    host: str
    device: str
    model_name: str | None = None  # DCGM modelName / NVML device name
    has_energy: bool = False  # reports a cumulative energy counter
    instance: str | None = None  # the serving instance the metrics tie it to (k8s pod)


@dataclass(frozen=True, slots=True)
class Join:
    """How a span was tied to GPUs, or why it was not."""

    gpus: tuple[GPUKey, ...]
    via: str | None  # "gpu attributes", "gpu_map", "server.address", "host"; None: not joined
    reason: str | None = None  # why a model span joined nothing (None when joined)


_NONE = Join((), None)


def serving_address(span: SpanRecord) -> tuple[str | None, int | None]:
    """The inference server a client span called: ``server.address``/``server.port``, else
    the host and port of its API base URL."""
    address = _first(span.attributes, ADDRESS_KEYS)
    port = _port(_first(span.attributes, PORT_KEYS))
    if address is None:
        url = _first(span.attributes, URL_KEYS)
        if url is not None:
            try:
                parts = urlsplit(url if "//" in url else f"//{url}")
                address, port = parts.hostname, port if port is not None else parts.port
            except ValueError:  # a malformed URL names no server
                return None, port
    return (address.lower() if address else None), port


class Topology:
    """GPUs per host from their metrics, plus the configured address map."""

    def __init__(
        self,
        gpus: Iterable[GPUInfo] = (),
        gpu_map: Iterable[GPUMapEntry] = (),
        *,
        local_host: str | None = None,
    ) -> None:
        self._gpus: dict[GPUKey, GPUInfo] = {(g.host, g.device): g for g in gpus}
        self._by_host: dict[str, list[GPUInfo]] = {}
        for info in self._gpus.values():
            self._by_host.setdefault(info.host.lower(), []).append(info)
        self._short: dict[str, str] = {}  # first DNS label -> host, where unambiguous
        for host in self._by_host:
            label = host.split(".", 1)[0]
            self._short[label] = host if label not in self._short else ""
        self._map = {e.address.lower(): e for e in gpu_map}
        self._local = local_host.lower() if local_host else None
        self._memo: dict[tuple[object, ...], Join] = {}

    @property
    def hosts(self) -> tuple[str, ...]:
        """The GPU hosts, lowercased."""
        return tuple(self._by_host)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address (or first DNS label of one) that can resolve to a GPU, lowercased:
        what a store query may pre-filter ``server.address`` by."""
        found = {*self._by_host, *(h.split(".", 1)[0] for h in self._by_host)}
        found.update(a.rsplit(":", 1)[0] if a.count(":") == 1 else a for a in self._map)
        if self._local is not None and self._local in self._by_host:
            found.update(LOOPBACK)
        return tuple(sorted(found))

    def info(self, gpu: GPUKey) -> GPUInfo | None:
        return self._gpus.get(gpu)

    def gpus_of(self, span: SpanRecord) -> tuple[GPUKey, ...]:
        return self.resolve(span).gpus

    def resolve(self, span: SpanRecord) -> Join:
        """The GPUs *span* ran on and how that was found (module docstring)."""
        explicit = explicit_gpus(span)
        if explicit:
            return Join(explicit, "gpu attributes")
        if span.model is None:
            return _NONE
        address, port = serving_address(span)
        host = span.host or _text(span.resource.get("host.name"))
        instance = _first(span.resource, INSTANCE_KEYS) or _first(span.attributes, INSTANCE_KEYS)
        key = (address, port, None if address else host, instance)
        found = self._memo.get(key)
        if found is None:
            found = self._resolve(address, port, host, instance)
            if len(self._memo) < 10_000:  # addresses come from the wire: bounded
                self._memo[key] = found
        return found

    def _resolve(
        self, address: str | None, port: int | None, host: str | None, instance: str | None
    ) -> Join:
        if address is not None:
            entry = self._map.get(f"{address}:{port}") or self._map.get(address)
            if entry is not None:
                devices = entry.gpus or tuple(g.device for g in self._host_gpus(entry.host))
                if not devices:
                    return Join((), None, f"[[gpu_map]] sends {address} to {entry.host}, which "
                                          "has no GPU metrics and no gpus listed")
                return Join(tuple((entry.host, d) for d in devices), "gpu_map")
            target = self._host_of(address)
            if target is None:
                return Join((), None, f"server.address {address} is not a host in the GPU "
                                      "metrics; map it with [[gpu_map]] if it serves on GPUs")
            # The span's own instance id is the caller's, not the server's: all host GPUs.
            return Join(self._instance_gpus(target, None), "server.address")
        if host is not None and host.lower() in self._by_host:
            return Join(self._instance_gpus(host.lower(), instance), "host")
        return _NONE

    def _host_of(self, address: str) -> str | None:
        if address in LOOPBACK and self._local is not None:
            address = self._local
        if address in self._by_host:
            return address
        return self._short.get(address.split(".", 1)[0]) or None

    def _host_gpus(self, host: str) -> list[GPUInfo]:
        return self._by_host.get(host.lower(), [])

    def _instance_gpus(self, host: str, instance: str | None) -> tuple[GPUKey, ...]:
        gpus = self._host_gpus(host)
        own = [g for g in gpus if instance is not None and g.instance == instance]
        return tuple((g.host, g.device) for g in (own or gpus))


def explicit_gpus(span: SpanRecord) -> tuple[GPUKey, ...]:
    """``(host, device)`` for each ``gpu.uuid``/``gpu.id`` value of the span, else its resource."""
    host = span.host or _text(span.resource.get("host.name"))
    if host is None:
        return ()
    devices: list[str] = []
    for source in (span.attributes, span.resource):
        for name in GPU_ATTRIBUTES:
            value = source.get(name)
            for item in value if isinstance(value, list) else [value]:
                device = _text(item)
                if device is not None and device not in devices:
                    devices.append(device)
        if devices:
            break
    return tuple((host, d) for d in devices)


def _first(source: Mapping[str, AttributeValue], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = _text(source.get(key))
        if value:
            return value
    return None


def _port(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _text(value: AttributeValue) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return None
    return str(value)
