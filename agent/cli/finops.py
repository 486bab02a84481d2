"""``strata cost``, ``strata energy`` and ``strata trace ID``: thin clients of the local API.

``register(app)`` adds the commands to the ``strata`` typer app; each calls the running
agent's API (``strata.agent.cli.client.api_get``) and prints rich tables. Unknown figures
print as ``-``, never as 0.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree
from strata.agent.cli.client import DEFAULT_API, ApiOption, TokenOption, api_get

console = Console()

SinceOption = Annotated[
    str | None, typer.Option("--since", help="RFC 3339 start (default: 7 days ago).")
]
UntilOption = Annotated[str | None, typer.Option("--until", help="RFC 3339 end (default: now).")]


def _get(api: str, path: str, token: str | None, params: dict[str, Any]) -> Any:
    """GET *path*, leaving out the options not given."""
    return api_get(api, path, token, {k: v for k, v in params.items() if v is not None})


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell; None (unknown) is ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def print_coverage(cov: dict[str, Any] | None) -> None:
    """The per-service coverage table: requests with a cost and a Wh figure, by source."""
    if not cov:
        return
    table = Table(title="Coverage (requests with a cost / a Wh figure, by source)")
    for column in ("service", "requests", "cost %", "token price", "GPU time", "GPU time est.",
                   "unpriced", "energy %", "measured", "estimated", "unknown"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for g in [*cov["services"], {"service": "TOTAL", **cov["totals"]}]:
        c, e = g["cost"], g["energy"]
        table.add_row(str(g["service"]), fmt(g["requests"]), _pct(g["cost_share"]),
                      fmt(c["token_price"]), fmt(c["gpu_time"]), fmt(c["gpu_time_estimated"]),
                      fmt(c["unpriced"]), _pct(g["energy_share"]), fmt(e["measured"]),
                      fmt(e["estimated"]), fmt(e["unknown"]))
    console.print(table)


def cost(
    group_by: Annotated[str, typer.Option("--group-by", "-g", help="team, service, model, "
                                          "user, or any attribute key.")] = "service",
    since: SinceOption = None,
    until: UntilOption = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="e.g. 1h, 1d.")] = None,
    rightsizing: Annotated[bool, typer.Option("--rightsizing", help="Show findings too.")] = False,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Cost, tokens, energy and carbon grouped by an attribute."""
    data = _get(api, "/api/v1/cost", token,
                {"group_by": group_by, "since": since, "until": until, "bucket": bucket})
    table = Table(title=f"Cost by {group_by}  {data['since']} .. {data['until']}")
    for column in (group_by, "requests", "unpriced", "input tok", "output tok", "USD", "Wh",
                   "gCO2e"):
        table.add_column(column, justify="left" if column == group_by else "right")
    for g in [*data["groups"], {"group": "TOTAL", **data["totals"]}]:
        table.add_row(fmt(g["group"]), fmt(g["requests"]), fmt(g["unpriced_requests"]),
                      fmt(g["input_tokens"]), fmt(g["output_tokens"]), fmt(g["usd"]),
                      fmt(g["energy_wh"], 3), fmt(g["co2e_g"], 3))
    console.print(table)
    print_coverage(data.get("coverage"))
    if rightsizing:
        found = _get(api, "/api/v1/cost/rightsizing", token, {"since": since, "until": until})
        findings = Table(title="Rightsizing")
        for column in ("kind", "detail", "waste USD", "waste Wh", "saving USD"):
            findings.add_column(column)
        for f in found["findings"]:
            findings.add_row(f["kind"], f["detail"], fmt(f["waste_usd"]), fmt(f["waste_wh"], 1),
                             fmt(f["saving_usd"]))
        console.print(findings)


def energy(
    group_by: Annotated[str, typer.Option("--group-by", "-g")] = "service",
    since: SinceOption = None,
    until: UntilOption = None,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Energy (measured vs estimated), carbon and per-request figures; GPU idle energy."""
    data = _get(api, "/api/v1/energy", token,
                {"group_by": group_by, "since": since, "until": until})
    carbon = data["carbon"]
    table = Table(title=f"Energy by {group_by} (PUE {carbon['pue']}, "
                        f"{carbon['grid_gco2e_per_kwh']} gCO2e/kWh)")
    for column in (group_by, "requests", "Wh measured", "Wh estimated", "gCO2e", "Wh/request",
                   "J/token", "gCO2e/request"):
        table.add_column(column, justify="left" if column == group_by else "right")
    for g in [*data["groups"], {"group": "TOTAL", **data["totals"]}]:
        table.add_row(fmt(g["group"]), fmt(g["requests"]), fmt(g["energy_wh_measured"], 3),
                      fmt(g["energy_wh_estimated"], 3), fmt(g["co2e_g"], 3),
                      fmt(g["wh_per_request"]), fmt(g["j_per_token"]),
                      fmt(g["gco2e_per_request"]))
    console.print(table)
    if data["gpus"]:
        gpus = Table(title="GPU energy (measured)")
        for column in ("host", "GPU", "measured Wh", "attributed Wh", "idle Wh", "idle s"):
            gpus.add_column(column)
        for g in data["gpus"]:
            gpus.add_row(g["host"], g["device"], fmt(g["measured_wh"], 3),
                         fmt(g["attributed_wh"], 3), fmt(g["idle_wh"], 3), fmt(g["idle_s"], 0))
        console.print(gpus)
    print_coverage(data.get("coverage"))
    if data.get("unattributed"):
        missing = Table(title="Requests without energy, and why")
        for column in ("service", "model", "server", "requests", "reason"):
            missing.add_column(column)
        for u in data["unattributed"]:
            missing.add_row(u["service"], fmt(u["model"]), fmt(u["server_address"]),
                            fmt(u["requests"]), u["reason"])
        console.print(missing)


def _label(span: dict[str, Any]) -> str:
    parts = [f"[bold]{span['name']}[/] ({span['service']}, {span['duration_ms']:.1f} ms)"]
    if span.get("status") == "error":
        parts.append("[red]error[/]")
    if span.get("cost_usd") is not None:
        parts.append(f"${span['cost_usd']:.6f} ({span['cost_source']})")
    if span.get("energy_wh") is not None:
        parts.append(f"{span['energy_wh']:.4f} Wh {span['energy_source']}")
    return "  ".join(parts)


def _add(tree: Tree, span: dict[str, Any]) -> None:
    node = tree.add(_label(span))
    for layer, signals in (span.get("correlated") or {}).items():
        for s in signals:
            where = "/".join(x for x in (s["host"], s["device"]) if x)
            node.add(f"[dim]{layer}[/] {s['signal']} [{where}] mean {fmt(s['mean'], 3)} "
                     f"max {fmt(s['max'], 3)} {s['unit']}")
    for child in span.get("children", []):
        _add(node, child)


def trace(
    trace_id: Annotated[str, typer.Argument(help="32 lowercase hex characters.")],
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """A trace's span tree with cost, energy and the layer signals around each span."""
    data = _get(api, f"/api/v1/traces/{trace_id}", token, {})
    tree = Tree(f"trace {data['trace_id']} ({data['span_count']} spans)")
    for span in data["spans"]:
        _add(tree, span)
    console.print(tree)


def register(app: typer.Typer) -> None:
    """Add ``cost``, ``energy`` and ``trace`` to the ``strata`` app."""
    app.command()(cost)
    app.command()(energy)
    app.command()(trace)
