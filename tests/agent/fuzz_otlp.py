"""A seeded mutation fuzzer for the OTLP decode paths (RELIABILITY I8).

Mutates valid protobuf, JSON and gzip bodies (bit flips, random bytes, cuts, duplicated and
spliced ranges, nesting) and feeds them to the real decoders. The only exceptions allowed
are the decoders' own ``DecodeError`` and ``BodyTooLarge``; every input must finish within
``max_seconds`` and allocate at most twice the body limit. Used by the CI test (a few
thousand inputs) and by ``benchmarks/fuzz.py`` (hours, nightly).
"""

from __future__ import annotations

import gzip
import json
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

from strata.agent.errors import DecodeError
from strata.agent.ingest.normalize import IngestPolicy
from strata.agent.ingest.otlp_codec import (
    BodyTooLarge,
    decode_metrics_request,
    decode_trace_request,
    decompress,
)

from tests.otlp_factory import gauge_request, genai_attributes, make_span, trace_request

POLICY = IngestPolicy(salt="fuzz")
LIMIT = 1024 * 1024


def seeds() -> list[tuple[str, bytes]]:
    spans = [make_span(attributes={**genai_attributes(), "gen_ai.input.messages": "hi"}),
             make_span(name="x", attributes={"a": 1, "b": 2.5, "c": True})]
    traces = trace_request(spans).SerializeToString()
    metrics = gauge_request("DCGM_FI_DEV_GPU_TEMP", 70.0, 1, {"gpu": "0"}).SerializeToString()
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "s"}}]}, "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "k", "value": {"arrayValue": {"values": [
                {"intValue": "7"}]}}}]}]}]}]}
    return [("traces-pb", traces), ("metrics-pb", metrics),
            ("traces-json", json.dumps(doc).encode()), ("traces-gzip", gzip.compress(traces))]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 32)]
        elif op == 3:
            del buf[pos:]
        elif op == 4 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randint(1, 64)] * rng.randint(1, 50)
        elif op == 5:
            buf[pos:pos] = rng.choice([b"\x0a\xff\xff\xff\x0f", b"\x32\x80\x80\x04", b"[[[[[[",
                                       b'{"a":' * 50, b"\xff\xfe", b"\\ud800", b"\x00" * 8])
        else:
            buf = bytearray(gzip.compress(bytes(buf))) if rng.random() < 0.5 else buf
    return bytes(buf)


def _decoder(name: str, data: bytes) -> Callable[[], object]:
    if name == "metrics-pb":
        return lambda: decode_metrics_request(data, is_json=False)
    if name == "traces-json":
        return lambda: decode_trace_request(data, is_json=True, policy=POLICY)
    if name == "traces-gzip":
        return lambda: decode_trace_request(decompress(data, "gzip", LIMIT), is_json=False,
                                            policy=POLICY)
    return lambda: decode_trace_request(data, is_json=False, policy=POLICY)


@dataclass
class FuzzReport:
    inputs: int = 0
    rejected: int = 0
    slowest_s: float = 0.0
    peak_bytes: int = 0
    crashes: list[str] = field(default_factory=list)


def fuzz(*, seed: int, iterations: int | None = None, seconds: float | None = None,
         max_seconds: float = 1.0) -> FuzzReport:
    rng = random.Random(seed)
    corpus = seeds()
    report = FuzzReport()
    deadline = time.monotonic() + seconds if seconds is not None else None
    tracemalloc.start()
    try:
        while (iterations is None or report.inputs < iterations) and (
                deadline is None or time.monotonic() < deadline):
            name, base = rng.choice(corpus)
            data = mutate(rng, base)
            tracemalloc.reset_peak()
            started = time.perf_counter()
            try:
                _decoder(name, data)()
            except (DecodeError, BodyTooLarge):
                report.rejected += 1
            except Exception as exc:
                report.crashes.append(f"{name}: {type(exc).__name__}: {exc} <- {data[:80]!r}")
            elapsed = time.perf_counter() - started
            report.slowest_s = max(report.slowest_s, elapsed)
            report.peak_bytes = max(report.peak_bytes, tracemalloc.get_traced_memory()[1])
            if elapsed > max_seconds:
                report.crashes.append(f"{name}: hang {elapsed:.2f}s <- {data[:80]!r}")
            report.inputs += 1
    finally:
        tracemalloc.stop()
    return report
