"""OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs (protobuf or JSON, gzip).

Replies per the OTLP/HTTP spec: 200 (with partial_success when items were rejected) only
after the accepted items are committed to DuckDB; 400 undecodable; 413 over the body limit,
counted after decompression; 415 for other content types or encodings; 503 + Retry-After
when the write queue is full or too many requests are in flight. The transport-neutral
part (decode, commit, counters) is ``strata.agent.ingest.pipeline``, shared with gRPC.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from google.rpc import status_pb2
from strata.agent.ingest.otlp_codec import BodyTooLarge
from strata.agent.ingest.pipeline import OtlpPipeline, Outcome, Signal

if TYPE_CHECKING:
    from strata.agent.ingest.pipeline import IngestHost

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_HTTP_STATUS = {Outcome.TOO_LARGE: 413, Outcome.UNDECODABLE: 400, Outcome.BUSY: 503,
                Outcome.STORE_UNAVAILABLE: 503}


def _status(code: int, message: str, *, as_json: bool, retry_after: int | None = None) -> Response:
    """An OTLP error reply: a google.rpc.Status body in the request's encoding."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if as_json:
        body = json.dumps({"code": code, "message": message}).encode()
        return Response(body, status_code=code, media_type=JSON, headers=headers)
    body = status_pb2.Status(code=code, message=message).SerializeToString()
    return Response(body, status_code=code, media_type=PROTOBUF, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise BodyTooLarge
    return bytes(chunks)


def build_router(agent: IngestHost) -> APIRouter:
    router = APIRouter(tags=["otlp"])
    pipeline = OtlpPipeline(agent)
    stats = pipeline.stats

    async def receive(request: Request, signal: Signal) -> Response:
        stats.requests += 1
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = content_type == JSON
        if content_type not in (PROTOBUF, JSON):
            stats.unsupported += 1
            return _status(415, f"unsupported content type {content_type!r}", as_json=True)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            stats.unsupported += 1
            return _status(415, f"unsupported content encoding {encoding!r}", as_json=as_json)
        reply = await pipeline.export(lambda: _read_body(request, pipeline.limit),
                                      signal=signal, encoding=encoding, as_json=as_json)
        if reply.outcome is Outcome.OK:
            return Response(reply.body, media_type=JSON if as_json else PROTOBUF)
        return _status(_HTTP_STATUS[reply.outcome], reply.message, as_json=as_json,
                       retry_after=reply.retry_after_s)

    @router.post("/v1/traces", summary="OTLP/HTTP traces")
    async def traces(request: Request) -> Response:
        return await receive(request, Signal.TRACES)

    @router.post("/v1/metrics", summary="OTLP/HTTP metrics")
    async def metrics(request: Request) -> Response:
        return await receive(request, Signal.METRICS)

    @router.post("/v1/logs", summary="OTLP/HTTP logs")
    async def logs(request: Request) -> Response:
        return await receive(request, Signal.LOGS)

    return router
