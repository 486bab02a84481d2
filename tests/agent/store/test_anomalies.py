"""strata.agent.store.anomalies: scored buckets and the scoring watermark on a real DuckDB."""

from __future__ import annotations

from typing import Any

from strata.agent.store import anomalies as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import MIN, T0


def anomaly(series: str, t: int, score: float, **kw: Any) -> list[Any]:
    row = {"series": series, "time_ns": t, "layer": "model", "signal": "latency.p95",
           "unit": "s", "service": "svc", "host": None, "device": None, "labels": "{}",
           "value": 2.0, "score": score}
    row.update(kw)
    return [*row.values(), 1]  # received_ns


def as_dict(row: list[Any]) -> dict[str, Any]:
    return dict(zip(q.ANOMALY_COLUMNS, row[:-1], strict=True))


def test_insert_keeps_the_first_row_of_a_bucket(store: DuckDBStore) -> None:
    cur = store.cursor()
    first = anomaly("span|svc|latency", T0, 0.7)
    q.insert_anomalies(cur, [first])
    q.insert_anomalies(cur, [anomaly("span|svc|latency", T0, 0.9)])  # same series and bucket
    q.insert_anomalies(cur, [])
    assert q.list_anomalies(cur) == [as_dict(first)]


def test_list_anomalies_filters_newest_first(store: DuckDBStore) -> None:
    cur = store.cursor()
    old = anomaly("a", T0, 0.9)
    low = anomaly("b", T0 + MIN, 0.6, host="gpu-1", layer="infrastructure",
                  signal="gpu.temperature", service=None, labels='{"gpu":"0"}')
    high = anomaly("c", T0 + MIN, 0.8)
    q.insert_anomalies(cur, [old, low, high])
    assert q.list_anomalies(cur) == [as_dict(high), as_dict(low), as_dict(old)]
    assert q.list_anomalies(cur, min_score=0.7) == [as_dict(high), as_dict(old)]
    assert q.list_anomalies(cur, host="gpu-1") == [as_dict(low)]
    assert q.list_anomalies(cur, layer="model", service="svc") == [as_dict(high), as_dict(old)]
    assert q.list_anomalies(cur, signal="gpu.temperature", host="") == [as_dict(low)]
    assert q.list_anomalies(cur, since_ns=T0 + MIN) == [as_dict(high), as_dict(low)]
    assert q.list_anomalies(cur, until_ns=T0 + MIN) == [as_dict(old)]
    assert q.list_anomalies(cur, limit=1) == [as_dict(high)]


def test_watermark_only_moves_forward(store: DuckDBStore) -> None:
    cur = store.cursor()
    assert q.scored_until(cur) is None
    q.advance_watermark(cur, T0 + MIN)
    assert q.scored_until(cur) == T0 + MIN
    q.advance_watermark(cur, T0)
    assert q.scored_until(cur) == T0 + MIN
    q.advance_watermark(cur, T0 + 2 * MIN)
    assert cur.execute("SELECT value FROM meta WHERE key = ?", [q.WATERMARK_KEY]).fetchall() == [
        (str(T0 + 2 * MIN),)]
