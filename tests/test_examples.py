"""Every example runs on this machine, and the README's main command works on a clean venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO, LiveAgent
from tests.sdk.llm_server import LLMServer

EXAMPLES = REPO / "examples"


def run_example(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "OTEL_"))}
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_replay_capture_keeps_event_times(live_agent: LiveAgent) -> None:
    """The captured OTLP/JSON file replays with nothing rejected and its own timestamps."""
    out = run_example("examples/replay_otlp.py", "examples/data/capture.jsonl",
                      "--endpoint", live_agent.otlp_endpoint).stdout
    assert "replayed 40 requests (0 items rejected)" in out
    first = json.loads((EXAMPLES / "data" / "capture.jsonl").read_text().splitlines()[0])
    expected_spans = sum(
        len(ss["spans"]) for line in (EXAMPLES / "data" / "capture.jsonl").read_text().splitlines()
        for rs in json.loads(line).get("resourceSpans", []) for ss in rs["scopeSpans"])
    counts = live_agent.get("/api/v1/health").json()["counts"]
    assert counts["spans"] == expected_spans
    trace = live_agent.get("/api/v1/traces", limit=1000).json()["traces"]
    t0 = int(first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"])
    assert min(t["start_time"] for t in trace).startswith(
        __import__("datetime").datetime.fromtimestamp(t0 / 1e9, __import__("datetime").UTC)
        .strftime("%Y-%m-%d"))


def test_query_incidents_example(live_agent: LiveAgent) -> None:
    """The incidents example analyses, lists and prints (nothing open on an empty agent)."""
    out = run_example("examples/query_incidents.py", "--api", live_agent.api_url).stdout
    assert "0 open incident(s)" in out


@pytest.mark.parametrize("script", ["examples/openai_app.py", "examples/langchain_rag.py"])
def test_sdk_examples_reach_the_agent(live_agent: LiveAgent, script: str) -> None:
    """The instrumented example apps run against a local LLM server; their spans land."""
    server = LLMServer().start()
    try:
        run_example(script, "--base-url", f"{server.url}/v1", "--endpoint",
                    live_agent.otlp_endpoint)
    finally:
        server.stop()
    traces = live_agent.get("/api/v1/traces").json()["traces"]
    assert traces, "no spans arrived"
    detail = live_agent.get(f"/api/v1/traces/{traces[0]['trace_id']}").json()
    layers = set()

    def walk(spans):
        for s in spans:
            layers.add(s["layer"])
            walk(s["children"])

    walk(detail["spans"])
    assert "model" in layers


@pytest.mark.slow
def test_readme_main_command_on_a_clean_venv(tmp_path: Path) -> None:
    """The README's first command (venv, pip install -e ., strata demo) works from scratch."""
    readme = (REPO / "README.md").read_text().splitlines()
    first, second = readme[3], readme[4]
    assert first == ("python3 -m venv .venv && .venv/bin/pip install -q -e . && "
                     ".venv/bin/strata demo")
    assert second in (REPO / ".ci" / "run").read_text()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", "-e", str(REPO)],
                   check=True, timeout=900)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    result = subprocess.run([str(env_dir / "bin" / "strata"), "demo"], capture_output=True,
                            text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "roll back" in result.stdout
    assert "Cost, energy and carbon by team" in result.stdout
