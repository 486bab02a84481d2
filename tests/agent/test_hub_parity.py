"""One store contract, two engines: the simulator replayed into DuckDB and into ClickHouse
(chdb) gives the same incidents and the same costs, and two analysers sharing one
ClickHouse database store each incident once."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from strata.agent.analysis.analyzer import Analyzer
from strata.agent.model import Incident
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import plan_scenario, scenario_end_ns
from strata.agent.simulator.stack import SimBatch, Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.store import incidents as incident_store
from strata.agent.store.clickhouse.engine import ChdbEngine
from strata.agent.store.clickhouse.store import ClickHouseStore
from strata.agent.store.db import DuckDBStore
from strata.agent.store.window import Window
from strata.agent.units import HOUR_NS, MINUTE_NS
from strata.analytics.pricing import PriceTable

START_NS = 1_767_225_600_000_000_000
TABLE = PriceTable.packaged()


def price(provider: str | None, model: str | None) -> tuple[float, float] | None:
    entry = TABLE.lookup(provider, model)
    if entry is None or entry.rates.input_usd_per_mtok is None:
        return None
    return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0


@functools.cache
def world() -> tuple[list[SimBatch], int]:
    """About 8 h of three services: a tool failing, a GPU overheating, a costly deploy."""
    topology = default_topology(3)
    plan = plan_scenario(topology, 3, start_ns=START_NS, spacing_ns=90 * MINUTE_NS,
                         duration_ns=40 * MINUTE_NS,
                         kinds=("cost_deploy", "gpu_thermal", "tool_errors"))
    end = scenario_end_ns(plan, HOUR_NS)
    simulator = Simulator(3, start_ns=START_NS, topology=topology, injections=plan)
    return list(simulator.batches(end)), end


@pytest.fixture(name="chdb")
def chdb_fixture(tmp_path: Path) -> Iterator[ClickHouseStore]:
    store = ClickHouseStore(ChdbEngine(tmp_path / "ch"))
    load_batches(store, world()[0])
    yield store
    store.close()


def _identity(incidents: list[Incident]) -> list[tuple[Any, ...]]:
    return sorted((i.id, i.kind, i.layer, i.service, i.host, i.status, i.started_at_ns,
                   i.suspected_cause, i.suggestion) for i in incidents)


def _cost(store: DuckDBStore | ClickHouseStore, end: int) -> float:
    window = Window(store, start_ns=START_NS, end_ns=end, price=price)
    return float(sum(np.nansum(s.cost_usd) for s in window.span_series()))


def test_duckdb_and_clickhouse_give_the_same_incidents_and_costs(
    store: DuckDBStore, chdb: ClickHouseStore
) -> None:
    batches, end = world()
    load_batches(store, batches)
    duck = Analyzer(store, price=price).analyze(end)
    click = Analyzer(chdb, price=price).analyze(end)
    assert duck.findings == click.findings
    assert _identity(list(click.new)) == _identity(list(duck.new))
    kinds = {i.kind for i in duck.new}
    assert {"cost_regression", "gpu_thermal", "error_spike"} <= kinds
    rollbacks = [i.suggestion.rollback for i in click.new if i.suggestion and
                 i.suggestion.rollback]
    assert [(r.from_version, r.to_version) for r in rollbacks] == [("1.5.0", "1.4.0")]
    with chdb.incident_book() as book:
        stored = book.list_incidents()  # what the hub's API lists
    assert _identity(stored) == _identity(incident_store.list_incidents(store.cursor()))
    assert _cost(chdb, end) == pytest.approx(_cost(store, end), rel=1e-9)
    assert _cost(store, end) > 0


def test_two_analysers_on_one_database_store_each_incident_once(
    chdb: ClickHouseStore,
) -> None:
    end = world()[1]
    replicas = [Analyzer(ClickHouseStore(chdb.engine), price=price) for _ in range(2)]
    reports = []
    threads = [threading.Thread(target=lambda a=a: reports.append(a.analyze(end)))
               for a in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i.id for r in reports for i in r.new]
    with chdb.incident_book() as book:
        stored = book.list_incidents()
    assert len(stored) == len({i.id for i in stored}) == len(set(ids)) >= 3
    # a later pass by either replica changes nothing
    again = replicas[1].analyze(end)
    assert (again.new, again.updated, again.resolved) == ((), (), ())
    assert chdb.counts()["incidents"] == len(stored)
