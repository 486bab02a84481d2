"""Streaming anomaly scores on the hub: the same telemetry in DuckDB and in ClickHouse
(chdb) scores the same anomalies, stored once however often (and by however many replicas)
it is scored, and served by ``GET /api/v1/anomalies`` on the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from strata.agent.analysis.analyzer import Analyzer
from strata.agent.analysis.series_scoring import SeriesScoring
from strata.agent.api.app import create_hub_app
from strata.agent.config import Settings
from strata.agent.hub import Hub
from strata.agent.store.db import DuckDBStore
from strata.agent.store.seam import Store, report_reads
from strata.agent.units import HOUR_NS

from tests.agent.test_series_scoring import BURST_NS, HOURS, SPIKE_NS, START_NS, telemetry

END_NS = START_NS + HOURS * HOUR_NS


def _scored(store: Store) -> list[dict[str, Any]]:
    Analyzer(store, lookback_ns=None, detectors=(), scoring=SeriesScoring()).analyze(
        END_NS, full=True)
    return report_reads(store).list_anomalies(limit=1000)


def test_the_hub_scores_what_the_agent_scores_and_serves_it(tmp_path: Path) -> None:
    samples = telemetry()
    duck = DuckDBStore(tmp_path / "agent.duckdb")
    duck.write_batch(samples=samples)
    expected = _scored(duck)
    duck.close()
    hub = Hub(Settings(), f"chdb:{tmp_path / 'ch'}")
    try:
        hub.store.write_batch(samples=samples)
        found = _scored(hub.store)
        assert {(a["signal"], a["time_ns"]) for a in found} >= {
            ("gpu.temperature", SPIKE_NS), ("gpu.energy.consumed", BURST_NS)}
        assert [{**a, "score": round(a["score"], 9)} for a in found] == [
            {**a, "score": round(a["score"], 9)} for a in expected]
        # a second replica (a fresh scorer) scoring the same data stores nothing twice
        assert _scored(hub.store) == found
        assert report_reads(hub.store).scored_until() is not None
        client = TestClient(create_hub_app(hub), base_url="http://127.0.0.1")
        listed = client.get("/api/v1/anomalies", params={"signal": "gpu.temperature"}).json()
        assert [a["time"] for a in listed["anomalies"]][-1] == "2026-01-05T04:00:00Z"
        assert all(a["labels"] == {"gpu": "0"} for a in listed["anomalies"])
    finally:
        hub.close()
