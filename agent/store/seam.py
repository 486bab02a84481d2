"""The store seam: what the analysis reads and writes, whatever engine holds the data.

``WindowReads`` are the aggregated reads behind ``window.Window`` (per bucket, per group:
the engine aggregates, Python only shapes the grids); ``IncidentBook`` is incident state;
``ReportReads`` are the API's reads and ``MetricsReads`` those of ``/metrics``.
DuckDB (the sidecar's file, ``DuckDBStore``) implements both here by delegating to this
package's cursor functions; ClickHouse (``strata hub``) in ``store/clickhouse``. The
detectors see a ``Window`` and never know which engine is under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable

import duckdb
import numpy as np
from strata.agent.model import Deployment, Incident, IncidentEvent, Sample, SpanRecord
from strata.agent.store import anomalies as anomaly_store
from strata.agent.store import costs as cost_store
from strata.agent.store import incidents as incident_store
from strata.agent.store import requests as request_store
from strata.agent.store import samples as sample_store
from strata.agent.store import spans as span_store
from strata.agent.store.db import DuckDBStore
from strata.agent.store.deployments import deployments_between, list_deployments
from strata.agent.store.logs import trace_logs

Columns = dict[str, np.ndarray]
GPUInventoryRow = tuple[str, str, str | None, str | None, bool]  # samples.gpu_inventory


class WindowReads(Protocol):
    """Aggregated reads of one engine; columns and rows as ``strata.agent.store.spans``,
    ``samples``, ``requests`` and ``deployments`` document them."""

    def span_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                          sep: str) -> Columns: ...
    def model_bucket_usage(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                           sep: str) -> Columns: ...
    def sample_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                            canonicals: Sequence[str] | None) -> Columns: ...
    def clock_reason_fractions(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                               mask: int) -> Columns: ...
    def deployments_between(self, since_ns: int, until_ns: int) -> list[Deployment]: ...
    def requests_around(self, service: str, *, change_ns: int, until_ns: int,
                        lookback_ns: int, old_version: str | None, new_version: str | None,
                        limit: int) -> dict[str, Any]: ...
    def thin_requests(self, *, start_ns: int, end_ns: int,
                      max_requests: int) -> dict[str, Any]: ...
    def service_dependencies(self, *, start_ns: int, end_ns: int) -> list[tuple[str, str]]: ...
    def event_time_range(self) -> tuple[int, int] | None: ...


class IncidentBook(Protocol):
    """Analysis state inside one unit of work (a DuckDB transaction; ClickHouse inserts):
    incidents (the analyzer's reads and writes, the API's list and operator status changes)
    and scored anomalies (rows as ``anomalies.ANOMALY_COLUMNS`` then ``received_ns``)."""

    def get_incident(self, incident_id: str, *, with_events: bool = True) -> Incident | None: ...
    def list_incidents(self, *, status: str | None = None, service: str | None = None,
                       kind: str | None = None, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 500) -> list[Incident]: ...
    def set_status(self, incident_id: str, status: str, *, time_ns: int,
                   detail: str) -> Incident | None: ...
    def insert_incident(self, incident: Incident, updated_ns: int) -> None: ...
    def update_incident(self, incident: Incident, updated_ns: int) -> None: ...
    def add_events(self, incident_id: str, events: Iterable[IncidentEvent]) -> int: ...
    def manually_resolved(self, incident_id: str) -> bool: ...
    def open_incidents_between(self, since_ns: int, until_ns: int) -> list[Incident]: ...
    def insert_anomalies(self, rows: Sequence[Sequence[Any]]) -> None: ...
    def advance_scored_until(self, scored_until_ns: int) -> None: ...


class ReportReads(Protocol):
    """The API's reads (traces and their layer samples, deployments, cost); rows as
    ``strata.agent.store.spans`` (``list_traces``, ``trace_spans``, ``span_resources``),
    ``samples.samples_near``, ``logs.trace_logs``, ``deployments.list_deployments`` and
    ``costs`` (``cost_report`` without the rollup switch, ``coverage_by_service``,
    ``unknown_energy_groups``, ``gpu_energy_summary``) and ``samples.gpu_inventory`` document
    them. ``gpu_energy_summary`` on the hub measures each GPU's counter but has no split into
    attributed and idle energy (that needs the sidecar's GPU pass): those fields are None."""

    def list_traces(self, *, service: str | None = None, model: str | None = None,
                    status: str | None = None, min_duration_ns: int | None = None,
                    since_ns: int | None = None, until_ns: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]: ...
    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]: ...
    def trace_logs(self, trace_id: str) -> list[dict[str, Any]]: ...
    def span_resources(self, trace_id: str) -> dict[str, str]: ...
    def list_anomalies(self, *, service: str | None = None, host: str | None = None,
                       layer: str | None = None, signal: str | None = None,
                       min_score: float = 0.0, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 200) -> list[dict[str, Any]]: ...
    def scored_until(self) -> int | None: ...
    def metric_series(self, *, since_ns: int, until_ns: int, layer: str | None = None,
                      name: str | None = None, labels: Mapping[str, str] | None = None,
                      max_series: int = 1000,
                      max_points: int = 10_000) -> tuple[list[dict[str, Any]], bool]: ...
    def service_span_series(self, service: str, *, since_ns: int, until_ns: int,
                            step_ns: int) -> list[dict[str, Any]]: ...
    def service_targets(self, service: str, *, since_ns: int,
                        until_ns: int) -> list[SpanRecord]: ...
    def bucketed_samples(self, *, since_ns: int, until_ns: int, step_ns: int,
                         hosts: Iterable[str]) -> list[tuple[Sample, float, float]]: ...
    def samples_near(self, *, since_ns: int, until_ns: int,
                     hosts: Iterable[str]) -> list[Sample]: ...
    def list_deployments(self, *, service: str | None = None, since_ns: int | None = None,
                         until_ns: int | None = None,
                         limit: int = 500) -> list[tuple[Any, ...]]: ...
    def cost_report(self, *, group_by: str, since_ns: int, until_ns: int,
                    bucket_ns: int | None = None,
                    filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]: ...
    def coverage_by_service(self, *, since_ns: int,
                            until_ns: int) -> list[tuple[Any, ...]]: ...
    def gpu_hourly_usage(self, *, since_ns: int, until_ns: int) -> list[tuple[Any, ...]]: ...
    def model_usage(self, *, since_ns: int, until_ns: int, max_input_tokens: int,
                    max_output_tokens: int) -> list[tuple[Any, ...]]: ...
    def unknown_energy_groups(self, *, since_ns: int, until_ns: int,
                              limit: int) -> list[tuple[Any, ...]]: ...
    def gpu_inventory(self, *, since_ns: int, until_ns: int,
                      energy_signal: str) -> list[GPUInventoryRow]: ...
    def gpu_energy_summary(self, *, since_ns: int,
                           until_ns: int) -> list[dict[str, Any]]: ...


class MetricsReads(Protocol):
    """What ``/metrics`` reads (``strata.exporters.prometheus.StrataCollector``); rows as
    ``spans`` (``busiest_services``, ``duration_quantiles``, ``usage_received_after``),
    ``samples.latest_collector_metrics`` and ``incidents.open_incident_counts`` document
    them. None: this engine does not keep that, and its families are left out."""

    def busiest_services(self, *, received_since_ns: int, limit: int) -> list[str]: ...
    def duration_quantiles(self, *, received_since_ns: int, services: Sequence[str],
                           other: str, quantiles: Sequence[float]) -> list[Any]: ...
    def usage_received_after(self, received_after_ns: int) -> list[tuple[Any, ...]]: ...
    def latest_collector_metrics(self, names: Sequence[str], *,
                                 received_since_ns: int) -> list[Any] | None: ...
    def open_incident_counts(self) -> list[tuple[Any, ...]]: ...
    def size_bytes(self) -> int | None: ...
    def counts(self) -> dict[str, int]: ...


@runtime_checkable
class AnalysisStore(Protocol):
    """A store other than DuckDB that the analyzer and the API can run on."""

    def window_reads(self) -> WindowReads: ...
    def incident_book(self) -> AbstractContextManager[IncidentBook]: ...
    def report_reads(self) -> ReportReads: ...
    def metrics_reads(self) -> MetricsReads: ...
    def counts(self) -> dict[str, int]: ...
    def known_versions(self) -> dict[str, tuple[str | None, int]]: ...
    def add_deployment(self, deployment: Deployment) -> None: ...


Store = DuckDBStore | AnalysisStore


class DuckDBReads:
    """``WindowReads`` on a DuckDB store (this thread's cursor)."""

    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def span_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                          sep: str) -> Columns:
        return span_store.span_bucket_stats(self._store.cursor(), start_ns=start_ns,
                                            end_ns=end_ns, bucket_ns=bucket_ns, sep=sep)

    def model_bucket_usage(self, *, start_ns: int, end_ns: int, bucket_ns: int,
                           sep: str) -> Columns:
        return span_store.model_bucket_usage(self._store.cursor(), start_ns=start_ns,
                                             end_ns=end_ns, bucket_ns=bucket_ns, sep=sep)

    def sample_bucket_stats(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                            canonicals: Sequence[str] | None) -> Columns:
        return sample_store.sample_bucket_stats(
            self._store.cursor(), start_ns=start_ns, end_ns=end_ns, bucket_ns=bucket_ns,
            sep=sep, canonicals=canonicals)

    def clock_reason_fractions(self, *, start_ns: int, end_ns: int, bucket_ns: int, sep: str,
                               mask: int) -> Columns:
        return sample_store.clock_reason_fractions(
            self._store.cursor(), start_ns=start_ns, end_ns=end_ns, bucket_ns=bucket_ns,
            sep=sep, mask=mask)

    def deployments_between(self, since_ns: int, until_ns: int) -> list[Deployment]:
        return deployments_between(self._store.cursor(), since_ns, until_ns)

    def requests_around(self, service: str, *, change_ns: int, until_ns: int,
                        lookback_ns: int, old_version: str | None, new_version: str | None,
                        limit: int) -> dict[str, Any]:
        return request_store.requests_around(
            self._store.cursor(), service, change_ns=change_ns, until_ns=until_ns,
            lookback_ns=lookback_ns, old_version=old_version, new_version=new_version,
            limit=limit)

    def thin_requests(self, *, start_ns: int, end_ns: int, max_requests: int) -> dict[str, Any]:
        return request_store.thin_requests(self._store.cursor(), start_ns=start_ns,
                                           end_ns=end_ns, max_requests=max_requests)

    def service_dependencies(self, *, start_ns: int, end_ns: int) -> list[tuple[str, str]]:
        return span_store.service_dependencies(self._store.cursor(), start_ns=start_ns,
                                               end_ns=end_ns)

    def event_time_range(self) -> tuple[int, int] | None:
        return span_store.event_time_range(self._store.cursor())


class DuckDBReports:
    """``ReportReads`` on a DuckDB store (this thread's cursor)."""

    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def list_traces(self, *, service: str | None = None, model: str | None = None,
                    status: str | None = None, min_duration_ns: int | None = None,
                    since_ns: int | None = None, until_ns: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        return span_store.list_traces(
            self._store.cursor(), service=service, model=model, status=status,
            min_duration_ns=min_duration_ns, since_ns=since_ns, until_ns=until_ns, limit=limit)

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        return span_store.trace_spans(self._store.cursor(), trace_id)

    def trace_logs(self, trace_id: str) -> list[dict[str, Any]]:
        return trace_logs(self._store.cursor(), trace_id)

    def span_resources(self, trace_id: str) -> dict[str, str]:
        return span_store.span_resources(self._store.cursor(), trace_id)

    def list_anomalies(self, *, service: str | None = None, host: str | None = None,
                       layer: str | None = None, signal: str | None = None,
                       min_score: float = 0.0, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        return anomaly_store.list_anomalies(
            self._store.cursor(), service=service, host=host, layer=layer, signal=signal,
            min_score=min_score, since_ns=since_ns, until_ns=until_ns, limit=limit)

    def scored_until(self) -> int | None:
        return anomaly_store.scored_until(self._store.cursor())

    def metric_series(self, *, since_ns: int, until_ns: int, layer: str | None = None,
                      name: str | None = None, labels: Mapping[str, str] | None = None,
                      max_series: int = 1000,
                      max_points: int = 10_000) -> tuple[list[dict[str, Any]], bool]:
        return sample_store.metric_series(
            self._store.cursor(), since_ns=since_ns, until_ns=until_ns, layer=layer, name=name,
            labels=labels, max_series=max_series, max_points=max_points)

    def service_span_series(self, service: str, *, since_ns: int, until_ns: int,
                            step_ns: int) -> list[dict[str, Any]]:
        return span_store.service_span_series(self._store.cursor(), service, since_ns=since_ns,
                                              until_ns=until_ns, step_ns=step_ns)

    def service_targets(self, service: str, *, since_ns: int,
                        until_ns: int) -> list[SpanRecord]:
        return span_store.service_targets(self._store.cursor(), service, since_ns=since_ns,
                                          until_ns=until_ns)

    def bucketed_samples(self, *, since_ns: int, until_ns: int, step_ns: int,
                         hosts: Iterable[str]) -> list[tuple[Sample, float, float]]:
        return sample_store.bucketed_samples(self._store.cursor(), since_ns=since_ns,
                                             until_ns=until_ns, step_ns=step_ns, hosts=hosts)

    def samples_near(self, *, since_ns: int, until_ns: int,
                     hosts: Iterable[str]) -> list[Sample]:
        return sample_store.samples_near(self._store.cursor(), since_ns=since_ns,
                                         until_ns=until_ns, hosts=hosts)

    def list_deployments(self, *, service: str | None = None, since_ns: int | None = None,
                         until_ns: int | None = None, limit: int = 500) -> list[tuple[Any, ...]]:
        return list_deployments(self._store.cursor(), service=service, since_ns=since_ns,
                                until_ns=until_ns, limit=limit)

    def cost_report(self, *, group_by: str, since_ns: int, until_ns: int,
                    bucket_ns: int | None = None,
                    filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return cost_store.cost_report(self._store.cursor(), group_by=group_by,
                                      since_ns=since_ns, until_ns=until_ns,
                                      bucket_ns=bucket_ns, filters=filters)

    def coverage_by_service(self, *, since_ns: int, until_ns: int) -> list[tuple[Any, ...]]:
        return cost_store.coverage_by_service(self._store.cursor(), since_ns=since_ns,
                                              until_ns=until_ns)

    def gpu_hourly_usage(self, *, since_ns: int, until_ns: int) -> list[tuple[Any, ...]]:
        return cost_store.gpu_hourly_usage(self._store.cursor(), since_ns=since_ns,
                                           until_ns=until_ns)

    def model_usage(self, *, since_ns: int, until_ns: int, max_input_tokens: int,
                    max_output_tokens: int) -> list[tuple[Any, ...]]:
        return cost_store.model_usage(self._store.cursor(), since_ns=since_ns,
                                      until_ns=until_ns, max_input_tokens=max_input_tokens,
                                      max_output_tokens=max_output_tokens)

    def unknown_energy_groups(self, *, since_ns: int, until_ns: int,
                              limit: int) -> list[tuple[Any, ...]]:
        return cost_store.unknown_energy_groups(self._store.cursor(), since_ns=since_ns,
                                                until_ns=until_ns, limit=limit)

    def gpu_inventory(self, *, since_ns: int, until_ns: int,
                      energy_signal: str) -> list[GPUInventoryRow]:
        return sample_store.gpu_inventory(self._store.cursor(), since_ns=since_ns,
                                          until_ns=until_ns, energy_signal=energy_signal)

    def gpu_energy_summary(self, *, since_ns: int, until_ns: int) -> list[dict[str, Any]]:
        return cost_store.gpu_energy_summary(self._store.cursor(), since_ns=since_ns,
                                             until_ns=until_ns)


class DuckDBMetrics:
    """``MetricsReads`` on a DuckDB store (this thread's cursor)."""

    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def busiest_services(self, *, received_since_ns: int, limit: int) -> list[str]:
        return span_store.busiest_services(self._store.cursor(),
                                           received_since_ns=received_since_ns, limit=limit)

    def duration_quantiles(self, *, received_since_ns: int, services: Sequence[str],
                           other: str, quantiles: Sequence[float]) -> list[Any]:
        return span_store.duration_quantiles(
            self._store.cursor(), received_since_ns=received_since_ns, services=services,
            other=other, quantiles=quantiles)

    def usage_received_after(self, received_after_ns: int) -> list[tuple[Any, ...]]:
        return span_store.usage_received_after(self._store.cursor(), received_after_ns)

    def latest_collector_metrics(self, names: Sequence[str], *,
                                 received_since_ns: int) -> list[Any]:
        return sample_store.latest_collector_metrics(self._store.cursor(), names,
                                                     received_since_ns=received_since_ns)

    def open_incident_counts(self) -> list[tuple[Any, ...]]:
        return incident_store.open_incident_counts(self._store.cursor())

    def size_bytes(self) -> int:
        return self._store.size_bytes()

    def counts(self) -> dict[str, int]:
        return self._store.counts()


class DuckDBIncidents:
    """``IncidentBook`` on one DuckDB transaction's cursor (``cursor`` for other writes)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor

    def get_incident(self, incident_id: str, *, with_events: bool = True) -> Incident | None:
        return incident_store.get_incident(self.cursor, incident_id, with_events=with_events)

    def list_incidents(self, *, status: str | None = None, service: str | None = None,
                       kind: str | None = None, since_ns: int | None = None,
                       until_ns: int | None = None, limit: int = 500) -> list[Incident]:
        return incident_store.list_incidents(self.cursor, status=status, service=service,
                                             kind=kind, since_ns=since_ns, until_ns=until_ns,
                                             limit=limit)

    def set_status(self, incident_id: str, status: str, *, time_ns: int,
                   detail: str) -> Incident | None:
        return incident_store.set_status(self.cursor, incident_id, status, time_ns=time_ns,
                                         detail=detail)

    def insert_incident(self, incident: Incident, updated_ns: int) -> None:
        incident_store.insert_incident(self.cursor, incident, updated_ns)

    def update_incident(self, incident: Incident, updated_ns: int) -> None:
        incident_store.update_incident(self.cursor, incident, updated_ns)

    def add_events(self, incident_id: str, events: Iterable[IncidentEvent]) -> int:
        return incident_store.add_events(self.cursor, incident_id, events)

    def manually_resolved(self, incident_id: str) -> bool:
        return incident_store.manually_resolved(self.cursor, incident_id)

    def open_incidents_between(self, since_ns: int, until_ns: int) -> list[Incident]:
        return incident_store.open_incidents_between(self.cursor, since_ns, until_ns)

    def insert_anomalies(self, rows: Sequence[Sequence[Any]]) -> None:
        anomaly_store.insert_anomalies(self.cursor, rows)

    def advance_scored_until(self, scored_until_ns: int) -> None:
        anomaly_store.advance_watermark(self.cursor, scored_until_ns)


def window_reads(store: Store) -> WindowReads:
    """The aggregated reads of *store*, whichever engine it is."""
    return DuckDBReads(store) if isinstance(store, DuckDBStore) else store.window_reads()


def report_reads(store: Store) -> ReportReads:
    """The API's reads of *store*, whichever engine it is."""
    return DuckDBReports(store) if isinstance(store, DuckDBStore) else store.report_reads()


def metrics_reads(store: Store) -> MetricsReads:
    """What ``/metrics`` reads of *store*, whichever engine it is."""
    return DuckDBMetrics(store) if isinstance(store, DuckDBStore) else store.metrics_reads()


@contextmanager
def incident_book(store: Store) -> Iterator[IncidentBook]:
    """Incident state of *store* in one unit of work (a transaction on DuckDB)."""
    if isinstance(store, DuckDBStore):
        with store.transaction() as cur:
            yield DuckDBIncidents(cur)
    else:
        with store.incident_book() as book:
            yield book
