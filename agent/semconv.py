"""Attribute names Strata reads, and the shim from older and foreign conventions.

Current OTel GenAI names are the canonical form. The GenAI conventions moved to their own
repository in 2026 and the Python constants are deprecated there, so names are string
literals here. ``ALIASES`` maps deprecated GenAI keys, OpenInference and Traceloop keys to
the canonical key; ingest stores only the canonical key.
"""

from __future__ import annotations

import re
from typing import Final

OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
REASONING_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE: Final = "error.type"
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
HOST_NAME: Final = "host.name"
TEAM: Final = "team"
DB_SYSTEM: Final = "db.system.name"

# deprecated / foreign key -> canonical key
ALIASES: Final[dict[str, str]] = {
    "gen_ai.system": PROVIDER,
    "gen_ai.usage.prompt_tokens": INPUT_TOKENS,
    "gen_ai.usage.completion_tokens": OUTPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens": CACHE_READ_TOKENS,
    "gen_ai.usage.reasoning_tokens": REASONING_TOKENS,
    # OpenInference
    "llm.token_count.prompt": INPUT_TOKENS,
    "llm.token_count.completion": OUTPUT_TOKENS,
    "llm.token_count.prompt_details.cache_read": CACHE_READ_TOKENS,
    "llm.token_count.completion_details.reasoning": REASONING_TOKENS,
    "llm.model_name": REQUEST_MODEL,
    "llm.provider": PROVIDER,
    "llm.system": PROVIDER,
    # Traceloop / OpenLLMetry
    "llm.usage.prompt_tokens": INPUT_TOKENS,
    "llm.usage.completion_tokens": OUTPUT_TOKENS,
    "llm.request.model": REQUEST_MODEL,
    "llm.response.model": RESPONSE_MODEL,
    "db.system": DB_SYSTEM,
}

# Operations by layer (gen_ai.operation.name values).
MODEL_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion", "embedding"}
)
ORCHESTRATION_OPERATIONS: Final = frozenset(
    {"invoke_agent", "execute_tool", "invoke_workflow", "create_agent", "workflow", "task"}
)
DATA_OPERATIONS: Final = frozenset({"retrieval"})
VECTOR_DB_SYSTEMS: Final = frozenset(
    {"milvus", "qdrant", "weaviate", "chroma", "pinecone", "pgvector", "lancedb", "elasticsearch",
     "opensearch", "redis"}
)
# OpenInference span kinds and Traceloop span kinds -> operation
SPAN_KIND_OPERATIONS: Final[dict[str, str]] = {
    "LLM": "chat", "EMBEDDING": "embeddings", "RETRIEVER": "retrieval", "TOOL": "execute_tool",
    "AGENT": "invoke_agent", "CHAIN": "invoke_workflow",
    "workflow": "invoke_workflow", "task": "invoke_workflow", "agent": "invoke_agent",
    "tool": "execute_tool",
}
SPAN_KIND_KEYS: Final = ("openinference.span.kind", "traceloop.span.kind")

# Prompt / response content. Exact keys and key prefixes (indexed keys like
# gen_ai.prompt.0.content, llm.input_messages.0.message.content).
CONTENT_KEYS: Final = frozenset({
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text", "gen_ai.retrieval.documents", "input.value", "output.value",
    "traceloop.entity.input", "traceloop.entity.output", "langfuse.observation.input",
    "langfuse.observation.output", "langfuse.trace.input", "langfuse.trace.output",
    "gen_ai.content.prompt", "gen_ai.content.completion", "db.query.text", "db.statement",
})
CONTENT_PREFIXES: Final = (
    "gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages", "llm.output_messages",
    "llm.prompts", "llm.completions", "gen_ai.input.messages.", "gen_ai.output.messages.",
    "retrieval.documents", "gen_ai.content.",
)
_ROLE_CONTENT = re.compile(r'"role"\s*:|"content"\s*:')
CONTENT_HEURISTIC_MIN_BYTES: Final = 1024


def is_content_key(key: str, value: object) -> bool:
    """True when *key* (or a large role/content JSON value) carries prompt/response text."""
    if key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES):
        return True
    return (
        isinstance(value, str)
        and len(value) > CONTENT_HEURISTIC_MIN_BYTES
        and _ROLE_CONTENT.search(value, 0, 4096) is not None
    )
