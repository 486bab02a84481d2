"""WebhookExporter: POST each new or changed incident as JSON to a configured URL.

``export`` only appends to a bounded in-memory queue (1,000 incidents; when full the oldest
is dropped and counted) and returns; one worker thread delivers, so a slow or dead endpoint
never blocks the detector or ingest (RELIABILITY E5, S9). Each incident gets bounded
retries: 429, 5xx and transport errors are retried with exponential backoff and jitter until
``max_attempts`` or ``max_elapsed_s``; other statuses are final. An incident that could not be
delivered goes to ``dead_letters`` (the last 100) and is counted. Responses are read to at
most 64 KiB; timeouts 5 s connect / 10 s read; TLS verification stays on (the mechanics are
``strata.exporters.delivery``'s). URLs come only from the configuration file, never from the
API, so the webhook is no SSRF vector.

Formats:
- ``json``: the incident in DESIGN.md's schema, times as RFC 3339 UTC strings.
- ``slack``: a Slack incoming-webhook message (``text`` plus ``blocks``).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from strata.agent.model import Incident, incident_json, rfc3339
from strata.exporters.base import ExportResult
from strata.exporters.delivery import Backoff, Reply, Worker, http_client, post

__all__ = ["WebhookExporter", "WebhookStats", "incident_document", "slack_message"]

logger = logging.getLogger(__name__)

FORMATS = ("json", "slack")
MAX_QUEUE = 1_000
MAX_DEAD_LETTERS = 100
_SEVERITY_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                  "info": ":large_blue_circle:"}


incident_document = incident_json


def slack_message(incident: Incident) -> dict[str, Any]:
    """A Slack incoming-webhook payload for *incident*."""
    icon = _SEVERITY_ICON.get(incident.severity, ":white_circle:")
    where = " / ".join(x for x in (incident.service, incident.host) if x) or incident.layer
    title = f"{icon} [{incident.severity}] {incident.kind} on {where} ({incident.status})"
    lines = [f"*{title}*", incident.summary]
    for evidence in incident.evidence[:5]:
        lines.append(f"• {evidence.signal} ({evidence.layer}): {evidence.baseline:g} → "
                     f"{evidence.current:g} {evidence.unit}")
    if incident.suspected_cause is not None:
        cause = incident.suspected_cause
        lines.append(f"Suspected cause: {cause.layer} / {cause.signal}: {cause.detail}")
    if incident.suggestion is not None:
        lines.append(f"Suggestion: {incident.suggestion.action}: {incident.suggestion.detail}")
    lines.append(f"Incident `{incident.id}` started {rfc3339(incident.started_at_ns)}")
    text = "\n".join(lines)
    return {"text": f"{title}: {incident.summary}"[:3000],
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


@dataclass(slots=True)
class WebhookStats:
    queued: int = 0
    delivered: int = 0
    attempts: int = 0
    failed: int = 0  # gave up (dead-lettered)
    dropped_oldest: int = 0  # pushed out of a full queue
    dropped_shutdown: int = 0  # still queued at shutdown
    last_status: int | None = None


class WebhookExporter:
    """``Exporter[Incident]`` posting to one URL from its own worker thread.

    Args:
        url: the endpoint (from the config file only).
        format: ``"json"`` or ``"slack"``.
        max_queue: incidents held while the endpoint is slow; the oldest is dropped beyond.
        max_attempts / max_elapsed_s: retry bounds per incident.
        initial_backoff_s / max_backoff_s: retry delays (doubling, +-50 % jitter).
        timeout_s / connect_timeout_s: per-request timeouts.
        max_response_bytes: most bytes of a response body read.
        transport: an httpx transport (tests).
        rng: jitter source.
        start: start the worker now.
    """

    def __init__(
        self,
        url: str,
        *,
        format: str = "json",
        max_queue: int = MAX_QUEUE,
        max_attempts: int = 8,
        max_elapsed_s: float = 300.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_response_bytes: int = 64 * 1024,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        start: bool = True,
    ) -> None:
        if format not in FORMATS:
            msg = f"webhook format must be one of {', '.join(FORMATS)}, got {format!r}"
            raise ValueError(msg)
        self.url = url
        self.format = format
        self.stats = WebhookStats()
        self.dead_letters: deque[Incident] = deque(maxlen=MAX_DEAD_LETTERS)
        self._queue: deque[Incident] = deque()
        self._max_queue = max_queue
        self._max_attempts = max_attempts
        self._max_elapsed_s = max_elapsed_s
        self._retry = Backoff(initial_backoff_s, max_backoff_s,
                              rng or random.Random())  # noqa: S311 - jitter, not security
        self._max_response_bytes = max_response_bytes
        self._client = http_client(timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                                   transport=transport)
        self._cond = threading.Condition()
        self._closed = False
        self._worker = Worker("strata-webhook", self._step)
        if start:
            self.start()

    def start(self) -> None:
        """Start the worker thread (once; never after ``shutdown``)."""
        self._worker.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def export(self, items: Sequence[Incident]) -> ExportResult:
        """Queue *items* for delivery; never blocks. FAILURE only after shutdown."""
        with self._cond:
            if self._closed:
                return ExportResult.FAILURE
            for incident in items:
                if len(self._queue) >= self._max_queue:
                    self._queue.popleft()
                    self.stats.dropped_oldest += 1
                self._queue.append(incident)
                self.stats.queued += 1
            self._cond.notify()
        return ExportResult.SUCCESS

    def body(self, incident: Incident) -> bytes:
        """The request body for *incident* in this exporter's format."""
        document = slack_message(incident) if self.format == "slack" else incident_document(
            incident)
        return json.dumps(document, ensure_ascii=False).encode()

    def _step(self) -> float:
        stopping = self._worker.stopping
        with self._cond:
            while not self._queue and not stopping.is_set():
                self._cond.wait(1.0)
            if stopping.is_set():
                return 0.0
            incident = self._queue.popleft()
        self.deliver(incident)
        return 0.0

    def deliver(self, incident: Incident) -> bool:
        """POST *incident* with bounded retries (blocking; the worker's job). True if 2xx."""
        body = self.body(incident)
        started = time.monotonic()
        for attempt in range(1, self._max_attempts + 1):
            reply = self._post(body)
            if reply.ok:
                self.stats.delivered += 1
                return True
            status = reply.status
            retryable = status is None or status == 429 or status >= 500
            delay = (reply.retry_after if reply.retry_after is not None
                     else self._retry.delay(attempt))
            elapsed = time.monotonic() - started
            if not retryable or attempt == self._max_attempts or (
                elapsed + delay > self._max_elapsed_s
            ):
                break
            if self._worker.stopping.wait(delay):
                break
        self.stats.failed += 1
        self.dead_letters.append(incident)
        logger.warning("webhook %s: gave up on incident %s (last status %s)", self.url,
                       incident.id, self.stats.last_status)
        return False

    def _post(self, body: bytes) -> Reply:
        self.stats.attempts += 1
        reply = post(self._client, self.url, body, headers={"Content-Type": "application/json"},
                     max_response_bytes=self._max_response_bytes)
        if reply.error is not None:
            logger.info("webhook %s: %s", self.url, reply.error)
        self.stats.last_status = reply.status
        return reply

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the worker (an in-flight attempt may finish); a second call does nothing."""
        with self._cond:
            if self._closed:
                logger.debug("webhook exporter already shut down")
                return
            self._closed = True
            self._worker.stopping.set()
            self._cond.notify_all()  # wakes a worker waiting for the queue
        self._worker.stop(timeout_s)
        with self._cond:
            self.stats.dropped_shutdown += len(self._queue)
            self._queue.clear()
        self._client.close()
