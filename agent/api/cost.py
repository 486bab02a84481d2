"""GET /api/v1/cost, /api/v1/cost/rightsizing, /api/v1/energy and /api/v1/budgets.

Filters: ``service``, ``team``, ``model``, ``provider``, ``host``, ``operation``, ``user``
and ``attr.<key>=<value>`` for any span or resource attribute. Keys are validated and
bound (``strata.agent.store.costs.group_spec``); an invalid one is a 400, never SQL.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, HTTPException, Request
from strata.agent.api.render import (
    count_query,
    number_query,
    parse_duration_ns,
    rfc3339,
    time_range,
)
from strata.agent.finops.budgets import check_budgets
from strata.agent.finops.coverage import coverage, unattributed
from strata.agent.finops.reads import gpu_hours, model_profiles
from strata.agent.finops.report import summarize
from strata.agent.store.seam import report_reads
from strata.agent.units import NS_PER_S
from strata.analytics.rightsizing import cheaper_model_findings, idle_gpu_findings

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

MAX_BUCKETS: Final = 10_000
MAX_HOURS: Final = 1_000_000  # over a century of GPU hours
MAX_TOKENS: Final = 1_000_000_000
FILTER_PARAMS: Final = ("service", "team", "model", "provider", "host", "operation", "user")
_HIDDEN: Final = frozenset({"token_energy_wh", "token_energy_tokens"})


def request_filters(request: Request) -> dict[str, str]:
    """Equality filters from the query string (named ones and ``attr.<key>``)."""
    filters = {}
    for key, value in request.query_params.items():
        if key in FILTER_PARAMS:
            filters[key] = value
        elif key.startswith("attr."):
            filters[key[len("attr.") :]] = value
    return filters


def measures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _HIDDEN}


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["cost"])

    @router.get("/api/v1/cost")
    def cost(
        request: Request,
        group_by: str = "service",
        since: str | None = None,
        until: str | None = None,
        bucket: str | None = None,
    ) -> dict[str, Any]:
        """Tokens, USD, Wh (measured/estimated) and gCO2e grouped by team, service, model, user
        or any attribute, optionally per time bucket; unpriced requests counted, never priced
        at 0."""
        since_ns, until_ns = time_range(agent, since, until)
        bucket_ns = None
        if bucket:
            bucket_ns = parse_duration_ns(bucket, "bucket")
            if (until_ns - since_ns) // bucket_ns > MAX_BUCKETS:
                raise HTTPException(400, f"more than {MAX_BUCKETS} buckets; use a larger bucket")
        reads = report_reads(agent.store)
        try:
            rows = reads.cost_report(group_by=group_by, since_ns=since_ns, until_ns=until_ns,
                                     bucket_ns=bucket_ns, filters=request_filters(request))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        groups: dict[Any, list[dict[str, Any]]] = {}
        buckets: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(row["group"], []).append(row)
            buckets.setdefault(row["bucket_ns"], []).append(row)
        body: dict[str, Any] = {
            "group_by": group_by, "since": rfc3339(since_ns), "until": rfc3339(until_ns),
            "bucket": bucket or None,
            "totals": measures(summarize(rows)),
            "groups": [{"group": g, **measures(summarize(r))} for g, r in groups.items()],
        }  # fmt: skip
        body["groups"].sort(key=lambda g: -(g["usd"] or 0.0))
        # Per service, whatever the grouping: how many requests carry a cost, by source.
        body["coverage"] = coverage(reads.coverage_by_service(since_ns=since_ns,
                                                              until_ns=until_ns))
        if bucket_ns is not None:
            body["buckets"] = [
                {"start": rfc3339(b), "groups": [{"group": r["group"], **measures(summarize([r]))}
                                                 for r in items]}
                for b, items in buckets.items()
            ]
        return body

    @router.get("/api/v1/cost/rightsizing")
    def rightsizing(
        since: str | None = None,
        until: str | None = None,
        idle_below_pct: float = number_query(5.0, ge=0, le=100),
        underused_below_pct: float = number_query(30.0, ge=0, le=100),
        min_hours: int = count_query(2, le=MAX_HOURS),
        max_input_tokens: int = count_query(2000, le=MAX_TOKENS),
        max_output_tokens: int = count_query(256, le=MAX_TOKENS),
    ) -> dict[str, Any]:
        """Rightsizing findings: idle or under-used GPUs (USD and Wh wasted) and requests a
        cheaper model of the same family could serve, with the estimated saving."""
        since_ns, until_ns = time_range(agent, since, until)
        reads = report_reads(agent.store)
        gpu = idle_gpu_findings(
            gpu_hours(reads, since_ns=since_ns, until_ns=until_ns),
            gpu_hour_usd=agent.settings.gpu_hour_usd, idle_below_pct=idle_below_pct,
            underused_below_pct=underused_below_pct, min_hours=min_hours,
        )
        models = cheaper_model_findings(
            model_profiles(reads, since_ns=since_ns, until_ns=until_ns,
                           max_input_tokens=max_input_tokens, max_output_tokens=max_output_tokens),
            agent.prices, max_input_tokens=max_input_tokens, max_output_tokens=max_output_tokens,
        )
        findings = []
        for f in (*gpu, *models):
            item = asdict(f)
            item["start_time"] = rfc3339(item.pop("start_ns"))
            item["end_time"] = rfc3339(item.pop("end_ns"))
            findings.append(item)
        return {
            "since": rfc3339(since_ns), "until": rfc3339(until_ns), "findings": findings,
            "totals": {
                "waste_usd": sum(f.waste_usd or 0.0 for f in gpu),
                "waste_wh": sum(f.waste_wh or 0.0 for f in gpu),
                "saving_usd": sum(f.saving_usd or 0.0 for f in models),
            },
        }  # fmt: skip

    @router.get("/api/v1/energy")
    def energy(
        request: Request,
        group_by: str = "service",
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """Energy (measured vs estimated), carbon, per-request figures and GPU idle energy;
        coverage per service and the requests without energy, with the reason. On the hub a
        GPU's ``attributed_wh``, ``idle_wh`` and ``idle_s`` are null: the split is the
        sidecars' GPU pass."""
        since_ns, until_ns = time_range(agent, since, until)
        reads = report_reads(agent.store)
        try:
            rows = reads.cost_report(group_by=group_by, since_ns=since_ns, until_ns=until_ns,
                                     filters=request_filters(request))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        keep = ("requests", "energy_requests", "energy_wh", "energy_wh_measured",
                "energy_wh_estimated", "co2e_g", "wh_per_request", "j_per_token",
                "gco2e_per_request", "input_tokens", "output_tokens")
        gpus = []
        for g in reads.gpu_energy_summary(since_ns=since_ns, until_ns=until_ns):
            g["start_time"], g["end_time"] = rfc3339(g.pop("start_ns")), rfc3339(g.pop("end_ns"))
            idle_ns = g.pop("idle_ns")
            g["idle_s"] = None if idle_ns is None else idle_ns / NS_PER_S
            gpus.append(g)
        totals = summarize(rows)
        return {
            "group_by": group_by, "since": rfc3339(since_ns), "until": rfc3339(until_ns),
            "carbon": {"pue": agent.settings.carbon_pue,
                       "grid_gco2e_per_kwh": agent.settings.carbon_grid_gco2e_per_kwh},
            "totals": {k: totals[k] for k in keep},
            "groups": [{"group": r["group"], **{k: s[k] for k in keep}}
                       for r in rows for s in [summarize([r])]],
            "gpus": gpus,
            "coverage": coverage(reads.coverage_by_service(since_ns=since_ns,
                                                           until_ns=until_ns)),
            "unattributed": unattributed(reads, since_ns=since_ns, until_ns=until_ns,
                                         settings=agent.settings, prices=agent.prices,
                                         role=agent.role),
        }  # fmt: skip

    @router.get("/api/v1/budgets")
    def budgets() -> dict[str, Any]:
        """Configured budgets with this month's spend and projected burn."""
        now = agent.clock()
        try:
            statuses = check_budgets(report_reads(agent.store), agent.settings.budgets,
                                     now_ns=now)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"budgets": [
            {"group_by": s.budget.group_by, "value": s.budget.value,
             "usd_per_month": s.budget.usd_per_month, "month": s.month,
             "spent_usd": s.spent_usd, "burn_usd_per_day": s.burn_usd_per_day,
             "projected_usd": s.projected_usd, "unpriced_requests": s.unpriced_requests,
             "will_exceed": s.will_exceed, "over_budget": s.over_budget}
            for s in statuses
        ]}  # fmt: skip

    return router
