"""Corrupt WAL or database file at startup (RELIABILITY D4): repaired, never a crash loop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from strata.agent.store.db import DuckDBStore
from strata.agent.store.recovery import open_with_recovery

from tests.conftest import LiveAgent
from tests.otlp_factory import genai_attributes, make_span, trace_request
from tests.waiting import loose

PB = {"Content-Type": "application/x-protobuf"}
WRITE_AND_DIE = """
import os, sys
from strata.agent.model import Layer, SpanRecord
from strata.agent.store.db import DuckDBStore
store = DuckDBStore(sys.argv[1])
for b in range(4):
    store.write_batch([SpanRecord(trace_id="a" * 32, span_id=f"{b:08x}{i:08x}", parent_span_id=None,
                       name="chat", kind="client", start_unix_nano=1, end_unix_nano=2,
                       status="ok", service="s", layer=Layer.MODEL) for i in range(500)])
os._exit(0)  # like kill -9: the four commits are only in the WAL
"""


def crashed_store(tmp_path: Path) -> Path:
    db = tmp_path / "s.duckdb"
    subprocess.run([sys.executable, "-c", WRITE_AND_DIE, str(db)], check=True, timeout=60)
    assert db.with_name("s.duckdb.wal").stat().st_size > 0
    return db


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_in_wal_tail_keeps_the_valid_prefix(live_agent: LiveAgent) -> None:
    """D4(a): a flipped byte in the WAL's last entry after kill -9: the agent restarts in
    10 s, replays every earlier commit, keeps the WAL in quarantine/ and opens a
    store_recovered incident."""
    for _ in range(4):
        spans = [make_span(attributes=genai_attributes()) for _ in range(100)]
        reply = httpx.post(live_agent.otlp_endpoint + "/v1/traces", headers=PB, timeout=30,
                           content=trace_request(spans).SerializeToString())
        assert reply.status_code == 200
    live_agent.stop(signal.SIGKILL)
    wal = live_agent.db.with_name(live_agent.db.name + ".wal")
    size = wal.stat().st_size
    flip(wal, size - 100)
    live_agent.restart(timeout_s=loose(10))
    assert 300 <= live_agent.get("/api/v1/health").json()["counts"]["spans"] < 400
    (kept,) = (live_agent.db.parent / "quarantine").iterdir()
    assert kept.stat().st_size == size  # the evidence, byte for byte
    incidents = live_agent.get("/api/v1/incidents", kind="store_recovered").json()
    incidents = incidents.get("incidents", incidents)
    assert [i["kind"] for i in incidents] == ["store_recovered"]
    assert "quarantine" in incidents[0]["summary"]
    metrics = httpx.get(live_agent.api_url + "/metrics", timeout=10).text
    assert 'kind="store_recovered"' in metrics
    assert live_agent.stop() == 0


def test_wal_cut_mid_record_replays_the_prefix(tmp_path: Path) -> None:
    """D4(b): a WAL truncated inside a record opens with the commits before the cut."""
    db = crashed_store(tmp_path)
    wal = db.with_name("s.duckdb.wal")
    wal.write_bytes(wal.read_bytes()[:-777])
    store, recoveries = open_with_recovery(db, lambda: DuckDBStore(db))
    try:
        assert 1500 <= store.counts()["spans"] < 2000
    finally:
        store.close()
    assert all(r.action != "db_quarantined" for r in recoveries)


@pytest.mark.parametrize("offset", [100, 4096 + 100])
def test_corrupt_database_file_is_moved_aside(tmp_path: Path, offset: int) -> None:
    """D4(c): a flipped byte in a header block: the file and WAL move to quarantine/ and a
    fresh store opens (never a crash loop)."""
    db = crashed_store(tmp_path)
    DuckDBStore(db).close()  # checkpoint: the data now lives in the file's blocks
    flip(db, offset)
    store, recoveries = open_with_recovery(db, lambda: DuckDBStore(db))
    try:
        assert store.counts()["spans"] == 0
    finally:
        store.close()
    assert [r.action for r in recoveries] == ["db_quarantined"]
    assert recoveries[0].quarantined.exists()
    assert recoveries[0].quarantined.stat().st_size > 0
