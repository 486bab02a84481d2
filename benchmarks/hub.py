"""The hub on ClickHouse (issue 20): analysis pass, peak RSS, cost by team.

All on chdb (ClickHouse's engine in this process, so the RSS below includes the engine's
own memory, which a hub talking to a ClickHouse server does not carry):

1. **Analysis pass** over a simulated fleet: ``--hours`` of the fixed simulator with
   ``--services`` services through the real OTLP codec into ClickHouse
   (``ClickHouseStore.write_batch``, as the hub's receiver writes), then the real
   ``Analyzer`` once cold and once 5 min later (the periodic pass). Peak RSS of the process.
2. **Fleet scale** (``--parts fleet-fill``, then ``--parts fleet`` in a fresh process): a
   day of 200 services x 50 nodes (10^8 spans, 5 x 10^8 GPU samples; ``--fleet-scale``
   shrinks it) generated inside ClickHouse (``benchmarks/fleet_data.py``) into
   ``--fleet-dir``, then the hub's ``Analyzer`` over it, cold and 5 min later, the peak RSS
   of that process, and cost by team over 7 days (p50/p95 of ``--repeats`` runs).
   ``--parts duckdb`` runs the same pass on DuckDB (the sidecar's engine) as a baseline.

The direct forwarder's rates (``[forward.clickhouse]``) are ``benchmarks/clickhouse_forward.py``.

    .venv/bin/python benchmarks/hub.py [--services 20 --hours 24] [--markdown]
    .venv/bin/python benchmarks/hub.py --parts fleet-fill --fleet-dir DIR [--fleet-scale 0.1]
    .venv/bin/python benchmarks/hub.py --parts fleet --fleet-dir DIR [--fleet-scale 0.1]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fleet_data import Fleet, fill  # benchmarks/: run as a script, its folder is on the path
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


def fleet_fill(directory: Path, fleet: Fleet) -> dict[str, float]:
    """Generate *fleet*'s day in a chdb directory (and six more days of the hourly cost
    rollup: copies of this day's hours, so cost by team reads a week of rollup rows)."""
    engine = ChdbEngine(directory, "otel")
    store = ClickHouseStore(engine)
    started = time.perf_counter()
    fill(engine, fleet)
    engine.command("INSERT INTO strata_cost_hourly SELECT Hour - toIntervalDay(d), * EXCEPT Hour "
                   "FROM strata_cost_hourly ARRAY JOIN range(1, 7) AS d")
    fill_s = time.perf_counter() - started
    counts = store.counts()
    store.close()
    return {"spans": counts["spans"], "samples": counts["samples"], "fill_s": fill_s,
            "disk_gib": sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
            / 2**30}


def fleet_pass(directory: Path, fleet: Fleet, repeats: int) -> dict[str, float]:
    """The hub's analysis over the generated day, cold then 5 min later, in this process
    (peak RSS: the hub and chdb's engine), and cost by team over the 7 days."""
    store = ClickHouseStore(ChdbEngine(directory, "otel"))
    analyzer = Analyzer(store, price=price, lookback_ns=fleet.hours * HOUR_NS)
    started = time.perf_counter()
    report = analyzer.analyze(fleet.end_ns)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    analyzer.analyze(fleet.end_ns + 5 * MINUTE_NS)
    periodic = time.perf_counter() - started
    rss = peak_rss_mib()
    teams = _timed(lambda: store.cost_by_team(fleet.end_ns - 7 * DAY_NS, fleet.end_ns), repeats)
    kinds = sorted(f"{i.kind} {i.service or i.host}" for i in report.new)
    print(f"incidents: {kinds}", file=sys.stderr)
    store.close()
    return {"cold_s": cold, "periodic_s": periodic, "incidents": len(report.new),
            "rss_mib": rss, "teams_p50_s": statistics.median(teams),
            "teams_p95_s": sorted(teams)[max(0, int(0.95 * len(teams)) - 1)]}


def _timed(fn: object, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def fleet_rows(args: argparse.Namespace, parts: set[str]) -> list[tuple[str, str, str]]:
    """The fleet parts (chdb holds one directory a process: run apart from the others)."""
    scale = args.fleet_scale
    fleet = Fleet(services=round(200 * scale), nodes=max(1, round(50 * scale)),
                  spans=round(100_000_000 * scale), samples=round(500_000_000 * scale))
    directory = Path(args.fleet_dir)
    rows: list[tuple[str, str, str]] = []
    if "fleet-fill" in parts:
        f = fleet_fill(directory, fleet)
        print(f"fleet-fill: {f}", file=sys.stderr)
        rows += [("generated fleet day", f"{fleet.services} services x {fleet.nodes} nodes: "
                  f"{f['spans']:,.0f} spans, {f['samples']:,.0f} samples in {f['fill_s']:.0f} s "
                  f"({f['disk_gib']:.1f} GiB)", "")]
    if "fleet" in parts:
        r = fleet_pass(directory, fleet, args.repeats)
        print(f"fleet: {r}", file=sys.stderr)
        rows += [
            ("analysis pass, cold", f"{r['cold_s']:.1f} s ({r['incidents']:.0f} incidents)",
             "<= 30 s at 200 x 50 x 24 h"),
            ("analysis pass, periodic (5 min later)", f"{r['periodic_s']:.1f} s", ""),
            ("peak RSS of the pass (chdb in-process)", f"{r['rss_mib']:.0f} MiB", "<= 1 GiB"),
            ("cost by team over 7 days", f"p50 {r['teams_p50_s'] * 1000:.0f} ms, "
             f"p95 {r['teams_p95_s'] * 1000:.0f} ms", "p95 <= 500 ms"),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--fleet-dir", default="fleet-data",
                        help="chdb directory of the generated fleet (fleet-fill writes it)")
    parser.add_argument("--fleet-scale", type=float, default=1.0,
                        help="1: 200 services x 50 nodes, 1e8 spans, 5e8 samples; 0.1: a tenth")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--parts", default="analysis",
                        help="comma-separated subset of: analysis, duckdb; or of: "
                             "fleet-fill, fleet (on their own)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rows: list[tuple[str, str, str]] = []
    if parts & {"fleet", "fleet-fill"}:
        rows = fleet_rows(args, parts)
    else:
        rows = simulated_rows(args, parts)
    if args.markdown:
        print("| measure | value | goal |\n|---|---|---|")
        for name, value, goal in rows:
            print(f"| {name} | {value} | {goal} |")
    else:
        for name, value, goal in rows:
            print(f"{name:45} {value:45} {goal}")


def simulated_rows(args: argparse.Namespace, parts: set[str]) -> list[tuple[str, str, str]]:
    """The simulated fleet's pass, on chdb and (as a baseline) DuckDB."""
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
                 f"{a['cold_s']:.2f} s ({a['incidents']:.0f} incidents)", ""),
                ("analysis pass, periodic (5 min later)", f"{a['periodic_s']:.2f} s", ""),
                ("peak RSS: after the load / after analysis (chdb in-process)",
                 f"{a['loaded_rss_mib']:.0f} / {a['rss_mib']:.0f} MiB", ""),
            ]
        if "duckdb" in parts:  # the same pass on the sidecar's engine, as a baseline
            d = analysis_pass(DuckDBStore(directory / "baseline.duckdb"), args.services,
                              args.hours)
            print(f"duckdb: {d}", file=sys.stderr)
            rows += [("baseline: the same pass on DuckDB, cold / periodic",
                      f"{d['cold_s']:.2f} s / {d['periodic_s']:.2f} s "
                      f"({d['incidents']:.0f} incidents)", "")]
        engine.close()
    return rows


if __name__ == "__main__":
    main()
