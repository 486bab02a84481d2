"""The ingest path's counters: the receiver's and the writer's, read by ``/metrics``.

Plain cumulative counters, written by the receiver (``strata.agent.api.otlp``) and the writer
thread (``strata.agent.ingest.writer``) and read by ``strata.exporters.prometheus``. A leaf:
the runner, the router and the exporter import them from here, never from each other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReceiverStats", "WriterStats"]


@dataclass(slots=True)
class ReceiverStats:
    """OTLP requests (HTTP and gRPC) and items, cumulative since start (``in_flight``: now)."""

    requests: int = 0
    accepted_spans: int = 0
    accepted_points: int = 0
    accepted_logs: int = 0
    rejected_logs: int = 0  # log records rejected inside accepted requests
    rejected_items: int = 0
    bad_requests: int = 0
    too_large: int = 0
    unsupported: int = 0
    throttled: int = 0
    in_flight: int = 0
    redaction_failures: int = 0


@dataclass(slots=True)
class WriterStats:
    """Group commits to DuckDB, cumulative since start."""

    committed_spans: int = 0
    committed_samples: int = 0
    committed_logs: int = 0
    commits: int = 0
    rejected_full: int = 0
    failed_commits: int = 0
    last_commit_s: float = 0.0
