"""The agent's API routes served by the hub (issue 20): their ClickHouse reads on chdb.

``--spans`` spans and ``--samples`` GPU samples are generated inside ClickHouse over 7 days
(``benchmarks/fleet_data.py``'s fleet: 200 services x 50 nodes x 10 teams), then each
``ReportReads`` behind a route is timed ``--repeats`` times (median and p95): the cost
report by team over 7 days (``GET /api/v1/cost``, aggregated from ``otel_traces`` on each
call), by service per hour over a day, the trace list of the last hour, one trace's detail
with its layer samples, a service's timeline over 6 h, the GPU metric series of one node
over an hour, the energy view's reads over a day (each GPU's counter energy, the requests
without energy) and the ``/metrics`` collector (its first scrape counts every stored span;
later ones only what arrived since).

    .venv/bin/python benchmarks/hub_api.py [--spans 10000000 --samples 10000000] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from strata.agent.analysis.layer_reads import correlate_trace  # noqa: E402
from strata.agent.store.clickhouse.engine import ChdbEngine  # noqa: E402
from strata.agent.store.clickhouse.store import ClickHouseStore  # noqa: E402
from strata.agent.units import DAY_NS, HOUR_NS, MINUTE_NS  # noqa: E402
from strata.exporters.prometheus import StrataCollector  # noqa: E402

from benchmarks.fleet_data import Fleet, fill  # noqa: E402
from benchmarks.hub import peak_rss_mib  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, p95) seconds of *repeats* calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[max(0, int(0.95 * len(times)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    fleet = Fleet(spans=args.spans, samples=args.samples, hours=7 * 24)
    start, end = fleet.start_ns, fleet.end_ns
    with tempfile.TemporaryDirectory() as tmp:
        store = ClickHouseStore(ChdbEngine(Path(tmp) / "ch"))
        started = time.perf_counter()
        fill(store.engine, fleet)
        fill_s = time.perf_counter() - started
        reads = store.report_reads()
        trace_id = reads.list_traces(since_ns=end - HOUR_NS, until_ns=end, limit=1)[0]["trace_id"]
        cases: dict[str, Callable[[], object]] = {
            "GET /api/v1/cost?group_by=team (7 days)": lambda: reads.cost_report(
                group_by="team", since_ns=start, until_ns=end),
            "GET /api/v1/cost?group_by=service&bucket=1h (1 day)": lambda: reads.cost_report(
                group_by="service", since_ns=end - DAY_NS, until_ns=end, bucket_ns=HOUR_NS),
            "GET /api/v1/traces (last hour, 100)": lambda: reads.list_traces(
                since_ns=end - HOUR_NS, until_ns=end),
            "GET /api/v1/traces/{id} (spans + layer samples)": lambda: correlate_trace(
                reads, reads.trace_spans(trace_id)),
            "GET /api/v1/services/{s}/timeline (6 h, 5 min) span series": lambda: (
                reads.service_span_series("svc-7", since_ns=end - 6 * HOUR_NS, until_ns=end,
                                          step_ns=5 * MINUTE_NS)),
            "GET /api/v1/metrics (one node, 1 h)": lambda: reads.metric_series(
                since_ns=end - HOUR_NS, until_ns=end, labels={"host": "node-3"}),
            "GET /api/v1/energy (1 day): each GPU's counter energy": lambda: (
                reads.gpu_energy_summary(since_ns=end - DAY_NS, until_ns=end)),
            "GET /api/v1/energy (1 day): requests without energy": lambda: (
                reads.unknown_energy_groups(since_ns=end - DAY_NS, until_ns=end, limit=50)),
        }
        collector = StrataCollector(store.metrics_reads())
        results = {"GET /metrics, first scrape (every stored span)": timed(
            lambda: list(collector.collect()), 1)}
        cases["GET /metrics (later scrapes)"] = lambda: list(collector.collect())
        results |= {name: timed(fn, args.repeats) for name, fn in cases.items()}
        rss = peak_rss_mib()
        store.close()
    if args.markdown:
        print(f"| route (chdb, {args.spans:,} spans, {args.samples:,} samples) | median | p95 |")
        print("|---|---|---|")
        for name, (p50, p95) in results.items():
            print(f"| {name} | {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms |")
        print(f"\nfill {fill_s:.0f} s; peak RSS {rss:.0f} MiB")
    else:
        for name, (p50, p95) in results.items():
            print(f"{name:60s} median {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms")
        print(f"fill {fill_s:.1f} s; peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
