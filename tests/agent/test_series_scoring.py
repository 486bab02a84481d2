"""Streaming anomaly scores of every stored series, through the analyzer, on a real store."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from strata.agent.analysis.analyzer import Analyzer
from strata.agent.analysis.series_scoring import SCORING_BUCKET_NS, SeriesScoring
from strata.agent.api import anomalies as anomalies_api
from strata.agent.cli.app import app as strata_cli
from strata.agent.model import Layer, Sample
from strata.agent.store.anomalies import WATERMARK_KEY
from strata.agent.store.db import DuckDBStore
from typer.testing import CliRunner

from tests.conftest import free_port
from tests.waiting import responds, wait_until

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MIN_NS = 60 * 1_000_000_000
HOUR_NS = 60 * MIN_NS
HOURS = 120  # the scorer's calibration history spans about 3.5 days at 5 minutes
SPIKE_NS = START_NS + 100 * HOUR_NS  # GPU temperature +25 degC for 15 minutes
BURST_NS = START_NS + 110 * HOUR_NS  # energy counter grows 8x faster for 15 minutes
RESET_NS = START_NS + 80 * HOUR_NS  # energy counter resets to 0 (driver reload)
ROWS = ["series", "time_ns", "layer", "signal", "value", "score"]


def telemetry(hours: int = HOURS) -> list[Sample]:
    """Per-minute GPU temperature with a daily cycle and noise, and a cumulative energy
    counter, with a spike, a burst and a counter reset at known times."""
    rng = np.random.default_rng(7)
    samples: list[Sample] = []
    energy = 0.0
    for minute in range(hours * 60):
        t = START_NS + minute * MIN_NS
        temp = 60 + 8 * np.sin(2 * np.pi * minute / 1440) + rng.normal(0, 0.7)
        if SPIKE_NS <= t < SPIKE_NS + 15 * MIN_NS:
            temp += 25
        power_j = 30_000 * (1 + rng.normal(0, 0.03))
        if BURST_NS <= t < BURST_NS + 15 * MIN_NS:
            power_j *= 8
        energy = 0.0 if t == RESET_NS else energy + power_j * 1000
        common = {"layer": Layer.INFRASTRUCTURE, "time_unix_nano": t, "host": "gpu-host-1",
                  "device": "0", "attributes": {"gpu": "0"}}
        samples.append(Sample("DCGM_FI_DEV_GPU_TEMP", float(temp), "Cel",
                              canonical="gpu.temperature", **common))  # type: ignore[arg-type]
        samples.append(Sample("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", energy, "mJ",
                              canonical="gpu.energy.consumed", **common))  # type: ignore[arg-type]
    return samples


@pytest.fixture(scope="module", name="stored")
def stored_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scoring") / "telemetry.duckdb"
    store = DuckDBStore(path)
    store.write_batch(samples=telemetry())
    store.close()
    return path


def open_copy(stored: Path, directory: Path, name: str = "copy.duckdb") -> DuckDBStore:
    shutil.copy(stored, directory / name)
    return DuckDBStore(directory / name)


def rows(store: DuckDBStore) -> list[tuple[object, ...]]:
    return store.cursor().execute(
        f"SELECT {', '.join(ROWS)} FROM anomalies ORDER BY time_ns, series"  # noqa: S608 - fixed column list
    ).fetchall()


def analyzer(store: DuckDBStore, **scoring: object) -> Analyzer:
    return Analyzer(store, lookback_ns=None, detectors=(), scoring=SeriesScoring(**scoring))  # type: ignore[arg-type]


def test_spike_and_counter_burst_are_flagged_and_the_rest_is_quiet(
    stored: Path, tmp_path: Path
) -> None:
    """The temperature spike and the energy burst are the anomalies: the daily cycle, the
    ever-growing counter level and its reset are not."""
    store = open_copy(stored, tmp_path)
    report = analyzer(store).analyze(START_NS + HOURS * HOUR_NS, full=True)
    found = rows(store)
    assert report.anomalies == len(found)
    by_signal = {(r[3], r[1]) for r in found}
    assert ("gpu.temperature", SPIKE_NS) in by_signal
    assert ("gpu.energy.consumed", BURST_NS) in by_signal
    spike = next(r for r in found if r[3] == "gpu.temperature" and r[1] == SPIKE_NS)
    assert spike[2] == "infrastructure"
    assert spike[4] > 80
    burst = next(r for r in found if r[3] == "gpu.energy.consumed" and r[1] == BURST_NS)
    assert 5 * 30_000 * 1000 * 5 < burst[4] < 9 * 30_000 * 1000 * 5  # the increase, mJ/5 min
    # Nothing else but the onsets (and at most one bucket right after each).
    onsets = (SPIKE_NS, BURST_NS)
    strays = [r for r in found if not any(0 <= r[1] - o <= 2 * SCORING_BUCKET_NS for o in onsets)]
    assert strays == []
    store.close()


def test_live_analyses_score_what_one_replay_scores(stored: Path, tmp_path: Path) -> None:
    """Analysing every 20 minutes of event time gives the rows one analysis at the end gives,
    and analysing again changes nothing (idempotent)."""
    replay = open_copy(stored, tmp_path, "replay.duckdb")
    end = START_NS + HOURS * HOUR_NS
    analyzer(replay).analyze(end, full=True)
    live = open_copy(stored, tmp_path, "live.duckdb")
    watching = analyzer(live)
    for now in range(START_NS + 20 * MIN_NS, end + 1, 20 * MIN_NS):
        watching.analyze(now, full=True)
    assert rows(live) == rows(replay)
    assert watching.analyze(end, full=True).anomalies == 0
    assert rows(live) == rows(replay)


def test_a_restarted_agent_does_not_rescore_what_was_recorded(
    stored: Path, tmp_path: Path
) -> None:
    """A new process primes cold scorers from the store but records only buckets after the
    previous process's watermark."""
    store = open_copy(stored, tmp_path)
    analyzer(store).analyze(START_NS + 105 * HOUR_NS, full=True)
    before = rows(store)
    watermark = store.cursor().execute(
        "SELECT value FROM meta WHERE key = ?", [WATERMARK_KEY]).fetchone()
    assert watermark is not None
    assert int(watermark[0]) > SPIKE_NS
    analyzer(store, prime_ns=48 * HOUR_NS).analyze(START_NS + HOURS * HOUR_NS, full=True)
    after = rows(store)
    assert [r for r in after if r[1] < int(watermark[0])] == before
    assert any(r[3] == "gpu.energy.consumed" and r[1] == BURST_NS for r in after)


def test_series_beyond_max_series_are_skipped_and_counted(stored: Path, tmp_path: Path) -> None:
    store = open_copy(stored, tmp_path)
    scoring = SeriesScoring(max_series=1)
    Analyzer(store, lookback_ns=None, detectors=(), scoring=scoring).analyze(
        START_NS + HOURS * HOUR_NS, full=True)
    assert scoring.series_count == 1
    assert scoring.skipped_series == 1
    assert len({r[0] for r in rows(store)}) <= 1  # one series scored, whatever it flagged


class Facade:
    """What the anomalies router uses of the agent: its store."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store


@pytest.fixture(name="app")
def app_fixture(stored: Path, tmp_path: Path):
    store = open_copy(stored, tmp_path)
    analyzer(store).analyze(START_NS + HOURS * HOUR_NS, full=True)
    app = FastAPI()
    app.include_router(anomalies_api.build_router(Facade(store)))  # type: ignore[arg-type]
    yield app
    store.close()


@pytest.fixture(name="client")
def client_fixture(app: FastAPI):
    with TestClient(app) as client:
        yield client


def test_cli_lists_anomalies_from_a_running_api(app: FastAPI) -> None:
    """`strata anomalies` over real HTTP prints the flagged buckets."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: responds(url + "/api/v1/anomalies"), 20, "the anomalies API up")
    try:
        result = CliRunner().invoke(strata_cli, ["anomalies", "--api", url, "--layer",
                                                 "infrastructure"], env={"COLUMNS": "200"})
    finally:
        server.should_exit = True
        thread.join(10)
    assert result.exit_code == 0, result.output
    assert "gpu.temperature" in result.output
    assert "gpu.energy.consumed" in result.output
    assert "2026-01-05 04:00:00" in result.output  # the spike's bucket (hour 100)


def test_api_lists_filters_and_rejects_bad_input(client: TestClient) -> None:
    everything = client.get("/api/v1/anomalies").json()["anomalies"]
    assert len(everything) >= 2
    assert [a["time"] for a in everything] == sorted((a["time"] for a in everything),
                                                     reverse=True)
    first = everything[0]
    assert set(first) == {"series", "time", "layer", "signal", "unit", "service", "host",
                          "device", "labels", "value", "score"}
    assert first["labels"] == {"gpu": "0"}
    assert first["host"] == "gpu-host-1"
    temps = client.get("/api/v1/anomalies", params={"signal": "gpu.temperature"}).json()
    assert {a["signal"] for a in temps["anomalies"]} == {"gpu.temperature"}
    assert client.get("/api/v1/anomalies", params={
        "since": "2026-01-02T20:00:00Z"}).json()["anomalies"][-1]["time"] >= "2026-01-02T20"
    high = max(a["score"] for a in everything)
    assert client.get("/api/v1/anomalies", params={"min_score": high}).json()["anomalies"]
    assert client.get("/api/v1/anomalies", params={"limit": 1}).json()["anomalies"] == [first]
    assert client.get("/api/v1/anomalies", params={"layer": "gpu"}).status_code == 422
    assert client.get("/api/v1/anomalies", params={"since": "yesterday"}).status_code == 400
    injected = client.get("/api/v1/anomalies", params={"host": "x' OR '1'='1"}).json()
    assert injected["anomalies"] == []
    assert len(client.get("/api/v1/anomalies").json()["anomalies"]) == len(everything)
