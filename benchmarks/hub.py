"""The hub on ClickHouse (issue 20): analysis pass, peak RSS, cost by team.

All on chdb (ClickHouse's engine in this process, so the RSS below includes the engine's
own memory, which a hub talking to a ClickHouse server does not carry):

1. **Analysis pass** over a simulated fleet: ``--hours`` of the fixed simulator with
   ``--services`` services through the real OTLP codec into ClickHouse
   (``ClickHouseStore.write_batch``, as the hub's receiver writes), then the real
   ``Analyzer`` once cold and once 5 min later (the periodic pass). Peak RSS of the process.
2. **Scale of the pushed-down reads**: ``--synthetic-spans`` spans and ``--synthetic-samples``
   samples generated inside ClickHouse (``numbers()``) over 7 days for 200 services x 50
   nodes x 10 teams, then the window's heaviest reads over 24 h (per-minute span statistics
   with quantiles, per-minute sample series) and cost by team over 7 days (p50/p95 of
   ``--repeats`` runs).
   ``--parts duckdb`` runs the same pass on DuckDB (the sidecar's engine) as a baseline.

The direct forwarder's rates (``[forward.clickhouse]``) are ``benchmarks/clickhouse_forward.py``.

    .venv/bin/python benchmarks/hub.py [--services 20 --hours 24] [--markdown]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from strata.agent.analysis.analyzer import Analyzer
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import plan_scenario
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.store.clickhouse.engine import ChdbEngine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS, MINUTE_NS
from strata.analytics.pricing import PriceTable

START_NS = 1_767_225_600_000_000_000 + 8 * HOUR_NS
DAY_NS = 24 * HOUR_NS
TABLE = PriceTable.packaged()


def price(provider: str | None, model: str | None) -> tuple[float, float] | None:
    entry = TABLE.lookup(provider, model)
    if entry is None or entry.rates.input_usd_per_mtok is None:
        return None
    return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def analysis_pass(store: ClickHouseStore | DuckDBStore, services: int,
                  hours: int) -> dict[str, float]:
    topology = default_topology(services)
    plan = plan_scenario(topology, 11, start_ns=START_NS)
    end = START_NS + hours * HOUR_NS
    started = time.perf_counter()
    load_batches(store, Simulator(11, start_ns=START_NS, topology=topology,
                                  injections=plan).batches(end))
    load_s = time.perf_counter() - started
    counts = store.counts()
    loaded_rss = peak_rss_mib()
    analyzer = Analyzer(store, price=price, lookback_ns=hours * HOUR_NS)
    started = time.perf_counter()
    report = analyzer.analyze(end)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    analyzer.analyze(end + 5 * MINUTE_NS)
    warm = time.perf_counter() - started
    return {"spans": counts["spans"], "samples": counts["samples"], "load_s": load_s,
            "cold_s": cold, "periodic_s": warm, "incidents": len(report.new),
            "loaded_rss_mib": loaded_rss, "rss_mib": peak_rss_mib()}


_SYNTHETIC_SPANS = """
INSERT INTO otel_traces (Timestamp, TraceId, SpanId, SpanName, SpanKind, ServiceName,
                         ResourceAttributes, SpanAttributes, Duration, StatusCode)
SELECT fromUnixTimestamp64Nano({start:Int64} + toInt64(number * ({span:Int64} / {n:Int64}))),
       hex(cityHash64(number)), hex(number), 'chat gpt-4o', 'Client',
       concat('svc-', toString(number % 200)),
       map('service.version', concat('1.', toString(intDiv(number * 4, {n:Int64}))),
           'host.name', concat('node-', toString(number % 50))),
       map('strata.layer', 'model', 'gen_ai.operation.name', 'chat',
           'gen_ai.provider.name', 'openai', 'gen_ai.request.model', 'gpt-4o',
           'gen_ai.usage.input_tokens', toString(100 + number % 400),
           'gen_ai.usage.output_tokens', toString(20 + number % 200),
           'gen_ai.usage.cost.usd', toString((100 + number % 400) * 2.5e-6),
           'strata.team', concat('team-', toString(number % 10))),
       200000000 + (cityHash64(number) % 1000000000),
       if(number % 97 = 0, 'Error', 'Ok')
FROM numbers({n:Int64}) SETTINGS max_threads = 2, max_block_size = 65536
"""
_SYNTHETIC_SAMPLES = """
INSERT INTO otel_metrics_gauge (ServiceName, MetricName, MetricUnit, Attributes, TimeUnix, Value)
SELECT '', 'DCGM_FI_DEV_GPU_UTIL', '%',
       map('strata.canonical', 'gpu.utilization', 'strata.layer', 'infrastructure',
           'strata.host', concat('node-', toString(number % 50)),
           'strata.device', concat('GPU-', toString(intDiv(number, 50) % 8))),
       fromUnixTimestamp64Nano({start:Int64} + toInt64(number * ({span:Int64} / {n:Int64}))),
       toFloat64(number % 100)
FROM numbers({n:Int64}) SETTINGS max_threads = 2, max_block_size = 65536
"""


def _timed(fn: object, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def pushed_down_reads(store: ClickHouseStore, spans: int, samples: int,
                      repeats: int) -> dict[str, float]:
    span_range = 7 * DAY_NS
    started = time.perf_counter()
    store.engine.command(_SYNTHETIC_SPANS, {"start": START_NS, "span": span_range, "n": spans})
    store.engine.command(_SYNTHETIC_SAMPLES, {"start": START_NS, "span": span_range,
                                              "n": samples})
    fill_s = time.perf_counter() - started
    reads = store.window_reads()
    day = {"start_ns": START_NS + 6 * DAY_NS, "end_ns": START_NS + 7 * DAY_NS,
           "bucket_ns": MINUTE_NS, "sep": "\x1f"}
    span_stats = _timed(lambda: reads.span_bucket_stats(**day), repeats)
    sample_stats = _timed(lambda: reads.sample_bucket_stats(**day, canonicals=None), repeats)
    teams = _timed(lambda: store.cost_by_team(START_NS, START_NS + span_range), repeats)
    groups = len(reads.span_bucket_stats(**day)["bucket"])
    return {"spans": spans, "samples": samples, "fill_s": fill_s,
            "span_stats_s": statistics.median(span_stats),
            "sample_stats_s": statistics.median(sample_stats), "span_rows": groups,
            "teams_p50_s": statistics.median(teams),
            "teams_p95_s": sorted(teams)[max(0, int(0.95 * len(teams)) - 1)],
            "rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--synthetic-spans", type=int, default=20_000_000)
    parser.add_argument("--synthetic-samples", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--parts", default="analysis,reads",
                        help="comma-separated subset of: analysis, duckdb, reads")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="strata-hub-") as tmp:
        directory = Path(tmp)
        engine = ChdbEngine(directory / "ch", "sim")
        if "analysis" in parts:
            a = analysis_pass(ClickHouseStore(engine), args.services, args.hours)
            print(f"analysis: {a}", file=sys.stderr)
            rows += [
                ("simulated fleet", f"{args.services} services x {args.hours} h: "
                 f"{a['spans']:,.0f} spans, {a['samples']:,.0f} samples", ""),
                ("load through the hub's write path", f"{a['load_s']:.1f} s", ""),
                ("analysis pass, cold",
                 f"{a['cold_s']:.2f} s ({a['incidents']:.0f} incidents)",
                 "<= 30 s at 200 x 50 x 24 h"),
                ("analysis pass, periodic (5 min later)", f"{a['periodic_s']:.2f} s", ""),
                ("peak RSS: after the load / after analysis (chdb in-process)",
                 f"{a['loaded_rss_mib']:.0f} / {a['rss_mib']:.0f} MiB", "<= 1 GiB"),
            ]
        if "duckdb" in parts:  # the same pass on the sidecar's engine, as a baseline
            d = analysis_pass(DuckDBStore(directory / "baseline.duckdb"), args.services,
                              args.hours)
            print(f"duckdb: {d}", file=sys.stderr)
            rows += [("baseline: the same pass on DuckDB, cold / periodic",
                      f"{d['cold_s']:.2f} s / {d['periodic_s']:.2f} s "
                      f"({d['incidents']:.0f} incidents)", "")]
        if "reads" in parts:
            engine.command("CREATE DATABASE IF NOT EXISTS synth")
            engine.command("USE synth")
            b = pushed_down_reads(ClickHouseStore(engine), args.synthetic_spans,
                                  args.synthetic_samples, args.repeats)
            print(f"reads: {b}", file=sys.stderr)
            rows += [
                ("synthetic 7-day store", f"{b['spans']:,.0f} spans, {b['samples']:,.0f} "
                 f"samples (filled in {b['fill_s']:.0f} s)", ""),
                ("24 h per-minute span statistics (200 svc)",
                 f"{b['span_stats_s']:.2f} s median ({b['span_rows']:,.0f} rows out)", ""),
                ("24 h per-minute sample series", f"{b['sample_stats_s']:.2f} s median", ""),
                ("cost by team over 7 days", f"p50 {b['teams_p50_s'] * 1000:.0f} ms, "
                 f"p95 {b['teams_p95_s'] * 1000:.0f} ms", "p95 <= 500 ms"),
                ("peak RSS after the synthetic reads", f"{b['rss_mib']:.0f} MiB", ""),
            ]
        engine.close()
    if args.markdown:
        print("| measure | value | goal |\n|---|---|---|")
        for name, value, goal in rows:
            print(f"| {name} | {value} | {goal} |")
    else:
        for name, value, goal in rows:
            print(f"{name:45} {value:45} {goal}")


if __name__ == "__main__":
    main()
