"""Interop: the instrumentations people already run, as real clients of a real agent.

Each SDK runs in a subprocess (``client.py``: they patch ``openai`` and set the global
providers) against the local OpenAI-compatible server (``tests/sdk/llm_server.py``) and
exports to one ``strata agent`` process. Each test asserts what a user relies on: the span
stored in the right layer with model, tokens and cost (or explicitly unpriced), the GenAI
events linked to it where the SDK emits them, and no prompt or completion text in the
DuckDB file or its WAL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveAgent, launch_agent
from tests.interop.client import PROMPT, VLLM_MODEL
from tests.sdk.llm_server import TEXT, USAGE_INPUT, USAGE_OUTPUT, LLMServer

CLIENT = Path(__file__).with_name("client.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", name="llm")
def llm_fixture() -> Iterator[LLMServer]:
    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", name="agent")
def agent_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    live = launch_agent(tmp_path_factory.mktemp("interop"))
    yield live
    live.stop()


def run_client(sdk: str, agent: LiveAgent, llm: LLMServer) -> None:
    result = subprocess.run(
        [sys.executable, str(CLIENT), sdk, "--llm", llm.url, "--grpc", agent.grpc_target,
         "--http", agent.otlp_endpoint],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "OTEL_SDK_DISABLED": "false"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def only_trace(agent: LiveAgent, service: str) -> dict[str, Any]:
    traces = agent.get("/api/v1/traces", service=service).json()["traces"]
    assert len(traces) == 1, traces
    return dict(agent.get(f"/api/v1/traces/{traces[0]['trace_id']}").json())


def flat(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for span in spans for s in (span, *flat(span["children"]))]


def model_span(detail: dict[str, Any]) -> dict[str, Any]:
    (span,) = [s for s in flat(detail["spans"]) if s["layer"] in ("model", "serving")]
    return span


def assert_no_content(agent: LiveAgent) -> None:
    wal = agent.db.with_name(agent.db.name + ".wal")
    stored = agent.db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert PROMPT.encode() not in stored
    assert TEXT.encode() not in stored


def test_openllmetry_spans_and_events(agent: LiveAgent, llm: LLMServer) -> None:
    run_client("openllmetry", agent, llm)
    detail = only_trace(agent, "interop-openllmetry")
    span = model_span(detail)
    assert (span["layer"], span["operation"], span["request_model"]) == (
        "model", "chat", "gpt-4o-mini")
    assert (span["input_tokens"], span["output_tokens"]) == (USAGE_INPUT, USAGE_OUTPUT)
    assert span["cost_usd"] > 0
    events = {r["event_name"]: r for r in span["logs"]}
    assert {"gen_ai.user.message", "gen_ai.choice"} <= set(events), span["logs"]
    assert not any(r["span_event"] for r in events.values())  # log records, not span events
    assert "[redacted len=" in str(events["gen_ai.user.message"]["body"])
    assert "[redacted len=" in str(events["gen_ai.choice"]["body"])
    assert_no_content(agent)


def test_openinference_spans_over_http(agent: LiveAgent, llm: LLMServer) -> None:
    run_client("openinference", agent, llm)
    span = model_span(only_trace(agent, "interop-openinference"))
    assert (span["layer"], span["operation"]) == ("model", "chat")
    assert span["request_model"].startswith("gpt-4o-mini")
    assert (span["input_tokens"], span["output_tokens"]) == (USAGE_INPUT, USAGE_OUTPUT)
    assert span["cost_usd"] > 0
    assert span["attributes"]["input.value"].startswith("[redacted len=")
    assert_no_content(agent)


def test_plain_otel_sdk_grpc_with_events_and_exception_log(agent: LiveAgent,
                                                           llm: LLMServer) -> None:
    run_client("otel-grpc", agent, llm)
    span = model_span(only_trace(agent, "interop-otel-grpc"))
    assert (span["layer"], span["provider"], span["request_model"]) == ("model", "openai",
                                                                          "gpt-4o")
    assert (span["input_tokens"], span["output_tokens"]) == (1200, 300)
    assert span["cost_usd"] > 0
    details, failure = span["logs"]
    assert details["event_name"] == "gen_ai.client.inference.operation.details"
    assert details["attributes"]["gen_ai.input.messages"].startswith("[redacted len=")
    assert (failure["error_type"], failure["body"]) == ("TimeoutError", "retrieval failed")
    assert_no_content(agent)


def test_vllm_shaped_grpc_span_stream(agent: LiveAgent, llm: LLMServer) -> None:
    run_client("vllm", agent, llm)
    span = model_span(only_trace(agent, "interop-vllm"))
    assert (span["layer"], span["kind"], span["response_model"]) == (
        "serving", "server", VLLM_MODEL)
    assert (span["input_tokens"], span["output_tokens"]) == (812, 64)
    assert span["cost_usd"] is None  # served on a local GPU: unpriced until GPU attribution
    assert span["energy_status"] != "measured"


def test_openlit_offline_spans_and_events(agent: LiveAgent, llm: LLMServer) -> None:
    run_client("openlit", agent, llm)  # fails on any connection off 127.0.0.1
    span = model_span(only_trace(agent, "interop-openlit"))
    assert (span["layer"], span["operation"], span["provider"], span["request_model"]) == (
        "model", "chat", "openai", "gpt-4o-mini")
    assert (span["input_tokens"], span["output_tokens"]) == (USAGE_INPUT, USAGE_OUTPUT)
    assert span["cost_usd"] > 0
    assert span["cost_source"] == "token_price"
    # OpenLIT priced it from the local file (11 x 0.00015/1k + 7 x 0.0006/1k), not a fetch.
    assert span["attributes"]["gen_ai.usage.cost"] == pytest.approx(5.85e-06)
    assert span["attributes"]["gen_ai.input.messages"].startswith("[redacted len=")
    (details,) = span["logs"]
    assert (details["event_name"], details["span_event"]) == (
        "gen_ai.client.inference.operation.details", False)
    assert details["attributes"]["gen_ai.input.messages"].startswith("[redacted len=")
    assert details["attributes"]["gen_ai.output.messages"].startswith("[redacted len=")
    assert_no_content(agent)
