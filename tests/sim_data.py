"""A simulated day of multi-layer telemetry in a real store, built once per test session."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import (
    ExpectedIncident,
    Injection,
    expected_incident,
    plan_scenario,
    scenario_end_ns,
)
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import Topology, default_topology
from strata.agent.store.db import DuckDBStore
from strata.analytics.pricing import PriceTable

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
SEED = 1


@dataclass(frozen=True)
class Scenario:
    path: Path
    topology: Topology
    plan: list[Injection]
    end_ns: int

    @property
    def expected(self) -> list[ExpectedIncident]:
        return [e for e in map(expected_incident, self.plan) if e is not None]

    def copy(self, directory: Path) -> DuckDBStore:
        """A writable copy of the scenario's store in *directory*."""
        target = directory / "scenario.duckdb"
        shutil.copy(self.path, target)
        return DuckDBStore(target)


@functools.cache
def scenario(seed: int = SEED) -> Scenario:
    """The default stack through every injected incident and decoy (about 30 h)."""
    topology = default_topology(6)
    plan = plan_scenario(topology, seed, start_ns=START_NS)
    end = scenario_end_ns(plan)
    directory = Path(tempfile.mkdtemp(prefix="strata-sim-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / f"seed{seed}.duckdb"
    store = DuckDBStore(path)
    simulator = Simulator(seed, start_ns=START_NS, topology=topology, injections=plan)
    load_batches(store, simulator.batches(end))
    store.close()
    return Scenario(path, topology, plan, end)


@functools.cache
def _table() -> PriceTable:
    return PriceTable.packaged()


def price(provider: str | None, model: str | None) -> tuple[float, float] | None:
    """List prices from the packaged price table, as the agent wires them."""
    entry = _table().lookup(provider, model)
    if entry is None or entry.rates.input_usd_per_mtok is None:
        return None
    return entry.rates.input_usd_per_mtok, entry.rates.output_usd_per_mtok or 0.0
