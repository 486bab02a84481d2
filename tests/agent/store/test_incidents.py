"""strata.agent.store.incidents: incidents and their timelines on a real DuckDB file."""

from __future__ import annotations

from dataclasses import replace

import pytest
from strata.agent.model import (
    Evidence,
    Incident,
    IncidentEvent,
    Rollback,
    Suggestion,
    SuspectedCause,
)
from strata.agent.store import incidents as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import MIN, T0

OPENED = IncidentEvent(T0 + MIN, "opened", "latency p95 up")
LATENCY = Incident(
    id="inc-1", kind="latency_regression", layer="model", service="rag-api", host=None,
    status="open", severity="critical", started_at_ns=T0, detected_at_ns=T0 + MIN,
    summary="p95 latency 2.0 s (was 0.5 s)",
    evidence=(Evidence("latency.p95", "model", 0.5, 2.0, "s"),),
    suspected_cause=SuspectedCause("model", "deployment", "version 1.2"),
    suggestion=Suggestion("rollback", "roll back rag-api", Rollback("rag-api", "1.2", "1.1")),
    events=(OPENED,),
)
THERMAL = Incident(
    id="inc-2", kind="gpu_thermal", layer="infrastructure", service=None, host="gpu-1",
    status="acknowledged", severity="warning", started_at_ns=T0 + 2 * MIN,
    detected_at_ns=T0 + 3 * MIN, summary="GPU hot", evidence=(), suspected_cause=None,
    suggestion=Suggestion("investigate", "check cooling"),
)
OLD = replace(THERMAL, id="inc-0", status="resolved", started_at_ns=T0 - MIN,
              resolved_at_ns=T0 + MIN)


@pytest.fixture(name="stored")
def stored_fixture(store: DuckDBStore) -> DuckDBStore:
    with store.transaction() as tx:
        for incident in (LATENCY, THERMAL, OLD):
            q.insert_incident(tx, incident, updated_ns=T0 + 5 * MIN)
        q.add_events(tx, LATENCY.id, LATENCY.events)
    return store


def test_get_incident_round_trips_with_its_timeline(stored: DuckDBStore) -> None:
    cur = stored.cursor()
    assert q.get_incident(cur, "inc-1") == LATENCY
    assert q.get_incident(cur, "inc-1", with_events=False) == replace(LATENCY, events=())
    assert q.get_incident(cur, "inc-2") == THERMAL
    assert q.get_incident(cur, "nope") is None


def test_list_incidents_newest_first_with_filters(stored: DuckDBStore) -> None:
    cur = stored.cursor()
    bare = replace(LATENCY, events=())
    assert q.list_incidents(cur) == [THERMAL, bare, OLD]
    assert q.list_incidents(cur, status="open") == [bare]
    assert q.list_incidents(cur, service="rag-api", kind="latency_regression") == [bare]
    assert q.list_incidents(cur, since_ns=T0, until_ns=T0 + 2 * MIN) == [bare]
    assert q.list_incidents(cur, limit=1) == [THERMAL]


def test_open_incidents_between(stored: DuckDBStore) -> None:
    cur = stored.cursor()
    assert q.open_incidents_between(cur, T0 - MIN, T0 + 10 * MIN) == [
        replace(LATENCY, events=()), THERMAL]
    assert q.open_incidents_between(cur, T0 + MIN, T0 + 10 * MIN) == [THERMAL]


def test_update_and_events_are_not_repeated(stored: DuckDBStore) -> None:
    cur = stored.cursor()
    worse = replace(LATENCY, severity="critical", summary="p95 latency 3.0 s", events=())
    q.update_incident(cur, worse, updated_ns=T0 + 6 * MIN)
    later = IncidentEvent(T0 + 4 * MIN, "evidence", "p95 3.0 s")
    assert q.add_events(cur, LATENCY.id, [OPENED, later]) == 1
    assert q.events_of(cur, LATENCY.id) == (OPENED, later)
    assert q.get_incident(cur, LATENCY.id) == replace(worse, events=(OPENED, later))
    assert cur.execute("SELECT updated_ns FROM incidents WHERE id = 'inc-1'").fetchall() == [
        (T0 + 6 * MIN,)]


def test_operator_status_and_manual_resolution(stored: DuckDBStore) -> None:
    cur = stored.cursor()
    assert q.manually_resolved(cur, "inc-1") is False
    done = q.set_status(cur, "inc-1", "resolved", time_ns=T0 + 9 * MIN,
                        detail=f"{q.MANUAL_RESOLVE} (alice)")
    resolved = IncidentEvent(T0 + 9 * MIN, "resolved", f"{q.MANUAL_RESOLVE} (alice)")
    assert done == replace(LATENCY, status="resolved", resolved_at_ns=T0 + 9 * MIN,
                           events=(OPENED, resolved))
    assert q.manually_resolved(cur, "inc-1") is True
    assert q.set_status(cur, "nope", "resolved", time_ns=T0, detail="x") is None


def test_open_incident_counts(stored: DuckDBStore) -> None:
    with stored.transaction() as tx:
        q.insert_incident(tx, replace(THERMAL, id="inc-3", host="gpu-2"), updated_ns=T0)
    assert q.open_incident_counts(stored.cursor()) == [
        ("gpu_thermal", "infrastructure", "warning", "", "acknowledged", 2),
        ("latency_regression", "model", "critical", "rag-api", "open", 1)]
