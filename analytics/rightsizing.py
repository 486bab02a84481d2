"""Rightsizing findings: GPUs idle or under-used for hours, and requests a cheaper model in
the same family could serve.

Pure functions over hourly GPU aggregates and per-model token profiles (read by
``strata.agent.finops.reads``); no clock, no I/O.

GPUs. An hour is *idle* when the GPU's mean utilisation is below ``idle_below_pct`` and
*under-used* below ``underused_below_pct``. A run of consecutive such hours (an hour with no
utilisation samples breaks a run) of at least ``min_hours`` is one finding: ``gpu_idle`` when
every hour is idle, else ``gpu_underused``. What it wastes:

- USD: ``gpu_hour_usd`` per idle hour; for under-used runs the unused share,
  ``gpu_hour_usd x (1 - utilisation / 100)`` per hour;
- Wh: the energy the GPU consumed in those hours (its energy counter: ``measured``; else
  mean power draw x 1 h: ``estimated``), scaled by the unused share for under-used runs.

Models. For each (service, provider, model) priced by token, requests whose input and output
token counts are within ``max_input_tokens`` / ``max_output_tokens`` (the token profile of a
short, simple request) are re-priced at the next smaller model of the same provider and
family (``PriceTable.cheaper_in_family``, the closest tier below). The saving is what they
cost minus what they would have cost. Cache-write tokens are billed as fresh input there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from strata.agent.units import HOUR_NS
from strata.analytics.pricing import PriceTable, TokenUsage, cost_of

__all__ = [
    "WH_PER_ENERGY_UNIT",
    "GPUHour",
    "ModelProfile",
    "RightsizingFinding",
    "cheaper_model_findings",
    "idle_gpu_findings",
]

WH_PER_ENERGY_UNIT: Final = {
    "mJ": 1 / 3_600_000, "J": 1 / 3600, "kJ": 1 / 3.6, "Wh": 1.0, "kWh": 1000.0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GPUHour:
    """One GPU over one hour: mean utilisation (%), mean power (W), counter energy (Wh)."""

    host: str
    device: str
    hour_ns: int
    utilization_pct: float | None
    power_w: float | None
    energy_wh: float | None


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Token-priced requests of one model in one service, and those with a small profile."""

    service: str
    provider: str | None
    model: str
    requests: int
    usd: float
    small_requests: int
    small_input_tokens: int
    small_cache_read_tokens: int
    small_output_tokens: int
    small_usd: float


@dataclass(frozen=True, slots=True)
class RightsizingFinding:
    """One finding; money and energy are None where unknown, never 0."""

    kind: str  # "gpu_idle" | "gpu_underused" | "cheaper_model"
    detail: str
    start_ns: int | None = None
    end_ns: int | None = None
    host: str | None = None
    device: str | None = None
    hours: int | None = None
    mean_utilization_pct: float | None = None
    waste_usd: float | None = None
    waste_wh: float | None = None
    waste_wh_source: str | None = None  # "measured" | "estimated"
    service: str | None = None
    model: str | None = None
    suggested_model: str | None = None
    requests: int | None = None
    saving_usd: float | None = None


def idle_gpu_findings(
    hours: Iterable[GPUHour],
    *,
    gpu_hour_usd: float | None,
    idle_below_pct: float = 5.0,
    underused_below_pct: float = 30.0,
    min_hours: int = 2,
) -> list[RightsizingFinding]:
    """Runs of idle or under-used GPU hours (module docstring), ordered by GPU then time."""
    by_gpu: dict[tuple[str, str], list[GPUHour]] = {}
    for h in hours:
        if h.utilization_pct is not None:
            by_gpu.setdefault((h.host, h.device), []).append(h)
    findings = []
    for (host, device), items in sorted(by_gpu.items()):
        items.sort(key=lambda h: h.hour_ns)
        run: list[GPUHour] = []
        for h in items:
            if (h.utilization_pct or 0.0) >= underused_below_pct:
                if len(run) >= min_hours:
                    findings.append(_gpu_finding(host, device, run, gpu_hour_usd, idle_below_pct))
                run = []
                continue
            if run and h.hour_ns != run[-1].hour_ns + HOUR_NS:
                if len(run) >= min_hours:
                    findings.append(_gpu_finding(host, device, run, gpu_hour_usd, idle_below_pct))
                run = []
            run.append(h)
        if len(run) >= min_hours:
            findings.append(_gpu_finding(host, device, run, gpu_hour_usd, idle_below_pct))
    return findings


def _gpu_finding(
    host: str, device: str, run: list[GPUHour], gpu_hour_usd: float | None, idle_below: float
) -> RightsizingFinding:
    idle = all((h.utilization_pct or 0.0) < idle_below for h in run)
    unused = [1.0 if idle else 1.0 - (h.utilization_pct or 0.0) / 100 for h in run]
    mean_util = sum(h.utilization_pct or 0.0 for h in run) / len(run)
    energies: list[float] = []
    source = "measured"
    for h in run:
        if h.energy_wh is not None:
            energies.append(h.energy_wh)
        elif h.power_w is not None:
            energies.append(h.power_w)  # W over one hour = Wh
            source = "estimated"
        else:
            energies = []
            break
    waste_wh = sum(e * u for e, u in zip(energies, unused, strict=True)) if energies else None
    kind = "gpu_idle" if idle else "gpu_underused"
    what = "idle" if idle else "under-used"
    return RightsizingFinding(
        kind=kind,
        detail=(
            f"GPU {device} on {host} was {what} for {len(run)} h "
            f"(mean utilisation {mean_util:.1f}%): consolidate, scale in or share it"
        ),
        start_ns=run[0].hour_ns,
        end_ns=run[-1].hour_ns + HOUR_NS,
        host=host,
        device=device,
        hours=len(run),
        mean_utilization_pct=mean_util,
        waste_usd=None if gpu_hour_usd is None else gpu_hour_usd * sum(unused),
        waste_wh=waste_wh,
        waste_wh_source=source if waste_wh is not None else None,
    )


def cheaper_model_findings(
    profiles: Iterable[ModelProfile],
    prices: PriceTable,
    *,
    min_saving_usd: float = 0.0,
    max_input_tokens: int | None = None,
    max_output_tokens: int | None = None,
) -> list[RightsizingFinding]:
    """Requests a smaller model of the same family could serve, biggest saving first.

    *max_input_tokens* / *max_output_tokens* only word the detail; the profiles were
    already cut at those limits by the read.
    """
    findings = []
    for p in profiles:
        price = prices.lookup(p.provider, p.model)
        if price is None or p.small_requests == 0:
            continue
        cheaper = prices.cheaper_in_family(price)
        if not cheaper:
            continue
        target = replace(cheaper[-1], long_context=None)  # small requests stay below it
        usage = TokenUsage(p.small_input_tokens, p.small_output_tokens, p.small_cache_read_tokens)
        would = cost_of(target, usage)
        if would is None:
            continue
        saving = p.small_usd - would.usd
        if saving <= min_saving_usd:
            continue
        limits = ""
        if max_input_tokens is not None and max_output_tokens is not None:
            limits = f" (<= {max_input_tokens} input, <= {max_output_tokens} output tokens)"
        findings.append(
            RightsizingFinding(
                kind="cheaper_model",
                detail=(
                    f"{p.small_requests} of {p.requests} {p.model} requests of {p.service} "
                    f"are small{limits}; {target.model} ({target.family} family) would have "
                    f"cost ${would.usd:.4f} instead of ${p.small_usd:.4f}"
                ),
                service=p.service,
                model=p.model,
                suggested_model=target.model,
                requests=p.small_requests,
                saving_usd=saving,
            )
        )
    findings.sort(key=lambda f: -(f.saving_usd or 0.0))
    return findings
