"""ChangeTracker: deployments inferred from the data itself.

A new ``service.version`` or a new model for a (service, operation) becomes a Deployment at
the event time of its first span. A version seen before for the service (a rollback) counts
again only when the current version has held for ``settle_ns`` and the returning one came
back after the switch to the current one (a gap of ``return_gap_ns`` without it starts a
new run of it): the old version's spans during a rolling deploy do not read as rollbacks,
and neither do two values in use side by side (a router or fallback between two models, a
canary beside the stable version), which before read as a change every ``settle_ns``.
Driven by the writer thread only.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
from strata.agent.model import Deployment
from strata.agent.units import MINUTE_NS

SETTLE_NS = 10 * MINUTE_NS
RETURN_GAP_NS = 2 * MINUTE_NS


class SeenSpan(Protocol):
    """What change detection reads of a span (a SpanRecord has it)."""

    @property
    def service(self) -> str: ...
    @property
    def service_version(self) -> str | None: ...
    @property
    def operation(self) -> str | None: ...
    @property
    def request_model(self) -> str | None: ...
    @property
    def start_unix_nano(self) -> int: ...


class _Columns(NamedTuple):
    service: str
    service_version: str | None
    operation: str | None
    request_model: str | None
    start_unix_nano: int


def spans_seen(table: pa.Table) -> Iterator[SeenSpan]:
    """The spans of a table in the store's columns, as change detection reads them."""
    columns = [table[name].to_pylist() for name in
               ("service", "service_version", "operation", "request_model", "start_ns")]
    return map(_Columns._make, zip(*columns, strict=True))


@dataclass(slots=True)
class _Current:
    value: str
    since_ns: int
    # every value seen for the key -> (the start of its current run, its latest start)
    runs: dict[str, tuple[int, int]]

    def copy(self) -> _Current:
        return _Current(self.value, self.since_ns, dict(self.runs))


class ChangeTracker:
    def __init__(self, *, settle_ns: int = SETTLE_NS, return_gap_ns: int = RETURN_GAP_NS
                 ) -> None:
        self._settle_ns = settle_ns
        self._return_gap_ns = return_gap_ns
        self._versions: dict[str, _Current] = {}
        self._models: dict[tuple[str, str], _Current] = {}
        # What the last ``observe`` changed, as it was before (each key once), to put back
        # when its commit fails: the deployments it found were not stored, so the same
        # spans must find them again.
        self._undo: list[tuple[dict[Any, _Current], Hashable, _Current | None]] = []
        self._touched: set[tuple[int, Hashable]] = set()

    def resume(self, versions: dict[str, tuple[str | None, int]]) -> None:
        """Start from what the store already knows (after a restart)."""
        for service, (version, since_ns) in versions.items():
            if version is not None:
                self._versions[service] = _Current(version, since_ns,
                                                   {version: (since_ns, since_ns)})

    def undo(self) -> None:
        """Forget what the last ``observe`` learned (its batch was not committed)."""
        for table, key, before in reversed(self._undo):
            if before is None:
                table.pop(key, None)
            else:
                table[key] = before
        self._undo.clear()
        self._touched.clear()

    def observe(self, spans: Iterable[SeenSpan]) -> list[Deployment]:
        self._undo.clear()
        self._touched.clear()
        changes: list[Deployment] = []
        for span in sorted(spans, key=lambda s: s.start_unix_nano):
            if span.service_version is not None:
                previous = self._switch(self._versions, span.service, span.service_version,
                                        span.start_unix_nano)
                if previous is not None:
                    changes.append(Deployment(
                        service=span.service, time_unix_nano=span.start_unix_nano,
                        version=span.service_version, previous_version=previous or None,
                        source="service.version",
                    ))
            model = span.request_model
            if model is not None and span.operation is not None:
                previous = self._switch(self._models, (span.service, span.operation), model,
                                        span.start_unix_nano)
                if previous:
                    changes.append(Deployment(
                        service=span.service, time_unix_nano=span.start_unix_nano,
                        version=span.service_version, model=model, previous_model=previous,
                        source="model", description=f"operation {span.operation}",
                    ))
        return changes

    def _switch(
        self, table: dict[Any, _Current], key: Hashable, value: str, t_ns: int
    ) -> str | None:
        """Record *value* for *key*; return the previous value ("" for the first) on a change."""
        current = table.get(key)
        if (id(table), key) not in self._touched:
            self._touched.add((id(table), key))
            self._undo.append((table, key, None if current is None else current.copy()))
        if current is None:
            table[key] = _Current(value, t_ns, {value: (t_ns, t_ns)})
            return ""
        run = current.runs.get(value)
        seen_before = run is not None
        if run is None or t_ns - run[1] >= self._return_gap_ns:
            run = (t_ns, t_ns)  # first seen, or back after a gap: a new run
        elif t_ns > run[1]:
            run = (run[0], t_ns)
        current.runs[value] = run
        if value == current.value or t_ns < current.since_ns:
            return None
        if seen_before and (t_ns - current.since_ns < self._settle_ns
                            or run[0] < current.since_ns):
            return None  # a rolling deploy's old version, or two values in use side by side
        previous = current.value
        current.value, current.since_ns = value, t_ns
        return previous
