"""End to end: real clients → local LLM server; SDK → real OTLP/HTTP exporter → real agent.

Assertions go through the agent's HTTP API only (tokens, models, errors, span tree).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
import strata.agent.sdk as sdk
from langchain_core.runnables import RunnableLambda

from tests.conftest import LiveAgent
from tests.sdk import llm_server as srv
from tests.sdk.llm_server import LLMServer
from tests.waiting import wait_until

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(name="shipped")
def shipped_fixture(live_agent: LiveAgent) -> Iterator[sdk.SDKHandle]:
    handle = sdk.init("rag-api", endpoint=live_agent.otlp_endpoint, version="2.0.0",
                      team="search", set_global=False)
    assert handle is not None
    yield handle
    sdk.shutdown()


def traces(agent: LiveAgent, **params: Any) -> list[dict[str, Any]]:
    return agent.get("/api/v1/traces", **params).json()["traces"]  # type: ignore[no-any-return]


def flatten(nodes: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for node in nodes:
        out.append((depth, node))
        out += flatten(node["children"], depth + 1)
    return out


def test_llm_calls_land_in_the_agent(live_agent: LiveAgent, llm: LLMServer,
                                     shipped: sdk.SDKHandle) -> None:
    """OpenAI (plain, streamed, failed) and Anthropic spans arrive with tokens and models."""
    with openai.OpenAI(base_url=llm.url + "/v1", api_key="t", max_retries=0) as oai:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for _ in oai.chat.completions.create(model="gpt-4o-stream", messages=MESSAGES,
                                             stream=True,
                                             stream_options={"include_usage": True}):
            pass
        with pytest.raises(openai.RateLimitError):
            oai.chat.completions.create(model="error-429", messages=MESSAGES)
    with anthropic.Anthropic(base_url=llm.url, api_key="t", max_retries=0) as claude:
        claude.messages.create(model="claude", max_tokens=8, messages=MESSAGES)
    assert shipped.force_flush()

    wait_until(lambda: len(traces(live_agent, service="rag-api")) >= 4, 20, "4 traces")
    rows = traces(live_agent, service="rag-api")
    assert len(rows) == 4
    by_root = {r["root_name"]: r for r in rows}
    assert by_root["chat gpt-4o"]["input_tokens"] == srv.USAGE_INPUT
    assert by_root["chat gpt-4o"]["output_tokens"] == srv.USAGE_OUTPUT
    assert by_root["chat gpt-4o-stream"]["output_tokens"] == srv.USAGE_OUTPUT
    assert by_root["chat error-429"]["has_error"] is True
    assert by_root["chat claude"]["input_tokens"] == srv.USAGE_INPUT + srv.USAGE_CACHED + 1

    tree = live_agent.get(f"/api/v1/traces/{by_root['chat gpt-4o']['trace_id']}").json()
    (span,) = tree["spans"]
    assert span["provider"] == "openai"
    assert span["request_model"] == "gpt-4o"
    assert span["response_model"] == "gpt-4o-2024-08-06"
    assert span["cache_read_tokens"] == srv.USAGE_CACHED
    assert span["reasoning_tokens"] == srv.USAGE_REASONING
    assert span["service_version"] == "2.0.0"
    assert span["team"] == "search"
    failed = live_agent.get(f"/api/v1/traces/{by_root['chat error-429']['trace_id']}").json()
    assert failed["spans"][0]["error_type"] == "RateLimitError"
    assert failed["spans"][0]["status"] == "error"


def test_workflow_tree(live_agent: LiveAgent, llm: LLMServer, shipped: sdk.SDKHandle) -> None:
    """A @workflow with a LangChain chain and a step keeps its parent/child structure."""
    oai = openai.OpenAI(base_url=llm.url + "/v1", api_key="t", max_retries=0)

    def ask(question: str) -> str:
        reply = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return reply.choices[0].message.content or ""

    chain = RunnableLambda(lambda q: q.strip()) | RunnableLambda(ask)

    @sdk.workflow(name="answer")
    def answer(question: str) -> str:
        with sdk.step("rerank"):
            pass
        return chain.invoke(question)

    assert answer(" why? ") == srv.TEXT
    oai.close()
    assert shipped.force_flush()

    wait_until(lambda: traces(live_agent, service="rag-api"), 20, "the trace")
    (row,) = traces(live_agent, service="rag-api")
    tree = live_agent.get(f"/api/v1/traces/{row['trace_id']}").json()
    flat = [(depth, node["name"]) for depth, node in flatten(tree["spans"])]
    assert flat[0] == (0, "invoke_workflow answer")
    assert (1, "task rerank") in flat
    assert (1, "invoke_workflow RunnableSequence") in flat
    assert (3, "chat gpt-4o") in flat  # sequence → RunnableLambda(ask) → chat
    assert row["input_tokens"] == srv.USAGE_INPUT
