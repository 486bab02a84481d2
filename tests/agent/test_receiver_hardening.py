"""OTLP receiver and API hardening against one real agent process (RELIABILITY I1-I6, I9,
D8, F3, S6, and L3-L5 scaled to CI).

The agent forwards to a real HTTP upstream on 127.0.0.1 (OTLP-out round trips, and a full
exporter queue when that upstream is down), scrapes five real exposition targets every 2 s,
and closes connections whose headers take more than 1 s. Tests use relative counts because
they share the agent. Time bounds are the RELIABILITY figures widened by ``loose`` (this checks
that nothing hangs or stalls; the figures themselves are measured in benchmarks/).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from prometheus_client.parser import text_string_to_metric_families
from strata.agent.ingest.otlp_codec import attributes_of
from strata.agent.model import Incident
from strata.agent.store.db import CHECKPOINT_THRESHOLD_BYTES
from strata.exporters.webhook import WebhookExporter

from tests.conftest import LiveAgent, launch_agent
from tests.exporters.upstream import RecordingUpstream
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import loose, wait_until

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 20 * 1024 * 1024
NASTY = "nul\x00 rtl\u202egnp.exe emoji\U0001f680 comb\u0065\u0301\u0301 ‮"


@pytest.fixture(name="upstream", scope="module")
def upstream_fixture() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.stop()


class ScrapeTargets:
    """Five Prometheus targets on one real HTTP server; records when each was scraped."""

    def __init__(self) -> None:
        self.hits: dict[str, list[float]] = {}
        targets = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                targets.hits.setdefault(self.path, []).append(time.monotonic())
                body = b"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 3\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SCRAPE_INTERVAL_S = 2.0


@pytest.fixture(name="targets", scope="module")
def targets_fixture() -> Iterator[ScrapeTargets]:
    targets = ScrapeTargets()
    yield targets
    targets.stop()


@pytest.fixture(name="agent", scope="module")
def agent_fixture(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream,
                  targets: ScrapeTargets) -> Iterator[LiveAgent]:
    work = tmp_path_factory.mktemp("hardening")
    config = work / "strata.toml"
    scrapes = "".join(f'[[scrape]]\nname = "t{i}"\nurl = "{targets.url}/t{i}"\n'
                      f'interval = "{SCRAPE_INTERVAL_S}s"\nprofile = "vllm"\n' for i in range(5))
    config.write_text(f'[forward]\nendpoint = "{upstream.url}"\nmax_queue_bytes = "256KiB"\n'
                      'initial_backoff = "0.2s"\nmax_backoff = "0.5s"\n' + scrapes)
    live = launch_agent(work, "--config", str(config),
                        env={"STRATA_READ_HEADER_TIMEOUT": "1s"})
    yield live
    if live.process.poll() is None:
        live.process.kill()
        live.process.wait(10)


def _readable(sock: socket.socket) -> bool:
    """poll, not select: by this point of a full run the test process may hold fds > 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def post(agent: LiveAgent, body: bytes, headers: dict[str, str] = PB) -> httpx.Response:
    return httpx.post(agent.otlp_endpoint + "/v1/traces", content=body, headers=headers,
                      timeout=30)


def spans_stored(agent: LiveAgent) -> int:
    return int(agent.get("/api/v1/health").json()["counts"]["spans"])


def metric(agent: LiveAgent, name: str) -> float:
    text = httpx.get(agent.api_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise KeyError(name)


def rss_bytes(agent: LiveAgent, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{agent.process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def test_chunked_upload_without_length_is_cut(agent: LiveAgent) -> None:
    """I1: a chunked upload of 100 MiB with no Content-Length gets 413 (or a close) long
    before it is all sent; RSS grows by at most 2x the limit; the agent still serves."""
    rss_before = rss_bytes(agent)
    port = int(agent.otlp_endpoint.rsplit(":", 1)[1])
    chunk = os.urandom(64 * 1024)
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    sent = 0
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < 100 * 1024 * 1024:
                if _readable(sock):
                    break
                sock.sendall(frame)
                sent += len(chunk)
        except (TimeoutError, ConnectionError):
            pass  # the agent stopped reading or closed: it has answered or hung up
        try:
            reply = sock.recv(4096)
        except (TimeoutError, ConnectionError):
            reply = b""
    assert sent < 2 * LIMIT, f"{sent} bytes accepted before the agent reacted"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert rss_bytes(agent) - rss_before <= 2 * LIMIT
    assert agent.get("/api/v1/health").status_code == 200


def test_decompression_bombs(agent: LiveAgent) -> None:
    """I2: 10 GiB of zeros as ~10 MiB of gzip members is 413 within 1 s and RSS +52 MiB at
    most; gzip inside gzip is 400; zstd is 415; a normal request alongside is unaffected."""
    member = gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9)
    bomb = member * 640  # 10 GiB decompressed
    assert len(bomb) < 12 * 1024 * 1024
    warm = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    assert post(agent, gzip.compress(warm), {**PB, "Content-Encoding": "gzip"}).status_code == 200
    hwm_before = rss_bytes(agent, "VmHWM")
    rss_before = rss_bytes(agent)
    normal: list[int] = []
    side = threading.Thread(target=lambda: normal.append(post(agent, trace_request(
        [make_span(attributes=genai_attributes())]).SerializeToString()).status_code))
    started = time.monotonic()
    side.start()
    reply = post(agent, bomb, {**PB, "Content-Encoding": "gzip"})
    elapsed = time.monotonic() - started
    side.join(30)
    assert reply.status_code == 413
    assert elapsed <= loose(1.0 + 0.5)  # + the 10 MiB upload; inflating 10 GiB takes longer
    assert normal == [200]
    growth = max(rss_bytes(agent, "VmHWM") - hwm_before, rss_bytes(agent) - rss_before)
    assert growth <= (20 + 32) * 1024 * 1024 + len(bomb)  # the compressed body is held once
    nested = gzip.compress(gzip.compress(trace_request([make_span()]).SerializeToString()))
    assert post(agent, nested, {**PB, "Content-Encoding": "gzip"}).status_code == 400
    zstd_magic = b"\x28\xb5\x2f\xfd" + os.urandom(64)
    assert post(agent, zstd_magic, {**PB, "Content-Encoding": "zstd"}).status_code == 415


def _wrong_wire_type() -> bytes:
    # a valid span, then field 1 with wire type 7 (no such wire type). A known field with
    # another valid wire type is an unknown field to protobuf parsers, not an error.
    return trace_request([make_span()]).SerializeToString() + b"\x0f\x01"


def _invalid_utf8_name() -> bytes:
    body = trace_request([make_span(name="XXXX")]).SerializeToString()
    return body.replace(b"XXXX", b"\xff\xfe\xfd\xfc")


@pytest.mark.parametrize("body_fn", [
    lambda: trace_request([make_span()]).SerializeToString()[:-7],  # truncated
    _wrong_wire_type,
    _invalid_utf8_name,
    lambda: random.Random(3).randbytes(4096),
], ids=["truncated", "wrong-wire-type", "invalid-utf8", "random"])
def test_malformed_protobuf_is_400_with_status_and_counted(agent: LiveAgent, body_fn) -> None:  # type: ignore[no-untyped-def]
    """I3: truncated, wrong wire type, invalid UTF-8 and random bodies are 400 with a
    google.rpc.Status body, counted in strata_receiver_bad_requests_total; nothing stored."""
    before_bad, before_spans = metric(agent, "strata_receiver_bad_requests_total"), spans_stored(
        agent)
    reply = post(agent, body_fn())
    assert reply.status_code == 400
    status = status_pb2.Status.FromString(reply.content)
    assert status.message
    assert metric(agent, "strata_receiver_bad_requests_total") == before_bad + 1
    assert spans_stored(agent) == before_spans


def _json_span(**overrides: object) -> dict[str, object]:
    span: dict[str, object] = {
        "traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "chat",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000"}
    span.update(overrides)
    return span


def _json_body(*spans: object) -> bytes:
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-hardening"}}]},
        "scopeSpans": [{"spans": list(spans)}]}]}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("body", "status", "rejected"), [
    (_json_body(_json_span(traceId="W47/95gDgQPSabYzgT/GDA==")), 200, 1),  # base64 id
    (_json_body(_json_span(name=123)), 200, 1),  # wrong type
    (_json_body(_json_span(attributes=[{"key": "k", "value": {"stringValue": "\ud800x"}}])),
     200, None),  # lone surrogate: stored escaped, or rejected, never a 5xx
    (_json_body(_json_span(attributes=[{"key": "k", "v\ud800alue": {"intValue": "1"}}])),
     200, 1),  # lone surrogate in a field name (found by the I8 fuzzer: was a 500)
    (b'{"resourceSpans": [], "resourceSpans": [{"scopeSpans": []}]}', 200, 0),  # dup keys
    (b'{"resourceSpans": ' + b"9" * (19 * 1024 * 1024) + b"}", 400, None),  # huge number
    (_json_body(_json_span(attributes=[{"key": "n", "value": {
        "intValue": "9" * (19 * 1024 * 1024)}}])), 200, 1),  # huge number string
    (b"[" * 100_000 + b"]" * 100_000, 400, None),  # deep nesting
], ids=["base64-ids", "wrong-type", "lone-surrogate", "surrogate-key", "duplicate-keys",
        "huge-number", "huge-number-string", "deep-arrays"])
def test_malformed_json_never_5xx_and_fast(agent: LiveAgent, body: bytes, status: int,
                                           rejected: int | None) -> None:
    """I4: malformed OTLP/JSON is 400 or a partial success, never 5xx, parsed within 1 s
    (+ the upload time of a body near the 20 MiB limit)."""
    started = time.monotonic()
    reply = post(agent, body, JSON)
    elapsed = time.monotonic() - started
    assert reply.status_code == status, reply.text[:300]
    assert elapsed <= loose(1.0 + len(body) / (20 * 1024 * 1024))
    if rejected is not None:
        partial = reply.json().get("partialSuccess", {})
        assert int(partial.get("rejectedSpans", 0)) == rejected
    assert agent.get("/api/v1/health").status_code == 200


def test_http10_without_length_is_answered(agent: LiveAgent) -> None:
    """I5: an HTTP/1.0 POST with no Content-Length gets a prompt answer, never a hang."""
    port = int(agent.otlp_endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.0\r\nContent-Type: application/x-protobuf\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.split(b" ", 2)[1] in (b"200", b"400", b"411"), reply[:100]


def test_unicode_and_huge_attributes_round_trip(agent: LiveAgent,
                                                upstream: RecordingUpstream) -> None:
    """I6: a 1 MiB value is cut to 64 KiB, 10,000 attributes to 128; NUL, RTL override, emoji
    and combining marks in keys and values round-trip through the API (JSON), OTLP-out
    (protobuf), /metrics (parsed, and promtool where installed) and the webhook (JSON)."""
    attributes: dict[str, object] = {f"k{i}": i for i in range(10_000)}
    big = {"app.big": "x" * (1024 * 1024), f"key-{NASTY}": NASTY, "app.nasty": NASTY}
    span = make_span(attributes={**big, **attributes})
    reply = post(agent, trace_request([span], {"service.name": f"svc-{NASTY}"})
                 .SerializeToString())
    assert reply.status_code == 200
    trace = agent.get(f"/api/v1/traces/{span.trace_id.hex()}").json()
    stored = trace["spans"][0]["attributes"]
    assert len(stored) == 128
    assert stored["app.big"] == "x" * 64 * 1024
    assert stored["app.nasty"] == NASTY
    assert stored[f"key-{NASTY}"] == NASTY
    assert trace["spans"][0]["service"] == f"svc-{NASTY}"

    def forwarded() -> dict[str, object] | None:
        for received in list(upstream.requests):
            if received.path != "/v1/traces":
                continue  # the scraped samples are forwarded too
            message = ExportTraceServiceRequest.FromString(received.body)
            for rs in message.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        if s.span_id == span.span_id:
                            return attributes_of(s.attributes)
        return None

    out = wait_until(forwarded, 10, "the span forwarded upstream")
    assert out["app.nasty"] == NASTY
    assert out["app.big"] == "x" * 64 * 1024

    text = httpx.get(agent.api_url + "/metrics", timeout=10).text
    services = {s.labels.get("service") for f in text_string_to_metric_families(text)
                for s in f.samples}
    assert f"svc-{NASTY}"[:128] in services
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                                capture_output=True, timeout=30, check=False)
        assert b"error while linting" not in result.stdout + result.stderr

    hook_target = RecordingUpstream()
    hook = WebhookExporter(hook_target.url + "/hook", start=False)
    try:
        incident = Incident(id="i-1", kind="latency_regression", layer="model",
                            service=f"svc-{NASTY}", host=None, status="open",
                            severity="warning", started_at_ns=1, detected_at_ns=2,
                            summary=NASTY, evidence=(), suspected_cause=None, suggestion=None)
        assert hook.deliver(incident)
        doc = json.loads(hook_target.requests[0].body)
        assert (doc["service"], doc["summary"]) == (f"svc-{NASTY}", NASTY)
    finally:
        hook.shutdown()
        hook_target.stop()


def test_resent_batch_is_stored_once(agent: LiveAgent) -> None:
    """D8: a client retry of the same batch is stored once (idempotent on trace/span id)."""
    spans = [make_span(attributes=genai_attributes()) for _ in range(20)]
    body = trace_request(spans, {"service.name": "resend-once"}).SerializeToString()
    before = spans_stored(agent)
    assert post(agent, body).status_code == 200
    assert post(agent, body).status_code == 200
    assert spans_stored(agent) - before == 20


def test_full_exporter_queue_never_blocks_ingest(agent: LiveAgent,
                                                 upstream: RecordingUpstream) -> None:
    """F3: with the upstream down and its 256 KiB queue full, new exports are refused and
    counted while every OTLP request is still committed (200) and stored."""
    upstream.stop()
    try:
        before = spans_stored(agent)
        failed_before = metric(agent, "strata_exporter_enqueue_failed_total")
        for _ in range(30):
            spans = [make_span(attributes={**genai_attributes(),
                                           "app.pad": os.urandom(200).hex()})
                     for _ in range(50)]
            assert post(agent, trace_request(spans).SerializeToString()).status_code == 200
        assert spans_stored(agent) == before + 30 * 50
        assert metric(agent, "strata_exporter_enqueue_failed_total") > failed_before
        assert agent.process.poll() is None
    finally:
        upstream.start()


def test_slowloris_is_cut_at_the_header_timeout(agent: LiveAgent) -> None:
    """I9: 100 connections dribbling header bytes are closed at read_header_timeout (1 s
    here); a legitimate client meanwhile keeps its latency."""
    port = int(agent.otlp_endpoint.rsplit(":", 1)[1])
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
    opened = time.monotonic()
    closed: set[int] = set()
    latencies: list[float] = []
    body = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    with httpx.Client(timeout=10) as client:

        def all_closed() -> bool:
            """One drip on every open connection, and one legitimate request."""
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"P" if time.monotonic() - opened < 0.05 else b"O")
                    if _readable(sock) and sock.recv(1) == b"":
                        closed.add(i)
                except OSError:
                    closed.add(i)
            started = time.perf_counter()
            assert client.post(agent.otlp_endpoint + "/v1/traces", content=body,
                               headers=PB).status_code == 200
            latencies.append(time.perf_counter() - started)
            return len(closed) == len(slow)

        try:  # the poll interval is the attacker's drip interval
            wait_until(all_closed, loose(1.0 + 2.0), "every slow connection closed",
                       interval_s=0.1)
        finally:
            for sock in slow:
                sock.close()
    latencies.sort()
    assert latencies[int(len(latencies) * 0.99) - 1] <= loose(0.25), latencies[-5:]


def test_dns_rebinding_and_cross_site_requests_are_refused(agent: LiveAgent) -> None:
    """S6: a non-loopback Host is 421 on both ports; form and text/plain posts are 415; a
    foreign Origin is 403; no CORS headers; a same-origin JSON post reaches its route."""
    evil = {"Host": "attacker.example:8321"}
    assert httpx.get(agent.api_url + "/api/v1/health", headers=evil).status_code == 421
    assert httpx.post(agent.otlp_endpoint + "/v1/traces", headers={**PB, **evil},
                      content=b"").status_code == 421
    analyze = agent.api_url + "/api/v1/analyze"
    for ctype in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "text/plain"):
        reply = httpx.post(analyze, content=b"a=b", headers={"Content-Type": ctype})
        assert reply.status_code == 415, ctype
    reply = httpx.post(analyze, json={}, headers={"Origin": "https://attacker.example"})
    assert reply.status_code == 403
    preflight = httpx.options(analyze, headers={
        "Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    health = httpx.get(agent.api_url + "/api/v1/health",
                       headers={"Origin": "https://attacker.example"})
    assert "access-control-allow-origin" not in health.headers
    for host in ("localhost", "[::1]", "127.0.0.1"):
        reply = httpx.get(agent.api_url + "/api/v1/health", headers={"Host": host})
        assert reply.status_code == 200, host
    port = agent.api_url.rsplit(":", 1)[1]
    same_origin = httpx.post(agent.api_url + "/api/v1/incidents/nope/ack", json={}, timeout=30,
                             headers={"Origin": f"http://127.0.0.1:{port}"})
    assert same_origin.status_code == 404  # through the guard to the route: no such incident


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))]


def test_overload_answers_only_200_or_503_and_recovers(agent: LiveAgent) -> None:
    """L3 (scaled): 96 concurrent senders, over the 64 in-flight limit, for 4 s and until the
    limit answered 503: only 200 or 503 + Retry-After, the agent is never killed, RSS stays
    under 90 % of 512 MiB, every acked span is stored, and p99 is back under 250 ms within
    30 s after the load drops."""
    before = spans_stored(agent)
    statuses: dict[int, int] = {}
    acked = 0
    lock = threading.Lock()
    stop = threading.Event()
    # Built once, before the load: building 96 of them in the senders ate the load window.
    template = trace_request([make_span(attributes=genai_attributes()) for _ in range(200)],
                             {"service.name": "overload"})

    def sender() -> None:
        nonlocal acked
        request = ExportTraceServiceRequest()
        request.CopyFrom(template)
        spans = request.resource_spans[0].scope_spans[0].spans
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                trace_id = os.urandom(16)  # new ids per request: resends are deduplicated (D8)
                for span in spans:
                    span.trace_id = trace_id
                reply = client.post(agent.otlp_endpoint + "/v1/traces",
                                    content=request.SerializeToString(), headers=PB)
                with lock:
                    statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                    if reply.status_code == 200:
                        acked += 200
                    else:
                        assert int(reply.headers["Retry-After"]) > 0

    threads = [threading.Thread(target=sender) for _ in range(96)]
    peak = 0
    started = time.monotonic()

    def overloaded_for_4s() -> bool:
        nonlocal peak
        peak = max(peak, rss_bytes(agent))  # sampled while the load runs
        with lock:
            refused = 503 in statuses
        return refused and time.monotonic() - started >= 4

    for thread in threads:
        thread.start()
    try:
        wait_until(overloaded_for_4s, 60, "a 503 from the in-flight limit")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert agent.process.poll() is None
    assert peak <= 0.9 * 512 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
    assert spans_stored(agent) - before == acked
    small = trace_request([make_span(attributes=genai_attributes())]).SerializeToString()
    with httpx.Client(timeout=30) as client:

        def recovered() -> bool:
            latencies = []
            for _ in range(20):
                started = time.perf_counter()
                assert client.post(agent.otlp_endpoint + "/v1/traces", content=small,
                                   headers=PB).status_code == 200
                latencies.append(time.perf_counter() - started)
            return p(latencies, 0.99) <= loose(0.25)

        wait_until(recovered, 30, "ingest p99 back within L1 after the load", interval_s=0)


def checkpointed(wal_sizes: list[int]) -> bool:
    return any(b < a for a, b in pairwise(wal_sizes))


def test_contention_and_checkpoint_stall(agent: LiveAgent, targets: ScrapeTargets) -> None:
    """L4 and L5 (scaled): ingest past an automatic WAL checkpoint (at the store's threshold,
    256 MiB: L5 names DuckDB's default 16 MiB, which the store raised) while five targets are
    scraped every 2 s and the API is polled at 10 req/s: the longest gap between successive
    200s stays under 1 s, ingest p99 under 500 ms (2x L1), API p95 under 200 ms and each
    scrape starts (as the agent's scheduler stamps it) within 10 % of its interval."""
    wal = agent.db.with_name(agent.db.name + ".wal")
    api_latencies: list[float] = []
    stop = threading.Event()

    def api_poller() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.wait(0.1):
                started = time.perf_counter()
                assert client.get(agent.api_url + "/api/v1/traces",
                                  params={"limit": 20}).status_code == 200
                api_latencies.append(time.perf_counter() - started)

    poller = threading.Thread(target=api_poller)
    poller.start()
    acks: list[float] = []
    latencies: list[float] = []
    wal_sizes: list[int] = []
    written = 0
    wall = [time.time(), 0.0]
    try:
        with httpx.Client(timeout=30) as client:
            # Until DuckDB's automatic checkpoint has run (the WAL shrank) and 40 acks, at
            # most twice the threshold's worth of bodies (past that the assert below fails).
            while len(acks) < 40 or (not checkpointed(wal_sizes)
                                     and written < 2 * CHECKPOINT_THRESHOLD_BYTES):
                spans = [make_span(attributes={**genai_attributes(),
                                               "app.blob": os.urandom(512).hex()})
                         for _ in range(300)]
                body = trace_request(spans, {"service.name": "contention"}).SerializeToString()
                started = time.perf_counter()
                assert client.post(agent.otlp_endpoint + "/v1/traces", content=body,
                                   headers=PB).status_code == 200
                latencies.append(time.perf_counter() - started)
                acks.append(time.monotonic())
                written += len(body)
                wal_sizes.append(wal.stat().st_size if wal.exists() else 0)
    finally:
        stop.set()
        poller.join(30)
        wall[1] = time.time()
    assert checkpointed(wal_sizes), "no checkpoint happened during the run"
    gaps = [b - a for a, b in pairwise(acks)]
    assert max(gaps) <= loose(1.0), f"longest gap between 200s {max(gaps):.2f} s"
    assert p(latencies, 0.99) <= loose(0.5)
    assert p(api_latencies, 0.95) <= loose(0.2)
    # Scrape starts as the agent scheduled them: the poll time stamped on its self-metrics
    # (the targets' own clocks would add this busy test process's scheduling delays).
    series = agent.get("/api/v1/metrics", name="strata.collector.up",
                       since=_rfc3339(wall[0] - SCRAPE_INTERVAL_S), until=_rfc3339(wall[1]),
                       limit=100).json()["series"]
    starts = {s["labels"]["collector"]: [_seconds(p[0]) for p in s["points"]] for s in series}
    assert {f"scrape:t{i}" for i in range(5)} <= set(starts), sorted(starts)
    assert sum(len(v) - 1 for v in starts.values()) >= 5
    for name, times in starts.items():
        for a, b in pairwise(sorted(times)):
            assert abs((b - a) - SCRAPE_INTERVAL_S) <= loose(0.1 * SCRAPE_INTERVAL_S), (name, b - a)


def test_prompt_capture_is_disclosed(agent: LiveAgent) -> None:
    """P6 (partial): the startup log states "prompt capture: OFF" and the health endpoint
    reports capture_content false (GET /config does not exist yet)."""
    assert "prompt capture: OFF" in agent.log.read_text()
    assert agent.get("/api/v1/health").json()["capture_content"] is False
