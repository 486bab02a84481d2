"""QdrantTelemetryCollector against a real HTTP server serving tests/fixtures'
qdrant_telemetry_sample.json (GET /telemetry?details_level=4)."""

from __future__ import annotations

import json

import pytest
from strata.agent.errors import CollectError
from strata.agent.model import Layer
from strata.collectors.qdrant import QdrantTelemetryCollector

from tests.collectors.conftest import FIXTURES, FixtureServer

NOW = 1_700_000_000_000_000_000
INDEXED = "0b9d1f9c-77c4-4a5e-8d11-5e0c6f1c2a10"
PLAIN = "5a0e2b7d-3c4f-4d1b-a9e2-8f6d7c5b4a39"


def test_shard_and_segment_detail(fixture_server: FixtureServer) -> None:
    """One local shard of 100,000 points in two segments (indexed 80,000, plain 20,000)."""
    collector = QdrantTelemetryCollector("vec", fixture_server.base_url, api_key="k-123")
    samples = collector.collect(NOW)
    collector.close()
    assert collector.name == "qdrant-telemetry:vec"
    assert fixture_server.requests[-1] == "/telemetry"
    assert fixture_server.headers[-1]["api-key"] == "k-123"
    shard = {s.name: (s.value, s.canonical, s.unit) for s in samples if "segment" not in
             s.attributes}
    assert shard == {
        "qdrant.shard.segments": (2.0, "vectordb.segments", "{segment}"),
        "vectordb.shard.segments": (2.0, "vectordb.shard.segments", "{segment}"),
        "qdrant.shard.points": (100000.0, "vectordb.rows", "{row}"),
        "vectordb.shard.entries_per_segment": (50000.0, "vectordb.shard.entries_per_segment",
                                               "{entry}"),
    }
    segments = {(s.name, s.attributes["segment"], s.attributes["segment_type"]): s.value
                for s in samples if "segment" in s.attributes}
    assert segments == {
        ("qdrant.segment.points", INDEXED, "indexed"): 80000.0,
        ("qdrant.segment.size", INDEXED, "indexed"): 131500000.0,
        ("qdrant.segment.points", PLAIN, "plain"): 20000.0,
        ("qdrant.segment.size", PLAIN, "plain"): 32100000.0,
    }
    for s in samples:
        assert (s.layer, s.device, s.host, s.service) == (Layer.DATA, "docs/0", "127.0.0.1",
                                                         "vec")
        assert (s.attributes["collection"], s.attributes["shard"]) == ("docs", "0")


def test_remote_shards_and_low_detail_levels_are_skipped(fixture_server: FixtureServer) -> None:
    """A remote-only shard (local null) and a shard without segments (details_level < 4)
    yield nothing; the local shard with segments still reports."""
    doc = json.loads((FIXTURES / "qdrant_telemetry_sample.json").read_text())
    collection = doc["result"]["collections"]["collections"][0]
    local = collection["shards"][0]
    collection["shards"] = [
        {"id": 1, "key": None, "local": None, "remote": [{"shard_id": 1, "peer_id": 7}]},
        {"id": 2, "key": None, "local": {"variant_name": "local", "num_points": 10}},
        local,
    ]
    fixture_server.bodies["mixed/telemetry"] = json.dumps(doc).encode()
    collector = QdrantTelemetryCollector("mixed", fixture_server.url("/dynamic/mixed"))
    samples = collector.collect(NOW)
    collector.close()
    assert {s.device for s in samples} == {"docs/0"}
    assert len(samples) == 4 + 4  # the shard's four, two per segment


@pytest.mark.parametrize("body", [b'{"result": {}}', b"[1, 2]", b"not json"],
                         ids=["no-collections", "a-list", "not-json"])
def test_unexpected_shape_fails_the_collect(fixture_server: FixtureServer, body: bytes) -> None:
    fixture_server.bodies["odd/telemetry"] = body
    collector = QdrantTelemetryCollector("odd", fixture_server.url("/dynamic/odd"))
    with pytest.raises(CollectError, match="unexpected /telemetry shape"):
        collector.collect(NOW)
    collector.close()
