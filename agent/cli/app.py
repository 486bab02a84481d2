"""The ``strata`` command: the agent, the demo, and thin API clients for operators.

The client commands (``incidents``, ``anomalies``, ``cost``, ``energy``, ``trace``) live in
``incidents`` and ``finops`` and call a running agent's API through ``client``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from strata.agent import __version__, logs
from strata.agent.cli import finops as cli_finops
from strata.agent.cli import incidents as cli_incidents
from strata.agent.cli.client import fail
from strata.agent.config import load
from strata.agent.errors import StrataError
from strata.agent.preflight import preflight

app = typer.Typer(help="Strata: observability and AIOps for generative-AI stacks.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(cli_incidents.app, name="incidents")
app.command()(cli_incidents.anomalies)
cli_finops.register(app)
console = Console()


@app.command()
def agent(
    config: Annotated[Path | None, typer.Option("--config", help="strata.toml path.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="DuckDB file.")] = None,
    otlp_port: Annotated[int | None, typer.Option("--otlp-port", help="OTLP/HTTP port.")] = None,
    otlp_grpc_port: Annotated[int | None, typer.Option(
        "--otlp-grpc-port", help="OTLP/gRPC port (0: off).")] = None,
    api_port: Annotated[int | None, typer.Option("--api-port", help="Local API port.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the sidecar agent: OTLP receiver, collectors, analysis and the local API."""
    logs.configure(log_level)
    try:
        settings = load(config, os.environ, db=db, otlp_port=otlp_port,
                        otlp_grpc_port=otlp_grpc_port, api_port=api_port, host=host)
        preflight(settings)  # refuse fast, before the heavy imports below
        from strata.agent.server import serve  # starts DuckDB and uvicorn: only for this command

        serve(settings)
    except StrataError as exc:
        raise fail(str(exc)) from None


@app.command()
def hub(
    clickhouse: Annotated[str, typer.Option(
        "--clickhouse", help="chdb:DIR (embedded) or http(s)://[user:pass@]host:port.")],
    database: Annotated[str, typer.Option("--database", help="ClickHouse database.")] = "otel",
    config: Annotated[Path | None, typer.Option("--config", help="strata.toml path.")] = None,
    otlp_port: Annotated[int | None, typer.Option("--otlp-port", help="OTLP/HTTP port.")] = None,
    otlp_grpc_port: Annotated[int | None, typer.Option(
        "--otlp-grpc-port", help="OTLP/gRPC port (0: off).")] = None,
    api_port: Annotated[int | None, typer.Option("--api-port", help="API port.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the fleet hub: OTLP receivers, analysis and API over a ClickHouse database."""
    logs.configure(log_level)
    try:
        settings = load(config, os.environ, otlp_port=otlp_port,
                        otlp_grpc_port=otlp_grpc_port, api_port=api_port, host=host)
        from strata.agent.server import serve_hub  # ClickHouse drivers: only for this command

        serve_hub(settings, clickhouse, database)
    except StrataError as exc:
        raise fail(str(exc)) from None


@app.command()
def demo(
    days: Annotated[float, typer.Option("--days", min=1, max=14, help="Simulated days.")] = 3.0,
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed.")] = 7,
    serve: Annotated[bool, typer.Option("--serve", help="Keep the API up afterwards.")] = False,
) -> None:
    """Run the whole product on a temporary DuckDB against a simulated GenAI stack."""
    logging.basicConfig(level="WARNING")
    from strata.agent.simulator.demo import run_demo  # heavy: only for this command

    try:
        run_demo(days=days, seed=seed, serve=serve, console=console)
    except StrataError as exc:
        raise fail(str(exc)) from None


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
