"""WebhookExporter against a real HTTP endpoint on 127.0.0.1 (RELIABILITY E5, S9)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator

import pytest
from strata.agent.model import Evidence, Incident, Rollback, Suggestion, SuspectedCause
from strata.exporters.base import ExportResult
from strata.exporters.webhook import WebhookExporter

from tests.exporters.upstream import Received, RecordingUpstream, Reply
from tests.waiting import loose, wait_until

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def incident(n: int = 1) -> Incident:
    return Incident(
        id=f"inc-{n}", kind="latency_regression", layer="serving", service="rag-api", host=None,
        status="open", severity="critical", started_at_ns=T0, detected_at_ns=T0 + 90 * 10**9,
        summary="p95 latency of rag-api rose from 0.8 s to 2.4 s",
        evidence=(Evidence("span.duration.p95", "model", 0.8, 2.4, "s"),),
        suspected_cause=SuspectedCause("serving", "vllm:num_requests_waiting", "queue grew"),
        suggestion=Suggestion("rollback", "roll back rag-api 1.4.0 -> 1.3.2",
                              Rollback("rag-api", "1.4.0", "1.3.2")),
    )


@pytest.fixture(name="endpoint")
def endpoint_fixture() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.stop()


def exporter(endpoint: RecordingUpstream, **kwargs: object) -> WebhookExporter:
    options: dict[str, object] = {"initial_backoff_s": 0.02, "max_backoff_s": 0.1,
                                  "rng": random.Random(0)}
    options.update(kwargs)
    return WebhookExporter(endpoint.url + "/hook", **options)  # type: ignore[arg-type]


def test_json_body_is_the_design_schema(endpoint: RecordingUpstream) -> None:
    hook = exporter(endpoint)
    assert hook.export([incident()]) is ExportResult.SUCCESS
    wait_until(lambda: len(endpoint.received()) == 1, 10, "a request")
    hook.shutdown()
    request = endpoint.requests[0]
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    doc = json.loads(request.body)
    assert doc == {
        "id": "inc-1", "kind": "latency_regression", "layer": "serving", "service": "rag-api",
        "host": None, "status": "open", "severity": "critical",
        "started_at": "2026-01-01T00:00:00Z", "detected_at": "2026-01-01T00:01:30Z",
        "resolved_at": None, "summary": "p95 latency of rag-api rose from 0.8 s to 2.4 s",
        "evidence": [{"signal": "span.duration.p95", "layer": "model", "baseline": 0.8,
                      "current": 2.4, "unit": "s"}],
        "suspected_cause": {"layer": "serving", "signal": "vllm:num_requests_waiting",
                            "detail": "queue grew"},
        "suggestion": {"action": "rollback", "detail": "roll back rag-api 1.4.0 -> 1.3.2",
                       "rollback": {"service": "rag-api", "from_version": "1.4.0",
                                    "to_version": "1.3.2"}},
    }
    assert hook.stats.delivered == 1


def test_slack_format(endpoint: RecordingUpstream) -> None:
    hook = exporter(endpoint, format="slack")
    hook.export([incident()])
    wait_until(lambda: len(endpoint.received()) == 1, 10, "a request")
    hook.shutdown()
    doc = json.loads(endpoint.requests[0].body)
    assert "latency_regression" in doc["text"]
    assert "rag-api" in doc["text"]
    section = doc["blocks"][0]["text"]["text"]
    assert "rollback" in section
    assert "2.4" in section
    assert "inc-1" in section


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        WebhookExporter("http://127.0.0.1:9/", format="xml", start=False)


def test_5xx_is_retried_then_delivered(endpoint: RecordingUpstream) -> None:
    replies = iter([(500, {}, b""), (429, {}, b""), (200, {}, b"")])
    endpoint.responder = lambda _r: next(replies)
    hook = exporter(endpoint)
    hook.export([incident()])
    wait_until(lambda: len(endpoint.received()) == 3, 10, "3 requests")
    hook.shutdown()
    assert hook.stats.delivered == 1
    assert hook.stats.attempts == 3
    assert hook.stats.failed == 0


def test_bounded_retries_then_dead_letter(endpoint: RecordingUpstream) -> None:
    endpoint.responder = lambda _r: (503, {}, b"")
    hook = exporter(endpoint, max_attempts=4)
    hook.export([incident()])
    wait_until(lambda: len(endpoint.received()) == 4, 10, "4 requests")
    wait_until(lambda: hook.stats.failed, 5, "the dead letter")
    hook.shutdown()
    assert len(endpoint.requests) == 4
    assert hook.stats.failed == 1
    assert [i.id for i in hook.dead_letters] == ["inc-1"]


def test_max_elapsed_bounds_retries(endpoint: RecordingUpstream) -> None:
    endpoint.responder = lambda _r: (503, {"Retry-After": "60"}, b"")
    hook = exporter(endpoint, max_elapsed_s=1.0, start=False)
    started = time.monotonic()
    assert hook.deliver(incident()) is False
    assert time.monotonic() - started < loose(1.0)  # waiting 60 s would pass the 1 s budget
    assert len(endpoint.requests) == 1
    hook.shutdown()


def test_4xx_is_not_retried(endpoint: RecordingUpstream) -> None:
    endpoint.responder = lambda _r: (404, {}, b"")
    hook = exporter(endpoint, start=False)
    assert hook.deliver(incident()) is False
    assert len(endpoint.requests) == 1
    assert hook.stats.failed == 1
    hook.shutdown()


def test_endpoint_down_is_retried_and_dead_lettered() -> None:
    server = RecordingUpstream()
    server.stop()
    hook = WebhookExporter(server.url, max_attempts=3, initial_backoff_s=0.01, start=False)
    assert hook.deliver(incident()) is False
    assert hook.stats.attempts == 3
    assert hook.stats.last_status is None
    hook.shutdown()


def test_full_queue_drops_oldest_with_a_counter() -> None:
    hook = WebhookExporter("http://127.0.0.1:9/", max_queue=1000, start=False)
    hook.export([incident(n) for n in range(1200)])
    assert hook.queued == 1000
    assert hook.stats.dropped_oldest == 200
    hook.shutdown()
    assert hook.stats.dropped_shutdown == 1000
    hook.shutdown()  # idempotent
    assert hook.export([incident()]) is ExportResult.FAILURE


def test_slow_endpoint_never_blocks_export(endpoint: RecordingUpstream) -> None:
    release = threading.Event()

    def slow(_request: Received) -> Reply:
        release.wait(30)
        return 200, {}, b""

    endpoint.responder = slow
    hook = exporter(endpoint, timeout_s=60)
    hook.export([incident(0)])
    wait_until(lambda: len(endpoint.received()) == 1, 10, "a request")
    started = time.perf_counter()
    for n in range(1, 500):
        hook.export([incident(n)])
    assert time.perf_counter() - started < loose(0.5)  # one blocked export would take 30 s
    release.set()
    wait_until(lambda: len(endpoint.received()) == 500, 10, "500 requests")
    hook.shutdown()
    assert hook.stats.delivered == 500


def test_response_body_is_read_at_most_64_kib(endpoint: RecordingUpstream) -> None:
    endpoint.responder = lambda _r: (200, {}, b"x" * (16 * 1024 * 1024))
    hook = exporter(endpoint, start=False)
    assert hook.deliver(incident()) is True
    hook.shutdown()
