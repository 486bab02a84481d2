"""Storage: the DuckDB store, its schema, recovery and memory limit."""

from __future__ import annotations

from typing import Any

import duckdb


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of *result*, read to the end: ``fetchone`` leaves the statement open on
    the thread's cursor, and an open read keeps CHECKPOINT from running once another thread
    has updated a row it could still see."""
    rows = result.fetchall()
    return rows[0] if rows else None
