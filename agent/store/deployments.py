"""The ``deployments`` table: explicit markers and changes detected in the data.

Named functions taking a cursor; every value is a bound parameter.
"""

from __future__ import annotations

from typing import Any, Final

import duckdb
from strata.agent.model import Deployment

__all__ = [
    "DEPLOYMENT_COLUMNS",
    "deployments_between",
    "insert_deployment",
    "known_versions",
    "list_deployments",
]

DEPLOYMENT_COLUMNS: Final = (
    "service, time_ns, version, previous_version, model, previous_model, source, description"
)


def insert_deployment(cur: duckdb.DuckDBPyConnection, d: Deployment, received_ns: int) -> None:
    cur.execute(
        "INSERT INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [d.service, d.time_unix_nano, d.version, d.previous_version, d.model,
         d.previous_model, d.source, d.description, received_ns],
    )


def known_versions(cur: duckdb.DuckDBPyConnection) -> dict[str, tuple[str | None, int]]:
    """Latest deployed version (and its time) per service, to resume change detection after
    a restart."""
    rows = cur.execute(
        "SELECT service, arg_max(version, time_ns), max(time_ns) FROM deployments "
        "WHERE version IS NOT NULL GROUP BY service"
    ).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def deployments_between(
    cur: duckdb.DuckDBPyConnection, since_ns: int, until_ns: int
) -> list[Deployment]:
    """Deployments at event times in ``[since_ns, until_ns)``, ordered by time, service and
    source."""
    rows = cur.execute(
        f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments "  # noqa: S608 - fixed column list
        "WHERE time_ns >= ? AND time_ns < ? ORDER BY time_ns, service, source",
        [since_ns, until_ns],
    ).fetchall()
    return [Deployment(
        service=r[0], time_unix_nano=int(r[1]), version=r[2], previous_version=r[3],
        model=r[4], previous_model=r[5], source=r[6], description=r[7],
    ) for r in rows]


def list_deployments(
    cur: duckdb.DuckDBPyConnection,
    *,
    service: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 500,
) -> list[tuple[Any, ...]]:
    """Rows (``DEPLOYMENT_COLUMNS``) matching every filter, newest first."""
    return cur.execute(
        f"""
        SELECT {DEPLOYMENT_COLUMNS} FROM deployments
        WHERE (CAST(? AS VARCHAR) IS NULL OR service = ?)
          AND (CAST(? AS BIGINT) IS NULL OR time_ns >= ?)
          AND (CAST(? AS BIGINT) IS NULL OR time_ns < ?)
        ORDER BY time_ns DESC, service LIMIT ?
        """,  # noqa: S608 - fixed column list
        [service, service, since_ns, since_ns, until_ns, until_ns, limit],
    ).fetchall()
