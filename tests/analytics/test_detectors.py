"""Shift detection on event time, and each detector on real stored telemetry."""

from __future__ import annotations

import numpy as np
import pytest
from strata.agent.analysis.analyzer import Analyzer
from strata.agent.model import Layer, Sample
from strata.agent.simulator.load import load_batches
from strata.agent.simulator.scenario import Injection
from strata.agent.simulator.stack import Simulator
from strata.agent.simulator.topology import default_topology
from strata.agent.store.db import DuckDBStore
from strata.agent.store.window import Window
from strata.agent.units import HOUR_NS, MINUTE_NS
from strata.analytics.baseline import ShiftRule, find_shifts
from strata.analytics.detectors.gpu import GPUFaultDetector, GPUThermalDetector
from strata.analytics.detectors.outliers import fit_and_score
from strata.analytics.detectors.requests import CostRegressionDetector

from tests.sim_data import START_NS, price

RULE = ShiftRule(direction="up", ratio=1.5, z=4.0, current=5, min_points=3)


def noisy(n: int, seed: int = 0) -> np.ndarray:
    return 10.0 + np.random.default_rng(seed).normal(0, 0.5, n)


def test_a_sustained_step_is_one_episode_with_start_detection_and_end() -> None:
    """A step up at 200 lasting 60 buckets starts at 200, is seen 2 buckets later, ends."""
    values = noisy(400)
    values[200:260] += 10.0
    (ep,) = find_shifts(values, RULE)
    assert ep.start == 200
    assert ep.detect == 202
    assert ep.end is not None
    assert 260 <= ep.end <= 263
    assert ep.baseline == pytest.approx(10.0, abs=0.3)


def test_noise_and_single_spikes_are_not_shifts() -> None:
    """Isolated outliers never move the five-bucket median."""
    values = noisy(600, seed=1)
    values[150::40] = 100.0
    assert find_shifts(values, RULE) == []


def test_the_baseline_freezes_so_a_lasting_regression_stays_open() -> None:
    """A shift that never recovers stays one open episode rather than fading into baseline."""
    values = noisy(800, seed=2)
    values[200:] *= 2.0
    (ep,) = find_shifts(values, RULE)
    assert (ep.start, ep.end) == (200, None)


def test_detection_is_causal_so_a_prefix_sees_the_same_episode() -> None:
    """The verdict at a bucket depends only on earlier buckets (replay == live)."""
    values = noisy(500, seed=3)
    values[300:] += 8.0
    full = find_shifts(values, RULE)
    prefix = find_shifts(values[:310], RULE)
    assert [(e.start, e.detect, e.baseline) for e in prefix] == [
        (e.start, e.detect, e.baseline) for e in full]


def test_missing_buckets_are_no_data_never_zero() -> None:
    """NaN buckets neither start nor end an episode; a drop to 'no data' is not a drop."""
    values = noisy(400, seed=4)
    values[200:300] = np.nan
    assert find_shifts(values, ShiftRule(direction="down", ratio=2.0, z=4.0)) == []


def _gpu_samples(temps: list[float], xid_at: int | None = None) -> list[Sample]:
    out = []
    for i, temp in enumerate(temps):
        t = START_NS + i * MINUTE_NS + 30 * 1_000_000_000
        common = {"host": "gpu-node-1", "device": "GPU-1", "time_unix_nano": t}
        out.append(Sample("DCGM_FI_DEV_GPU_TEMP", temp, "Cel", Layer.INFRASTRUCTURE,
                          canonical="gpu.temperature", **common))
        out.append(Sample("DCGM_FI_DEV_XID_ERRORS", 79.0 if xid_at is not None and i >= xid_at
                          else 0.0, "1", Layer.INFRASTRUCTURE, canonical="gpu.xid", **common))
    return out


def test_gpu_thermal_and_fault_detectors_read_stored_dcgm_samples(store: DuckDBStore) -> None:
    """A 25 degC rise and an Xid 79 give findings with exact baseline and current values."""
    temps = [60.0] * 200 + [88.0] * 30 + [60.0] * 20
    store.write_batch(samples=_gpu_samples(temps, xid_at=210))
    window = Window(store, start_ns=START_NS, end_ns=START_NS + 250 * MINUTE_NS)
    (thermal,) = GPUThermalDetector().detect(window)
    assert (thermal.signal, thermal.baseline, thermal.current) == ("gpu.temperature", 60.0, 88.0)
    assert thermal.started_at_ns == START_NS + 200 * MINUTE_NS
    assert thermal.host == "gpu-node-1"
    assert thermal.ended_at_ns is not None
    (fault,) = GPUFaultDetector().detect(window)
    assert (fault.signal, fault.current, fault.severity) == ("gpu.xid", 79.0, "critical")
    assert fault.detected_at_ns == START_NS + 211 * MINUTE_NS


@pytest.fixture(name="surge_and_deploy", scope="module")
def surge_and_deploy_fixture(tmp_path_factory: pytest.TempPathFactory):
    topology = default_topology(2)
    hosted = topology.services[0].name
    plan = [
        Injection("traffic_surge", START_NS + 3 * HOUR_NS, START_NS + 4 * HOUR_NS,
                  service=hosted),
        Injection("cost_deploy", START_NS + 5 * HOUR_NS, START_NS + 6 * HOUR_NS,
                  service=hosted, old_version=topology.services[0].version,
                  new_version="9.0.0", new_model="gpt-4o"),
    ]
    store = DuckDBStore(tmp_path_factory.mktemp("surge") / "s.duckdb")
    load_batches(store, Simulator(5, start_ns=START_NS, topology=topology,
                                  injections=plan).batches(START_NS + 7 * HOUR_NS))
    yield store, hosted
    store.close()


def test_a_traffic_surge_with_flat_per_request_cost_is_not_a_cost_regression(
    surge_and_deploy: tuple[DuckDBStore, str],
) -> None:
    """Tripled traffic triples spend but not cost per request; the model switch is caught."""
    store, hosted = surge_and_deploy
    window = Window(store, start_ns=START_NS, end_ns=START_NS + 7 * HOUR_NS, price=price)
    findings = list(CostRegressionDetector().detect(window))
    assert [(f.service, f.started_at_ns // HOUR_NS - START_NS // HOUR_NS) for f in findings] \
        == [(hosted, 5)]
    (cost,) = findings
    assert cost.current / cost.baseline > 10  # gpt-4o-mini -> gpt-4o list prices


def test_the_whole_pipeline_on_the_surge_store_opens_only_the_deploy_incident(
    surge_and_deploy: tuple[DuckDBStore, str],
) -> None:
    """Across every detector, only the deploy regression becomes an incident."""
    store, hosted = surge_and_deploy
    analyzer = Analyzer(store, price=price, lookback_ns=None)
    _, drafts = analyzer.drafts(analyzer.window(START_NS + 7 * HOUR_NS))  # type: ignore[arg-type]
    assert [(d.incident.kind, d.incident.service) for d in drafts] == [
        ("cost_regression", hosted)]
    rollback = drafts[0].incident.suggestion.rollback  # type: ignore[union-attr]
    assert rollback is not None
    assert (rollback.from_version, rollback.to_version) == (
        "9.0.0", default_topology(2).services[0].version)


def test_isolation_forest_scores_are_seeded_and_flag_new_combinations() -> None:
    """Same data, same scores; a point unlike the training day scores above zero."""
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (500, 3))
    test = np.vstack([rng.normal(0, 1, (5, 3)), [[8.0, -8.0, 8.0]]])
    first, second = fit_and_score(train, test), fit_and_score(train, test)
    assert np.array_equal(first, second)
    assert first[-1] > 0
    assert np.all(first[:5] < first[-1])
