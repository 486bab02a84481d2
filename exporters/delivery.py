"""Delivery over HTTP, shared by the exporters that POST: the OTLP forwarder and the webhooks.

- ``Backoff``: exponential retry delays with jitter (``initial_s`` doubling to ``max_s``,
  times U(0.5, 1.5), never above ``max_s``), so that many agents retrying the same endpoint
  spread out;
- ``parse_retry_after``: a ``Retry-After`` header (seconds or HTTP-date), capped at 5 min;
- ``http_client`` and ``post``: one connection pool per exporter with timeouts and no
  redirects (TLS verification stays on), and a POST that reads at most a bounded response
  and reports a transport error as a reply without a status instead of raising;
- ``Worker``: the exporter's one daemon thread, stoppable at any wait.

What to retry, how often and what to count stays in each exporter: the forwarder retries a
persistent queue forever on the OTLP spec's statuses, a webhook an incident a bounded number
of times.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["MAX_RETRY_AFTER_S", "Backoff", "Reply", "Worker", "http_client",
           "parse_retry_after", "post"]

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: *initial_s* doubling per attempt up to *max_s*, with +-50 % jitter."""

    initial_s: float
    max_s: float
    rng: random.Random

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number *attempt* (1 for the first failure)."""
        exponent = min(max(attempt - 1, 0), 32)
        base = min(self.initial_s * 2.0**exponent, self.max_s)
        return float(min(base * self.rng.uniform(0.5, 1.5), self.max_s))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped.

    Returns None when absent or unparseable.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    now = time.time() if now is None else now
    return min(max(when - now, 0.0), MAX_RETRY_AFTER_S)


def http_client(
    *,
    timeout_s: float,
    connect_timeout_s: float,
    transport: httpx.BaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An exporter's connection pool: per-request timeouts, redirects not followed."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                        headers=dict(headers or {}), transport=transport,
                        follow_redirects=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """How one POST went: a status, or the transport error that prevented one."""

    status: int | None
    retry_after: float | None = None
    body: bytes = b""
    error: httpx.HTTPError | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(client: httpx.Client, url: str, body: bytes, *, headers: Mapping[str, str],
         max_response_bytes: int) -> Reply:
    """POST *body*; the response body is read to at most *max_response_bytes*.

    Never raises for the network: a transport error comes back as ``Reply(status=None)``.
    """
    try:
        with client.stream("POST", url, content=body, headers=dict(headers)) as response:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= max_response_bytes:
                    del data[max_response_bytes:]
                    break
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return Reply(response.status_code, retry_after, bytes(data))
    except httpx.HTTPError as exc:
        return Reply(None, error=exc)


class Worker:
    """One daemon thread calling *step* until stopped.

    *step* returns the seconds to wait before its next call (0: at once); it must return
    promptly once ``stopping`` is set. An exception is logged and followed by *on_error*'s
    delay, so one bad item never ends delivery.
    """

    def __init__(self, name: str, step: Callable[[], float],
                 on_error: Callable[[], float] = lambda: 0.0) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._step = step
        self._on_error = on_error
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; does nothing when running or once stopped."""
        if self._thread is None and not self.stopping.is_set():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Ask the thread to stop and wait up to *timeout_s* (a step in flight may finish)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                delay = self._step()
            except Exception:
                logger.exception("%s: unexpected error", self.name)
                delay = self._on_error()
            if delay > 0:
                self.stopping.wait(delay)
