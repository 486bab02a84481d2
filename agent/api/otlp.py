"""OTLP/HTTP receiver: POST /v1/traces and /v1/metrics (protobuf or JSON, gzip).

Replies per the OTLP/HTTP spec: 200 (with partial_success when items were rejected) only
after the accepted items are committed to DuckDB; 400 undecodable; 413 over the body limit,
counted after decompression; 415 for other content types or encodings; 503 + Retry-After
when the write queue is full or too many requests are in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from google.rpc import status_pb2
from strata.agent.errors import BackpressureError, DecodeError
from strata.agent.ingest.otlp_codec import BodyTooLarge, encode_partial_success

if TYPE_CHECKING:
    from strata.agent.runner import Agent

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_IN_FLIGHT = 64


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


def build_router(agent: Agent) -> APIRouter:
    router = APIRouter(tags=["otlp"])
    stats = agent.receiver_stats
    limit = agent.settings.max_body_bytes

    async def receive(request: Request, *, metrics: bool) -> Response:
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
        if stats.in_flight >= MAX_IN_FLIGHT:
            stats.throttled += 1
            return _status(503, "too many requests in flight", as_json=as_json, retry_after=1)
        stats.in_flight += 1
        try:
            return await _handle(request, encoding, as_json=as_json, metrics=metrics)
        finally:
            stats.in_flight -= 1

    async def _handle(request: Request, encoding: str, *, as_json: bool, metrics: bool) -> Response:
        try:
            raw = await _read_body(request, limit)
            decoded = await agent.decoder.decode(raw, encoding, as_json=as_json, metrics=metrics)
        except BodyTooLarge:
            stats.too_large += 1
            return _status(413, f"body over the {limit} byte limit", as_json=as_json)
        except DecodeError as exc:
            stats.bad_requests += 1
            return _status(400, str(exc)[:500], as_json=as_json)
        except BackpressureError as exc:  # a decode worker died
            stats.throttled += 1
            return _status(503, str(exc), as_json=as_json, retry_after=exc.retry_after_s)
        result = decoded.result
        try:
            future = agent.writer.submit(result.spans, result.samples,
                                         span_table=decoded.span_table)
            costs = await asyncio.wrap_future(future)
        except BackpressureError as exc:
            stats.throttled += 1
            return _status(503, str(exc), as_json=as_json, retry_after=exc.retry_after_s)
        except Exception:  # noqa: BLE001 - a failed commit is retryable, never a 200
            stats.throttled += 1
            return _status(503, "store unavailable", as_json=as_json, retry_after=5)
        stats.rejected_items += result.rejected
        stats.redaction_failures += result.redaction_failures
        if metrics:
            stats.accepted_points += len(result.samples)
        else:
            stats.accepted_spans += decoded.span_count
        agent.after_commit(result, costs)
        body = encode_partial_success(result.rejected, result.error_message, metrics=metrics,
                                      as_json=as_json)
        return Response(body, media_type=JSON if as_json else PROTOBUF)

    @router.post("/v1/traces", summary="OTLP/HTTP traces")
    async def traces(request: Request) -> Response:
        return await receive(request, metrics=False)

    @router.post("/v1/metrics", summary="OTLP/HTTP metrics")
    async def metrics(request: Request) -> Response:
        return await receive(request, metrics=True)

    return router
