"""strata.agent.store.deployments: deployment markers on a real DuckDB file."""

from __future__ import annotations

import pytest
from strata.agent.model import Deployment
from strata.agent.store import deployments as q
from strata.agent.store.db import DuckDBStore

from tests.agent.store.rows import T0

V1 = Deployment("rag-api", T0, version="1.1", previous_version="1.0", source="service.version")
MODEL = Deployment("rag-api", T0 + 10, model="gpt-4o", previous_model="gpt-4o-mini",
                   source="model", description="switched")
V2 = Deployment("rag-api", T0 + 20, version="1.2", previous_version="1.1")
OTHER = Deployment("search", T0 + 10, version="7")


def row(d: Deployment) -> tuple[object, ...]:
    return (d.service, d.time_unix_nano, d.version, d.previous_version, d.model,
            d.previous_model, d.source, d.description)


@pytest.fixture(name="deployed")
def deployed_fixture(store: DuckDBStore) -> DuckDBStore:
    with store.transaction() as tx:
        for d in (V2, MODEL, OTHER, V1):
            q.insert_deployment(tx, d, received_ns=5)
    return store


def test_insert_stores_every_column(deployed: DuckDBStore) -> None:
    rows = deployed.cursor().execute(
        "SELECT * FROM deployments ORDER BY time_ns, service").fetchall()
    assert rows == [(*row(d), 5) for d in (V1, MODEL, OTHER, V2)]


def test_known_versions_latest_per_service(deployed: DuckDBStore) -> None:
    assert q.known_versions(deployed.cursor()) == {"rag-api": ("1.2", T0 + 20),
                                                   "search": ("7", T0 + 10)}


def test_deployments_between_in_time_order(deployed: DuckDBStore) -> None:
    cur = deployed.cursor()
    assert q.deployments_between(cur, T0, T0 + 20) == [V1, MODEL, OTHER]
    assert q.deployments_between(cur, T0 + 11, T0 + 100) == [V2]


def test_list_deployments_newest_first_with_filters(deployed: DuckDBStore) -> None:
    cur = deployed.cursor()
    assert q.list_deployments(cur) == [row(V2), row(MODEL), row(OTHER), row(V1)]
    assert q.list_deployments(cur, service="search") == [row(OTHER)]
    assert q.list_deployments(cur, since_ns=T0 + 10, until_ns=T0 + 20) == [row(MODEL), row(OTHER)]
    assert q.list_deployments(cur, limit=1) == [row(V2)]
