"""Attribute, metric and operation names the SDK writes (OTel GenAI semantic conventions).

The GenAI conventions moved to their own repository and the Python constants are
deprecated there, so the names are string literals (see COMPONENTS.md §5). The names the
agent reads come from :mod:`strata.agent.semconv`, so writer and reader cannot drift apart.
"""

from __future__ import annotations

from typing import Final

from strata.agent.semconv import (
    CACHE_READ_TOKENS,
    ERROR_TYPE,
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    PROVIDER,
    REASONING_TOKENS,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    TEAM,
)

__all__ = [
    "CACHE_CREATION_TOKENS",
    "CACHE_READ_TOKENS",
    "DURATION_BUCKETS_S",
    "ERROR_TYPE",
    "INPUT_MESSAGES",
    "INPUT_TOKENS",
    "OPERATION",
    "OUTPUT_MESSAGES",
    "OUTPUT_TOKENS",
    "PROVIDER",
    "REASONING_TOKENS",
    "REQUEST_MODEL",
    "RESPONSE_MODEL",
    "TEAM",
    "TOKEN_BUCKETS",
]

CACHE_CREATION_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
RESPONSE_ID: Final = "gen_ai.response.id"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
REQUEST_STREAM: Final = "gen_ai.request.stream"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_TOP_K: Final = "gen_ai.request.top_k"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_STOP: Final = "gen_ai.request.stop_sequences"
REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
EMBEDDINGS_DIMENSION: Final = "gen_ai.embeddings.dimension.count"
OUTPUT_TYPE: Final = "gen_ai.output.type"
TOKEN_TYPE: Final = "gen_ai.token.type"  # noqa: S105 - not a secret
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
TOOL_CALL_NAMES: Final = "strata.gen_ai.tool_calls"  # names of tools the model asked for
AGENT_NAME: Final = "gen_ai.agent.name"
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
RETRIEVAL_DOCUMENTS_COUNT: Final = "strata.retrieval.documents.count"
RETRIEVAL_QUERY: Final = "gen_ai.retrieval.query.text"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
STEP_KIND: Final = "strata.step.kind"  # workflow | task | step | chain | tool | retriever | llm
LANGCHAIN_RUN_TYPE: Final = "langchain.run.type"

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_EMBEDDINGS: Final = "embeddings"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_RETRIEVAL: Final = "retrieval"
OP_TASK: Final = "task"  # a workflow step; agent.semconv files it under orchestration

METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # noqa: S105 - not a secret
METRIC_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"

# Advisory bucket boundaries from the GenAI metrics conventions.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS_S: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
