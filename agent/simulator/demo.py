"""`strata demo`: the whole product on a temporary DuckDB in under a minute.

Starts a real agent (OTLP receiver + API on free loopback ports), drives the simulator — a
RAG service, a support bot, a search agent and a summariser, two of them self-hosted on
vLLM on two GPU hosts, retrieval from Milvus and Qdrant — through a few days of event time over
OTLP/HTTP, with a deploy that raises cost per request, a GPU that throttles and a vector-DB
collection that fragments. Then it asks the agent to analyse and prints what an operator
would see: a per-layer summary, each incident with evidence, cause and suggestion, the
cost / energy / carbon table by team, and the simulator's own score of the incidents
against what it injected.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from strata.agent.config import Settings
from strata.agent.server import RunningServer, start_in_thread
from strata.agent.simulator.scenario import (
    Injection,
    expected_incident,
    plan_scenario,
    scenario_end_ns,
)
from strata.agent.simulator.score import score_incidents
from strata.agent.simulator.stack import SimBatch, Simulator
from strata.agent.simulator.topology import GPUSpec, Topology, default_topology
from strata.agent.store import incidents as incident_store
from strata.agent.units import HOUR_NS, MINUTE_NS

DEMO_KINDS = ("cost_deploy", "gpu_thermal", "segment_explosion", "benign_deploy")
STEPS_PER_REQUEST = 60  # one simulated hour of telemetry per OTLP request
PB = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}


def chunks(batches: Iterator[SimBatch], size: int) -> Iterator[tuple[int, bytes, bytes]]:
    """Merge *size* simulator steps into one traces and one metrics request (gzip'd)."""
    traces, metrics, steps, last = ExportTraceServiceRequest(), ExportMetricsServiceRequest(), 0, 0
    for batch in batches:
        traces.resource_spans.extend(batch.traces.resource_spans)
        metrics.resource_metrics.extend(batch.metrics.resource_metrics)
        steps, last = steps + 1, batch.time_ns
        if steps == size:
            yield steps, gzip.compress(traces.SerializeToString(), 1), gzip.compress(
                metrics.SerializeToString(), 1)
            traces, metrics, steps = ExportTraceServiceRequest(), ExportMetricsServiceRequest(), 0
    if steps:
        yield steps, gzip.compress(traces.SerializeToString(), 1), gzip.compress(
            metrics.SerializeToString(), 1)
    del last


def demo_topology() -> Topology:
    """Four services (RAG, support bot, search agent, summariser), two of them self-hosted
    on vLLM, each of those on its own GPU host; retrieval from Milvus and Qdrant."""
    base = default_topology(4)
    moved = {g: GPUSpec(f"gpu-node-{i + 1}", 0, g.uuid) for i, g in enumerate(base.gpus)}
    services = tuple(replace(s, gpu=moved[s.gpu]) if s.gpu else s for s in base.services)
    return Topology(services, tuple(moved.values()), base.collections)


def drive(server: RunningServer, days: float, seed: int,
          console: Console) -> tuple[int, list[Injection]]:
    """Send *days* of simulated telemetry ending now; returns the steps sent and the plan."""
    topology = demo_topology()
    start_ns = (time.time_ns() // HOUR_NS) * HOUR_NS - int(days * 24 * HOUR_NS)
    warmup = int(days * 24 * HOUR_NS * 0.45)
    spacing = int(days * 24 * HOUR_NS * 0.12)
    plan = plan_scenario(topology, seed, start_ns=start_ns, warmup_ns=warmup, spacing_ns=spacing,
                         duration_ns=3 * HOUR_NS, kinds=DEMO_KINDS)
    end_ns = max(scenario_end_ns(plan, 4 * HOUR_NS), start_ns + int(days * 24 * HOUR_NS))
    simulator = Simulator(seed, start_ns=start_ns, injections=plan, topology=topology)
    total_steps = (end_ns - start_ns) // MINUTE_NS
    sent = 0
    with httpx.Client(timeout=120) as client, Progress(
        TextColumn("[bold]simulating[/] {task.description}"), BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{days:g} days of a 4-service GenAI stack", total=total_steps)
        for steps, traces, metrics in chunks(simulator.batches(end_ns), STEPS_PER_REQUEST):
            for path, body in (("/v1/traces", traces), ("/v1/metrics", metrics)):
                reply = client.post(server.otlp_url + path, content=body, headers=PB)
                reply.raise_for_status()
            sent += steps
            progress.update(task, advance=steps)
    return sent, plan


def score_line(server: RunningServer, plan: list[Injection]) -> str:
    """The simulator's verdict: injected faults found, and incidents matching no injection."""
    expected = [e for e in map(expected_incident, plan) if e is not None]
    incidents = incident_store.list_incidents(server.agent.store.cursor())
    score = score_incidents(incidents, expected)
    line = (f"{len(score.matches)} of {len(expected)} injected faults found, "
            f"{len(score.false)} false incident{'s' if len(score.false) != 1 else ''}")
    if score.secondary:
        line += f", {len(score.secondary)} side effect{'s' if len(score.secondary) != 1 else ''}"
    return line


def show_layers(server: RunningServer, console: Console) -> None:
    table = Table(title="What the agent stored, by layer", title_justify="left")
    for column in ("layer", "spans", "metric samples", "distinct signals"):
        table.add_column(column, justify="right" if column != "layer" else "left")
    for row in server.agent.store.layer_summary():
        table.add_row(row["layer"], f"{row['spans']:,}", f"{row['samples']:,}",
                      str(row["signals"]))
    console.print(table)


def show_incidents(incidents: list[dict[str, Any]], console: Console) -> None:
    if not incidents:
        console.print("[yellow]no incidents found[/]")
        return
    for incident in incidents:
        evidence = Table(show_header=True, box=None, padding=(0, 2))
        for column in ("signal", "layer", "baseline", "current", "unit"):
            evidence.add_column(column)
        for item in incident.get("evidence", []):
            evidence.add_row(item["signal"], item["layer"], f"{item['baseline']:.4g}",
                             f"{item['current']:.4g}", item["unit"])
        cause = incident.get("suspected_cause") or {}
        suggestion = incident.get("suggestion") or {}
        rollback = suggestion.get("rollback")
        lines = [
            f"[bold]{incident['summary']}[/]",
            f"kind {incident['kind']} · layer {incident['layer']} · service "
            f"{incident.get('service') or '-'} · host {incident.get('host') or '-'} · "
            f"started {incident['started_at']} · detected {incident['detected_at']}",
            f"[bold]cause[/]: {cause.get('layer', '?')} / {cause.get('signal', '?')} — "
            f"{cause.get('detail', '')}",
            f"[bold]suggestion[/]: {suggestion.get('action', '?')} — "
            f"{suggestion.get('detail', '')}",
        ]
        if rollback:
            lines.append(f"[bold green]roll back {rollback['service']} from "
                         f"{rollback['from_version']} to {rollback['to_version']}[/]")
        colour = {"critical": "red", "warning": "yellow"}.get(incident["severity"], "blue")
        console.print(Panel("\n".join(lines), title=f"{incident['severity']} · {incident['id']}",
                            border_style=colour))
        console.print(evidence)


def show_cost(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Cost, energy and carbon by team", title_justify="left")
    for column in ("team", "requests", "unpriced", "Mtok", "USD", "Wh meas.", "Wh est.",
                   "gCO2e"):
        table.add_column(column, justify="right" if column != "team" else "left")

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        table.add_row(str(row.get("group")), fmt(row.get("requests"), ","),
                      fmt(row.get("unpriced_requests"), ","),
                      fmt(((row.get("input_tokens") or 0) + (row.get("output_tokens") or 0))
                          / 1e6, ".1f"),
                      fmt(row.get("usd"), ".2f"), fmt(row.get("energy_wh_measured"), ".1f"),
                      fmt(row.get("energy_wh_estimated"), ".1f"), fmt(row.get("co2e_g"), ".1f"))
    console.print(table)


def run_demo(*, days: float = 3.0, seed: int = 7, serve: bool = False,
             console: Console | None = None) -> int:
    """Run the demo; returns the number of incidents found (the exit status is 0 regardless)."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="strata-demo-") as tmp:
        settings = Settings(db=str(Path(tmp) / "demo.duckdb"), otlp_port=0, api_port=0,
                            otlp_grpc_port=0,
                            gpu_enabled=False, host_enabled=False)
        server = start_in_thread(settings)
        try:
            console.print(f"[bold]Strata demo[/] — agent on {server.api_url} (OTLP "
                          f"{server.otlp_url}), store {settings.db}")
            started = time.monotonic()
            steps, plan = drive(server, days, seed, console)
            console.print(f"sent {steps:,} minutes of telemetry in "
                          f"{time.monotonic() - started:.1f} s")
            with httpx.Client(base_url=server.api_url, timeout=120) as api:
                api.post("/api/v1/analyze").raise_for_status()
                incidents = api.get("/api/v1/incidents").json()["incidents"]
                cost = api.get("/api/v1/cost", params={"group_by": "team"}).json()
            show_layers(server, console)
            show_incidents(incidents, console)
            show_cost(cost.get("groups", []), console)
            console.print(f"[bold]simulator's score[/]: {score_line(server, plan)}")
            console.print(f"done in {time.monotonic() - started:.1f} s")
            if serve:
                console.print(f"API at {server.api_url}/docs, console at {server.api_url}/ui — "
                              "Ctrl-C to stop")
                server.wait()
            return len(incidents)
        finally:
            server.stop()
