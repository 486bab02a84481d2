"""Which span a new span should hang under, across LangChain callbacks and our own spans.

LangChain reports runs through callbacks, and its async ``on_*_end`` callbacks run in a
copied context, so attaching an OTel context in ``on_*_start`` and detaching it in
``on_*_end`` would leak the run's span into the caller's context. Instead the LangChain
handler records its innermost run in :data:`CURRENT_RUN` (a ``ContextVar`` that is only
ever *set*, never reset) and marks runs ``ended``; a stale value is harmless because
:func:`parent_for_new_span` walks up past ended runs.
"""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span


class Run:
    """One LangChain run that has a span (chain, tool, retriever or LLM)."""

    __slots__ = ("context", "ended", "enriched", "is_llm", "parent", "span", "start_ns")

    def __init__(self, span: Span, parent: Run | None, *, is_llm: bool, start_ns: int) -> None:
        self.span = span
        self.parent = parent
        self.is_llm = is_llm
        self.start_ns = start_ns
        self.ended = False
        self.enriched = False  # a provider instrumentation filled in this LLM span
        self.context = trace.set_span_in_context(span)


CURRENT_RUN: ContextVar[Run | None] = ContextVar("strata_sdk_langchain_run", default=None)


def live_run() -> Run | None:
    """The innermost LangChain run still in progress in this context, if any.

    A span attached by our decorators after that run started wins over it (it is nested
    inside the run), so in that case None is returned and the ambient context applies.
    """
    run = CURRENT_RUN.get()
    if run is None:
        return None
    while run is not None and run.ended:
        run = run.parent
    if run is None:
        return None
    ambient = trace.get_current_span()
    started = getattr(ambient, "start_time", None)
    if isinstance(started, int) and started > run.start_ns and ambient.is_recording():
        return None
    return run


def parent_context() -> otel_context.Context | None:
    """Context to start a new span in: the live LangChain run's, else None (ambient)."""
    run = live_run()
    return run.context if run is not None else None
