"""The collector contract: one verb, ``collect(now_ns)``.

A collector reads one source (NVML, one Prometheus target, /proc) and returns the samples it
read. It is synchronous and may block; the scheduler (``agent/scheduler.py``) calls each one
from a worker thread with a timeout, so a slow source never delays the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from strata.agent.errors import CollectError, CollectorUnavailable
from strata.agent.model import Sample

__all__ = ["CollectError", "Collector", "CollectorUnavailable"]


@runtime_checkable
class Collector(Protocol):
    """A source of samples.

    ``name`` is a stable id (``"nvml"``, ``"scrape:vllm-a"``), used as the ``collector``
    attribute of the scheduler's self-metrics.
    """

    name: str

    def collect(self, now_ns: int) -> Sequence[Sample]:
        """Read the source once.

        Args:
            now_ns: the poll time in ns since the epoch; samples without their own timestamp
                carry it.

        Returns:
            The samples read. A field the source does not support yields no sample, never 0.

        Raises:
            CollectError: the source could not be read at all (target down, garbage body).
            CollectorUnavailable: the source does not exist here (no GPU); the scheduler
                turns the collector off.
        """
        ...

    def close(self) -> None:
        """Release the source (sockets, NVML). Idempotent."""
        ...
