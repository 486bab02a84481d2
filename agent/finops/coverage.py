"""Coverage: how many requests carry a cost and an energy figure, by source, and why the
rest do not.

``coverage`` turns ``strata.agent.store.costs.coverage_by_service`` into per-service counts
and shares: cost by ``token_price`` / ``gpu_time`` / ``gpu_time_estimated`` / unpriced,
energy by measured / estimated / unknown. ``unattributed`` explains the requests without
energy, grouped by service, model and serving address, with the reason the serving topology
(``strata.analytics.topology``) and the price table give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from strata.agent.config import Settings
from strata.agent.finops.gpu import load_topology
from strata.agent.model import Layer, SpanRecord
from strata.agent.store.costs import COVERAGE_COLUMNS
from strata.agent.store.seam import ReportReads
from strata.analytics.attribution import MEASURED_NOTE, estimate_unknown_reason
from strata.analytics.pricing import PriceTable, TokenUsage
from strata.analytics.topology import Topology

__all__ = ["coverage", "energy_label", "unattributed"]

MAX_GROUPS: Final = 50
_COST = ("token_price", "gpu_time", "gpu_time_estimated", "unpriced")
_ENERGY = ("measured", "estimated", "unknown")


def _figures(counts: dict[str, int]) -> dict[str, Any]:
    n = counts["requests"]
    with_cost = n - counts["unpriced"]
    with_energy = n - counts["unknown"]
    return {
        "requests": n,
        "cost": {k: counts[k] for k in _COST},
        "energy": {k: counts[k] for k in _ENERGY},
        "cost_share": with_cost / n if n else None,
        "energy_share": with_energy / n if n else None,
    }


def coverage(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """``{"services": [{"service", "requests", "cost": {...}, "energy": {...},
    "cost_share", "energy_share"}], "totals": {...}}`` (shares None without requests) from
    the rows of ``coverage_by_service`` (either engine's: ``seam.ReportReads``)."""
    totals = dict.fromkeys(COVERAGE_COLUMNS[1:], 0)
    services = []
    for row in rows:
        counts = dict(zip(COVERAGE_COLUMNS, row, strict=True))
        for k in totals:
            totals[k] += int(counts[k])
        services.append({"service": counts["service"], **_figures(counts)})
    return {"services": services, "totals": _figures(totals)}


def unattributed(
    reads: ReportReads,
    *,
    since_ns: int,
    until_ns: int,
    settings: Settings,
    prices: PriceTable,
    limit: int = MAX_GROUPS,
    role: str = "agent",
) -> list[dict[str, Any]]:
    """The largest groups of requests without an energy figure, each with its reason, from
    either engine's reads. *role* is the process answering (``ApiHost.role``): on the hub
    a GPU-tied request's energy is its node's sidecar's to attribute, and the reason says so."""
    groups = reads.unknown_energy_groups(since_ns=since_ns, until_ns=until_ns, limit=limit)
    if not groups:
        return []
    topology = load_topology(reads, since_ns, until_ns, settings)
    out = []
    for service, provider, model, address, port, host, n, has_output in groups:
        reason = _reason(topology, prices, service, provider, model, address, port, host,
                         has_output=bool(has_output), on_hub=role == "hub")
        out.append({"service": service, "provider": provider, "model": model,
                    "server_address": address, "host": host, "requests": int(n),
                    "reason": reason})
    return out


def _reason(
    topology: Topology, prices: PriceTable, service: str, provider: str | None,
    model: str | None, address: str | None, port: str | None, host: str | None,
    *, has_output: bool, on_hub: bool,
) -> str:
    attributes = {k: v for k, v in (("server.address", address), ("server.port", port)) if v}
    probe = SpanRecord("0" * 32, "0" * 16, None, "probe", "client", 0, 0, "unset", service,
                       Layer.MODEL, provider=provider, request_model=model, host=host,
                       attributes=attributes)
    join = topology.resolve(probe)
    if join.gpus:
        if not any((info := topology.info(g)) is not None and info.has_energy
                   for g in join.gpus):
            hosts = ", ".join(sorted({h for h, _ in join.gpus}))
            return (f"its GPUs ({hosts}) report no energy counter "
                    "(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION or NVML)")
        if on_hub:  # no GPU pass here: a sidecar forwards such spans after its own
            return ("on a GPU with an energy counter: measured energy is attributed by that "
                    "node's sidecar before it forwards the span, not by the hub; the span "
                    "came without a sidecar (e.g. a Collector), or its sidecar's GPU pass "
                    "found no counter samples bracketing it (see GET /api/v1/energy there)")
        return ("on a GPU with an energy counter, not attributed yet: no counter samples "
                "bracket it, or the GPU pass has not run since it arrived")
    price = prices.lookup(provider, model)
    if price is not None:
        return estimate_unknown_reason(price, TokenUsage(None, 1 if has_output else None))
    if join.reason is not None:
        return join.reason
    if model is None:
        return "no model and no GPU: nothing to estimate or measure"
    return (f"model {model} is not in the price table and no serving address ties it to a "
            "GPU host; map it with [[gpu_map]] if it is self-hosted")


def energy_label(prices: PriceTable, span: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(status, note)`` of a stored span row's energy figure: ``measured``/``estimated``
    with the method and citation, ``unknown`` with the reason; (None, None) for spans that
    are not requests (no model, no figure)."""
    model = span.get("response_model") or span.get("request_model")
    source = span.get("energy_source") if span.get("energy_wh") is not None else None
    if source == "measured":
        return "measured", MEASURED_NOTE
    price = prices.lookup(span.get("provider"), model)
    if source == "estimated":
        cited = f"{price.energy_source} (as of {price.energy_as_of})" if price else None
        return "estimated", f"estimated: {cited or 'per-token coefficient'}"
    if model is None:
        return None, None
    if price is not None and span.get("cost_source") in (None, "token_price"):
        usage = TokenUsage(None, span.get("output_tokens"))
        return "unknown", estimate_unknown_reason(price, usage)
    if span.get("cost_source") in ("gpu_time", "gpu_time_estimated"):
        return "unknown", "its GPU reports no energy counter, or no samples bracket it"
    return "unknown", (f"model {model} is not in the price table and the serving topology "
                       "ties it to no GPU")
