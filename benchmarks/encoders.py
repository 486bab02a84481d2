"""CPU per span of the two hand-written OTLP encoders (they share ``strata.agent.protowire``).

- SDK: ``SpanEncoder.encode`` on 256 finished GenAI client spans (the export thread's work);
- forwarder: ``encode_trace_request`` on 256 decoded GenAI spans with cost columns (the
  ingest path's work when forwarding is on).

Each figure is the best of ``--repeats`` runs of ``--number`` batches, in process CPU time
(less sensitive to other load on the machine than wall time). Run before and after a change
to either encoder or to protowire, on the same machine:

    .venv/bin/python -m benchmarks.encoders
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import decode_trace_request
from strata.agent.sdk.otlp_encoder import SpanEncoder
from strata.exporters.otlp_encode import encode_trace_request

from tests.otlp_factory import genai_attributes, make_span, trace_request

BATCH = 256


def sdk_case() -> Callable[[], bytes]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "rag-api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("strata", "0.1")
    for i in range(BATCH):
        tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000 + i, "gen_ai.usage.output_tokens": 200 + i,
            "gen_ai.request.temperature": 0.2, "server.address": "api.openai.com",
            "gen_ai.response.id": f"chatcmpl-{i:08d}", "gen_ai.request.stream": False,
        }).end()
    spans, encoder = exporter.get_finished_spans(), SpanEncoder()
    return lambda: encoder.encode(spans)


def forwarder_case() -> Callable[[], bytes]:
    request = trace_request([make_span(attributes=genai_attributes()) for _ in range(BATCH)],
                            {"service.name": "rag-api"})
    records = decode_trace_request(request.SerializeToString(), is_json=False,
                                   policy=IngestPolicy(salt="bench")).spans
    costs = [(0.0042, "price-table", 0.31, "estimate:per-1k-tokens", 0.15)] * len(records)
    return lambda: encode_trace_request(records, costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=20, help="batches per run")
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    for name, case in (("sdk SpanEncoder.encode", sdk_case()),
                       ("forwarder encode_trace_request", forwarder_case())):
        best = min(timeit.repeat(case, number=args.number, repeat=args.repeats,
                                 timer=time.process_time))
        print(f"{name}: {best / args.number / BATCH * 1e6:.2f} µs CPU per span")


if __name__ == "__main__":
    main()
