"""Alerts from hub replicas (``store.clickhouse.alerts``) on chdb: one replica sends, each
incident change is sent once whichever replica wrote it, a take-over resumes where the last
sender stopped, and operator acks are not alerted (as on the agent)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from strata.agent.api.app import create_hub_app
from strata.agent.config import Settings, Webhook
from strata.agent.hub import Hub
from strata.agent.model import Incident
from strata.agent.store.clickhouse.alerts import SLACK_NS, AlertLedger
from strata.agent.store.clickhouse.engine import ChdbEngine, Engine
from strata.agent.store.clickhouse.incidents import ClickHouseIncidents
from strata.agent.store.clickhouse.store import migrate

from tests.exporters.upstream import RecordingUpstream
from tests.waiting import wait_until

S = 10**9
LIVE_NS = 30 * S


def finding(n: int = 1, **changes: object) -> Incident:
    incident = Incident(id=f"inc-{n}", kind="latency_regression", layer="model",
                        service="rag-api", host=None, status="open", severity="warning",
                        started_at_ns=10 * S, detected_at_ns=20 * S, resolved_at_ns=None,
                        summary="p95 latency rose", evidence=(), suspected_cause=None,
                        suggestion=None)
    return replace(incident, **changes)  # type: ignore[arg-type]


@pytest.fixture(name="engine")
def engine_fixture(tmp_path: Path) -> Iterator[Engine]:
    engine = ChdbEngine(tmp_path / "ch")
    migrate(engine)
    yield engine
    engine.close()


def ledger(engine: Engine, replica: str, started_ns: int | None = None) -> AlertLedger:
    started = time.time_ns() if started_ns is None else started_ns
    return AlertLedger(engine, replica, live_ns=LIVE_NS, started_ns=started)


def send(sender: AlertLedger) -> list[str]:
    """One sender pass: what it would send, noted as sent."""
    scanned = time.time_ns()
    due = sender.due()
    sender.sent(due, scanned_ns=scanned)
    return [f"{i.id}:{i.status}" for i in due]


def test_the_live_replica_with_the_lowest_id_sends_and_a_survivor_takes_over(
    engine: Engine,
) -> None:
    a, b = ledger(engine, "replica-a"), ledger(engine, "replica-b")
    now = time.time_ns()
    assert a.is_sender(now)
    assert not b.is_sender(now)
    assert a.is_sender(now + S)  # still the lowest live id
    # replica-a stops beating: once its last beat is older than live_ns, b sends
    assert not b.is_sender(now + LIVE_NS - S)
    assert b.is_sender(now + LIVE_NS + 2 * S)


def test_each_change_is_sent_once_whichever_replica_wrote_it(engine: Engine) -> None:
    book, sender = ClickHouseIncidents(engine), ledger(engine, "replica-a")
    book.insert_incident(finding(1), 20 * S)
    assert send(sender) == ["inc-1:open"]
    assert send(sender) == []
    # a second replica wrote the same finding at once, detected at its own event time
    book.insert_incident(finding(1, detected_at_ns=21 * S), 21 * S)
    assert send(sender) == []
    book.insert_incident(finding(2), 22 * S)
    book.update_incident(finding(1, summary="p95 latency rose further"), 23 * S)
    assert sorted(send(sender)) == ["inc-1:open", "inc-2:open"]
    book.update_incident(finding(2, status="resolved", resolved_at_ns=30 * S), 30 * S)
    assert send(sender) == ["inc-2:resolved"]


def test_operator_acks_and_resolves_are_not_alerted(engine: Engine) -> None:
    book, sender = ClickHouseIncidents(engine), ledger(engine, "replica-a")
    book.insert_incident(finding(1), 20 * S)
    assert send(sender) == ["inc-1:open"]
    book.set_status("inc-1", "acknowledged", time_ns=time.time_ns(), detail="on it")
    book.set_status("inc-1", "resolved", time_ns=time.time_ns(), detail="manual: fixed")
    assert send(sender) == []


def test_a_sender_taking_over_resumes_where_the_last_one_stopped(engine: Engine) -> None:
    book = ClickHouseIncidents(engine)
    a = ledger(engine, "replica-a")
    book.insert_incident(finding(1), 20 * S)
    assert send(a) == ["inc-1:open"]
    book.insert_incident(finding(2), 21 * S)  # written after a's last pass
    # b starts long after: its own start would skip both, but the shared scan mark does not
    b = ledger(engine, "replica-b", started_ns=time.time_ns() + 10 * SLACK_NS)
    assert send(b) == ["inc-2:open"]


def test_a_new_database_is_scanned_from_the_senders_start(engine: Engine) -> None:
    ClickHouseIncidents(engine).insert_incident(finding(1), 20 * S)
    late = ledger(engine, "replica-a", started_ns=time.time_ns() + 2 * SLACK_NS)
    assert late.due() == []  # history before the first sender started is not replayed
    early = ledger(engine, "replica-b", started_ns=time.time_ns() - SLACK_NS)
    assert send(early) == ["inc-1:open"]


def test_the_hub_posts_the_fleets_incident_changes_to_its_webhook(tmp_path: Path) -> None:
    endpoint = RecordingUpstream()
    settings = Settings(webhooks=(Webhook(endpoint.url + "/hook"),))
    hub = Hub(settings, f"chdb:{tmp_path / 'ch'}")
    try:
        with TestClient(create_hub_app(hub), base_url="http://127.0.0.1") as client:
            with hub.store.incident_book() as book:  # as another replica's analysis writes it
                book.insert_incident(finding(1), 20 * S)
            assert client.post("/api/v1/analyze", json={}).status_code == 200
            wait_until(lambda: endpoint.requests, 10, "the webhook POST")
            assert client.post("/api/v1/analyze", json={}).status_code == 200
            assert client.post("/api/v1/incidents/inc-1/ack", json={}).status_code == 200
            with hub.store.incident_book() as book:
                book.update_incident(finding(1, status="resolved", resolved_at_ns=30 * S),
                                     30 * S)
            assert hub.send_alerts() == 1
            wait_until(lambda: len(endpoint.requests) == 2, 10, "the resolution's POST")
            assert hub.send_alerts() == 0
            exposition = client.get("/metrics").text  # the sender's deliveries, as an agent's
            delivered = [s.value for f in text_string_to_metric_families(exposition)
                         for s in f.samples if s.name == "strata_webhook_delivered_total"]
            assert delivered == [2]
    finally:
        endpoint.stop()
    sent = [json.loads(r.body) for r in endpoint.requests]
    assert [(d["id"], d["status"]) for d in sent] == [("inc-1", "open"), ("inc-1", "resolved")]
    assert all(r.path == "/hook" for r in endpoint.requests)
