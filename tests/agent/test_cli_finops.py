"""`strata cost`, `strata energy` and `strata trace` against a real HTTP server (uvicorn)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import uvicorn
from fastapi import FastAPI
from strata.agent.api import cost, traces
from strata.agent.cli.finops import register
from strata.agent.config import Settings
from typer.testing import CliRunner

from tests.agent.test_cost_api import T0, CorrelatingAgent, H, _data
from tests.conftest import free_port
from tests.waiting import responds, wait_until


@pytest.fixture(name="api_url")
def api_url_fixture(tmp_path: Path) -> Iterator[str]:
    settings = Settings(db=str(tmp_path / "cli.duckdb"), gpu_hour_usd=3.6)
    agent = CorrelatingAgent(settings, clock=lambda: T0 + 6 * H)
    _data(agent)
    app = FastAPI()
    for module in (cost, traces):
        app.include_router(module.build_router(agent))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: responds(url + "/api/v1/cost"), 20, "the cost API up")
    yield url
    server.should_exit = True
    thread.join(10)
    agent.close()


def _run(url: str, *args: str) -> str:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, [*args, "--api", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_cost_energy_and_trace_tables(api_url: str) -> None:
    """The three commands print the API's figures; unknown cost prints as '-', not 0."""
    out = _run(api_url, "cost", "--group-by", "model", "--rightsizing")
    for word in ("gpt-4.1", "mystery-1", "gpu_idle"):
        assert word in out
    mystery = next(line for line in out.splitlines() if "mystery-1" in line)
    assert " - " in mystery
    out = _run(api_url, "energy")
    assert "GPU-aaaa" in out
    assert "PUE 1.2" in out
    out = _run(api_url, "trace", "c" * 32)
    assert "gpu.utilization" in out
    assert "gpu_time" in out
