"""The OTLP/gRPC receiver: a real agent process and real gRPC clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from strata.agent.config import Settings
from strata.agent.ingest.grpc_receiver import GrpcReceiver
from strata.agent.runner import Agent

from tests.conftest import LiveAgent, launch_agent
from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request
from tests.waiting import wait_until

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def export(target: str, method: str, body: bytes, *, metadata: tuple[tuple[str, str], ...] = (),
           compression: grpc.Compression | None = None, timeout: float = 30) -> bytes:
    """One unary call with raw request bytes, as any OTLP/gRPC client sends them."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # no serializers: bytes in, bytes out
        return bytes(call(body, metadata=metadata, compression=compression, timeout=timeout))


def refusal(target: str, method: str, body: bytes, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        export(target, method, body, **kwargs)  # type: ignore[arg-type]
    return info.value


def span_count(agent: LiveAgent) -> int:
    return int(agent.get("/api/v1/health").json()["counts"]["spans"])


@pytest.fixture(scope="module", name="agent")
def agent_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    live = launch_agent(tmp_path_factory.mktemp("grpc"), env={"STRATA_MAX_BODY": "1MiB"})
    yield live
    live.stop()


def test_otel_sdk_grpc_exporter_spans_are_stored(agent: LiveAgent) -> None:
    """The SDK's stock gRPC exporter (gzip on) exports; the spans land with promoted fields."""
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"http://{agent.grpc_target}", insecure=True,
        compression=grpc.Compression.Gzip)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o",
                             "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3})
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    (stored,) = agent.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    assert (stored["service"], stored["layer"], stored["request_model"]) == (
        "grpc-app", "model", "gpt-4o")
    assert (stored["input_tokens"], stored["output_tokens"]) == (10, 3)


def test_partial_success_and_metrics(agent: LiveAgent) -> None:
    before = span_count(agent)
    spans = [make_span(attributes=genai_attributes()) for _ in range(9)]
    spans.append(make_span(trace_id=bytes(16)))
    reply = ExportTraceServiceResponse.FromString(
        export(agent.grpc_target, TRACES, trace_request(spans).SerializeToString()))
    assert reply.partial_success.rejected_spans == 1
    assert "trace_id" in reply.partial_success.error_message
    assert span_count(agent) == before + 9  # committed before the reply
    samples = agent.get("/api/v1/health").json()["counts"]["samples"]
    body = gauge_request("vllm:num_requests_waiting", 3.0, 1_700_000_000_000_000_000)
    metrics = ExportMetricsServiceResponse.FromString(
        export(agent.grpc_target, METRICS, body.SerializeToString()))
    assert metrics.partial_success.rejected_data_points == 0
    assert agent.get("/api/v1/health").json()["counts"]["samples"] == samples + 1


def test_undecodable_is_invalid_argument(agent: LiveAgent) -> None:
    error = refusal(agent.grpc_target, TRACES, b"\xff\xff\xff not protobuf")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf" in (error.details() or "")


def test_size_limit_applies_after_gzip(agent: LiveAgent) -> None:
    """A 2 MiB request gzip'd to a few KiB is refused against the 1 MiB limit; the agent
    goes on serving."""
    bomb = trace_request([make_span(attributes={"pad": "0" * 2 * 1024 * 1024})])
    error = refusal(agent.grpc_target, TRACES, bomb.SerializeToString(),
                    compression=grpc.Compression.Gzip)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    export(agent.grpc_target, TRACES, trace_request([make_span()]).SerializeToString())


def test_receiver_counters_include_grpc(agent: LiveAgent) -> None:
    text = httpx.get(agent.api_url + "/metrics", timeout=30).text
    requests = next(float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith("strata_receiver_requests_total"))
    assert requests >= 3


def test_bearer_token_on_metadata(tmp_path: Path) -> None:
    live = launch_agent(tmp_path, env={"STRATA_API_TOKEN": "w-secret",
                                       "STRATA_API_READ_TOKEN": "r-secret"})
    try:
        body = trace_request([make_span()]).SerializeToString()
        missing = refusal(live.grpc_target, TRACES, body)
        assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = refusal(live.grpc_target, TRACES, body,
                        metadata=(("authorization", "Bearer nope"),))
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
        read_only = refusal(live.grpc_target, TRACES, body,
                            metadata=(("authorization", "Bearer r-secret"),))
        assert read_only.code() == grpc.StatusCode.PERMISSION_DENIED
        export(live.grpc_target, TRACES, body, metadata=(("authorization", "Bearer w-secret"),))
        headers = {"Authorization": "Bearer w-secret"}
        health = httpx.get(live.api_url + "/api/v1/health", headers=headers, timeout=30).json()
        assert health["counts"]["spans"] == 1
    finally:
        live.stop()


def test_second_agent_on_the_port_fails_to_start(agent: LiveAgent, tmp_path: Path) -> None:
    port = agent.grpc_target.rsplit(":", 1)[1]
    with pytest.raises(RuntimeError, match="OTLP/gRPC"):
        launch_agent(tmp_path, "--otlp-grpc-port", port)


# -- back-pressure, in process: an agent whose writer is not started keeps requests queued --


class InProcessReceiver:
    def __init__(self, agent: Agent) -> None:
        self.receiver = GrpcReceiver(agent)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(
            self.receiver.start("127.0.0.1", 0), self.loop).result(30)
        self.target = f"127.0.0.1:{port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def retry_delay_s(error: grpc.RpcError) -> int:
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert error_details_pb2.RetryInfo.FromString(
        trailers["google.rpc.retryinfo-bin"]) == info
    return int(info.retry_delay.seconds)


def test_full_queue_and_failed_store_answer_retryable_codes(tmp_path: Path) -> None:
    agent = Agent(Settings(db=str(tmp_path / "a.duckdb"), max_queue_spans=5, gpu_enabled=False,
                           host_enabled=False))  # not started: nothing is committed
    server = InProcessReceiver(agent)
    channel = grpc.insecure_channel(server.target)
    try:
        queued = channel.unary_unary(TRACES).future(
            trace_request([make_span() for _ in range(4)]).SerializeToString())
        wait_until(lambda: agent.writer.queued_items == 4, 30, "the first export queued")
        full = refusal(server.target, TRACES,
                       trace_request([make_span() for _ in range(4)]).SerializeToString())
        assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay_s(full) == 1
        agent.writer.mark_fatal("disk full")
        failed = refusal(server.target, TRACES, trace_request([make_span()]).SerializeToString())
        assert failed.code() == grpc.StatusCode.UNAVAILABLE
        assert retry_delay_s(failed) == 5
        queued.cancel()
    finally:
        channel.close()
        server.close()
        agent.close()
