"""A small LangChain RAG chain (langchain-core only) instrumented with the Strata SDK.

The retriever is in memory; the chat model calls an OpenAI-compatible server through the
real ``openai`` client, so the trace shows retrieval → model call (with tokens) → tool::

    python tests/sdk/llm_server.py --port 8765 &
    strata agent &
    python examples/langchain_rag.py --base-url http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
from typing import Any

import openai
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool
from strata import init, shutdown, workflow

DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany."]


class KeywordRetriever(BaseRetriever):
    """Returns the documents sharing a word with the query."""

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        words = set(query.lower().split())
        return [Document(page_content=d) for d in DOCS if words & set(d.lower().split())]


class OpenAICompatibleChat(BaseChatModel):
    """A minimal chat model on the ``openai`` client (stands in for langchain-openai)."""

    base_url: str
    api_key: str = "local"
    model: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "openai", "ls_model_name": self.model, "ls_model_type": "chat"}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0) as c:
            resp = c.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": str(m.content)} for m in messages])
        return ChatResult(generations=[ChatGeneration(
            message=AIMessage(content=resp.choices[0].message.content or ""))])


@tool
def word_count(text: str) -> int:
    """Count the words of an answer."""
    return len(text.split())


def build_chain(base_url: str, api_key: str) -> Any:
    prompt = ChatPromptTemplate.from_template("Context: {context}\n\nQuestion: {question}")
    retriever = KeywordRetriever()
    return (
        {"context": retriever | RunnableLambda(lambda ds: " ".join(d.page_content for d in ds)),
         "question": RunnablePassthrough()}
        | prompt
        | OpenAICompatibleChat(base_url=base_url, api_key=api_key)
        | RunnableLambda(lambda m: {"answer": m.content,
                                    "words": word_count.invoke({"text": str(m.content)})})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP endpoint of the agent")
    parser.add_argument("--api-key", default="local")
    args = parser.parse_args()
    init("rag-api", endpoint=args.endpoint, version="1.0.0", team="search")
    chain = build_chain(args.base_url, args.api_key)

    @workflow(name="rag")
    def ask(question: str) -> Any:
        return chain.invoke(question)

    print(ask("What is the capital of France?"))
    shutdown()


if __name__ == "__main__":
    main()
