"""The delivery helper the forwarder and the webhooks share, against real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import random
import socket
import threading
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest
from strata.exporters.delivery import Backoff, Worker, http_client, parse_retry_after, post

from tests.exporters.upstream import RecordingUpstream


@pytest.fixture(name="upstream")
def upstream_fixture() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.stop()


@pytest.fixture(name="client")
def client_fixture() -> Iterator[httpx.Client]:
    with http_client(timeout_s=10, connect_timeout_s=5) as client:
        yield client


def test_backoff_doubles_with_jitter_and_caps() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(0))
    delays = [backoff.delay(attempt) for attempt in range(1, 9)]
    for n, delay in enumerate(delays):
        base = min(2.0**n, 30.0)
        assert 0.5 * base <= delay <= min(1.5 * base, 30.0)
    assert len(set(delays)) == len(delays)  # jittered
    assert 15.0 <= backoff.delay(10_000) <= 30.0  # a long outage neither overflows nor exceeds
    assert 0.5 <= backoff.delay(0) <= 1.5  # before any failure: the initial delay


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [Backoff(0.1, 5.0, random.Random(3)).delay(a) for a in (1, 2, 3)]
    assert first == [Backoff(0.1, 5.0, random.Random(3)).delay(a) for a in (1, 2, 3)]


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("100000") == 300.0  # capped
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 12, usegmt=True), now=now) == pytest.approx(12)
    assert parse_retry_after(formatdate(now - 50, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_post_reports_status_body_and_retry_after(upstream: RecordingUpstream,
                                                  client: httpx.Client) -> None:
    upstream.responder = lambda _r: (503, {"Retry-After": "4"}, b"busy")
    reply = post(client, upstream.url + "/v1/traces", b"payload",
                 headers={"X-Test": "1"}, max_response_bytes=1024)
    assert (reply.status, reply.retry_after, reply.body, reply.ok) == (503, 4.0, b"busy", False)
    assert reply.error is None
    (received,) = upstream.requests
    assert (received.path, received.body, received.headers["X-Test"]) == (
        "/v1/traces", b"payload", "1")


def test_post_http_date_retry_after(upstream: RecordingUpstream, client: httpx.Client) -> None:
    upstream.responder = lambda _r: (429, {"Retry-After": formatdate(0, usegmt=True)}, b"")
    reply = post(client, upstream.url, b"", headers={}, max_response_bytes=1024)
    assert (reply.status, reply.retry_after) == (429, 0.0)  # a date in the past: at once


def test_post_reads_at_most_the_response_limit(upstream: RecordingUpstream,
                                               client: httpx.Client) -> None:
    upstream.responder = lambda _r: (200, {}, b"x" * (4 * 1024 * 1024))
    reply = post(client, upstream.url, b"", headers={}, max_response_bytes=1000)
    assert reply.ok
    assert reply.body == b"x" * 1000


def test_post_turns_a_transport_error_into_a_reply(client: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = post(client, f"http://127.0.0.1:{port}", b"", headers={}, max_response_bytes=10)
    assert reply.status is None
    assert not reply.ok
    assert isinstance(reply.error, httpx.ConnectError)


def test_redirects_are_not_followed(upstream: RecordingUpstream, client: httpx.Client) -> None:
    upstream.responder = lambda _r: (307, {"Location": "http://127.0.0.1:9/elsewhere"}, b"")
    reply = post(client, upstream.url, b"", headers={}, max_response_bytes=10)
    assert reply.status == 307
    assert len(upstream.requests) == 1


def test_worker_steps_until_stopped_and_survives_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    errors_seen = threading.Event()
    enough = threading.Event()

    def step() -> float:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("one bad item")
        if len(calls) >= 5:
            enough.set()
        return 0.0

    def on_error() -> float:
        errors_seen.set()
        return 0.0

    worker = Worker("strata-test-worker", step, on_error=on_error)
    with caplog.at_level(logging.ERROR, logger="strata.exporters.delivery"):
        worker.start()
        worker.start()  # a second start is a no-op
        assert enough.wait(10)
        worker.stop(10)
    assert errors_seen.is_set()
    assert len(calls) >= 5  # the exception did not end the thread
    assert "strata-test-worker: unexpected error" in caplog.text
    after = len(calls)
    worker.start()  # never again after stop
    assert len(calls) == after
    assert [t for t in threading.enumerate() if t.name == "strata-test-worker"] == []


def test_worker_stop_interrupts_a_long_wait() -> None:
    stepped = threading.Event()

    def step() -> float:
        stepped.set()
        return 3600.0  # e.g. a long Retry-After

    worker = Worker("strata-test-wait", step)
    worker.start()
    assert stepped.wait(10)
    worker.stop(10)
    assert [t for t in threading.enumerate() if t.name == "strata-test-wait"] == []
