"""The ``strata`` command: the agent, the demo, and thin API clients for operators.

While an agent runs it owns the DuckDB file, so the client commands talk to its API
(``--api``, default ``http://127.0.0.1:8321``, or ``STRATA_API_URL``), never to the file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agent import __version__
from agent.config import load
from agent.errors import StrataError

app = typer.Typer(help="Strata: observability and AIOps for generative-AI stacks.",
                  no_args_is_help=True, add_completion=False)
incidents_app = typer.Typer(help="List, show, acknowledge and resolve incidents.",
                            no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
console = Console()
err_console = Console(stderr=True)

ApiOption = Annotated[
    str, typer.Option("--api", envvar="STRATA_API_URL", help="Base URL of a running agent's API.")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="STRATA_API_TOKEN", help="Bearer token.")
]
DEFAULT_API = "http://127.0.0.1:8321"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def agent(
    config: Annotated[Path | None, typer.Option("--config", help="strata.toml path.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="DuckDB file.")] = None,
    otlp_port: Annotated[int | None, typer.Option("--otlp-port", help="OTLP/HTTP port.")] = None,
    api_port: Annotated[int | None, typer.Option("--api-port", help="Local API port.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Run the sidecar agent: OTLP receiver, collectors, analysis and the local API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    from agent.server import serve  # noqa: PLC0415 - keeps client commands light

    try:
        settings = load(config, os.environ, db=db, otlp_port=otlp_port, api_port=api_port,
                        host=host)
        serve(settings)
    except StrataError as exc:
        raise _fail(str(exc)) from None


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def api_get(api: str, path: str, token: str | None, params: dict[str, Any] | None = None) -> Any:
    """GET a JSON document from a running agent; a clear error when it is not running."""
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{api.rstrip('/')}{path}", params=params, headers=headers,
                             timeout=30)
    except httpx.TransportError as exc:
        raise _fail(f"no agent answering at {api} ({exc}); start one with `strata agent`") from None
    if response.status_code >= 400:
        raise _fail(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


def api_post(api: str, path: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(f"{api.rstrip('/')}{path}", json=body or {}, headers=headers,
                              timeout=60)
    except httpx.TransportError as exc:
        raise _fail(f"no agent answering at {api} ({exc}); start one with `strata agent`") from None
    if response.status_code >= 400:
        raise _fail(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
