"""One instrumented GenAI request, exported to a Strata agent; run as a subprocess by
tests/interop (the instrumentations patch the openai module and set the global providers,
which would leak into the pytest process).

    python tests/interop/client.py SDK --llm URL --grpc HOST:PORT --http URL

SDK: ``openllmetry`` (opentelemetry-instrumentation-openai, events on, gRPC exporters),
``openinference`` (openinference-instrumentation-openai, OTLP/HTTP exporter), ``otel-grpc``
(the plain OTel SDK: a GenAI span, an inference-details event and an exception log, gRPC),
``vllm`` (the span vLLM's ``--otlp-traces-endpoint grpc://...`` emits per request, gRPC),
``openlit`` (openlit.init reusing these providers, offline: see ``openlit_client``).
Prints nothing; exits non-zero if an export failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

PROMPT = "Draft the layoff announcement for the Lisbon office, strictly confidential"
VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OPENLIT_PRICING = Path(__file__).with_name("openlit_pricing.json")


class Failures:
    """Counts exports that did not succeed (SimpleSpanProcessor only logs them)."""

    count = 0


def exporters(transport: str, args: argparse.Namespace) -> tuple[object, object]:
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = f"http://{args.grpc}"
        return (OTLPSpanExporter(endpoint=endpoint, insecure=True),
                OTLPLogExporter(endpoint=endpoint, insecure=True))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=args.http + "/v1/traces"), HttpLogs(endpoint=args.http + "/v1/logs")


def checked(exporter: object) -> object:
    """Wrap an exporter so a failed export makes the process exit non-zero."""
    export = exporter.export  # type: ignore[attr-defined]

    def export_checked(batch: object) -> object:
        result = export(batch)
        if getattr(result, "name", "") != "SUCCESS":
            Failures.count += 1
        return result

    exporter.export = export_checked  # type: ignore[attr-defined]
    return exporter


def providers(sdk: str, transport: str, args: argparse.Namespace
              ) -> tuple[TracerProvider, LoggerProvider]:
    spans, logs = exporters(transport, args)
    resource = Resource.create({"service.name": f"interop-{sdk}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(checked(spans)))  # type: ignore[arg-type]
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(checked(logs)))  # type: ignore[arg-type]
    trace.set_tracer_provider(tracer_provider)
    set_logger_provider(logger_provider)
    return tracer_provider, logger_provider


def chat(llm: str) -> None:
    import openai

    client = openai.OpenAI(base_url=llm + "/v1", api_key="sk-test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": PROMPT}])


def openllmetry(args: argparse.Namespace) -> tuple[TracerProvider, LoggerProvider]:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    tracer_provider, logger_provider = providers("openllmetry", "grpc", args)
    # use_attributes=False: prompts and completions as GenAI events (log records).
    OpenAIInstrumentor(use_attributes=False).instrument(
        tracer_provider=tracer_provider, logger_provider=logger_provider)
    chat(args.llm)
    return tracer_provider, logger_provider


def openinference(args: argparse.Namespace) -> tuple[TracerProvider, LoggerProvider]:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    tracer_provider, logger_provider = providers("openinference", "http", args)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    chat(args.llm)
    return tracer_provider, logger_provider


def refuse_remote_connections(event: str, args: tuple[object, ...]) -> None:
    """Audit hook: fail any connection or name lookup off 127.0.0.1, so a test that says
    "offline" is offline (a fetch that would time out in CI fails here at once)."""
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if host not in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"):
        Failures.count += 1  # counted too: SDKs catch and log the refusal
        raise ConnectionRefusedError(f"interop client is offline: refused {host!r}")


def openlit_client(args: argparse.Namespace) -> tuple[TracerProvider, LoggerProvider]:
    """OpenLIT 1.45 as its users run it: ``openlit.init`` over providers already set (it
    reuses them), content capture on (its default), events on.

    Offline: its pricing table comes from ``OPENLIT_PRICING`` (without one it fetches
    pricing.json from GitHub at init); its token counts for OpenAI come from the response's
    usage, so no tokenizer is loaded. Metrics are off (the agent's receiver is checked for
    spans and events here); its HTTP-client instrumentors are off so the chat's own HTTP
    request adds no span beside the GenAI one.
    """
    sys.addaudithook(refuse_remote_connections)
    import openlit

    tracer_provider, logger_provider = providers("openlit", "grpc", args)
    openlit.init(service_name="interop-openlit", pricing_json=str(OPENLIT_PRICING),
                 disable_metrics=True, disable_batch=True,
                 disabled_instrumentors=["requests", "urllib", "urllib3", "httpx",
                                         "aiohttp-client"])
    chat(args.llm)
    return tracer_provider, logger_provider


def otel_grpc(args: argparse.Namespace) -> tuple[TracerProvider, LoggerProvider]:
    tracer_provider, logger_provider = providers("otel-grpc", "grpc", args)
    tracer = tracer_provider.get_tracer("app")
    logger = logger_provider.get_logger("app")
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                             "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
                             "gen_ai.usage.input_tokens": 1200,
                             "gen_ai.usage.output_tokens": 300})
        messages = json.dumps([{"role": "user", "content": PROMPT}])
        logger.emit(event_name="gen_ai.client.inference.operation.details",
                    severity_number=SeverityNumber.INFO,
                    attributes={"gen_ai.operation.name": "chat",
                                "gen_ai.input.messages": messages})
        try:
            raise TimeoutError("the retrieval step timed out")
        except TimeoutError as exc:
            logger.emit(severity_number=SeverityNumber.ERROR, body="retrieval failed",
                        exception=exc)
    return tracer_provider, logger_provider


def vllm(args: argparse.Namespace) -> tuple[TracerProvider, LoggerProvider]:
    """The attributes of vLLM's ``llm_request`` span (vllm/tracing.py), one per request."""
    tracer_provider, logger_provider = providers("vllm", "grpc", args)
    tracer = tracer_provider.get_tracer("vllm.llm_engine")
    arrival = time.time_ns()
    with tracer.start_as_current_span("llm_request", kind=SpanKind.SERVER,
                                      start_time=arrival) as span:
        span.set_attributes({
            "gen_ai.response.model": VLLM_MODEL, "gen_ai.request.id": "cmpl-1",
            "gen_ai.request.temperature": 0.7, "gen_ai.request.top_p": 1.0,
            "gen_ai.request.max_tokens": 256, "gen_ai.request.n": 1,
            "gen_ai.usage.num_sequences": 1, "gen_ai.usage.prompt_tokens": 812,
            "gen_ai.usage.completion_tokens": 64,
            "gen_ai.latency.time_in_queue": 0.002, "gen_ai.latency.time_to_first_token": 0.045,
            "gen_ai.latency.e2e": 0.61, "gen_ai.latency.time_in_scheduler": 0.001,
            "gen_ai.latency.time_in_model_forward": 0.4,
            "gen_ai.latency.time_in_model_execute": 0.5,
        })
        span.set_status(Status(StatusCode.OK))
    return tracer_provider, logger_provider


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("sdk", choices=("openllmetry", "openinference", "otel-grpc", "vllm",
                                           "openlit"))
    parser.add_argument("--llm", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--http", required=True)
    args = parser.parse_args()
    run = {"openllmetry": openllmetry, "openinference": openinference, "otel-grpc": otel_grpc,
           "vllm": vllm, "openlit": openlit_client}[args.sdk]
    tracer_provider, logger_provider = run(args)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return 1 if Failures.count else 0


if __name__ == "__main__":
    sys.exit(main())
