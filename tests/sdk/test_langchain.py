"""LangChain instrumentation: chains, tools, retrievers and chat models via real callbacks."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import strata.agent.sdk as sdk
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.trace import StatusCode

from tests.sdk import llm_server as srv
from tests.sdk.conftest import Traced
from tests.sdk.llm_server import LLMServer


class LocalChatModel(BaseChatModel):
    """A minimal chat model backed by the real openai client (like ChatOpenAI)."""

    base_url: str
    model: str = "gpt-4o"

    @property
    def _llm_type(self) -> str:
        return "local-openai"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "openai", "ls_model_name": self.model, "ls_model_type": "chat"}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with openai.OpenAI(base_url=self.base_url, api_key="t", max_retries=0) as client:
            resp = client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": str(m.content)}
                                            for m in messages])
        usage = resp.usage
        assert usage is not None
        msg = AIMessage(content=resp.choices[0].message.content or "",
                        usage_metadata={"input_tokens": usage.prompt_tokens,
                                        "output_tokens": usage.completion_tokens,
                                        "total_tokens": usage.total_tokens},
                        response_metadata={"model_name": resp.model})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class OfflineChatModel(LocalChatModel):
    """Same contract, no provider client: the LangChain span must carry the tokens itself."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        msg = AIMessage(content="ok", usage_metadata={"input_tokens": 3, "output_tokens": 2,
                                                      "total_tokens": 5},
                        response_metadata={"model_name": "offline-1", "finish_reason": "stop"})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class Docs(BaseRetriever):
    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content="a"), Document(page_content="b")]


@tool
def lookup(city: str) -> str:
    """Look a city up."""
    return f"{city}: sunny"


@tool
def broken(city: str) -> str:
    """Always fails."""
    raise ValueError("no such city")


@pytest.fixture(name="lc")
def lc_fixture(traced: Traced) -> Traced:
    return traced


def test_chain_with_model_retriever_and_tool(lc: Traced, llm: LLMServer) -> None:
    """One workflow span parents the retriever, the model call (one span, provider usage)
    and the tool; tokens are on the model span only."""
    model = LocalChatModel(base_url=llm.url + "/v1")
    chain = (RunnableLambda(lambda q: Docs().invoke(q)) | RunnableLambda(lambda d: "q")
             | model | RunnableLambda(lambda m: lookup.invoke({"city": "Paris"})))
    assert chain.invoke("q") == "Paris: sunny"
    spans = {s.name: s for s in lc.spans()}
    root = spans["invoke_workflow RunnableSequence"]
    chat = spans["chat gpt-4o"]
    assert [s.name for s in lc.spans()].count("chat gpt-4o") == 1
    assert chat.parent is not None
    assert chat.parent.span_id == root.context.span_id
    attrs = chat.attributes or {}
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == srv.USAGE_INPUT
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == srv.USAGE_CACHED  # from the client
    retrieval = spans["retrieval Docs"]
    assert (retrieval.attributes or {})["strata.retrieval.documents.count"] == 2
    tool_span = spans["execute_tool lookup"]
    assert (tool_span.attributes or {})["gen_ai.tool.name"] == "lookup"
    by_id = {s.context.span_id: s for s in lc.spans()}
    ancestor = tool_span
    while ancestor.parent is not None:
        ancestor = by_id[ancestor.parent.span_id]
    assert ancestor is root
    tokens = [s for s in lc.spans() if "gen_ai.usage.input_tokens" in (s.attributes or {})]
    assert tokens == [chat]


def test_model_without_instrumented_client(lc: Traced) -> None:
    """A model that calls no instrumented client gets tokens from LangChain's usage."""
    OfflineChatModel(base_url="unused", model="offline").invoke("hi")
    attrs = lc.span("chat offline").attributes or {}
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.model"] == "offline-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    points = lc.points("gen_ai.client.token.usage")
    assert sorted(p.sum for p in points) == [2, 3]


def test_tool_error_recorded(lc: Traced) -> None:
    """A failing tool's exception propagates unchanged and is recorded on its span."""
    with pytest.raises(ValueError, match="no such city"):
        broken.invoke({"city": "Atlantis"})
    span = lc.span("execute_tool broken")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ValueError"


def test_async_chain_parenting(lc: Traced) -> None:
    """Async chains parent their steps and leave no run current afterwards."""
    import asyncio

    chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)

    @sdk.workflow(name="main")
    async def main() -> int:
        return await chain.ainvoke(1)

    assert asyncio.run(main()) == 4
    spans = {s.name: s for s in lc.spans()}
    outer = spans["invoke_workflow main"]
    seq = spans["invoke_workflow RunnableSequence"]
    assert seq.parent is not None
    assert seq.parent.span_id == outer.context.span_id
