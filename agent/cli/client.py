"""What the ``strata`` client commands share: the ``--api`` / ``--token`` options and HTTP.

While an agent runs it owns the DuckDB file, so the client commands talk to its API
(``--api``, default ``http://127.0.0.1:8321``, or ``STRATA_API_URL``), never to the file.
``strata.agent.cli.app``, ``incidents`` and ``finops`` import this module; it imports none
of them.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["DEFAULT_API", "ApiOption", "TokenOption", "api_call", "api_get", "api_post",
           "fail"]

DEFAULT_API = "http://127.0.0.1:8321"
ApiOption = Annotated[
    str, typer.Option("--api", envvar="STRATA_API_URL", help="Base URL of a running agent's API.")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="STRATA_API_TOKEN", help="Bearer token.")
]
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print *message* as an error; the caller raises the returned ``typer.Exit``."""
    # escaped: messages name config sections ("[forward.clickhouse] ..."), not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def api_call(api: str, method: str, path: str, token: str | None = None, *,
             params: dict[str, Any] | None = None, body: dict[str, Any] | None = None) -> Any:
    """Call a running agent's API and return its JSON; exits with a clear error otherwise."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{api.rstrip('/')}{path}", params=params, json=body,
                                 headers=headers, timeout=60)
    except httpx.TransportError as exc:
        msg = f"no agent answering at {api} ({exc}); start one with `strata agent`"
        raise fail(msg) from None
    if response.status_code >= 400:
        msg = f"{path}: HTTP {response.status_code}: {response.text[:300]}"
        raise fail(msg)
    return response.json()


def api_get(api: str, path: str, token: str | None, params: dict[str, Any] | None = None) -> Any:
    return api_call(api, "GET", path, token, params=params)


def api_post(api: str, path: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    return api_call(api, "POST", path, token, body=body)
