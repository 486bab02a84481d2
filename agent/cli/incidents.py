"""``strata incidents list|show|ack|resolve``: thin clients of the incidents API.

``strata.agent.cli.app`` mounts this app (``app.add_typer(cli_incidents.app, name="incidents")``)
and the ``anomalies`` command; both call the API through ``strata.agent.cli.client``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from strata.agent.cli.client import DEFAULT_API, ApiOption, TokenOption, api_get, api_post

app = typer.Typer(help="List, show, acknowledge and resolve incidents.", no_args_is_help=True)
console = Console()
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _short(ts: str | None) -> str:
    return "" if not ts else ts.replace("T", " ")[:19]


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="open | acknowledged | resolved")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 start.")] = None,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """List incidents, newest first."""
    params = {k: v for k, v in {"status": status, "service": service, "kind": kind,
                                "since": since}.items() if v}
    doc = api_get(api, "/api/v1/incidents", token, params)
    table = Table("id", "status", "severity", "kind", "layer", "service / host", "started",
                  "summary", title="Incidents")
    for inc in doc["incidents"]:
        table.add_row(inc["id"], inc["status"],
                      f"[{_SEVERITY_STYLE.get(inc['severity'], '')}]{inc['severity']}[/]",
                      inc["kind"], inc["layer"], inc["service"] or inc["host"] or "",
                      _short(inc["started_at"]), inc["summary"][:80])
    console.print(table)


def print_incident(inc: dict[str, Any]) -> None:
    """Render one incident (as the API returns it) with evidence, cause and suggestion."""
    console.print(f"[bold]{inc['id']}[/] {inc['kind']} ({inc['layer']}) "
                  f"[{_SEVERITY_STYLE.get(inc['severity'], '')}]{inc['severity']}[/] "
                  f"{inc['status']}")
    console.print(inc["summary"])
    console.print(f"started {_short(inc['started_at'])}  detected {_short(inc['detected_at'])}"
                  + (f"  resolved {_short(inc['resolved_at'])}" if inc.get("resolved_at")
                     else ""))
    evidence = Table("signal", "layer", "baseline", "current", "unit", title="Evidence")
    for e in inc["evidence"]:
        evidence.add_row(e["signal"], e["layer"], f"{e['baseline']:.6g}", f"{e['current']:.6g}",
                         e["unit"])
    console.print(evidence)
    cause = inc.get("suspected_cause")
    if cause:
        console.print(f"[bold]Suspected cause:[/] {cause['layer']} / {cause['signal']}: "
                      f"{cause['detail']}")
    suggestion = inc.get("suggestion")
    if suggestion:
        console.print(f"[bold]Suggestion:[/] {suggestion['action']}: {suggestion['detail']}")
        rollback = suggestion.get("rollback")
        if rollback:
            console.print(f"  rollback {rollback['service']}: {rollback['from_version']} -> "
                          f"{rollback['to_version']}")
    if inc.get("timeline"):
        timeline = Table("time", "event", "detail", title="Timeline")
        for e in inc["timeline"]:
            timeline.add_row(_short(e["time"]), e["event"], e["detail"][:100])
        console.print(timeline)


@app.command()
def show(incident_id: str, api: ApiOption = DEFAULT_API, token: TokenOption = None) -> None:
    """Show one incident: evidence, suspected cause, suggestion and timeline."""
    print_incident(api_get(api, f"/api/v1/incidents/{incident_id}", token))


@app.command()
def ack(
    incident_id: str,
    note: Annotated[str | None, typer.Option(help="Note for the timeline.")] = None,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Acknowledge an incident."""
    inc = api_post(api, f"/api/v1/incidents/{incident_id}/ack", token, {"note": note})
    console.print(f"{inc['id']} {inc['status']}")


@app.command()
def resolve(
    incident_id: str,
    note: Annotated[str | None, typer.Option(help="Note for the timeline.")] = None,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """Resolve an incident by hand (it will not be reopened by analysis)."""
    inc = api_post(api, f"/api/v1/incidents/{incident_id}/resolve", token, {"note": note})
    console.print(f"{inc['id']} {inc['status']}")


def anomalies(
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    layer: Annotated[str | None, typer.Option(help="infrastructure | data | serving | model | "
                                                   "orchestration")] = None,
    min_score: Annotated[float, typer.Option(help="Only scores at or above this.")] = 0.0,
    since: Annotated[str | None, typer.Option(help="RFC 3339 start.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
) -> None:
    """List the buckets the streaming scorer flagged on any series, newest first."""
    params = {k: v for k, v in {"service": service, "host": host, "layer": layer,
                                "min_score": min_score or None, "since": since,
                                "limit": limit}.items() if v}
    doc = api_get(api, "/api/v1/anomalies", token, params)
    table = Table("time", "score", "layer", "signal", "where", "value", "unit",
                  title="Anomalies")
    for a in doc["anomalies"]:
        where = " ".join(str(v) for v in (a["service"], a["host"], a["device"]) if v)
        labels = ",".join(f"{k}={v}" for k, v in a["labels"].items())
        table.add_row(_short(a["time"]), f"{a['score']:.2f}", a["layer"], a["signal"],
                      f"{where} {labels}".strip()[:60], f"{a['value']:.6g}", a["unit"])
    console.print(table)
