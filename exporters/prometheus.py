"""StrataCollector: the agent's own health and derived layer metrics for ``/metrics``.

A prometheus_client custom collector (one method, ``collect``) over the agent's store and
counters, registered in a private ``CollectorRegistry`` by ``agent/api/metrics_endpoint.py``
(never the global one). Its data sources are constructor parameters, so tests feed a real
store and plain counter objects. The store is read through ``seam.MetricsReads``: the
agent's DuckDB or the hub's ClickHouse; a family the store or the process does not have
(the hub runs no collectors nor forwarders) is left out.

Families (every name is ``strata_*``; the OTel-style internal names stay internal):

- receiver / writer / store / collector / exporter health, from in-memory counters and the
  latest ``strata.collector.*`` self-metric samples;
- ``strata_span_duration_seconds{service}``, a summary: quantiles over spans received in the
  last ``latency_window_s`` (default 5 min), ``_count`` and ``_sum`` cumulative;
- ``strata_gen_ai_*_total{service,model}``: spans, errors, tokens, cost, energy and carbon,
  accumulated incrementally from newly received spans (a scrape reads only rows received
  since the previous one, so the counters never go down when retention deletes old rows;
  they start again from what the store holds when the agent restarts);
- ``strata_incidents{kind,layer,severity,service,status}``: open and acknowledged incidents.

Cardinality (RELIABILITY I10): label values are cut to 128 characters, each family keeps at
most ``max_series_per_family`` label sets and the whole exposition at most ``max_series``;
the rest is summed into label value ``other`` (quantiles: the busiest services keep their
own series, the others are computed together as ``other``). The running totals track at most
``max_series`` (service, model) keys; later keys count under ``other``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from strata.agent import __version__
from strata.agent.units import NS_PER_S

if TYPE_CHECKING:
    from strata.agent.ingest.stats import ReceiverStats, WriterStats
    from strata.agent.store.seam import MetricsReads
    from strata.exporters.clickhouse_forward import ClickHouseForwarder
    from strata.exporters.otlp_forward import OTLPForwarder
    from strata.exporters.webhook import WebhookExporter

__all__ = ["OTHER", "StrataCollector"]

OTHER = "other"
MAX_LABEL_CHARS = 128
QUANTILES = (0.5, 0.95, 0.99)
_COLLECTOR_METRICS = ("strata.collector.up", "strata.collector.duration",
                      "strata.collector.errors")


def _label(value: object) -> str:
    text = "" if value is None else str(value)
    return text[:MAX_LABEL_CHARS]


@dataclass(slots=True)
class _Totals:
    spans: float = 0.0
    errors: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost_usd: float = 0.0
    energy_wh: float = 0.0
    co2e_g: float = 0.0
    duration_s: float = 0.0

    def add(self, other: _Totals) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class _Budget:
    """Series left for the whole exposition; families take from it in order."""

    remaining: int
    per_family: int
    overflowed: dict[str, int] = field(default_factory=dict)

    def cap(self, family: str, wanted: int, *, series_each: int = 1, families: int = 1) -> int:
        """How many of *wanted* label sets may be shown.

        Each label set costs *series_each* series in each of *families* families; a family
        holds at most ``per_family`` series and all of them together ``remaining``.
        """
        allowed = max(min(self.per_family // series_each,
                          self.remaining // (series_each * families)), 1)
        if wanted > allowed:
            self.overflowed[family] = wanted - allowed + 1
        return min(wanted, allowed)

    def spend(self, n: int) -> None:
        self.remaining -= n


class StrataCollector:
    """prometheus_client collector over one agent.

    Args:
        reads: the store's reads (``seam.metrics_reads(store)``).
        receiver: the receiver's counters (``strata.agent.ingest.stats``), or None.
        writer: the writer's counters, or None.
        writer_queue: current write-queue depth (items), or None.
        forwarder: the OTLP forwarder, or None when forwarding is off.
        clickhouse: the ClickHouse forwarder (``[forward.clickhouse]``), or None.
        webhooks: the incident webhooks.
        log_dropped: log records dropped because the log stream failed, or None.
        clock: ns since the epoch (windows are on received time, which is wall time).
        latency_window_s: spans received this recently feed the latency quantiles.
        max_series: cap on series of the derived, label-bearing families together.
        max_series_per_family: cap per family.
    """

    def __init__(
        self,
        reads: MetricsReads,
        *,
        receiver: ReceiverStats | None = None,
        writer: WriterStats | None = None,
        writer_queue: Callable[[], int] | None = None,
        forwarder: OTLPForwarder | None = None,
        clickhouse: ClickHouseForwarder | None = None,
        webhooks: Sequence[WebhookExporter] = (),
        log_dropped: Callable[[], int] | None = None,
        clock: Callable[[], int] = time.time_ns,
        latency_window_s: float = 300.0,
        max_series: int = 10_000,
        max_series_per_family: int = 1_000,
    ) -> None:
        self._reads = reads
        self._receiver = receiver
        self._writer = writer
        self._writer_queue = writer_queue
        self._forwarder = forwarder
        self._clickhouse = clickhouse
        self._webhooks = tuple(webhooks)
        self._log_dropped = log_dropped
        self._clock = clock
        self._window_ns = int(latency_window_s * NS_PER_S)
        self._max_series = max_series
        self._per_family = max_series_per_family
        self._totals: dict[tuple[str, str], _Totals] = {}
        self._watermark_ns: int | None = None
        self._lock = threading.Lock()
        self._last_collect_s = 0.0

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not query the store (no auto-describe)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family, read now. Safe from several threads (scrapes are serialised)."""
        with self._lock:
            started = time.perf_counter()
            metrics = list(self._collect())
            self._last_collect_s = time.perf_counter() - started
        yield from metrics

    def _collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("strata_build_info", "Strata agent version.",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("strata_metrics_collect_seconds",
                                "Time the previous /metrics collection took.",
                                value=self._last_collect_s)
        yield from self._receiver_families()
        yield from self._writer_families()
        yield from self._store_families()
        budget = _Budget(self._max_series, self._per_family)
        yield from self._collector_families(budget)
        yield from self._incident_family(budget)
        self._refresh_totals()
        yield from self._latency_family(budget)
        yield from self._usage_families(budget)
        yield from self._exporter_families()
        overflow = GaugeMetricFamily(
            "strata_metrics_overflow_series",
            "Label sets folded into the 'other' label value by the cardinality cap, per family.",
            labels=["family"])
        for family, folded in sorted(budget.overflowed.items()):
            overflow.add_metric([family], folded)
        yield overflow

    # -- agent health ----------------------------------------------------------------------

    def _receiver_families(self) -> Iterator[Metric]:
        r = self._receiver
        if r is None:
            return
        counters = (
            ("requests", "OTLP requests received.", r.requests),
            ("accepted_spans", "Spans accepted and committed.", r.accepted_spans),
            ("accepted_points", "Metric points accepted and committed.", r.accepted_points),
            ("accepted_log_records", "Log records accepted and committed.", r.accepted_logs),
            ("rejected_log_records", "Log records rejected inside accepted requests.",
             r.rejected_logs),
            ("rejected_items", "Items rejected inside accepted requests (partial success).",
             r.rejected_items),
            ("bad_requests", "Requests answered 400 (undecodable).", r.bad_requests),
            ("too_large_requests", "Requests answered 413.", r.too_large),
            ("unsupported_requests", "Requests answered 415.", r.unsupported),
            ("throttled_requests", "Requests answered 503 (back-pressure).", r.throttled),
            ("redaction_failures", "Content attributes dropped because redaction failed.",
             r.redaction_failures),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(f"strata_receiver_{name}", doc, value=value)
        yield GaugeMetricFamily("strata_receiver_in_flight_requests",
                                "OTLP requests being handled now.", value=r.in_flight)

    def _writer_families(self) -> Iterator[Metric]:
        w = self._writer
        if w is not None:
            yield CounterMetricFamily("strata_writer_committed_spans",
                                      "Spans committed to the store.", value=w.committed_spans)
            yield CounterMetricFamily("strata_writer_committed_samples",
                                      "Samples committed to the store.", value=w.committed_samples)
            yield CounterMetricFamily("strata_writer_commits", "Store commits (DuckDB "
                                      "transactions, ClickHouse inserts).", value=w.commits)
            yield CounterMetricFamily("strata_writer_failed_commits", "Failed commits.",
                                      value=w.failed_commits)
            yield CounterMetricFamily("strata_writer_queue_full",
                                      "Submissions refused because the write queue was full.",
                                      value=w.rejected_full)
            yield GaugeMetricFamily("strata_writer_last_commit_seconds",
                                    "Duration of the latest commit.", value=w.last_commit_s)
        if self._writer_queue is not None:
            yield GaugeMetricFamily("strata_writer_queue_items",
                                    "Records waiting to be committed.", value=self._writer_queue())
        if self._log_dropped is not None:
            yield CounterMetricFamily("strata_log_records_dropped",
                                      "Log records that could not be written (log volume full).",
                                      value=self._log_dropped())

    def _store_families(self) -> Iterator[Metric]:
        size = self._reads.size_bytes()
        if size is not None:
            yield GaugeMetricFamily("strata_store_size_bytes", "Store size on disk (DuckDB: "
                                    "file plus WAL; ClickHouse: the database's active parts).",
                                    value=size)
        rows = GaugeMetricFamily("strata_store_rows", "Rows stored, by table.", labels=["table"])
        for table, count in sorted(self._reads.counts().items()):
            rows.add_metric([table], count)
        yield rows

    def _collector_families(self, budget: _Budget) -> Iterator[Metric]:
        since = self._clock() - 15 * 60 * NS_PER_S  # a collector silent for 15 min is gone
        rows = self._reads.latest_collector_metrics(_COLLECTOR_METRICS, received_since_ns=since)
        if rows is None:
            return
        latest: dict[str, dict[str, float]] = {}
        for collector, name, value in rows:
            latest.setdefault(_label(collector), {})[name] = float(value)
        names = sorted(latest)[: budget.cap("strata_collector", len(latest), families=3)]
        budget.spend(3 * len(names))
        up = GaugeMetricFamily("strata_collector_up", "1 if the collector's last run succeeded.",
                               labels=["collector"])
        duration = GaugeMetricFamily("strata_collector_scrape_duration_seconds",
                                     "Duration of the collector's last run.",
                                     labels=["collector"])
        errors = CounterMetricFamily("strata_collector_errors",
                                     "Failed runs of the collector.", labels=["collector"])
        for name in names:
            values = latest[name]
            if "strata.collector.up" in values:
                up.add_metric([name], values["strata.collector.up"])
            if "strata.collector.duration" in values:
                duration.add_metric([name], values["strata.collector.duration"])
            if "strata.collector.errors" in values:
                errors.add_metric([name], values["strata.collector.errors"])
        yield from (up, duration, errors)

    # -- derived layer metrics -------------------------------------------------------------

    def _latency_family(self, budget: _Budget) -> Iterator[Metric]:
        """A summary per service: quantiles over the window, ``_count``/``_sum`` cumulative.

        The same shape as a client library's Summary (sliding-window quantiles, cumulative
        count and sum); only services with spans in the window are listed.
        """
        since = self._clock() - self._window_ns
        busiest = self._reads.busiest_services(received_since_ns=since,
                                               limit=self._max_series + 1)
        per_service = len(QUANTILES) + 2
        family = Metric("strata_span_duration_seconds",
                        f"Span duration by service; quantiles over spans received in the last "
                        f"{self._window_ns // NS_PER_S} s.", "summary")
        if not busiest:
            yield family
            return
        keep = budget.cap("strata_span_duration_seconds", len(busiest), series_each=per_service)
        kept = busiest if len(busiest) <= keep else busiest[: max(keep - 1, 0)]
        rows = self._reads.duration_quantiles(received_since_ns=since, services=kept,
                                              other=OTHER, quantiles=QUANTILES)
        kept_labels = {_label(service) for service in kept}
        count: dict[str, float] = {}
        total: dict[str, float] = {}
        for (service, _model), totals in self._totals.items():
            key = service if service in kept_labels else OTHER
            count[key] = count.get(key, 0.0) + totals.spans
            total[key] = total.get(key, 0.0) + totals.duration_s
        for service, quantiles in rows:
            label = _label(service)
            for q, value in zip(QUANTILES, quantiles, strict=True):
                family.add_sample(family.name, {"service": label, "quantile": str(q)},
                                  value / NS_PER_S)
            family.add_sample(family.name + "_count", {"service": label}, count.get(label, 0.0))
            family.add_sample(family.name + "_sum", {"service": label}, total.get(label, 0.0))
        budget.spend(len(rows) * per_service)
        yield family

    def _refresh_totals(self) -> None:
        rows = self._reads.usage_received_after(
            self._watermark_ns if self._watermark_ns is not None else -1)
        for service, model, *values, newest in rows:
            key = (_label(service), _label(model))
            if key not in self._totals and len(self._totals) >= self._max_series:
                key = (OTHER, OTHER)
            self._totals.setdefault(key, _Totals()).add(_Totals(*map(float, values)))
            if self._watermark_ns is None or newest > self._watermark_ns:
                self._watermark_ns = int(newest)

    def _usage_families(self, budget: _Budget) -> Iterator[Metric]:
        specs = (
            ("spans", "spans", "Spans received, by service and model."),
            ("errors", "errors", "Spans with error status."),
            ("usage_input_tokens", "input_tokens", "Input tokens reported by spans."),
            ("usage_output_tokens", "output_tokens", "Output tokens reported by spans."),
            ("cost_usd", "cost_usd", "Cost in USD known at ingest (hosted-API token prices)."),
            ("energy_wh", "energy_wh", "Energy in Wh known at ingest (estimates for hosted APIs)."),
            ("co2e_grams", "co2e_g", "Carbon in gCO2e known at ingest."),
        )
        keep = budget.cap("strata_gen_ai", len(self._totals), families=len(specs))
        groups = _fold(self._totals, keep)
        budget.spend(len(groups) * len(specs))
        for suffix, attr, doc in specs:
            family = CounterMetricFamily(f"strata_gen_ai_{suffix}", doc,
                                         labels=["service", "model"])
            for (service, model), totals in groups:
                family.add_metric([service, model], getattr(totals, attr))
            yield family

    def _incident_family(self, budget: _Budget) -> Iterator[Metric]:
        rows = self._reads.open_incident_counts()
        keep = budget.cap("strata_incidents", len(rows))
        folded: dict[tuple[str, ...], float] = {}
        for index, (*labels, count) in enumerate(rows):
            key = tuple(_label(v) for v in labels)
            if index >= keep - 1 and len(rows) > keep:
                key = (OTHER, OTHER, OTHER, OTHER, key[4])
            folded[key] = folded.get(key, 0) + count
        budget.spend(len(folded))
        family = GaugeMetricFamily("strata_incidents", "Open and acknowledged incidents.",
                                   labels=["kind", "layer", "severity", "service", "status"])
        for key, count in sorted(folded.items()):
            family.add_metric(list(key), count)
        yield family

    # -- exporters -------------------------------------------------------------------------

    def _exporter_families(self) -> Iterator[Metric]:
        fwd = self._forwarder
        if fwd is not None:
            s = fwd.stats
            yield GaugeMetricFamily("strata_exporter_queue_bytes",
                                    "Bytes waiting in the OTLP forwarder's disk queue.",
                                    value=fwd.queue_bytes)
            yield GaugeMetricFamily("strata_exporter_queue_capacity_bytes",
                                    "Cap of the OTLP forwarder's disk queue.",
                                    value=fwd.queue.max_bytes)
            yield CounterMetricFamily("strata_exporter_enqueue_failed",
                                      "Batches the forward queue refused (full, disk error).",
                                      value=s.enqueue_failed)
            for name, doc, spans, points in (
                ("enqueued", "Items queued for forwarding.", s.enqueued_spans,
                 s.enqueued_points),
                ("sent", "Items delivered upstream (2xx).", s.sent_spans, s.sent_points),
                ("dropped", "Items dropped: upstream refused them for good (400...), or the "
                 "queue refused them.", s.dropped_spans + s.enqueue_failed_spans,
                 s.dropped_points + s.enqueue_failed_points),
            ):
                family = CounterMetricFamily(f"strata_exporter_{name}_items", doc,
                                             labels=["signal"])
                family.add_metric(["traces"], spans)
                family.add_metric(["metrics"], points)
                yield family
            yield CounterMetricFamily("strata_exporter_retries",
                                      "Failed forwarding attempts that will be retried.",
                                      value=s.retries)
            yield CounterMetricFamily("strata_exporter_rejected_upstream_items",
                                      "Items the upstream accepted as partial success rejects.",
                                      value=s.rejected_upstream)
        if self._clickhouse is not None:
            yield from _clickhouse_families(self._clickhouse)
        if self._webhooks:
            yield from _webhook_families(self._webhooks)


def _clickhouse_families(forwarder: ClickHouseForwarder) -> Iterator[Metric]:
    s = forwarder.stats
    yield GaugeMetricFamily("strata_clickhouse_forward_queue_bytes",
                            "Bytes waiting in the ClickHouse forwarder's disk queues.",
                            value=forwarder.queue_bytes)
    rows = CounterMetricFamily("strata_clickhouse_forward_rows",
                               "Rows queued, inserted, refused by the full queue, and dropped "
                               "as bad data by ClickHouse.", labels=["state"])
    for state, value in (("enqueued", s.enqueued_rows), ("inserted", s.sent_rows),
                         ("enqueue_failed", s.enqueue_failed_rows),
                         ("dropped", s.dropped_rows)):
        rows.add_metric([state], value)
    yield rows
    yield CounterMetricFamily("strata_clickhouse_forward_inserts",
                              "Inserts ClickHouse acknowledged.", value=s.sent_inserts)
    yield CounterMetricFamily("strata_clickhouse_forward_retries",
                              "Failed inserts that will be retried.", value=s.retries)


def _webhook_families(webhooks: Iterable[WebhookExporter]) -> Iterator[Metric]:
    specs = (
        ("delivered", "Incidents delivered to the webhook."),
        ("failed", "Incidents given up on after bounded retries (dead-lettered)."),
        ("dropped_oldest", "Incidents pushed out of the webhook's full queue."),
    )
    families = {name: CounterMetricFamily(f"strata_webhook_{name}", doc, labels=["webhook"])
                for name, doc in specs}
    queued = GaugeMetricFamily("strata_webhook_queue_items", "Incidents waiting for delivery.",
                               labels=["webhook"])
    for index, hook in enumerate(webhooks):
        label = str(index)  # never the URL: it may carry a secret token
        for name, _doc in specs:
            families[name].add_metric([label], getattr(hook.stats, name))
        queued.add_metric([label], hook.queued)
    yield from families.values()
    yield queued


def _fold(
    totals: dict[tuple[str, str], _Totals], keep: int
) -> list[tuple[tuple[str, str], _Totals]]:
    """The *keep* label sets with the most spans; the rest summed under ('other', 'other')."""
    other = totals.get((OTHER, OTHER))
    ordered = sorted(((k, v) for k, v in totals.items() if k != (OTHER, OTHER)),
                     key=lambda kv: (-kv[1].spans, kv[0]))
    if len(ordered) + (other is not None) <= keep:
        return ordered + ([((OTHER, OTHER), other)] if other is not None else [])
    folded = _Totals()  # a fresh object: the running totals must not absorb the fold
    if other is not None:
        folded.add(other)
    for _key, value in ordered[max(keep - 1, 0):]:
        folded.add(value)
    return [*ordered[: max(keep - 1, 0)], ((OTHER, OTHER), folded)]
