"""DuckDBStore's own reads: row counts, the per-layer summary, the liveness probe."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from strata.agent.model import Deployment, Layer
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import sample, span, write


def test_counts_and_layer_summary(store: DuckDBStore) -> None:
    assert store.layer_summary() == []
    write(store, [span("m1", 0, 1), span("m2", 0, 1), span("d1", 0, 1, layer=Layer.DATA)], [
        sample("a", 1.0, 0, canonical="gpu.utilization"), sample("gpu_util", 2.0, 1,
                                                                 canonical="gpu.utilization"),
        sample("b", 1.0, 0), sample("q", 1.0, 0, layer=Layer.SERVING),
    ])
    store.add_deployment(Deployment("svc", 5, version="1"))
    assert store.counts() == {"spans": 3, "samples": 4, "incidents": 0, "deployments": 1,
                              "logs": 0}
    assert store.layer_summary() == [
        {"layer": "data", "spans": 1, "samples": 0, "signals": 0},
        {"layer": "infrastructure", "spans": 0, "samples": 3, "signals": 2},
        {"layer": "model", "spans": 2, "samples": 0, "signals": 0},
        {"layer": "serving", "spans": 0, "samples": 1, "signals": 1},
    ]
    assert store.known_versions() == {"svc": ("1", 5)}


def test_ping_raises_once_the_store_is_closed(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.ping()
    store.close()
    with pytest.raises(duckdb.Error):
        store.ping()
