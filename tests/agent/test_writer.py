"""BatchWriter: one request the store refuses fails alone; its group-mates are committed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from strata.agent.ingest.writer import BatchWriter
from strata.agent.logs import RateLimitedLog
from strata.agent.model import Layer, Sample
from strata.agent.store.db import DuckDBStore
from strata.agent.store.deployments import known_versions

from tests.agent.test_store import span


def test_a_refused_request_fails_alone_and_its_group_mates_commit(tmp_path: Path) -> None:
    """Four requests queued before the writer starts go into one group commit; two carry
    values the store refuses (a time past 2^63 ns, a NULL trace id). Each good request is
    committed with its detected deployment; each bad one gets its own error."""
    store = DuckDBStore(tmp_path / "w.duckdb")
    writer = BatchWriter(store)
    good_spans = writer.submit([span(i, service_version="2.0") for i in range(3)])
    past_2262 = writer.submit([span(10), span(11, start_unix_nano=1 << 63,
                                              end_unix_nano=1 << 63)])
    null_trace = writer.submit([span(20, trace=None)])
    good_samples = writer.submit(samples=[Sample("queue_depth", 1.0, "1", Layer.MODEL, 5, {})])
    writer.start()
    assert good_spans.result(timeout=30) is None
    assert good_samples.result(timeout=30) is None
    with pytest.raises(OverflowError):
        past_2262.result(timeout=30)
    with pytest.raises(Exception, match="NOT NULL"):
        null_trace.result(timeout=30)
    writer.close()
    assert writer.fatal_error is None
    assert store.counts()["spans"] == 3
    assert store.counts()["samples"] == 1
    assert known_versions(store.cursor()) == {"rag-api": ("2.0", 1_000)}
    store.close()


def test_a_recurring_error_is_logged_once_per_interval_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RateLimitedLog(logging.getLogger("strata.test"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, "strata.test"):
        assert log.error("commit of %d records failed", 5, exc_info=False)
        for _ in range(70):
            now[0] += 0.1
            log.error("commit of %d records failed", 5, exc_info=False)
        now[0] += 3.01
        assert log.error("commit of %d records failed", 7, exc_info=False)
    assert [r.getMessage() for r in caplog.records] == [
        "commit of 5 records failed",
        "commit of 7 records failed (and 70 more since the last such line)",
    ]
