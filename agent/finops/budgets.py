"""Budgets: month-to-date spend per configured group, burn rate, and a month-end projection.

A budget (``[[budget]] group_by = "team"  value = "search"  usd_per_month = 500``) covers
the calendar month in UTC. Spend is the priced USD of the group's spans (unpriced requests
are counted, not guessed). The burn rate is the spend of the trailing ``burn_window_ns``
(default 7 days, across a month boundary if need be, so day 1 is not judged on one hour),
and the projection is ``month-to-date + burn rate x time left in the month``. A budget whose
projection exceeds it yields an alert, as an ``Incident`` (kind ``budget_burn``) with an id
fixed per budget and month, so re-checking updates one incident instead of opening many;
the caller hands it to the webhook exporter like any incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from strata.agent.config import Budget
from strata.agent.finops.report import summarize
from strata.agent.model import Evidence, Incident, Suggestion
from strata.agent.store.seam import ReportReads, Store, incident_book, report_reads
from strata.agent.units import DAY_NS, NS_PER_S

__all__ = ["BudgetStatus", "budget_alerts", "budget_status", "check_budgets", "month_bounds",
           "record_budget_alerts"]

BURN_WINDOW_NS: Final = 7 * DAY_NS


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Budget
    month: str  # "2026-11"
    month_start_ns: int
    month_end_ns: int
    spent_usd: float
    unpriced_requests: int
    burn_usd_per_day: float
    projected_usd: float

    @property
    def over_budget(self) -> bool:
        return self.spent_usd > self.budget.usd_per_month

    @property
    def will_exceed(self) -> bool:
        return self.projected_usd > self.budget.usd_per_month


def month_bounds(now_ns: int) -> tuple[str, int, int]:
    """("YYYY-MM", start_ns, end_ns) of the UTC calendar month containing *now_ns*."""
    now = datetime.fromtimestamp(now_ns / NS_PER_S, tz=UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1
    )
    return f"{start:%Y-%m}", int(start.timestamp()) * NS_PER_S, int(end.timestamp()) * NS_PER_S


def budget_status(
    reads: ReportReads, budget: Budget, *, now_ns: int,
    burn_window_ns: int = BURN_WINDOW_NS,
) -> BudgetStatus:
    """Spend, burn rate and projection of one budget at *now_ns* (event time).

    Raises:
        ValueError: the budget's ``group_by`` is not a valid group key.
    """
    month, start, end = month_bounds(now_ns)
    filters = {budget.group_by: budget.value}
    spent = summarize(reads.cost_report(group_by=budget.group_by, since_ns=start,
                                        until_ns=now_ns, filters=filters))
    window = summarize(reads.cost_report(group_by=budget.group_by,
                                         since_ns=now_ns - burn_window_ns, until_ns=now_ns,
                                         filters=filters))
    burn_per_ns = (window["usd"] or 0.0) / burn_window_ns
    spent_usd = spent["usd"] or 0.0
    return BudgetStatus(
        budget=budget,
        month=month,
        month_start_ns=start,
        month_end_ns=end,
        spent_usd=spent_usd,
        unpriced_requests=spent["unpriced_requests"],
        burn_usd_per_day=burn_per_ns * DAY_NS,
        projected_usd=spent_usd + burn_per_ns * max(end - now_ns, 0),
    )


def check_budgets(
    reads: ReportReads, budgets: Iterable[Budget], *, now_ns: int
) -> list[BudgetStatus]:
    """``budget_status`` of every configured budget (either engine: ``seam.report_reads``)."""
    return [budget_status(reads, b, now_ns=now_ns) for b in budgets]


def budget_alerts(statuses: Iterable[BudgetStatus], *, now_ns: int) -> list[Incident]:
    """One ``budget_burn`` incident per budget projected to exceed its monthly amount."""
    alerts = []
    for s in statuses:
        if not s.will_exceed:
            continue
        b = s.budget
        key = f"{b.group_by}={b.value}@{s.month}".encode()
        summary = (
            f"budget {b.group_by}={b.value}: ${s.spent_usd:.2f} spent in {s.month}, burning "
            f"${s.burn_usd_per_day:.2f}/day, projected ${s.projected_usd:.2f} "
            f"of ${b.usd_per_month:.2f}"
        )
        if s.unpriced_requests:
            summary += f" ({s.unpriced_requests} unpriced requests not included)"
        alerts.append(Incident(
            id="budget-" + hashlib.sha256(key).hexdigest()[:16],
            kind="budget_burn",
            layer="model",
            service=b.value if b.group_by == "service" else None,
            host=None,
            status="open",
            severity="critical" if s.over_budget else "warning",
            started_at_ns=s.month_start_ns,
            detected_at_ns=now_ns,
            summary=summary,
            evidence=(Evidence("cost.projected_month_usd", "model", b.usd_per_month,
                               s.projected_usd, "USD"),
                      Evidence("cost.month_to_date_usd", "model", b.usd_per_month,
                               s.spent_usd, "USD")),
            suspected_cause=None,
            suggestion=Suggestion(
                action="investigate",
                detail=f"see GET /api/v1/cost?group_by=model&{b.group_by}={b.value} and "
                "/api/v1/cost/rightsizing for cheaper models and idle GPUs",
            ),
        ))
    return alerts


def record_budget_alerts(store: Store, budgets: Iterable[Budget], *,
                         now_ns: int) -> list[Incident]:
    """Budgets whose burn rate will exceed them this month, stored as incidents once (an
    alert already stored for this budget and month is not returned again)."""
    budgets = tuple(budgets)
    if not budgets:
        return []
    statuses = check_budgets(report_reads(store), budgets, now_ns=now_ns)
    fresh = []
    with incident_book(store) as book:
        for alert in budget_alerts(statuses, now_ns=now_ns):
            if book.get_incident(alert.id, with_events=False) is None:
                book.insert_incident(alert, now_ns)
                fresh.append(alert)
    return fresh
