"""Detection quality and speed on the simulator (issue 6).

Over several seeds, the default six-service stack runs about 30 h of event time through
every injected incident kind and the decoys; one analysis over everything stored is scored
against the ground truth: recall, precision, false incidents per simulated day, median
detection delay (event time), root-cause and rollback accuracy. The streaming scorer that
runs on every series in the same analysis is checked against the same ground truth: the
share of injected faults (after its warm-up) with an anomaly on their service or host within
an hour of onset, and its anomalies per day away from any injection. Then a 24 h x
20-service store is analysed once to time analysis (cold: every series' scorer primed over
the 24 h) and once more a minute later (what the agent does every ``analyze_interval``).

    .venv/bin/python benchmarks/detection.py [--seeds 1 2 3 4 5] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from strata.agent.analysis.analyzer import Analyzer
from strata.agent.analysis.series_scoring import SeriesScoring
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import (
    HOUR_NS,
    ExpectedIncident,
    expected_incident,
    plan_scenario,
    scenario_end_ns,
)
from strata.agent.simulator.score import Score, score_incidents
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.store import incidents as incident_store
from strata.agent.store.db import DuckDBStore
from strata.analytics.pricing import PriceTable

START_NS = 1_767_225_600_000_000_000
TABLE = PriceTable.packaged()


def price(provider: str | None, model: str | None) -> tuple[float, float] | None:
    entry = TABLE.lookup(provider, model)
    if entry is None or entry.rates.input_usd_per_mtok is None:
        return None
    return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0


@dataclass(frozen=True)
class SeedResult:
    days: float
    expected: int
    incidents: int
    score: Score
    scorer: tuple[int, int, int]  # see score_anomalies


def run_seed(seed: int, directory: Path) -> SeedResult:
    topology = default_topology(6)
    plan = plan_scenario(topology, seed, start_ns=START_NS)
    end = scenario_end_ns(plan)
    store = DuckDBStore(directory / f"seed{seed}.duckdb")
    load_batches(store, Simulator(seed, start_ns=START_NS, topology=topology,
                                  injections=plan).batches(end))
    Analyzer(store, price=price, lookback_ns=None, scoring=SeriesScoring()).analyze()
    incidents = incident_store.list_incidents(store.cursor())
    anomalies = store.cursor().execute(
        "SELECT time_ns, service, host FROM anomalies").fetchall()
    store.close()
    expected = [e for e in map(expected_incident, plan) if e is not None]
    score = score_incidents(incidents, expected)
    scorer = score_anomalies(anomalies, expected, plan_start=START_NS)
    for miss in score.missed:
        print(f"  seed {seed}: MISSED {miss.kind} {miss.service or miss.host}", file=sys.stderr)
    for false in score.false:
        print(f"  seed {seed}: FALSE {false.kind} {false.service or false.host} "
              f"{false.summary[:90]}", file=sys.stderr)
    for m in score.matches:
        if not (m.cause_ok and m.action_ok):
            print(f"  seed {seed}: {m.expected.kind}: cause {m.incident.suspected_cause} "
                  f"suggestion {m.incident.suggestion}", file=sys.stderr)
    return SeedResult((end - START_NS) / (24 * HOUR_NS), len(expected), len(incidents), score,
                      scorer)


SCORER_WARMUP_NS = 22 * HOUR_NS  # ~260 five-minute buckets before a series scores


def score_anomalies(
    anomalies: list[tuple[int, str | None, str | None]],
    expected: list[ExpectedIncident],
    *,
    plan_start: int,
) -> tuple[int, int, int]:
    """(faults after the scorer's warm-up, of them flagged within 1 h of onset on their
    service or host, anomalies further than 1 h from any fault on their entity)."""
    def on(e: ExpectedIncident, service: str | None, host: str | None) -> bool:
        return (service is not None and service == e.service) or (
            host is not None and host == e.host)

    eligible = [e for e in expected if e.start_ns >= plan_start + SCORER_WARMUP_NS]
    flagged = sum(any(on(e, s, h) and e.start_ns <= t <= e.start_ns + HOUR_NS
                      for t, s, h in anomalies) for e in eligible)
    stray = sum(not any(on(e, s, h) and e.start_ns - HOUR_NS <= t <= e.end_ns + HOUR_NS
                        for e in expected) for t, s, h in anomalies)
    return len(eligible), flagged, stray


def time_analysis(directory: Path, services: int = 20) -> tuple[float, float, int, int, int]:
    topology = default_topology(services)
    plan = plan_scenario(topology, 11, start_ns=START_NS)
    store = DuckDBStore(directory / "scale.duckdb")
    load_batches(store, Simulator(11, start_ns=START_NS, topology=topology,
                                  injections=plan).batches(START_NS + 24 * HOUR_NS))
    counts = store.counts()
    scoring = SeriesScoring()
    analyzer = Analyzer(store, price=price, lookback_ns=24 * HOUR_NS, scoring=scoring)
    started = time.perf_counter()
    analyzer.analyze(START_NS + 24 * HOUR_NS)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    analyzer.analyze(START_NS + 24 * HOUR_NS + 5 * 60 * 1_000_000_000)
    incremental = time.perf_counter() - started
    store.close()
    return cold, incremental, scoring.series_count, counts["spans"], counts["samples"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--services", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(seed, Path(tmp)) for seed in args.seeds]
        elapsed, incremental, series, spans, samples = time_analysis(Path(tmp), args.services)
    matches = [m for r in runs for m in r.score.matches]
    expected = sum(r.expected for r in runs)
    incidents = sum(r.incidents for r in runs)
    false = sum(len(r.score.false) for r in runs)
    days = sum(r.days for r in runs)
    rollbacks = [m for m in matches if m.expected.rollback is not None]
    eligible, flagged, stray = (sum(r.scorer[i] for r in runs) for i in range(3))
    delay_min = statistics.median(m.delay_ns / 60e9 for m in matches) if matches else float("nan")
    rows = [
        ("seeds", " ".join(map(str, args.seeds)), ""),
        ("simulated days", f"{days:.1f}", ""),
        ("injected incidents", str(expected), ""),
        ("recall", f"{len(matches) / expected:.3f}", ">= 0.95"),
        ("precision", f"{len(matches) / incidents:.3f}" if incidents else "n/a", ">= 0.9"),
        ("false incidents per simulated day", f"{false / days:.2f}", "<= 1"),
        ("median detection delay (event time)", f"{delay_min:.1f} min", "<= 5 min"),
        ("root cause (layer and signal) correct",
         f"{sum(m.cause_ok for m in matches) / max(len(matches), 1):.1%}", ">= 90%"),
        ("rollback target exact", f"{sum(m.action_ok for m in rollbacks)}/{len(rollbacks)} "
         f"({sum(m.action_ok for m in rollbacks) / max(len(rollbacks), 1):.0%})", ">= 90%"),
        ("suggested action correct (all kinds)",
         f"{sum(m.action_ok for m in matches) / max(len(matches), 1):.1%}", ""),
        (f"analysis time, 24 h x {args.services} services",
         f"{elapsed:.2f} s ({spans:,} spans, {samples:,} samples, {series} series scored)",
         "<= 10 s"),
        ("next analysis 5 min later (incremental scoring)", f"{incremental:.2f} s", ""),
        ("scorer: injected faults flagged within 1 h (after its warm-up)",
         f"{flagged}/{eligible} ({flagged / max(eligible, 1):.0%})", ""),
        ("scorer: anomalies away from any injection, per simulated day",
         f"{stray / days:.1f}", ""),
    ]
    print("| metric | value | goal |\n|---|---|---|")
    for name, value, goal in rows:
        print(f"| {name} | {value} | {goal} |")


if __name__ == "__main__":
    main()
