"""A small local LLM server speaking the OpenAI and Anthropic wire formats.

Serves, on 127.0.0.1 only:

- OpenAI ``POST /v1/chat/completions`` (JSON or SSE; a final usage chunk when
  ``stream_options.include_usage`` is set; tool calls when ``tools`` are given),
  ``POST /v1/responses`` (JSON or SSE events) and ``POST /v1/embeddings``;
- Anthropic ``POST /v1/messages`` (JSON or the SSE event stream ``message_start``,
  ``content_block_*``, ``message_delta`` with usage, ``message_stop``).

A model name of ``error-429`` or ``error-500`` makes the server answer with that
status and the provider's JSON error body. Token counts are fixed, so tests can
assert exact values (see the ``USAGE_*`` constants).

Run standalone (used by the benchmark and the examples)::

    python tests/sdk/llm_server.py --port 8765
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE_INPUT = 11
USAGE_OUTPUT = 7
USAGE_CACHED = 3
USAGE_REASONING = 2
EMBED_INPUT = 5
STREAM_PIECES = ("Hello", ", ", "world", "!")
TEXT = "".join(STREAM_PIECES)


def _openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": USAGE_INPUT,
        "completion_tokens": USAGE_OUTPUT,
        "total_tokens": USAGE_INPUT + USAGE_OUTPUT,
        "prompt_tokens_details": {"cached_tokens": USAGE_CACHED},
        "completion_tokens_details": {"reasoning_tokens": USAGE_REASONING},
    }


def _served_model(model: str) -> str:
    return f"{model}-2024-08-06"


def _tool_calls(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    name = tools[0].get("function", {}).get("name", "tool")
    return [{"id": "call_1", "type": "function",
             "function": {"name": name, "arguments": '{"city": "Paris"}'}}]


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    model = body["model"]
    tools = body.get("tools")
    message: dict[str, Any] = {"role": "assistant", "content": None if tools else TEXT}
    if tools:
        message["tool_calls"] = _tool_calls(tools)
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": _served_model(model),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if tools else "stop"}],
        "usage": _openai_usage(),
    }


def chat_stream(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": _served_model(body["model"])}
    tools = body.get("tools")
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None}]}
    if tools:
        call = _tool_calls(tools)[0]
        yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{**call, "index": 0}]},
                                    "finish_reason": None}]}
    else:
        for piece in STREAM_PIECES:
            yield {**base, "choices": [{"index": 0, "delta": {"content": piece},
                                        "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {},
                                "finish_reason": "tool_calls" if tools else "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _openai_usage()}


def responses_response(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1", "object": "response", "created_at": 1_700_000_000, "status": "completed",
        "model": _served_model(body["model"]), "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [],
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}],
        "usage": {"input_tokens": USAGE_INPUT, "output_tokens": USAGE_OUTPUT,
                  "total_tokens": USAGE_INPUT + USAGE_OUTPUT,
                  "input_tokens_details": {"cached_tokens": USAGE_CACHED, "cache_write_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": USAGE_REASONING}},
    }


def responses_stream(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    final = responses_response(body)
    created = {**final, "status": "in_progress", "output": [], "usage": None}
    yield "response.created", {"type": "response.created", "sequence_number": 0,
                               "response": created}
    for i, piece in enumerate(STREAM_PIECES):
        yield "response.output_text.delta", {
            "type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_1",
            "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}
    yield "response.completed", {"type": "response.completed", "sequence_number": 9,
                                 "response": final}


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return {"object": "list", "model": _served_model(body["model"]),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(len(inputs))],
            "usage": {"prompt_tokens": EMBED_INPUT, "total_tokens": EMBED_INPUT}}


def anthropic_message(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant",
        "model": _served_model(body["model"]),
        "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE_INPUT, "output_tokens": USAGE_OUTPUT,
                  "cache_read_input_tokens": USAGE_CACHED, "cache_creation_input_tokens": 1},
    }


def anthropic_stream(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    msg = anthropic_message(body)
    start = {**msg, "content": [], "stop_reason": None,
             "usage": {**msg["usage"], "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    for piece in STREAM_PIECES:
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": piece}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": USAGE_OUTPUT}}
    yield "message_stop", {"type": "message_stop"}


_ERROR_TYPES = {429: "rate_limit_error", 500: "api_error"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: LLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and benchmarks read stdout."""

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _sse(self, events: Iterator[tuple[str | None, dict[str, Any]]], done: bool) -> None:
        delay = self.server.chunk_delay_s
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event, data in events:
            line = (f"event: {event}\n" if event else "") + f"data: {json.dumps(data)}\n\n"
            self._chunk(line.encode())
            if delay:
                time.sleep(delay)
        if done:
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, body))
        model = str(body.get("model", ""))
        anthropic = self.path.endswith("/messages")
        if model.startswith("error-"):
            status = int(model.split("-", 1)[1])
            kind = _ERROR_TYPES.get(status, "api_error")
            if anthropic:
                self._json(status, {"type": "error", "error": {"type": kind, "message": "boom"}})
            else:
                self._json(status, {"error": {"message": "boom", "type": kind, "code": kind}})
            return
        if model == "malformed":  # a body the clients accept, lacking most fields
            self._json(200, {"id": "x", "object": "chat.completion"})
            return
        stream = bool(body.get("stream"))
        path = self.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            if stream:
                self._sse(((None, c) for c in chat_stream(body)), done=True)
            else:
                self._json(200, chat_completion(body))
        elif path.endswith("/responses"):
            if stream:
                self._sse(iter(responses_stream(body)), done=False)
            else:
                self._json(200, responses_response(body))
        elif path.endswith("/embeddings"):
            self._json(200, embeddings(body))
        elif anthropic:
            if stream:
                self._sse(iter(anthropic_stream(body)), done=False)
            else:
                self._json(200, anthropic_message(body))
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})


class LLMServer(ThreadingHTTPServer):
    """The server; ``requests`` records ``(path, body)`` of every POST."""

    daemon_threads = True

    def __init__(self, port: int = 0, *, chunk_delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.chunk_delay_s = chunk_delay_s
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._thread: threading.Thread | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-response (benchmark workers exiting) are not errors."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> LLMServer:
        self._thread = threading.Thread(target=self.serve_forever, name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    server = LLMServer(args.port, chunk_delay_s=args.chunk_delay)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
