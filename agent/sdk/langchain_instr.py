"""LangChain (langchain-core callbacks) instrumentation: orchestration spans and LLM spans.

A :class:`StrataCallbackHandler` is added to every callback manager (by wrapping
``BaseCallbackManager.__init__``), so chains, agents, tools, retrievers and models all
report to it without the app passing ``callbacks=``. Spans:

- chain → ``invoke_workflow`` (root), ``invoke_agent`` (agent executors/graphs named
  *agent*), or ``task`` (nested steps);
- tool → ``execute_tool`` (``gen_ai.tool.name``); retriever → ``retrieval``;
- chat model / LLM → ``chat`` / ``text_completion`` with tokens. When the model calls an
  instrumented client (OpenAI, Anthropic), that instrumentation fills in this same span
  (provider usage, time to first chunk), so each model call is one span and tokens are
  counted once.

Parents come from LangChain's ``parent_run_id``; errors are recorded on the run's span.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.callbacks.base import BaseCallbackManager
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from strata.agent.sdk import attributes as A
from strata.agent.sdk.decorators import record_error
from strata.agent.sdk.patching import unwrap, wrap
from strata.agent.sdk.scope import CURRENT_RUN, Run
from strata.agent.sdk.telemetry import ACTIVE, Telemetry
from strata.agent.units import NS_PER_S

logger = logging.getLogger(__name__)

_HIDDEN_TAG = "langsmith:hidden"


def _name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        if isinstance(serialized.get("name"), str):
            return str(serialized["name"])
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


class StrataCallbackHandler(BaseCallbackHandler):
    """LangChain callback handler that turns runs into OTel spans. Never raises."""

    run_inline = True  # start callbacks must run in the caller's context (CURRENT_RUN)
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[UUID, Run] = {}

    # ------------------------------------------------------------------ plumbing

    def _open(
        self, run_id: UUID, parent_run_id: UUID | None, name: str,
        attrs: dict[str, AttributeValue], *, is_llm: bool = False,
    ) -> None:
        tel = ACTIVE.telemetry
        if tel is None:
            return
        try:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            span = tel.tracer.start_span(
                name, context=parent.context if parent is not None else None,
                kind=SpanKind.CLIENT if is_llm else SpanKind.INTERNAL, attributes=attrs,
            )
            start = getattr(span, "start_time", None) or time.time_ns()
            run = Run(span, parent, is_llm=is_llm, start_ns=start)
            self._runs[run_id] = run
            CURRENT_RUN.set(run)
        except Exception:
            logger.debug("opening a LangChain span failed", exc_info=True)

    def _close(
        self, run_id: UUID, attrs: Mapping[str, AttributeValue] | None = None,
        error: BaseException | None = None,
    ) -> Run | None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return None
        try:
            run.ended = True
            if attrs:
                run.span.set_attributes(attrs)
            if error is not None:
                record_error(run.span, error)
            run.span.end()
            if CURRENT_RUN.get() is run:
                CURRENT_RUN.set(run.parent)
        except Exception:
            logger.debug("closing a LangChain span failed", exc_info=True)
        return run

    # ------------------------------------------------------------------ chains

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any,
    ) -> None:
        """A chain (or agent, or graph) started."""
        if tags and _HIDDEN_TAG in tags:
            return
        name = _name(serialized, kwargs, "chain")
        if "agent" in name.lower():
            op, attrs = A.OP_INVOKE_AGENT, {A.AGENT_NAME: name}
        elif parent_run_id is None or parent_run_id not in self._runs:
            op, attrs = A.OP_INVOKE_WORKFLOW, {A.WORKFLOW_NAME: name}
        else:
            op, attrs = A.OP_TASK, {}
        attrs.update({A.OPERATION: op, A.STEP_KIND: "chain"})
        self._open(run_id, parent_run_id, f"{op} {name}", dict(attrs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A chain finished."""
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A chain failed."""
        self._close(run_id, error=error)

    # ------------------------------------------------------------------ tools

    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
        parent_run_id: UUID | None = None, **kwargs: Any,
    ) -> None:
        """A tool started."""
        name = _name(serialized, kwargs, "tool")
        attrs: dict[str, AttributeValue] = {
            A.OPERATION: A.OP_EXECUTE_TOOL, A.TOOL_NAME: name, A.STEP_KIND: "tool",
        }
        tool_call_id = kwargs.get("tool_call_id")
        if isinstance(tool_call_id, str):
            attrs[A.TOOL_CALL_ID] = tool_call_id
        tel = ACTIVE.telemetry
        if tel is not None:
            args = tel.content.text(input_str)
            if args is not None:
                attrs[A.TOOL_CALL_ARGUMENTS] = args
        self._open(run_id, parent_run_id, f"{A.OP_EXECUTE_TOOL} {name}", attrs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool finished."""
        tel = ACTIVE.telemetry
        result = tel.content.text(getattr(output, "content", output)) if tel else None
        self._close(run_id, {A.TOOL_CALL_RESULT: result} if result is not None else None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool failed."""
        self._close(run_id, error=error)

    # ------------------------------------------------------------------ retrievers

    def on_retriever_start(
        self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID,
        parent_run_id: UUID | None = None, **kwargs: Any,
    ) -> None:
        """A retriever started."""
        name = _name(serialized, kwargs, "retriever")
        attrs: dict[str, AttributeValue] = {
            A.OPERATION: A.OP_RETRIEVAL, A.DATA_SOURCE_ID: name, A.STEP_KIND: "retriever",
        }
        tel = ACTIVE.telemetry
        if tel is not None:
            text = tel.content.text(query)
            if text is not None:
                attrs[A.RETRIEVAL_QUERY] = text
        self._open(run_id, parent_run_id, f"{A.OP_RETRIEVAL} {name}", attrs)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """A retriever returned *documents*."""
        self._close(run_id, {A.RETRIEVAL_DOCUMENTS_COUNT: len(documents)})

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A retriever failed."""
        self._close(run_id, error=error)

    # ------------------------------------------------------------------ models

    def _open_model(
        self, serialized: dict[str, Any] | None, run_id: UUID, parent_run_id: UUID | None,
        operation: str, kwargs: Mapping[str, Any], messages: Any,
    ) -> None:
        metadata = kwargs.get("metadata") or {}
        params = kwargs.get("invocation_params") or {}
        provider = metadata.get("ls_provider") or _name(serialized, {}, "langchain")
        model = (metadata.get("ls_model_name") or params.get("model")
                 or params.get("model_name"))
        attrs: dict[str, AttributeValue] = {
            A.OPERATION: operation, A.PROVIDER: str(provider), A.STEP_KIND: "llm",
        }
        if model:
            attrs[A.REQUEST_MODEL] = str(model)
        temperature = metadata.get("ls_temperature", params.get("temperature"))
        if isinstance(temperature, int | float):
            attrs[A.REQUEST_TEMPERATURE] = temperature
        max_tokens = metadata.get("ls_max_tokens", params.get("max_tokens"))
        if isinstance(max_tokens, int):
            attrs[A.REQUEST_MAX_TOKENS] = max_tokens
        tel = ACTIVE.telemetry
        if tel is not None and tel.content.capture:
            captured = tel.content.messages(messages)
            if captured is not None:
                attrs[A.INPUT_MESSAGES] = captured
        name = f"{operation} {model}" if model else operation
        self._open(run_id, parent_run_id, name, attrs, is_llm=True)

    def on_chat_model_start(
        self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
        parent_run_id: UUID | None = None, **kwargs: Any,
    ) -> None:
        """A chat model call started."""
        self._open_model(serialized, run_id, parent_run_id, A.OP_CHAT, kwargs,
                         messages[0] if messages else None)

    def on_llm_start(
        self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
        parent_run_id: UUID | None = None, **kwargs: Any,
    ) -> None:
        """A text-completion LLM call started."""
        self._open_model(serialized, run_id, parent_run_id, "text_completion", kwargs,
                         prompts[0] if prompts else None)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call finished: tokens and response model, unless a client filled them in."""
        run = self._runs.get(run_id)
        tel = ACTIVE.telemetry
        if run is None or tel is None or run.enriched:
            self._close(run_id)
            return
        try:
            attrs, model, inp, out = _llm_result(response, tel)
            attrs_span = run.span.attributes if hasattr(run.span, "attributes") else {}
            provider = str(attrs_span.get(A.PROVIDER, "langchain"))
            operation = str(attrs_span.get(A.OPERATION, A.OP_CHAT))
            req = attrs_span.get(A.REQUEST_MODEL)
            duration = (time.time_ns() - run.start_ns) / NS_PER_S
            tel.record((provider, operation, req, model, None), duration, inp, out)
        except Exception:
            logger.debug("reading a LangChain LLM result failed", exc_info=True)
            attrs = {}
        self._close(run_id, attrs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call failed."""
        self._close(run_id, error=error)


def _llm_result(
    response: Any, tel: Telemetry
) -> tuple[dict[str, AttributeValue], str | None, int | None, int | None]:
    attrs: dict[str, AttributeValue] = {}
    model: str | None = None
    inp = out = None
    generations = response.generations[0] if response.generations else []
    first = generations[0] if generations else None
    message = getattr(first, "message", None)
    usage = getattr(message, "usage_metadata", None)
    meta = getattr(message, "response_metadata", None) or {}
    info = getattr(first, "generation_info", None) or {}
    if usage:
        inp, out = usage.get("input_tokens"), usage.get("output_tokens")
        cache = (usage.get("input_token_details") or {}).get("cache_read")
        reasoning = (usage.get("output_token_details") or {}).get("reasoning")
        if cache is not None:
            attrs[A.CACHE_READ_TOKENS] = cache
        if reasoning is not None:
            attrs[A.REASONING_TOKENS] = reasoning
    else:
        token_usage = (response.llm_output or {}).get("token_usage") or {}
        inp = token_usage.get("prompt_tokens", token_usage.get("input_tokens"))
        out = token_usage.get("completion_tokens", token_usage.get("output_tokens"))
    if inp is not None:
        attrs[A.INPUT_TOKENS] = inp
    if out is not None:
        attrs[A.OUTPUT_TOKENS] = out
    model = meta.get("model_name") or meta.get("model") or (response.llm_output or {}).get(
        "model_name")
    if model:
        attrs[A.RESPONSE_MODEL] = str(model)
    reason = meta.get("finish_reason") or meta.get("stop_reason") or info.get("finish_reason")
    if reason:
        attrs[A.FINISH_REASONS] = (str(reason),)
    if tel.content.capture and first is not None:
        captured = tel.content.output_text(getattr(first, "text", None), reason)
        if captured is not None:
            attrs[A.OUTPUT_MESSAGES] = captured
    return attrs, str(model) if model else None, inp, out


_HANDLER: StrataCallbackHandler | None = None


def _manager_init(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        handler = _HANDLER
        if handler is None or ACTIVE.telemetry is None:
            return
        try:
            if handler not in self.inheritable_handlers:
                self.add_handler(handler, inherit=True)
        except Exception:
            logger.debug("adding the LangChain handler failed", exc_info=True)

    return __init__


def instrument() -> bool:
    """Add our handler to every LangChain callback manager (idempotent)."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = StrataCallbackHandler()
    wrap(BaseCallbackManager, "__init__", _manager_init)
    return True


def uninstrument() -> None:
    """Stop adding the handler to new callback managers."""
    unwrap(BaseCallbackManager, "__init__")
