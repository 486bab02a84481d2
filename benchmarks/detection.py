"""Detection quality on the randomised simulator (issue 16), and the analysis budget.

Per seed, ``plan_world`` draws a stack (services from <=1/min to >10/s, rolling deploys,
GPUs, Weaviate) and its faults and decoys over ``--days`` of event time. The telemetry goes
through the real OTLP codec into a DuckDB store in chunks of ``--every`` minutes, and the
real ``Analyzer`` runs after each chunk at that event time, as the agent's periodic
analysis would. The incidents are scored against the world's ground truth
(``strata.agent.simulator.score``): recall, precision (matches / (matches + false); the
side effects a fault legitimately causes are counted apart as *secondary*), false
incidents per simulated day, per traffic band and per kind, incident start within 15 min
of the true change, rollback target, and detection delay (the incident's ``detected_at``,
and when a periodic analysis first reported it, minus the true start).

Tuning, evaluation and holdout seeds are fixed and disjoint: choose settings on
``--split tuning`` only; report ``--split evaluation`` and ``--split holdout``. Then,
unless ``--no-budget``, a 24 h x 20-service store of the fixed simulator is analysed once
(cold) and once 5 min later (the analysis budget).

    .venv/bin/python benchmarks/detection.py --split evaluation [--quick] [--markdown]

Sizing: a seed holds about 1.25 days, ~100k spans (see ``strata.agent.simulator.world``);
seeds run ``--jobs`` at a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from strata.agent.analysis.analyzer import Analyzer
from strata.agent.analysis.series_scoring import SeriesScoring
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import expected_incident, plan_scenario
from strata.agent.simulator.score import score_incidents
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.simulator.world import BANDS, plan_world
from strata.agent.simulator.world_sim import WorldSimulator
from strata.agent.store import incidents as incident_store
from strata.agent.store.db import DuckDBStore
from strata.agent.units import HOUR_NS, MINUTE_NS
from strata.analytics.pricing import PriceTable

START_NS = 1_767_225_600_000_000_000 + 8 * HOUR_NS  # 2026-01-01T08:00:00Z
TUNING_SEEDS = tuple(range(1, 9))
EVALUATION_SEEDS = tuple(range(101, 125))
# Declared on 2026-12-07 before any run on them: seeds 101-124 had all been looked at, and a
# rule (the 60-request p95 floor) was changed after seeing 101-120, so the final code is
# reported on these instead. Never choose a setting on them.
HOLDOUT_SEEDS = tuple(range(201, 221))
# Declared on 2026-12-07 before any run on them, after the error onset check changed
# following the run on 201-220. Never choose a setting on them.
HOLDOUT2_SEEDS = tuple(range(301, 321))
SPLITS = {"tuning": TUNING_SEEDS, "evaluation": EVALUATION_SEEDS, "holdout": HOLDOUT_SEEDS,
          "holdout2": HOLDOUT2_SEEDS}
TABLE = PriceTable.packaged()
GROUPS = (*BANDS, "infrastructure")


def price(provider: str | None, model: str | None) -> tuple[float, float] | None:
    entry = TABLE.lookup(provider, model)
    if entry is None or entry.rates.input_usd_per_mtok is None:
        return None
    return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0


@dataclass(frozen=True)
class Found:
    """One expected fault and how it was (or was not) found."""

    kind: str  # the injection kind (token_deploy, gpu_thermal, ...)
    group: str  # traffic band of its service, or "infrastructure"
    found: bool
    delay_min: float | None = None  # detected_at - true start
    seen_min: float | None = None  # first periodic analysis that reported it - true start
    start_ok: bool = False
    rollback_ok: bool = False
    cause_ok: bool = False


@dataclass
class SeedResult:
    seed: int
    days: float
    spans: int
    elapsed_s: float
    faults: list[Found] = field(default_factory=list)
    false: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, group, summary)
    secondary: int = 0


def run_seed(seed: int, days: float, every_min: int) -> SeedResult:
    started = time.perf_counter()
    world = plan_world(seed, start_ns=START_NS, days=days)
    simulator = WorldSimulator(world)
    first_seen: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=f"strata-det{seed}-") as tmp:
        store = DuckDBStore(Path(tmp) / "world.duckdb")
        analyzer = Analyzer(store, price=price)
        tracker = None
        step = every_min * MINUTE_NS
        for now in range(world.start_ns + step, world.end_ns + step, step):
            tracker = load_batches(store, simulator.batches(min(now, world.end_ns)),
                                   tracker=tracker, chunk=every_min)
            for incident in analyzer.analyze(min(now, world.end_ns)).new:
                first_seen.setdefault(incident.id, min(now, world.end_ns))
        incidents = incident_store.list_incidents(store.cursor())
        spans = store.counts()["spans"]
        store.close()
    faults = [i for i in world.injections if expected_incident(i) is not None]
    expected = world.expected()
    kind_of = {id(e): i.kind for e, i in zip(expected, faults, strict=True)}
    score = score_incidents(incidents, expected)
    result = SeedResult(seed, days, spans, 0.0, secondary=len(score.secondary))
    for m in score.matches:
        seen = first_seen.get(m.incident.id, m.incident.detected_at_ns)
        result.faults.append(Found(
            kind_of[id(m.expected)], world.band_of_service(m.expected.service), True,
            m.delay_ns / MINUTE_NS, (seen - m.expected.start_ns) / MINUTE_NS, m.start_ok,
            m.rollback_ok, m.cause_ok))
    for miss in score.missed:
        result.faults.append(Found(kind_of[id(miss)], world.band_of_service(miss.service),
                                   False))
    for inc in score.false:
        group = world.band_of_service(inc.service) if inc.service in {
            s.name for s in world.services} else "infrastructure"
        result.false.append((inc.kind, group, inc.summary[:100]))
    result.elapsed_s = time.perf_counter() - started
    return result


def time_analysis(directory: Path, services: int = 20) -> tuple[float, float, int, int, int]:
    """The analysis budget: 24 h x *services* of the fixed simulator, cold and 5 min later."""
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
    analyzer.analyze(START_NS + 24 * HOUR_NS + 5 * MINUTE_NS)
    incremental = time.perf_counter() - started
    store.close()
    return cold, incremental, scoring.series_count, counts["spans"], counts["samples"]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} min" if values else "n/a"


def _ratio(hit: int, total: int) -> str:
    return f"{hit}/{total} ({hit / total:.2f})" if total else "n/a"


def report(runs: list[SeedResult], split: str, markdown: bool) -> None:
    faults = [f for r in runs for f in r.faults]
    found = [f for f in faults if f.found]
    false = [x for r in runs for x in r.false]
    days = sum(r.days for r in runs)
    deploys = [f for f in found if f.kind.endswith("_deploy")]
    fast = [f for f in found if f.group in (BANDS[2], BANDS[3])]
    slow = [f for f in found if f.group in (BANDS[0], BANDS[1])]
    rows = [
        ("split", f"{split}: seeds {' '.join(str(r.seed) for r in runs)}", ""),
        ("simulated days", f"{days:.1f} ({sum(r.spans for r in runs):,} spans)", ""),
        ("recall", _ratio(len(found), len(faults)), ">= 0.95"),
        ("precision (secondary apart)", _ratio(len(found), len(found) + len(false)), ">= 0.9"),
        ("false incidents per simulated day", f"{len(false) / days:.2f}", "<= 1"),
        ("secondary incidents (side effects of a fault)",
         str(sum(r.secondary for r in runs)), ""),
        ("incident start within 15 min of the change",
         _ratio(sum(f.start_ok for f in found), len(found)), ""),
        ("rollback target right (deploy faults found)",
         _ratio(sum(f.rollback_ok for f in deploys), len(deploys)), ">= 0.95"),
        ("root cause (layer and signal) right", _ratio(sum(f.cause_ok for f in found),
                                                       len(found)), ""),
        ("median delay, detected_at, >= 10/min", _median([f.delay_min or 0.0 for f in fast]),
         "<= 10 min"),
        ("median delay, detected_at, < 10/min", _median([f.delay_min or 0.0 for f in slow]),
         "<= 30 min"),
        ("median delay, first periodic report, all",
         _median([f.seen_min or 0.0 for f in found]), ""),
    ]
    by_group = Counter(g for _, g, _ in false)
    groups = [(g, [f for f in faults if f.group == g]) for g in GROUPS]
    kinds = sorted({f.kind for f in faults})
    if markdown:
        print("| metric | value | goal |\n|---|---|---|")
        for name, value, goal in rows:
            print(f"| {name} | {value} | {goal} |")
        print("\n| traffic band | faults found | false incidents | false per day |\n"
              "|---|---|---|---|")
        for g, items in groups:
            print(f"| {g} | {_ratio(sum(f.found for f in items), len(items))} | "
                  f"{by_group[g]} | {by_group[g] / days:.2f} |")
        print("\n| fault kind | found | start ok | rollback ok |\n|---|---|---|---|")
        for kind in kinds:
            items = [f for f in faults if f.kind == kind]
            hits = [f for f in items if f.found]
            rollback = sum(f.rollback_ok for f in hits) if kind.endswith("_deploy") else "-"
            print(f"| {kind} | {_ratio(len(hits), len(items))} | "
                  f"{sum(f.start_ok for f in hits)} | {rollback} |")
        print("\n| false incident kind | count |\n|---|---|")
        for kind, count in Counter(k for k, _, _ in false).most_common():
            print(f"| {kind} | {count} |")
        return
    for name, value, goal in rows:
        print(f"{name:52} {value:40} {goal}")
    print("\nby traffic band: found / faults, false incidents (per day)")
    for g, items in groups:
        print(f"  {g:16} {_ratio(sum(f.found for f in items), len(items)):18} "
              f"{by_group[g]} ({by_group[g] / days:.2f}/day)")
    print("by fault kind: found / faults")
    for kind in kinds:
        items = [f for f in faults if f.kind == kind]
        print(f"  {kind:18} {_ratio(sum(f.found for f in items), len(items))}")
    print("false incidents by kind:", dict(Counter(k for k, _, _ in false).most_common()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=tuple(SPLITS), default="tuning")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the split's seeds")
    parser.add_argument("--quick", action="store_true", help="the split's first 3 seeds")
    parser.add_argument("--days", type=float, default=1.25)
    parser.add_argument("--every", type=int, default=15, help="analysis period, minutes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--services", type=int, default=20, help="analysis-budget stack")
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    seeds = args.seeds or SPLITS[args.split]
    if args.quick:
        seeds = seeds[:3]
    split = "custom" if args.seeds else args.split
    print(f"split {split}: seeds {list(seeds)}, {args.days} days each, analysis every "
          f"{args.every} min, {args.jobs} at a time", file=sys.stderr)
    started = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_seed, seed, args.days, args.every) for seed in seeds]
        for future in futures:
            r = future.result()
            runs.append(r)
            print(f"  seed {r.seed}: {sum(f.found for f in r.faults)}/{len(r.faults)} found, "
                  f"{len(r.false)} false, {r.secondary} secondary, {r.spans:,} spans, "
                  f"{r.elapsed_s:.0f} s", file=sys.stderr)
            for f in r.faults:
                if not f.found:
                    print(f"    MISSED {f.kind} ({f.group})", file=sys.stderr)
            for kind, group, summary in r.false:
                print(f"    FALSE {kind} ({group}): {summary}", file=sys.stderr)
    print(f"detection: {time.perf_counter() - started:.0f} s wall", file=sys.stderr)
    report(runs, split, args.markdown)
    if not args.no_budget:
        with tempfile.TemporaryDirectory() as tmp:
            cold, incremental, series, spans, samples = time_analysis(Path(tmp), args.services)
        print(f"\nanalysis budget, 24 h x {args.services} services: {cold:.2f} s cold "
              f"({spans:,} spans, {samples:,} samples, {series} series scored), "
              f"{incremental:.2f} s 5 min later (goal <= 10 s)")


if __name__ == "__main__":
    main()
