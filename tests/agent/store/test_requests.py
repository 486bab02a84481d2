"""strata.agent.store.requests: the request-level reads of the deploy and pooled detectors,
against known rows in a real DuckDB file."""

from __future__ import annotations

import pytest
from strata.agent.model import Layer
from strata.agent.store import requests as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import MIN, T0, TRACE_B, S, column_rows, span, write

CHANGE = T0 + 10 * MIN


@pytest.fixture(name="deployed")
def deployed_fixture(store: DuckDBStore) -> DuckDBStore:
    """rag-api: three requests on 1.0 before the change, two on 1.1 after it (one failing
    tool call), a 1.0 straggler after it (rolling deploy), and another service's span."""
    spans = []
    for i, (minute, version) in enumerate([(1, "1.0"), (5, "1.0"), (9, "1.0"), (11, "1.1"),
                                           (12, "1.0"), (13, "1.1")]):
        root, start = f"r{i}", minute * 60
        spans += [
            span(root, start, start + 3, name="invoke_agent rag", service="rag-api",
                 service_version=version, operation="invoke_agent",
                 layer=Layer.ORCHESTRATION),
            span(f"c{i}", start + 1, start + 2, parent_span_id=root, name="chat gpt-4o",
                 service="rag-api", service_version=version, operation="chat",
                 input_tokens=100 + i, output_tokens=10, provider="openai",
                 request_model="gpt-4o"),
        ]
    spans.append(span("t3", 11 * 60 + 2, 11 * 60 + 2.5, parent_span_id="r3",
                      name="execute_tool search", service="rag-api", service_version="1.1",
                      operation="execute_tool", status="error", error_type="Timeout",
                      layer=Layer.ORCHESTRATION))
    spans.append(span("x", 11 * 60, 11 * 60 + 1, trace=TRACE_B, service="other",
                      service_version="1.1"))
    write(store, spans)
    return store


def test_requests_around_a_version_change_per_entity_and_side(deployed: DuckDBStore) -> None:
    cols = q.requests_around(
        deployed.cursor(), "rag-api", change_ns=CHANGE, until_ns=T0 + 60 * MIN,
        lookback_ns=60 * MIN, old_version="1.0", new_version="1.1", limit=10)
    rows = [r[:8] for r in column_rows(cols)]  # entity .. error_type
    m = MIN

    def row(entity: str, after: bool, start: int, dur: float, failed: bool = False,
            error: str | None = None) -> tuple[object, ...]:
        layer = "model" if entity.startswith("model") else "orchestration"
        return (entity, layer, after, T0 + start, T0 + start + int(dur * S), int(dur * S),
                failed, error)

    assert rows == sorted([
        row("model chat", False, 1 * m + S, 1), row("model chat", False, 5 * m + S, 1),
        row("model chat", False, 9 * m + S, 1),
        row("model chat", True, 11 * m + S, 1), row("model chat", True, 13 * m + S, 1),
        row("root", False, 1 * m, 3), row("root", False, 5 * m, 3), row("root", False, 9 * m, 3),
        row("root", True, 11 * m, 3), row("root", True, 13 * m, 3),
        row("tool execute_tool search", True, 11 * m + 2 * S, 0.5, True, "Timeout"),
    ])
    model = [r for r in column_rows(cols) if r[0] == "model chat"]
    assert [r[8:] for r in model] == [
        (100 + i, 10, None, "openai", "gpt-4o") for i in (0, 1, 2, 3, 5)]


def test_requests_around_keeps_the_latest_before_and_the_earliest_after(
    deployed: DuckDBStore,
) -> None:
    cols = q.requests_around(
        deployed.cursor(), "rag-api", change_ns=CHANGE, until_ns=T0 + 60 * MIN,
        lookback_ns=60 * MIN, old_version="1.0", new_version="1.1", limit=1)
    roots = [(r[2], r[3]) for r in column_rows(cols) if r[0] == "root"]
    assert roots == [(False, T0 + 9 * MIN), (True, T0 + 11 * MIN)]


def test_requests_around_without_versions_splits_by_time_only(deployed: DuckDBStore) -> None:
    cols = q.requests_around(
        deployed.cursor(), "rag-api", change_ns=CHANGE, until_ns=T0 + 12 * MIN + 30 * S,
        lookback_ns=6 * MIN, old_version=None, new_version=None, limit=10)
    roots = [(r[2], r[3]) for r in column_rows(cols) if r[0] == "root"]
    assert roots == [(False, T0 + 5 * MIN), (False, T0 + 9 * MIN), (True, T0 + 11 * MIN),
                     (True, T0 + 12 * MIN)]


def test_thin_requests_returns_only_entities_used_at_most_max_times(
    deployed: DuckDBStore,
) -> None:
    cur = deployed.cursor()
    cols = q.thin_requests(cur, start_ns=T0, end_ns=T0 + 60 * MIN, max_requests=1)
    assert [(r[0], r[1], r[4]) for r in column_rows(cols)] == [
        ("other", "root", T0 + 11 * MIN),
        ("rag-api", "tool execute_tool search", T0 + 11 * MIN + 2 * S),
    ]
    everything = q.thin_requests(cur, start_ns=T0, end_ns=T0 + 60 * MIN, max_requests=100)
    counts: dict[tuple[str, str], int] = {}
    for r in column_rows(everything):
        counts[r[0], r[1]] = counts.get((r[0], r[1]), 0) + 1
    assert counts == {("other", "root"): 1, ("rag-api", "model chat"): 6,
                      ("rag-api", "root"): 6, ("rag-api", "tool execute_tool search"): 1}
