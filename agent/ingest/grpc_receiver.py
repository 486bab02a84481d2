"""OTLP/gRPC receiver: the collector services' ``Export`` on ``[agent] otlp_grpc_port``.

The handlers are generic and have no request deserializer, so they get the request's raw
protobuf bytes and run exactly the OTLP/HTTP path (``strata.agent.ingest.pipeline``): the
same decode, limits, counters and commit-before-success. Status codes follow the OTLP
spec: ``INVALID_ARGUMENT`` for an undecodable request (not retried); ``RESOURCE_EXHAUSTED``
with ``RetryInfo`` when too many requests are in flight or the write queue is full, and
``UNAVAILABLE`` with ``RetryInfo`` when the commit failed (both retried after the delay);
``RESOURCE_EXHAUSTED`` without ``RetryInfo`` over the size limit, which gRPC applies to the
message after decompression (as HTTP does to the gzip'd body); ``UNAUTHENTICATED`` /
``PERMISSION_DENIED`` when an API token is configured and the ``authorization`` metadata
does not present the write token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from strata.agent.api.guard import bearer_matches
from strata.agent.errors import ConfigError
from strata.agent.ingest.pipeline import MAX_IN_FLIGHT, OtlpPipeline, Outcome, Signal

if TYPE_CHECKING:
    from strata.agent.ingest.pipeline import IngestHost

logger = logging.getLogger(__name__)

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": Signal.TRACES,
    "opentelemetry.proto.collector.metrics.v1.MetricsService": Signal.METRICS,
    "opentelemetry.proto.collector.logs.v1.LogsService": Signal.LOGS,
}
_CODES = {
    Outcome.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Outcome.UNDECODABLE: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.BUSY: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Outcome.STORE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
# Beyond the pipeline's own bound (answered with RetryInfo), gRPC itself refuses RPCs: a
# hard cap on the handlers parked on a slow commit.
_MAX_CONCURRENT_RPCS = 2 * MAX_IN_FLIGHT
_Handler = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


def retry_metadata(code: grpc.StatusCode, message: str, retry_after_s: int) -> tuple[
        tuple[str, bytes], ...]:
    """Trailing metadata carrying ``RetryInfo``: as a ``google.rpc.Status`` detail (what the
    Collector and the Go SDK read) and as ``google.rpc.retryinfo-bin`` (the Python SDK)."""
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_s))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()))


class GrpcReceiver:
    """The gRPC server of one agent; ``start`` binds and serves, ``stop`` drains."""

    def __init__(self, agent: IngestHost) -> None:
        self.agent = agent
        self._pipeline = OtlpPipeline(agent)
        settings = agent.settings
        self._token = settings.api_token.encode() if settings.api_token else None
        self._read_token = (settings.api_read_token.encode()
                            if settings.api_token and settings.api_read_token else None)
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind *host*:*port* and serve; returns the bound port.

        Raises:
            ConfigError: the address cannot be bound (in use, not local).
        """
        limit = self._pipeline.limit
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),  # a second agent on the port must fail, not share it
                ("grpc.max_receive_message_length", limit),
            ],
            maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS,
        )
        server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(self._handler(signal))})
            for service, signal in SERVICES.items()
        ])
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            msg = f"cannot bind OTLP/gRPC {address}: {exc}"
            raise ConfigError(msg) from None
        await server.start()
        self._server = server
        self.agent.grpc_port = bound
        return bound

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting and let in-flight exports finish (their commits included).
        Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace_s)

    def _handler(self, signal: Signal) -> _Handler:
        pipeline = self._pipeline

        async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            pipeline.stats.requests += 1
            await self._authorize(context)

            async def body() -> bytes:
                return request

            # gRPC has already undone grpc-encoding and checked the size after decompression.
            reply = await pipeline.export(body, signal=signal, encoding="identity", as_json=False)
            if reply.outcome is Outcome.OK:
                return reply.body
            code = _CODES[reply.outcome]
            trailers = (retry_metadata(code, reply.message, reply.retry_after_s)
                        if reply.retry_after_s is not None else ())
            await context.abort(code, reply.message, trailing_metadata=trailers)

        return export

    async def _authorize(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        if self._token is None:
            return
        presented = b""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                presented = value.encode("latin-1") if isinstance(value, str) else value
                break
        if bearer_matches(presented, self._token):
            return
        if self._read_token is not None and bearer_matches(presented, self._read_token):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this token may only read")
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


__all__ = ["SERVICES", "GrpcReceiver", "retry_metadata"]
